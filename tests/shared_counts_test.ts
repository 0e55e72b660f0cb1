import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { REFUSAL_REASONS } from "../admission/refusals.ts";
import { SharedCounts } from "../admission/shared_counts.ts";
import { FixtureWorker, within } from "./shared_counts_client_fixture.ts";

/** Lets queued promise reactions run, to show that something is still pending. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

Deno.test("SharedCounts: create defaults", () => {
  const counts = SharedCounts.create();
  strictEqual(counts.slots, 32_768);
  strictEqual(counts.cap, 2 ** 31 - 1);
  strictEqual(counts.open, 0);
  ok(!counts.full);
  ok(counts.buffer instanceof SharedArrayBuffer);
  ok(counts.buffer.byteLength <= 400 * 1024, `${counts.buffer.byteLength} bytes`);
  for (const reason of REFUSAL_REASONS) strictEqual(counts.refusals[reason], 0);
  strictEqual(SharedCounts.create({ slots: 1 << 16 }).buffer.byteLength, 786_496);
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
  const twin = SharedCounts.from(counts.buffer);
  strictEqual(twin.slots, 16);
  strictEqual(twin.cap, 5);
  strictEqual(counts.tryOpen("a", 2), "ok");
  strictEqual(twin.open, 1);
  strictEqual(twin.openFor("a"), 1);
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
    throws(() => SharedCounts.from(buffer as SharedArrayBuffer), { name: "TypeError", message });
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
  // The refused attempt left no trace in c's slot.
  strictEqual(counts.openFor("c"), 0);
  strictEqual(counts.open, 3);

  counts.close("a");
  strictEqual(counts.openFor("a"), 1);
  strictEqual(counts.tryOpen("c", 2), "ok");
  for (const key of ["a", "b", "c"]) counts.close(key);
  strictEqual(counts.open, 0);
  deepStrictEqual(counts.tracked(0), { perKey: 0, buckets: 0 });
});

Deno.test("SharedCounts: keys sharing a slot share their count and bucket", () => {
  const counts = SharedCounts.create({ slots: 1 });
  strictEqual(counts.tryOpen("10.0.0.1", 2), "ok");
  strictEqual(counts.tryOpen("10.0.0.2", 2), "ok");
  strictEqual(counts.tryOpen("10.0.0.3", 2), "per-ip");
  strictEqual(counts.openFor("192.0.2.1"), 2);
  ok(counts.takeToken("10.0.0.1", 1, 1, 0));
  ok(!counts.takeToken("10.0.0.2", 1, 1, 0));
});

Deno.test("SharedCounts: distinct keys spread over the slots", () => {
  const counts = SharedCounts.create({ slots: 1024 });
  for (let i = 0; i < 512; i++) counts.tryOpen(`10.0.${i >> 8}.${i & 255}`, 1_000);
  // 512 keys into 1024 slots: about 404 distinct slots expected if the hash is uniform.
  const { perKey } = counts.tracked(0);
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
  const take = (t: number, key = "a") => counts.takeToken(key, 1, 2, t);
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
  ok(counts.takeToken("half", 0.5, 1, 0));
  ok(!counts.takeToken("half", 0.5, 1, 1999));
  ok(counts.takeToken("half", 0.5, 1, 2000));

  // 3 per second: 333 333.33 µs per token, rounded up to 333 334.
  ok(counts.takeToken("third", 3, 1, 0));
  ok(!counts.takeToken("third", 3, 1, 333.333));
  ok(counts.takeToken("third", 3, 1, 333.334));
});

Deno.test("SharedCounts: takeToken validates its numbers", () => {
  const counts = SharedCounts.create();
  throws(() => counts.takeToken("a", 0, 1, 0), {
    name: "RangeError",
    message: "invalid rate 0: must be a positive finite number",
  });
  throws(() => counts.takeToken("a", 1, 0.5, 0), {
    name: "RangeError",
    message: "invalid burst 0.5: must be a finite number >= 1",
  });
  throws(() => counts.takeToken("a", 1, 1, Number.NaN), {
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
  deepStrictEqual(counts.refusals, {
    cap: 1,
    "per-ip": 0,
    rate: 0,
    denied: 0,
    idle: 2,
    lifetime: 1,
  });
  throws(() => counts.count("bogus" as never), {
    name: "RangeError",
    message: 'invalid refusal reason "bogus"',
  });
});

Deno.test("SharedCounts: tracked counts slots in use", () => {
  const counts = SharedCounts.create();
  counts.tryOpen("a", 5);
  counts.tryOpen("a", 5);
  counts.tryOpen("b", 5);
  counts.takeToken("a", 10, 5, 0);
  deepStrictEqual(counts.tracked(0), { perKey: 2, buckets: 1 });
  deepStrictEqual(counts.tracked(100), { perKey: 2, buckets: 0 }); // refilled
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
  await within(second, 5_000, "wake-up of another instance");
  counts.close("c");
  strictEqual(counts.open, 0);
});

Deno.test("SharedCounts: whenNotFull wakes across threads, both ways", async () => {
  const counts = SharedCounts.create({ cap: 2 });
  using worker = new FixtureWorker();
  const { buffer } = counts;

  // A close in the worker wakes a waiter here.
  strictEqual(counts.tryOpen("a", 5), "ok");
  deepStrictEqual((await worker.request({ op: "open", buffer, key: "w", count: 2 })).results, [
    "ok",
    "cap",
  ]);
  ok(counts.full);
  let woken = false;
  const room = counts.whenNotFull().then(() => {
    woken = true;
  });
  await settle();
  strictEqual(woken, false);
  await worker.request({ op: "close", buffer, key: "w", count: 1 });
  await within(room, 5_000, "wake-up by a close in the worker");
  ok(woken);

  // A close here wakes a waiter in the worker.
  strictEqual(counts.tryOpen("b", 5), "ok");
  ok(counts.full);
  const workerRoom = worker.request({ op: "wait", buffer });
  let workerWoken = false;
  void workerRoom.then(() => {
    workerWoken = true;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  strictEqual(workerWoken, false);
  counts.close("a");
  await within(workerRoom, 5_000, "wake-up in the worker");
  counts.close("b");
  strictEqual(counts.open, 0);
});

Deno.test("SharedCounts: concurrent tryOpen/close in 4 workers never exceeds the caps", async () => {
  const cap = 6;
  const maxPerKey = 3;
  const counts = SharedCounts.create({ cap, slots: 64 });
  const start = new SharedArrayBuffer(4);
  const workers = Array.from({ length: 4 }, () => new FixtureWorker());
  try {
    const rounds = 200_000;
    const replies = workers.map((worker) =>
      worker.request({
        op: "hammer",
        buffer: counts.buffer,
        start,
        parties: workers.length,
        keys: ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
        maxPerKey,
        rounds,
        hold: 4,
      })
    );
    let admitted = 0;
    let refused = 0;
    for (const reply of await Promise.all(replies)) {
      deepStrictEqual(reply.violations, []);
      admitted += reply.admitted ?? 0;
      refused += reply.refused ?? 0;
    }
    strictEqual(admitted + refused, 4 * rounds);
    // Alone, a worker holding up to 4 over 3 keys never meets a limit, so
    // refusals prove that the workers overlapped.
    ok(refused > 0, "expected refusals under contention");
    ok(admitted > 0);
    strictEqual(counts.open, 0);
    deepStrictEqual(counts.tracked(0), { perKey: 0, buckets: 0 });
  } finally {
    for (const worker of workers) worker[Symbol.dispose]();
  }
});

Deno.test("SharedCounts: concurrent takeToken in 4 workers grants exactly the burst", async () => {
  const counts = SharedCounts.create();
  const burst = 1_000;
  const workers = Array.from({ length: 4 }, () => new FixtureWorker());
  try {
    const replies = await Promise.all(workers.map((worker) =>
      worker.request({
        op: "tokens",
        buffer: counts.buffer,
        key: "10.0.0.1",
        rate: 0.001,
        burst,
        nowMs: 1_000,
        attempts: burst,
      })
    ));
    const granted = replies.reduce((sum, reply) => sum + (reply.admitted ?? 0), 0);
    strictEqual(granted, burst);
    ok(!counts.takeToken("10.0.0.1", 0.001, burst, 1_000));
  } finally {
    for (const worker of workers) worker[Symbol.dispose]();
  }
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
