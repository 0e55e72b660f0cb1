/**
 * The options of a `Guard` and their checking: each limit's default and
 * rule, so that the Guard itself only decides.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";
import type { Cidr } from "./cidr.ts";
import { checkPositiveInteger, checkRate, GUARD_DEFAULTS, type RateLimit } from "./limits.ts";
import type { SharedCounts } from "./shared_counts.ts";

/**
 * Options for a `Guard`. Every field is optional.
 *
 * @example
 * ```ts no-assert
 * import { parseCidr } from "./cidr.ts";
 *
 * const options: GuardOptions = {
 *   maxConns: 1_000,
 *   rate: 5,
 *   deny: [parseCidr("198.51.100.0/24")],
 * };
 * ```
 */
export interface GuardOptions {
  /**
   * Cap on open connections (positive integer).
   * @default GUARD_DEFAULTS.maxConns
   */
  maxConns?: number;
  /**
   * Cap on open connections per client key, see `addressKey` in cidr.ts
   * (positive integer). Undefined means no per-address cap.
   * @default undefined
   */
  maxConnsPerIp?: number;
  /**
   * New connections per second per client key (positive finite number,
   * fractions allowed), enforced by a token bucket. Undefined turns rate
   * limiting off.
   * @default undefined
   */
  rate?: number;
  /**
   * Token bucket capacity (positive integer). Only valid together with `rate`.
   * @default defaultBurst(rate): `Math.max(1, Math.ceil(rate))`
   */
  burst?: number;
  /**
   * Most client keys with a token bucket tracked at once (positive integer).
   * Buckets that refill are dropped anyway; this is the hard ceiling for a
   * flood of distinct addresses, beyond which the least recently seen key is
   * forgotten (and so forgiven). Not used with `shared`, whose buckets live
   * in a fixed number of slots.
   * @default GUARD_DEFAULTS.maxRateKeys
   */
  maxRateKeys?: number;
  /**
   * When non-empty, only addresses inside one of these blocks are admitted.
   * @default []
   */
  allow?: readonly Cidr[];
  /**
   * Addresses inside any of these blocks are refused; deny wins over allow.
   * @default []
   */
  deny?: readonly Cidr[];
  /**
   * Monotonic clock in milliseconds. With `shared`, every thread must read
   * the same clock, which `performance.now` alone is not (each Worker's
   * starts at 0).
   * @default performance.now, or with `shared`
   *   `() => performance.timeOrigin + performance.now()`
   */
  now?: () => number;
  /**
   * Counts shared with Guards in other Workers. When given, open counts (total
   * and per key), the cap, token buckets and refusal counters are global to
   * every Guard holding the same buffer; `allow`/`deny` and the other limits
   * stay this Guard's own configuration. The shared cap is lowered to
   * `maxConns` (it is never raised). Per-key counts and buckets are hashed
   * into slots, so keys sharing a slot share their limits.
   * @default undefined: exact counts private to this Guard
   */
  shared?: SharedCounts;
}

/**
 * {@link GuardOptions} with every default filled in and every value checked.
 *
 * @example
 * ```ts no-assert
 * const checked: CheckedGuardOptions = checkGuardOptions({});
 * ```
 */
export interface CheckedGuardOptions {
  /** Cap on open connections. */
  readonly maxConns: number;
  /** Cap on open connections per client key, if any. */
  readonly maxConnsPerIp: number | undefined;
  /** Most token buckets kept without `shared`. */
  readonly maxRateKeys: number;
  /** The rate limit, or undefined when there is none. */
  readonly rate: RateLimit | undefined;
  /** A copy of the allow list. */
  readonly allow: readonly Cidr[];
  /** A copy of the deny list. */
  readonly deny: readonly Cidr[];
  /** The clock: the given one, or the default that suits `shared`. */
  readonly now: () => number;
  /** The shared counts, if any. */
  readonly shared: SharedCounts | undefined;
}

function cidrList(name: string, value: readonly Cidr[] | undefined): readonly Cidr[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`invalid ${name} ${describeValue(value)}: must be an array of CIDRs`);
  }
  // Copied so later mutation of the caller's array cannot change policy behind our back.
  return [...value];
}

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws {LimitError} (a RangeError) for an out-of-range limit, naming the
 *   option and value, e.g. `invalid maxConns 0: must be a positive integer`.
 * @throws {TypeError} when `allow`/`deny` is not an array or `now` is not a function.
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { GUARD_DEFAULTS } from "./limits.ts";
 * const checked = checkGuardOptions({ rate: 2.5 });
 * equal(checked.maxConns, GUARD_DEFAULTS.maxConns);
 * deepEqual(checked.rate, { rate: 2.5, burst: 3 });
 * ```
 */
export function checkGuardOptions(options: GuardOptions): CheckedGuardOptions {
  const maxConns = checkPositiveInteger("maxConns", options.maxConns, GUARD_DEFAULTS.maxConns);
  const maxConnsPerIp = checkPositiveInteger("maxConnsPerIp", options.maxConnsPerIp);
  const maxRateKeys = checkPositiveInteger(
    "maxRateKeys",
    options.maxRateKeys,
    GUARD_DEFAULTS.maxRateKeys,
  );
  const rate = checkRate(options.rate, options.burst);
  const allow = cidrList("allow", options.allow);
  const deny = cidrList("deny", options.deny);
  const { now, shared } = options;
  if (now !== undefined && typeof now !== "function") {
    throw new TypeError(`invalid now ${describeValue(now)}: must be a function`);
  }
  // Each Worker's performance.now() starts at 0, so threads sharing buckets
  // need a clock they agree on.
  const sharedClock = () => performance.timeOrigin + performance.now();
  const clock = now ?? (shared === undefined ? () => performance.now() : sharedClock);
  return { maxConns, maxConnsPerIp, maxRateKeys, rate, allow, deny, now: clock, shared };
}
