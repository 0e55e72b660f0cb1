/**
 * The rate limiter's arithmetic, written once for the per-thread buckets in a
 * Map and the cross-thread ones in a SharedArrayBuffer.
 *
 * A token bucket is kept as GCRA does it: not a token count but one number,
 * the time at which the bucket is full again (its "theoretical arrival
 * time"). Refilling then needs no per-call float accumulation, "full" is an
 * exact comparison, which keeps boundaries deterministic under a fake clock,
 * and one number fits one 64-bit slot that threads update with a single
 * compare-and-swap.
 *
 * Times are whole microseconds held in a `number`: exact up to 2^53, which a
 * wall clock in microseconds (about 2^51 today) stays below, and convertible
 * to a BigInt slot and back without loss.
 *
 * @module
 */
import type { RateLimit } from "./limits.ts";

/**
 * Longest time one token may take to come back (about 12.7 days). Slower
 * rates are treated as this one, so that sums stay exact and fit a 64-bit
 * slot however small the rate.
 */
const MAX_INTERVAL_US = 2 ** 40;
/** Longest a bucket may run ahead of the clock (about 142 years), for the same reason. */
const MAX_TOLERANCE_US = 2 ** 52;

/**
 * A millisecond clock reading (such as `performance.now()`) in whole
 * microseconds, the unit of {@link spendToken}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { toMicros } from "./gcra.ts";
 * equal(toMicros(1.5), 1500);
 * equal(toMicros(0.0009), 0);
 * ```
 */
export function toMicros(ms: number): number {
  return Math.floor(ms * 1000);
}

/**
 * Spends one token from a bucket that is full again at `fullAt` (0 or any
 * time not after `now` means full), refilling at `limit.rate` per second up
 * to `limit.burst`. Returns the bucket's new `fullAt`, or `undefined` when it
 * is empty, in which case nothing was spent. The refill interval is rounded
 * up to a whole microsecond, so rounding never admits faster than the rate;
 * a clock that steps backwards costs a wait, never an extra token.
 *
 * `limit` is trusted to be checked (see `checkRate` in limits.ts): this runs
 * once per rate-limited connection attempt.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { spendToken } from "./gcra.ts";
 * const limit = { rate: 1, burst: 2 }; // a token per second, two at once
 * let fullAt = spendToken(0, 0, limit); // 1_000_000: one second until full
 * fullAt = spendToken(fullAt ?? 0, 0, limit); // 2_000_000
 * equal(fullAt, 2_000_000);
 * equal(spendToken(fullAt, 0, limit), undefined); // empty
 * equal(spendToken(fullAt, 1_000_000, limit), 3_000_000); // one token back
 * ```
 */
export function spendToken(fullAt: number, now: number, limit: RateLimit): number | undefined {
  const interval = Math.min(Math.ceil(1e6 / limit.rate), MAX_INTERVAL_US);
  const tolerance = Math.min((limit.burst - 1) * interval, MAX_TOLERANCE_US);
  const start = fullAt > now ? fullAt : now;
  if (start - now > tolerance) return undefined;
  return start + interval;
}

/**
 * True when a bucket holds its whole burst again at `now`: it is then no
 * different from a fresh one, and an owner keeping many may drop it.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { isFull } from "./gcra.ts";
 * ok(isFull(1_000, 1_000));
 * ok(!isFull(1_001, 1_000));
 * ```
 */
export function isFull(fullAt: number, now: number): boolean {
  return fullAt <= now;
}
