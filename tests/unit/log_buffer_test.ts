/** The log buffer in front of stderr: bounded, never blocking, counting and reporting drops. */
import { deepEqual, equal, throws } from "node:assert/strict";
import { LogBuffer } from "../../log/buffer.ts";

const decoder = new TextDecoder();

/** A writer whose reader can be stalled and resumed; `text` is what it has written. */
function pipe() {
  const state = { text: "", writes: 0, stalled: false, resume: () => {} };
  const called = Promise.withResolvers<void>();
  const write = async (bytes: Uint8Array): Promise<number> => {
    called.resolve();
    while (state.stalled) await new Promise<void>((resolve) => (state.resume = resolve));
    state.writes++;
    state.text += decoder.decode(bytes);
    return bytes.length;
  };
  const unstall = () => {
    state.stalled = false;
    state.resume();
  };
  // `writing` settles once the buffer has begun its first write.
  return { state, write, unstall, writing: called.promise };
}

Deno.test("log buffer: lines of one turn go out in one write, in order", async () => {
  const { state, write } = pipe();
  const buffer = new LogBuffer({ write });
  for (let i = 0; i < 100; i++) buffer.push(`line ${i}\n`);
  equal(await buffer.flush(1000), true);
  equal(state.writes, 1);
  equal(state.text, Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(""));
});

Deno.test("log buffer: a stalled reader never blocks push; beyond the bound lines are dropped, counted and reported at the gap", async () => {
  const { state, write, unstall, writing } = pipe();
  const buffer = new LogBuffer({ write, maxChars: 20, droppedLine: (n) => `[${n} lost]\n` });
  state.stalled = true;
  buffer.push("a\n"); // taken by the first write, which stalls
  await writing;
  equal(buffer.push("bbbbbbbbbb\n"), true); // 11 characters queued
  equal(buffer.push("ccccccccc\n"), false); // 21 would be over the bound
  // 15 would fit, but not with the report of the gap before it, which must come first.
  equal(buffer.push("ddd\n"), false);
  equal(buffer.dropped, 2);
  equal(await buffer.flush(20), false); // stuck: gives up instead of waiting for ever
  unstall();
  equal(await buffer.flush(1000), true);
  equal(state.text, "a\nbbbbbbbbbb\n[2 lost]\n");
  equal(buffer.dropped, 2);
});

Deno.test("log buffer: the report of lost lines comes before the next line that fits", async () => {
  const { state, write, unstall, writing } = pipe();
  const buffer = new LogBuffer({ write, maxChars: 8, droppedLine: (n) => `[${n} lost]\n` });
  state.stalled = true;
  buffer.push("1\n");
  await writing;
  buffer.push("2222222\n"); // fills the buffer
  buffer.push("3\n");
  buffer.push("4\n");
  unstall();
  await buffer.flush(1000);
  buffer.push("5\n");
  await buffer.flush(1000);
  deepEqual(state.text.split("\n"), ["1", "2222222", "[2 lost]", "5", ""]);
});

Deno.test("log buffer: a gone reader drops everything and counts it, without throwing", async () => {
  const buffer = new LogBuffer({
    write: () => Promise.reject(new Deno.errors.BrokenPipe("broken pipe")),
  });
  buffer.push("one\n");
  buffer.push("two\nthree\n", 2);
  equal(await buffer.flush(1000), true);
  equal(buffer.dropped, 3);
  equal(buffer.push("four\n"), false);
  equal(buffer.dropped, 4);
});

Deno.test("log buffer: flushSync writes what is queued at once", () => {
  let written = "";
  const buffer = new LogBuffer({
    write: () => new Promise<number>(() => {}),
    writeSync: (bytes) => {
      written += decoder.decode(bytes);
      return bytes.length;
    },
  });
  buffer.push("last words\n");
  buffer.flushSync();
  equal(written, "last words\n");
  equal(buffer.queued, 0);
});

Deno.test("log buffer: bounds must be positive integers", () => {
  const write = () => Promise.resolve(0);
  throws(() => new LogBuffer({ write, maxChars: 0 }), RangeError);
  throws(() => new LogBuffer({ write, chunkChars: 1.5 }), RangeError);
});

Deno.test("log buffer: multi-byte text, partial writes and a line longer than a chunk come out whole", async () => {
  let text = "";
  // Takes at most 5 bytes a write, and reads them at once: the buffer reuses its array afterwards.
  const write = (bytes: Uint8Array): Promise<number> => {
    const taken = bytes.subarray(0, 5);
    text += decoder.decode(taken, { stream: true });
    return Promise.resolve(taken.length);
  };
  const buffer = new LogBuffer({ write, chunkChars: 8 });
  const lines = ["é ü ß\n", "🦕 deno\n", `${"long line ".repeat(5)}ends\n`, "日本語\n"];
  for (const line of lines) buffer.push(line);
  equal(await buffer.flush(1000), true);
  equal(text + decoder.decode(), lines.join(""));
});
