import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { parseCidr } from "../../admission/cidr.ts";
import { type Admission, Guard, type GuardOptions } from "../../admission/guard.ts";
import { LimitError } from "../../admission/limits.ts";
import { noRefusals, REFUSAL_REASONS } from "../../admission/refusals.ts";
import { SharedCounts } from "../../admission/shared_counts.ts";

function release(admission: Admission): void {
  ok(admission.ok, "expected an admission");
  admission.release();
}

function reasonOf(admission: Admission): string {
  return admission.ok ? "ok" : admission.reason;
}

function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

Deno.test("Guard: defaults admit and count", () => {
  const guard = new Guard();
  strictEqual(guard.open, 0);
  ok(!guard.full);
  const admission = guard.admit("10.0.0.1");
  strictEqual(reasonOf(admission), "ok");
  strictEqual(guard.open, 1);
  release(admission);
  strictEqual(guard.open, 0);
});

Deno.test("Guard: refusal counters start at 0 with every reason present", () => {
  const refusals = new Guard().refusals;
  deepStrictEqual(Object.keys(refusals).sort(), [...REFUSAL_REASONS].sort());
  for (const reason of REFUSAL_REASONS) strictEqual(refusals[reason], 0);
  deepStrictEqual([...REFUSAL_REASONS], [
    "cap",
    "per-ip",
    "rate",
    "denied",
    "idle",
    "lifetime",
    "proxy-untrusted",
    "proxy-header",
  ]);
});

Deno.test("Guard: per-ip limit counts by address key", () => {
  const guard = new Guard({ maxConnsPerIp: 2 });
  const a = guard.admit("10.0.0.1");
  const b = guard.admit("::ffff:10.0.0.1"); // same client via a dual-stack listener
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "per-ip");
  strictEqual(reasonOf(guard.admit("10.0.0.2")), "ok");
  strictEqual(reasonOf(guard.admit("::ffff:10.0.0.1")), "per-ip");

  const v6a = guard.admit("2001:db8:1:2::1");
  const v6b = guard.admit("2001:db8:1:2::ffff");
  strictEqual(reasonOf(guard.admit("2001:db8:1:2:3:4:5:6")), "per-ip");
  strictEqual(reasonOf(guard.admit("2001:db8:1:3::1")), "ok");
  strictEqual(reasonOf(guard.admit("2001:db8:1:2::42")), "per-ip");

  release(a);
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "per-ip");
  release(b);
  release(v6a);
  release(v6b);
  strictEqual(guard.refusals["per-ip"], 5);
});

Deno.test("Guard: release is idempotent", () => {
  const guard = new Guard({ maxConnsPerIp: 2 });
  const a = guard.admit("10.0.0.1");
  guard.admit("10.0.0.1");
  ok(a.ok);
  a.release();
  a.release();
  a.release();
  strictEqual(guard.open, 1);
  // One of the key's two places is still taken.
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "per-ip");
});

Deno.test("Guard: cap on total open connections", () => {
  const guard = new Guard({ maxConns: 2 });
  const a = guard.admit("10.0.0.1");
  guard.admit("10.0.0.2");
  ok(guard.full);
  strictEqual(reasonOf(guard.admit("10.0.0.3")), "cap");
  strictEqual(guard.refusals.cap, 1);
  release(a);
  ok(!guard.full);
  strictEqual(reasonOf(guard.admit("10.0.0.3")), "ok");
});

Deno.test("Guard: deny wins over allow", () => {
  const guard = new Guard({
    allow: [parseCidr("10.0.0.0/8")],
    deny: [parseCidr("10.1.0.0/16")],
  });
  strictEqual(reasonOf(guard.admit("10.2.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("10.1.0.1")), "denied");
  strictEqual(reasonOf(guard.admit("::ffff:10.1.0.1")), "denied");
  strictEqual(guard.refusals.denied, 2);
});

Deno.test("Guard: allow-only admits just matching addresses", () => {
  const guard = new Guard({ allow: [parseCidr("127.0.0.0/8"), parseCidr("::1")] });
  strictEqual(reasonOf(guard.admit("127.0.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("::ffff:127.0.0.2")), "ok");
  strictEqual(reasonOf(guard.admit("::1")), "ok");
  strictEqual(reasonOf(guard.admit("192.0.2.1")), "denied");
  strictEqual(reasonOf(guard.admit("2001:db8::1")), "denied");
  strictEqual(reasonOf(guard.admit("garbage")), "denied");
});

Deno.test("Guard: deny-only refuses matches and admits the rest", () => {
  const guard = new Guard({ deny: [parseCidr("2001:db8::/32")] });
  strictEqual(reasonOf(guard.admit("2001:db8:5::1")), "denied");
  strictEqual(reasonOf(guard.admit("2001:db9::1")), "ok");
  strictEqual(reasonOf(guard.admit("192.0.2.1")), "ok");
});

Deno.test("Guard: options are copied, not referenced", () => {
  const deny = [parseCidr("192.0.2.0/24")];
  const guard = new Guard({ deny });
  deny.length = 0;
  strictEqual(reasonOf(guard.admit("192.0.2.1")), "denied");
});

Deno.test("Guard: rate limits new connections per key", () => {
  const clock = fakeClock();
  const guard = new Guard({ rate: 1, burst: 2, now: clock.now });
  const results = [1, 2, 3].map(() => reasonOf(guard.admit("10.0.0.1")));
  deepStrictEqual(results, ["ok", "ok", "rate"]);
  strictEqual(reasonOf(guard.admit("10.0.0.2")), "ok"); // other keys have their own bucket
  clock.advance(1000);
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "rate");
  strictEqual(guard.refusals.rate, 2);
});

Deno.test("Guard: fractional rate and default burst", () => {
  const clock = fakeClock();
  const guard = new Guard({ rate: 0.5, now: clock.now });
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
  clock.advance(1999);
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "rate");
  clock.advance(1);
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
});

Deno.test("Guard: order of checks is denied, rate, per-ip, cap", () => {
  const clock = fakeClock();
  const options: GuardOptions = {
    maxConns: 1,
    maxConnsPerIp: 1,
    rate: 1,
    burst: 2,
    deny: [parseCidr("192.0.2.0/24")],
    now: clock.now,
  };

  // Denied before rate (that a denied address spends no token is shown below).
  const guard = new Guard(options);
  strictEqual(reasonOf(guard.admit("192.0.2.1")), "denied");

  // Rate before per-ip: every attempt spends a token, even one refused for per-ip.
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "ok");
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "per-ip");
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "rate");

  // Per-ip before cap: the guard is full, yet the key's own limit is reported.
  ok(guard.full);
  clock.advance(10_000);
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "per-ip");
  strictEqual(reasonOf(guard.admit("10.0.0.2")), "cap");

  deepStrictEqual(guard.refusals, {
    ...noRefusals(),
    cap: 1,
    "per-ip": 2,
    rate: 1,
    denied: 1,
  });
});

Deno.test("Guard: a denied address spends no token", () => {
  // Two Guards share their buckets but not their deny lists, so the second
  // shows what the first spent for an address it denied.
  const clock = fakeClock();
  const shared = SharedCounts.create();
  const limits: GuardOptions = { rate: 1, burst: 2, now: clock.now, shared };
  const strict = new Guard({ ...limits, deny: [parseCidr("192.0.2.0/24")] });
  const open = new Guard(limits);
  strictEqual(reasonOf(strict.admit("192.0.2.1")), "denied");
  strictEqual(reasonOf(strict.admit("192.0.2.1")), "denied");
  deepStrictEqual(
    [1, 2, 3].map(() => reasonOf(open.admit("192.0.2.1"))),
    ["ok", "ok", "rate"],
  );
});

Deno.test("Guard: count records closes decided elsewhere", () => {
  const guard = new Guard();
  guard.count("idle");
  guard.count("idle");
  guard.count("lifetime");
  guard.count("cap");
  const refusals = guard.refusals;
  strictEqual(refusals.idle, 2);
  strictEqual(refusals.lifetime, 1);
  strictEqual(refusals.cap, 1);
  // A snapshot: later counts do not change an earlier result.
  guard.count("idle");
  strictEqual(refusals.idle, 2);
  throws(() => guard.count("bogus" as never), {
    name: "RangeError",
    message: 'invalid refusal reason "bogus"',
  });
});

Deno.test("Guard: whenNotFull resolves at once when not full", async () => {
  const guard = new Guard({ maxConns: 1 });
  await guard.whenNotFull();
});

Deno.test("Guard: whenNotFull resolves on release", async () => {
  const guard = new Guard({ maxConns: 2 });
  const a = guard.admit("10.0.0.1");
  guard.admit("10.0.0.2");
  let resolved = 0;
  const first = guard.whenNotFull().then(() => resolved++);
  const second = guard.whenNotFull().then(() => resolved++);
  await Promise.resolve();
  await Promise.resolve();
  strictEqual(resolved, 0);
  release(a);
  await Promise.all([first, second]);
  strictEqual(resolved, 2);
  ok(!guard.full);

  // A fresh wait after filling up again waits for the next release.
  const c = guard.admit("10.0.0.3");
  ok(guard.full);
  let again = false;
  const third = guard.whenNotFull().then(() => {
    again = true;
  });
  await Promise.resolve();
  strictEqual(again, false);
  release(c);
  await third;
  strictEqual(again, true);
});

Deno.test("Guard: per-ip counts of many keys all return to zero", () => {
  const guard = new Guard({ maxConnsPerIp: 1 });
  const v4 = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
  const v6 = (i: number) => `2001:db8:${i.toString(16)}::1`;
  const admissions: Admission[] = [];
  for (let i = 0; i < 5_000; i++) {
    admissions.push(guard.admit(v4(i)));
    admissions.push(guard.admit(v6(i)));
  }
  strictEqual(guard.open, 10_000);
  strictEqual(reasonOf(guard.admit(v4(4_999))), "per-ip");
  for (const admission of admissions) release(admission);
  strictEqual(guard.open, 0);
  for (const key of [v4(0), v4(4_999), v6(0), v6(4_999)]) release(guard.admit(key));
  strictEqual(guard.refusals["per-ip"], 1);
});

Deno.test("Guard: token buckets of many keys refill to the full burst", () => {
  const clock = fakeClock();
  const guard = new Guard({ rate: 10, burst: 5, now: clock.now });
  const key = (i: number) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
  for (let i = 0; i < 10_000; i++) {
    const admission = guard.admit(key(i));
    release(admission);
    clock.advance(1);
  }
  // One token refills in 100 ms: the last key is still one short, the first is full.
  const burst = (address: string) => [1, 2, 3, 4, 5, 6].map(() => reasonOf(guard.admit(address)));
  deepStrictEqual(burst(key(9_999)), ["ok", "ok", "ok", "ok", "rate", "rate"]);
  deepStrictEqual(burst(key(0)), ["ok", "ok", "ok", "ok", "ok", "rate"]);
  clock.advance(1_000);
  deepStrictEqual(burst(key(9_999)), ["ok", "ok", "ok", "ok", "ok", "rate"]);
});

Deno.test("Guard: token buckets beyond maxRateKeys forget the least recently seen", () => {
  const clock = fakeClock();
  const guard = new Guard({ rate: 0.001, maxRateKeys: 50, now: clock.now });
  const key = (i: number) => `2001:db8:${i.toString(16)}::1`;
  for (let i = 0; i < 1_000; i++) release(guard.admit(key(i)));
  // Exactly the 50 most recent keys are still limited (each check touches
  // its key again, in the same order)...
  for (let i = 950; i < 1_000; i++) strictEqual(reasonOf(guard.admit(key(i))), "rate", key(i));
  strictEqual(reasonOf(guard.admit(key(949))), "ok");
  // ...and the 949th took the place of the least recently seen, the 950th.
  strictEqual(reasonOf(guard.admit(key(999))), "rate");
  strictEqual(reasonOf(guard.admit(key(950))), "ok");
  strictEqual(reasonOf(guard.admit("2001:db8:0::1")), "ok");
});

Deno.test("Guard: a limited key in active use is not evicted first", () => {
  const clock = fakeClock();
  const guard = new Guard({ rate: 0.001, maxRateKeys: 3, now: clock.now });
  release(guard.admit("10.0.0.1"));
  release(guard.admit("10.0.0.2"));
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "rate"); // touches 10.0.0.1: now most recent
  release(guard.admit("10.0.0.3"));
  release(guard.admit("10.0.0.4")); // evicts 10.0.0.2, the least recently seen
  strictEqual(reasonOf(guard.admit("10.0.0.1")), "rate");
});

Deno.test("Guard: invalid options name the option and value", () => {
  const cases: [GuardOptions, string][] = [
    [{ maxConns: 0 }, "invalid maxConns 0: must be a positive integer"],
    [{ maxConns: 1.5 }, "invalid maxConns 1.5: must be a positive integer"],
    [{ maxConns: Number.NaN }, "invalid maxConns NaN: must be a positive integer"],
    [{ maxConnsPerIp: -3 }, "invalid maxConnsPerIp -3: must be a positive integer"],
    [{ maxRateKeys: 0 }, "invalid maxRateKeys 0: must be a positive integer"],
    [{ rate: 0 }, "invalid rate 0: must be a positive finite number"],
    [{ rate: Number.POSITIVE_INFINITY }, "invalid rate Infinity: must be a positive finite number"],
    [{ rate: 1, burst: 0 }, "invalid burst 0: must be a positive integer"],
    [{ rate: 1, burst: 2.5 }, "invalid burst 2.5: must be a positive integer"],
    [{ burst: 5 }, "invalid burst 5: requires rate to be set"],
  ];
  for (const [options, message] of cases) {
    throws(() => new Guard(options), { name: "RangeError", message });
    throws(() => new Guard(options), LimitError);
  }
  throws(() => new Guard({ now: 5 as unknown as () => number }), {
    name: "TypeError",
    message: "invalid now 5: must be a function",
  });
  throws(() => new Guard({ allow: "10.0.0.0/8" as unknown as [] }), {
    name: "TypeError",
    message: 'invalid allow "10.0.0.0/8": must be an array of CIDRs',
  });
});

Deno.test("Guard: lowerCap lowers but never raises the cap", () => {
  const guard = new Guard({ maxConns: 10 });
  strictEqual(guard.lowerCap(4), 4);
  strictEqual(guard.lowerCap(8), 4);
  strictEqual(guard.lowerCap(0), 1);
  strictEqual(guard.maxConns, 1);
  ok(guard.admit("10.0.0.1").ok);
  strictEqual(guard.full, true);
});

Deno.test("Guard (shared): two Guards enforce one maxConns and per-ip cap", () => {
  const shared = SharedCounts.create();
  const a = new Guard({ maxConns: 3, maxConnsPerIp: 2, shared });
  const b = new Guard({ maxConns: 3, maxConnsPerIp: 2, shared });
  const first = a.admit("10.0.0.1");
  strictEqual(reasonOf(b.admit("::ffff:10.0.0.1")), "ok");
  strictEqual(reasonOf(a.admit("10.0.0.1")), "per-ip");
  strictEqual(reasonOf(b.admit("10.0.0.1")), "per-ip");
  strictEqual(reasonOf(b.admit("10.0.0.2")), "ok");
  ok(a.full && b.full);
  strictEqual(reasonOf(a.admit("10.0.0.3")), "cap");
  strictEqual(a.open, 3);
  strictEqual(b.open, 3);
  deepStrictEqual(a.refusals, { ...noRefusals(), cap: 1, "per-ip": 2 });
  deepStrictEqual(b.refusals, a.refusals);

  release(first);
  release(first); // still idempotent
  strictEqual(b.open, 2);
  strictEqual(reasonOf(b.admit("10.0.0.3")), "ok");
});

Deno.test("Guard (shared): rate is one bucket per key across Guards", () => {
  const clock = fakeClock();
  const shared = SharedCounts.create();
  const options: GuardOptions = { rate: 1, burst: 2, now: clock.now, shared };
  const a = new Guard(options);
  const b = new Guard(options);
  deepStrictEqual(
    [a, b, a].map((guard) => reasonOf(guard.admit("10.0.0.1"))),
    ["ok", "ok", "rate"],
  );
  strictEqual(reasonOf(b.admit("10.0.0.2")), "ok");
  clock.advance(1000);
  strictEqual(reasonOf(b.admit("10.0.0.1")), "ok");
  strictEqual(reasonOf(a.admit("10.0.0.1")), "rate");
  strictEqual(a.refusals.rate, 2);
  // Both buckets are full again after a while, whichever Guard spends them.
  clock.advance(10_000);
  deepStrictEqual(
    [a, b, a, b].map((guard) => reasonOf(guard.admit("10.0.0.2"))),
    ["ok", "ok", "rate", "rate"],
  );
});

Deno.test("Guard (shared): allow and deny stay per Guard; counts do not", () => {
  const shared = SharedCounts.create();
  const strict = new Guard({ deny: [parseCidr("10.0.0.0/8")], shared });
  const open = new Guard({ shared });
  strictEqual(reasonOf(strict.admit("10.0.0.1")), "denied");
  strictEqual(reasonOf(open.admit("10.0.0.1")), "ok");
  strictEqual(open.refusals.denied, 1);
  strictEqual(strict.open, 1);
});

Deno.test("Guard (shared): the cap is the lowest maxConns, and lowerCap is global", () => {
  const shared = SharedCounts.create();
  const a = new Guard({ maxConns: 10, shared });
  strictEqual(a.maxConns, 10);
  const b = new Guard({ maxConns: 20, shared });
  strictEqual(b.maxConns, 10);
  strictEqual(b.lowerCap(4), 4);
  strictEqual(a.maxConns, 4);
  strictEqual(a.lowerCap(8), 4);
  new Guard({ maxConns: 100, shared }); // a late Guard does not raise it back
  strictEqual(shared.cap, 4);
  a.count("idle");
  b.count("lifetime");
  strictEqual(shared.refusals.idle + shared.refusals.lifetime, 2);
  throws(() => a.count("bogus" as never), { name: "RangeError" });
});

Deno.test("Guard (shared): whenNotFull on one Guard resolves after a release on the other", async () => {
  const shared = SharedCounts.create();
  const a = new Guard({ maxConns: 2, shared });
  const b = new Guard({ maxConns: 2, shared });
  await a.whenNotFull();
  const held = b.admit("10.0.0.1");
  a.admit("10.0.0.2");
  ok(a.full);
  let woken = false;
  const room = a.whenNotFull().then(() => {
    woken = true;
  });
  await Promise.resolve();
  await Promise.resolve();
  strictEqual(woken, false);
  release(held);
  await room;
  ok(woken);
  ok(!a.full);
});

Deno.test("Guard: a cap answer for a caller that will wait is not counted as a refusal", () => {
  const guard = new Guard({ maxConns: 1 });
  ok(guard.admit("10.0.0.1").ok);
  deepStrictEqual(guard.admit("10.0.0.2", { waitAtCap: true }), { ok: false, reason: "cap" });
  strictEqual(guard.refusals.cap, 0);
  deepStrictEqual(guard.admit("10.0.0.2"), { ok: false, reason: "cap" });
  strictEqual(guard.refusals.cap, 1);
});

Deno.test("rate: a new address has a full bucket whatever the clock reads, even below zero", () => {
  let t = -10_000;
  const guard = new Guard({ rate: 1, burst: 1, now: () => t });
  strictEqual(guard.admit("192.0.2.1").ok, true);
  strictEqual(guard.admit("192.0.2.1").ok, false);
  t += 1000;
  strictEqual(guard.admit("192.0.2.1").ok, true);
});
