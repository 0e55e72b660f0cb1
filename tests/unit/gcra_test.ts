/**
 * The rate limiter's arithmetic (admission/gcra.ts) and the checks of its
 * limits (admission/limits.ts), through a bucket kept as its owners keep it.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { isFull, spendToken, toMicros } from "../../admission/gcra.ts";
import { checkRate, LimitError, type RateLimit } from "../../admission/limits.ts";

/** A bucket over a millisecond clock, one number of state as in local_counts.ts. */
function bucket(rate: number, burst: number | undefined, now: () => number) {
  const limit = checkRate(rate, burst);
  ok(limit !== undefined);
  let fullAt = 0;
  return {
    limit,
    take(): boolean {
      const next = spendToken(fullAt, toMicros(now()), limit);
      if (next !== undefined) fullAt = next;
      return next !== undefined;
    },
    get full(): boolean {
      return isFull(fullAt, toMicros(now()));
    },
    /** Whole tokens available now, counted without spending them. */
    get tokens(): number {
      let count = 0;
      for (let at: number | undefined = fullAt; count <= limit.burst; count++) {
        at = spendToken(at, toMicros(now()), limit);
        if (at === undefined) break;
      }
      return count;
    },
  };
}

function takes(b: { take(): boolean }, count: number): boolean[] {
  return Array.from({ length: count }, () => b.take());
}

Deno.test("GCRA: starts full and allows a burst", () => {
  const b = bucket(1, 3, () => 0);
  ok(b.full);
  strictEqual(b.tokens, 3);
  strictEqual(takes(b, 4).join(), "true,true,true,false");
  ok(!b.full);
  strictEqual(b.tokens, 0);
});

Deno.test("GCRA: refills at rate, capped at burst", () => {
  let t = 0;
  const b = bucket(2, 2, () => t);
  strictEqual(takes(b, 3).join(), "true,true,false");
  t = 499;
  ok(!b.take());
  t = 500;
  ok(b.take());
  ok(!b.take());
  t = 1000;
  strictEqual(b.tokens, 1);
  t = 1500;
  ok(b.full);
  t = 100_000; // long idle must not bank more than burst
  strictEqual(b.tokens, 2);
  strictEqual(takes(b, 3).join(), "true,true,false");
});

Deno.test("GCRA: refused takes cost nothing", () => {
  let t = 0;
  const b = bucket(1, 1, () => t);
  ok(b.take());
  for (let i = 0; i < 100; i++) ok(!b.take());
  t = 1000;
  ok(b.take());
});

Deno.test("GCRA: fractional rate", () => {
  let t = 0;
  const b = bucket(0.5, undefined, () => t);
  strictEqual(b.limit.burst, 1);
  ok(b.take());
  t = 1999;
  ok(!b.take());
  strictEqual(b.tokens, 0);
  ok(!b.full);
  t = 2000;
  ok(b.full);
  ok(b.take());
  t = 3000;
  strictEqual(b.tokens, 0);
  t = 4000;
  strictEqual(b.tokens, 1);
});

Deno.test("GCRA: fractional rate with non-integral interval", () => {
  let t = 0;
  const b = bucket(3, 1, () => t);
  let admitted = 0;
  for (t = 0; t < 10_000; t++) if (b.take()) admitted++;
  // One per 333.3 ms over 10 s, rounded up to whole ms ticks.
  ok(admitted >= 29 && admitted <= 30, `admitted ${admitted}`);
});

Deno.test("GCRA: rounding never admits faster than the rate", () => {
  const third: RateLimit = { rate: 3, burst: 1 };
  // 3 per second: 333 333.33 µs per token, rounded up to 333 334.
  const fullAt = spendToken(0, 0, third);
  strictEqual(fullAt, 333_334);
  strictEqual(spendToken(333_334, toMicros(333.333), third), undefined);
  strictEqual(spendToken(333_334, toMicros(333.334), third), 666_668);
});

Deno.test("GCRA: an empty slot (0) is a full bucket at any time", () => {
  const limit: RateLimit = { rate: 1, burst: 2 };
  strictEqual(spendToken(0, 1_700_000_000_000_000, limit), 1_700_000_001_000_000);
  ok(isFull(0, 0));
});

Deno.test("GCRA: default burst is ceil(rate)", () => {
  strictEqual(checkRate(2.5)?.burst, 3);
  strictEqual(checkRate(0.1)?.burst, 1);
});

Deno.test("GCRA: clock stepping backwards is harmless", () => {
  let t = 10_000;
  const b = bucket(1, 1, () => t);
  ok(b.take());
  t = 5_000;
  ok(!b.take());
  t = 11_000;
  ok(b.take());
});

Deno.test("GCRA: rates too slow to count stay exact and storable", () => {
  const limit: RateLimit = { rate: 1e-300, burst: 2 ** 40 };
  strictEqual(spendToken(0, 0, limit), 2 ** 40);
  // Even a bucket as far ahead as the tolerance allows stays exact and fits 64 bits.
  const furthest = spendToken(2 ** 52, 0, limit);
  ok(furthest !== undefined && Number.isSafeInteger(furthest));
  strictEqual(BigInt.asIntN(64, BigInt(furthest)), BigInt(furthest));
  strictEqual(spendToken(furthest, 0, limit), undefined);
});

Deno.test("checkRate: invalid values name the option and value", () => {
  throws(() => checkRate(0), {
    name: "RangeError",
    message: "invalid rate 0: must be a positive finite number",
  });
  throws(() => checkRate(Number.POSITIVE_INFINITY), {
    message: "invalid rate Infinity: must be a positive finite number",
  });
  throws(() => checkRate(Number.NaN), {
    message: "invalid rate NaN: must be a positive finite number",
  });
  throws(() => checkRate(1, 0.5), {
    name: "RangeError",
    message: "invalid burst 0.5: must be a positive integer",
  });
  throws(() => checkRate(undefined, 3), {
    name: "RangeError",
    message: "invalid burst 3: requires rate to be set",
  });
});

Deno.test("checkRate: errors are typed, naming the option and the broken rule", () => {
  const cases: [number | undefined, number | undefined, string, string, unknown][] = [
    [-1, undefined, "rate", "positive-number", -1],
    [1, 0, "burst", "positive-integer", 0],
    [undefined, 4, "burst", "needs-rate", 4],
  ];
  for (const [rate, burst, option, problem, value] of cases) {
    throws(() => checkRate(rate, burst), (error: unknown) => {
      ok(error instanceof LimitError);
      ok(error instanceof RangeError);
      deepStrictEqual([error.option, error.problem, error.value], [option, problem, value]);
      return true;
    });
  }
  strictEqual(checkRate(undefined), undefined);
  deepStrictEqual(checkRate(1, 10), { rate: 1, burst: 10 });
});
