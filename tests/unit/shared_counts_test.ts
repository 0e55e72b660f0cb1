import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { RateLimit } from "../../admission/limits.ts";
import { noRefusals, REFUSAL_REASONS } from "../../admission/refusals.ts";
import { SharedCounts } from "../../admission/shared_counts.ts";
import { within } from "../helpers.ts";

/** Lets queued promise reactions run, to show that something is still pending. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("SharedCounts: create defaults", () => {
  const counts = SharedCounts.create();
  // 32_768 slots of 12 bytes, after a 16-byte header and a counter per refusal reason.
  strictEqual(counts.buffer.byteLength, 16 + REFUSAL_REASONS.length * 8 + 32_768 * 12);
  strictEqual(counts.cap, 2 ** 31 - 1);
  strictEqual(counts.open, 0);
  ok(!counts.full);
  ok(counts.buffer instanceof SharedArrayBuffer);
  ok(counts.buffer.byteLength <= 400 * 1024, `${counts.buffer.byteLength} bytes`);
  for (const reason of REFUSAL_REASONS) strictEqual(counts.refusals[reason], 0);
  strictEqual(
    SharedCounts.create({ slots: 1 << 16 }).buffer.byteLength,
    16 + REFUSAL_REASONS.length * 8 + (1 << 16) * 12,
  );
});

Deno.test("SharedCounts: invalid options name the option and value", () => {
  const slots = "must be a power of two from 1 to 1048576";
  const cap = "must be a positive integer up to 2147483647";
  const cases: [Parameters<typeof SharedCounts.create>[0], string][] = [
    [{ slots: 0 }, `invalid slots 0: ${slots}`],
    [{ slots: 3 }, `invalid slots 3: ${slots}`],
    [{ slots: 2 ** 21 }, `invalid slots 2097152: ${slots}`],
    [{ slots: 0.5 }, `invalid slots 0.5: ${slots}`],
    [{ cap: 0 }, `invalid cap 0: ${cap}`],
    [{ cap: 2 ** 31 }, `invalid cap 2147483648: ${cap}`],
    [{ cap: 1.5 }, `invalid cap 1.5: ${cap}`],
  ];
  for (const [options, message] of cases) {
    throws(() => SharedCounts.create(options), { name: "RangeError", message });
  }
});

Deno.test("SharedCounts: attaching sees the same counts; foreign buffers are refused", () => {
  const counts = SharedCounts.create({ slots: 16, cap: 5 });
  const twin = new SharedCounts(counts.buffer);
  strictEqual(twin.buffer.byteLength, 16 + REFUSAL_REASONS.length * 8 + 16 * 12);
  strictEqual(twin.cap, 5);
  strictEqual(counts.tryOpen("a", 2), "ok");
  strictEqual(twin.open, 1);
  strictEqual(twin.tryOpen("a", 1), "per-ip"); // the twin sees a's count
  twin.close("a");
  strictEqual(counts.open, 0);

  const message = /must come from SharedCounts\.create/;
  const foreign = [
    new ArrayBuffer(counts.buffer.byteLength),
    new SharedArrayBuffer(counts.buffer.byteLength), // right size, no header
    new SharedArrayBuffer(8),
  ];
  for (const buffer of foreign) {
    throws(() => new SharedCounts(buffer as SharedArrayBuffer), { name: "TypeError", message });
    throws(() => new SharedCounts(buffer as SharedArrayBuffer), { name: "TypeError", message });
  }
  const grown = new SharedArrayBuffer(counts.buffer.byteLength + 8);
  new Uint8Array(grown).set(new Uint8Array(counts.buffer));
  throws(() => new SharedCounts(grown), { name: "TypeError", message });
});

Deno.test("SharedCounts: tryOpen checks per-key first, then the cap", () => {
  const counts = SharedCounts.create({ cap: 3 });
  strictEqual(counts.tryOpen("a", 2), "ok");
  strictEqual(counts.tryOpen("a", 2), "ok");
  strictEqual(counts.tryOpen("a", 2), "per-ip");
  strictEqual(counts.tryOpen("b", 2), "ok");
  ok(counts.full);
  strictEqual(counts.tryOpen("a", 2), "per-ip"); // the key's own limit wins over the cap
  strictEqual(counts.tryOpen("c", 2), "cap");
  strictEqual(counts.open, 3);

  counts.close("a");
  strictEqual(counts.tryOpen("a", 1), "per-ip"); // one of a's two is left
  // The refused attempt left no trace in c's slot.
  strictEqual(counts.tryOpen("c", 1), "ok");
  for (const key of ["a", "b", "c"]) counts.close(key);
  strictEqual(counts.open, 0);
  // Every slot is back to zero.
  for (const key of ["a", "b", "c"]) {
    strictEqual(counts.tryOpen(key, 1), "ok");
    counts.close(key);
  }
});

Deno.test("SharedCounts: keys sharing a slot share their count and bucket", () => {
  const counts = SharedCounts.create({ slots: 1 });
  strictEqual(counts.tryOpen("10.0.0.1", 2), "ok");
  strictEqual(counts.tryOpen("10.0.0.2", 2), "ok");
  strictEqual(counts.tryOpen("10.0.0.3", 2), "per-ip");
  strictEqual(counts.tryOpen("192.0.2.1", 2), "per-ip");
  const limit: RateLimit = { rate: 1, burst: 1 };
  ok(counts.takeToken("10.0.0.1", limit, 0));
  ok(!counts.takeToken("10.0.0.2", limit, 0));
});

Deno.test("SharedCounts: distinct keys spread over the slots", () => {
  const counts = SharedCounts.create({ slots: 1024 });
  // With one connection per slot, a key is refused only when its slot is taken.
  let perKey = 0;
  for (let i = 0; i < 512; i++) {
    if (counts.tryOpen(`10.0.${i >> 8}.${i & 255}`, 1) === "ok") perKey++;
  }
  // 512 keys into 1024 slots: about 404 distinct slots expected if the hash is uniform.
  ok(perKey > 370, `${perKey} slots used`);
});

Deno.test("SharedCounts: lowerCap lowers but never raises", () => {
  const counts = SharedCounts.create({ cap: 10 });
  strictEqual(counts.lowerCap(4.9), 4);
  strictEqual(counts.lowerCap(8), 4);
  strictEqual(counts.lowerCap(-5), 1);
  strictEqual(counts.cap, 1);
  throws(() => counts.lowerCap(Number.NaN), { name: "RangeError" });
  strictEqual(counts.tryOpen("a", 5), "ok");
  strictEqual(counts.tryOpen("b", 5), "cap");
  ok(counts.full);
});

Deno.test("SharedCounts: takeToken refills at rate up to burst", () => {
  const counts = SharedCounts.create();
  const take = (t: number, key = "a") => counts.takeToken(key, { rate: 1, burst: 2 }, t);
  deepStrictEqual([take(0), take(0), take(0)], [true, true, false]);
  ok(take(0, "b"), "other keys have their own bucket");
  ok(!take(999));
  ok(take(1000));
  ok(!take(1000));
  ok(take(5000));
  ok(take(5000), "refill stops at burst, but a full burst is back");
  ok(!take(5000));
  // A clock that steps back a little costs a wait, never an extra token.
  ok(!take(4000));
});

Deno.test("SharedCounts: fractional rate and rounding never exceed the rate", () => {
  const counts = SharedCounts.create();
  const half: RateLimit = { rate: 0.5, burst: 1 };
  ok(counts.takeToken("half", half, 0));
  ok(!counts.takeToken("half", half, 1999));
  ok(counts.takeToken("half", half, 2000));

  // 3 per second: 333 333.33 µs per token, rounded up to 333 334.
  const third: RateLimit = { rate: 3, burst: 1 };
  ok(counts.takeToken("third", third, 0));
  ok(!counts.takeToken("third", third, 333.333));
  ok(counts.takeToken("third", third, 333.334));
});

Deno.test("SharedCounts: takeToken checks its clock (the limit was checked by checkRate)", () => {
  const counts = SharedCounts.create();
  throws(() => counts.takeToken("a", { rate: 1, burst: 1 }, Number.NaN), {
    name: "RangeError",
    message: "invalid nowMs NaN: must be a finite number",
  });
});

Deno.test("SharedCounts: count and refusals", () => {
  const counts = SharedCounts.create();
  counts.count("idle");
  counts.count("idle");
  counts.count("cap");
  const twin = new SharedCounts(counts.buffer);
  twin.count("lifetime");
  deepStrictEqual(counts.refusals, { ...noRefusals(), cap: 1, idle: 2, lifetime: 1 });
  throws(() => counts.count("bogus" as never), {
    name: "RangeError",
    message: 'invalid refusal reason "bogus"',
  });
});

Deno.test("SharedCounts: per-key counts and buckets are kept apart", () => {
  const counts = SharedCounts.create();
  counts.tryOpen("a", 5);
  counts.tryOpen("a", 5);
  counts.tryOpen("b", 5);
  const limit: RateLimit = { rate: 10, burst: 5 };
  ok(counts.takeToken("a", limit, 0));
  strictEqual(counts.tryOpen("a", 2), "per-ip");
  strictEqual(counts.tryOpen("b", 2), "ok");
  // a's bucket is full again after 100 ms; b's was never touched.
  deepStrictEqual(
    [1, 2, 3, 4, 5, 6].map(() => counts.takeToken("a", limit, 100)),
    [true, true, true, true, true, false],
  );
  ok(counts.takeToken("b", limit, 0));
});

Deno.test("SharedCounts: whenNotFull waits for a close in the same thread", async () => {
  const counts = SharedCounts.create({ cap: 2 });
  await counts.whenNotFull();
  counts.tryOpen("a", 5);
  counts.tryOpen("b", 5);
  let woken = 0;
  const first = counts.whenNotFull().then(() => woken++);
  const second = new SharedCounts(counts.buffer).whenNotFull();
  const third = counts.whenNotFull().then(() => woken++);
  await settle();
  strictEqual(woken, 0);
  counts.close("a");
  await Promise.all([first, third]);
  strictEqual(woken, 2);

  // Refilled: a fresh wait waits again for the next close.
  counts.tryOpen("c", 5);
  let again = false;
  const fourth = counts.whenNotFull().then(() => {
    again = true;
  });
  await settle();
  strictEqual(again, false);
  counts.close("b");
  await fourth;
  ok(again);
  // `second` belongs to another instance, woken only through Atomics.notify,
  // whose delivery needs a live event loop: within()'s timer provides one.
  await within(second, "the wake-up of another instance");
  counts.close("c");
  strictEqual(counts.open, 0);
});

Deno.test("whenNotFull resolves when room appears between the full check and the wait", async () => {
  // Another thread can close a connection right after `full` was read; a
  // subclass that reports full while there is room replays that interleaving.
  class RacedCounts extends SharedCounts {
    override get full(): boolean {
      return true;
    }
  }
  const counts = new RacedCounts(SharedCounts.create({ cap: 2 }).buffer);
  strictEqual(counts.open, 0);
  await counts.whenNotFull();
  await counts.whenNotFull();
});
