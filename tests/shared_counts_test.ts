/**
 * SharedCounts and Guard across threads: real Workers, sharing one buffer.
 * The single-thread behaviour is in tests/unit/shared_counts_test.ts.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Guard } from "../admission/guard.ts";
import { noRefusals } from "../admission/refusals.ts";
import { SharedCounts } from "../admission/shared_counts.ts";
import { FixtureWorker } from "./shared_counts_client_fixture.ts";
import { within } from "./helpers.ts";

/** Lets queued promise reactions run, to show that something is still pending. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function reasonOf(admission: ReturnType<Guard["admit"]>): string {
  return admission.ok ? "ok" : admission.reason;
}

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
  await within(room, "the wake-up by a close in the worker");
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
  await within(workerRoom, "the wake-up in the worker");
  counts.close("b");
  strictEqual(counts.open, 0);
});

Deno.test("SharedCounts: concurrent tryOpen/close in 4 workers never exceeds the caps", async () => {
  const cap = 6;
  const maxPerKey = 3;
  const keys = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
  const counts = SharedCounts.create({ cap, slots: 64 });
  const start = new SharedArrayBuffer(4);
  const tally = new SharedArrayBuffer(4 * keys.length);
  const workers = Array.from({ length: 4 }, () => new FixtureWorker());
  try {
    const rounds = 200_000;
    const replies = workers.map((worker) =>
      worker.request({
        op: "hammer",
        buffer: counts.buffer,
        start,
        tally,
        parties: workers.length,
        keys,
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
    // Every key's slot is back to zero: each has all its places again.
    for (const key of keys) {
      const results = Array.from({ length: maxPerKey + 1 }, () => counts.tryOpen(key, maxPerKey));
      deepStrictEqual(results, [...Array(maxPerKey).fill("ok"), "per-ip"]);
      for (let i = 0; i < maxPerKey; i++) counts.close(key);
    }
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
        limit: { rate: 0.001, burst },
        nowMs: 1_000,
        attempts: burst,
      })
    ));
    const granted = replies.reduce((sum, reply) => sum + (reply.admitted ?? 0), 0);
    strictEqual(granted, burst);
    ok(!counts.takeToken("10.0.0.1", { rate: 0.001, burst }, 1_000));
  } finally {
    for (const worker of workers) worker[Symbol.dispose]();
  }
});

Deno.test("Guard (shared): a Guard in a Worker and one here share every limit", async () => {
  const shared = SharedCounts.create();
  const options = { maxConns: 4, maxConnsPerIp: 2, rate: 0.001, burst: 3 };
  const local = new Guard({ ...options, shared });
  using worker = new FixtureWorker();
  await worker.request({ op: "guard", buffer: shared.buffer, options });

  const remote = await worker.request({
    op: "admit",
    addresses: ["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3"],
  });
  deepStrictEqual(remote.results, ["ok", "ok", "per-ip", "ok", "ok"]);
  strictEqual(local.open, 4);
  ok(local.full);
  // 10.0.0.1 spent its 3 tokens in the worker; 10.0.0.4 has tokens but no room.
  strictEqual(reasonOf(local.admit("10.0.0.1")), "rate");
  strictEqual(reasonOf(local.admit("10.0.0.4")), "cap");
  deepStrictEqual(local.refusals, { ...noRefusals(), cap: 1, "per-ip": 1, rate: 1 });

  // Releases in the worker wake a waiter here.
  let woken = false;
  const room = local.whenNotFull().then(() => {
    woken = true;
  });
  await Promise.resolve();
  strictEqual(woken, false);
  await worker.request({ op: "release" });
  await within(room, "the wake-up by releases in the worker");
  ok(woken);
  strictEqual(local.open, 0);
  strictEqual(reasonOf(local.admit("10.0.0.4")), "ok");
});
