/**
 * The echo loop's own logic, over a scripted stream: partial writes, the
 * buffer's growth and shrinking, and how an echo ends. (Socket behaviour is
 * covered end to end in server_test.ts.)
 */
import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { type Duplex, echoConnection } from "../transport/echo.ts";
import { pattern } from "./helpers.ts";

/** Delivers `chunks` one per read, takes at most `maxWrite` bytes per write, records it all. */
class ScriptedStream implements Duplex {
  readSizes: number[] = [];
  written: number[] = [];
  closed = false;
  #chunks: Uint8Array[];
  #maxWrite: number;
  #readError: Error | undefined;

  constructor(chunks: Uint8Array[], maxWrite = Infinity, readError?: Error) {
    this.#chunks = [...chunks];
    this.#maxWrite = maxWrite;
    this.#readError = readError;
  }

  read(p: Uint8Array): Promise<number | null> {
    this.readSizes.push(p.length);
    const chunk = this.#chunks.shift();
    if (chunk === undefined) {
      return this.#readError ? Promise.reject(this.#readError) : Promise.resolve(null);
    }
    if (chunk.length > p.length) throw new Error("script error: chunk larger than the buffer");
    p.set(chunk);
    return Promise.resolve(chunk.length);
  }

  write(p: Uint8Array): Promise<number> {
    const n = Math.min(p.length, this.#maxWrite);
    this.written.push(...p.subarray(0, n));
    return Promise.resolve(n);
  }

  close(): void {
    this.closed = true;
  }
}

Deno.test("partial writes are completed, every byte in order", async () => {
  const chunks = [pattern(1024, 1), pattern(1000, 2), pattern(7, 3)];
  const stream = new ScriptedStream(chunks, 3);
  const counters = { bytesIn: 0, bytesOut: 0 };
  strictEqual(await echoConnection(stream, { counters }), "eof");
  deepStrictEqual(stream.written, chunks.flatMap((c) => [...c]));
  deepStrictEqual(counters, { bytesIn: 2031, bytesOut: 2031 });
});

Deno.test("the buffer grows ×4 while reads fill it and shrinks once reads stay small", async () => {
  const full = (n: number) => new Uint8Array(n);
  const stream = new ScriptedStream([
    full(1024), // fills 1 KiB: grow to 4 KiB
    full(4096), // fills 4 KiB: grow to 16 KiB
    full(1500), // a short segment of a bulk transfer: keep 16 KiB
    full(16384), // fills: grow to 64 KiB
    full(65536), // fills the maximum: stay
    full(10),
    full(10),
    full(10),
    full(10), // small for four reads: back to 1 KiB
    full(10),
  ]);
  await echoConnection(stream, {
    initialBufferSize: 1024,
    maxBufferSize: 65536,
    bulkAfterBytes: 0,
  });
  deepStrictEqual(stream.readSizes, [
    ...[1024, 4096, 16384, 16384],
    ...[65536, 65536, 65536, 65536, 65536],
    ...[1024, 1024], // the last small chunk, then the end of the stream
  ]);
});

Deno.test("a reset ends the echo as 'reset'; other errors reject", async () => {
  const reset = new ScriptedStream([pattern(5)], Infinity, new Deno.errors.ConnectionReset("x"));
  strictEqual(await echoConnection(reset), "reset");
  const odd = new ScriptedStream([], Infinity, new Error("disk on fire"));
  await rejects(echoConnection(odd), /disk on fire/);
});

Deno.test("closing the stream under a pending read ends the echo with the read's error", async () => {
  const stream = new ScriptedStream([pattern(5)]);
  const closed = Promise.withResolvers<number | null>();
  closed.promise.catch(() => {}); // the echo sees it through its read
  stream.close = () => {
    stream.closed = true;
    closed.reject(new Deno.errors.BadResource("Bad resource ID"));
  };
  const read = stream.read.bind(stream);
  stream.read = (p) => stream.readSizes.length === 0 ? read(p) : closed.promise;
  const counters = { bytesIn: 0, bytesOut: 0 };
  const echo = echoConnection(stream, { counters });
  // The owner closes it, as the server does at a timeout or the end of a drain.
  await Promise.resolve();
  stream.close();
  await rejects(echo, Deno.errors.BadResource);
  strictEqual(stream.closed, true);
  deepStrictEqual(counters, { bytesIn: 5, bytesOut: 5 });
});
