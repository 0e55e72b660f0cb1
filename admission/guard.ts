/**
 * Admission control for the accept loop: allow/deny lists, per-client
 * connection rate, per-client and total open connection caps, and refusal
 * counters. Pure bookkeeping; the caller owns sockets and timers.
 *
 * @module
 */

import { addressKey, type Cidr, cidrContainsIp, parseIp } from "./cidr.ts";
import type { OpenResult, SharedCounts } from "./shared_counts.ts";
import { TokenBucket } from "./token_bucket.ts";
import { noRefusals, REFUSAL_REASONS, type RefusalReason } from "./refusals.ts";
import { describeValue } from "../text/words.ts";

/**
 * The limits a {@link Guard} applies when its options leave them out; the
 * command line shows and uses the same values.
 */
export const GUARD_DEFAULTS = {
  /** Open connections at most, server-wide. */
  maxConns: 10_000,
  /** Open connections at most per client key. */
  maxConnsPerIp: 256,
  /** Client keys with a token bucket at most. */
  maxRateKeys: 100_000,
} as const;

/**
 * Options for {@link Guard}. Every field is optional.
 *
 * @example
 * ```ts
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
   * @default 10_000
   */
  maxConns?: number;
  /**
   * Cap on open connections per client key, see `addressKey` in cidr.ts
   * (positive integer).
   * @default 256
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
   * @default Math.max(1, Math.ceil(rate))
   */
  burst?: number;
  /**
   * Most client keys with a token bucket tracked at once (positive integer).
   * Buckets that refill are dropped anyway; this is the hard ceiling for a
   * flood of distinct addresses, beyond which the least recently seen key is
   * forgotten (and so forgiven). Not used with `shared`, whose buckets live
   * in a fixed number of slots.
   * @default 100_000
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
   * into slots, so keys sharing a slot share their limits, and
   * {@link Guard.openFor} and {@link Guard.tracked} report slots.
   * @default undefined: exact counts private to this Guard
   */
  shared?: SharedCounts;
}

/**
 * Result of {@link Guard.admit}. When `ok`, the connection is counted until
 * `release` is called (calling it again does nothing).
 *
 * @example
 * ```ts
 * const admission: Admission = new Guard().admit("10.0.0.1");
 * if (admission.ok) admission.release();
 * ```
 */
export type Admission =
  | { ok: true; release: () => void }
  | { ok: false; reason: "cap" | "per-ip" | "rate" | "denied" };

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`invalid ${name} ${describeValue(value)}: must be a positive integer`);
  }
  return value;
}

function cidrList(name: string, value: readonly Cidr[] | undefined): readonly Cidr[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`invalid ${name} ${describeValue(value)}: must be an array of CIDRs`);
  }
  // Copied so later mutation of the caller's array cannot change policy behind our back.
  return [...value];
}

/** The token bucket settings of a Guard; undefined when rate limiting is off. */
interface RateLimit {
  readonly rate: number;
  readonly burst: number;
}

/**
 * Everything a Guard counts, behind one interface so that a single admit path
 * serves both the private Map-backed counts and the cross-thread ones.
 */
interface Counts {
  readonly open: number;
  readonly cap: number;
  lowerCap(limit: number): number;
  /** Counts a connection if both limits allow it; `per-ip` is checked first. */
  tryOpen(key: string, maxPerKey: number): OpenResult;
  close(key: string): void;
  /** Always true when rate limiting is off. */
  takeToken(key: string): boolean;
  count(reason: RefusalReason): void;
  readonly refusals: Readonly<Record<RefusalReason, number>>;
  openFor(key: string): number;
  readonly tracked: { readonly perIp: number; readonly rate: number };
  whenNotFull(): Promise<void>;
}

/** Exact counts in Maps, private to one Guard (and so to one thread). */
class LocalCounts implements Counts {
  #cap: number;
  readonly #rateLimit: RateLimit | undefined;
  readonly #maxRateKeys: number;
  readonly #now: () => number;
  /** Open connections per client key; absent means 0. */
  readonly #perKey = new Map<string, number>();
  /** Token buckets per client key, in least-recently-used-first order. */
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #refusals: Record<RefusalReason, number> = noRefusals();
  #open = 0;
  /** Shared by all waiters: one release wakes them all, and each re-checks via admit. */
  #notFull: PromiseWithResolvers<void> | null = null;

  constructor(
    cap: number,
    rateLimit: RateLimit | undefined,
    maxRateKeys: number,
    now: () => number,
  ) {
    this.#cap = cap;
    this.#rateLimit = rateLimit;
    this.#maxRateKeys = maxRateKeys;
    this.#now = now;
  }

  get open(): number {
    return this.#open;
  }

  get cap(): number {
    return this.#cap;
  }

  lowerCap(limit: number): number {
    this.#cap = Math.max(1, Math.min(this.#cap, Math.floor(limit)));
    return this.#cap;
  }

  tryOpen(key: string, maxPerKey: number): OpenResult {
    const forKey = this.#perKey.get(key) ?? 0;
    if (forKey >= maxPerKey) return "per-ip";
    if (this.#open >= this.#cap) return "cap";
    this.#open++;
    this.#perKey.set(key, forKey + 1);
    return "ok";
  }

  close(key: string): void {
    this.#open--;
    const remaining = (this.#perKey.get(key) ?? 1) - 1;
    if (remaining > 0) this.#perKey.set(key, remaining);
    else this.#perKey.delete(key);
    if (this.#notFull !== null && this.#open < this.#cap) {
      const waiters = this.#notFull;
      this.#notFull = null;
      waiters.resolve();
    }
  }

  takeToken(key: string): boolean {
    if (this.#rateLimit === undefined) return true;
    // The map is in least-recently-used order, and a bucket left alone long
    // enough refills, so full buckets collect at the front: drop them there.
    for (const [staleKey, bucket] of this.#buckets) {
      if (!bucket.full) break;
      this.#buckets.delete(staleKey);
    }
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxRateKeys) {
        const oldest = this.#buckets.keys().next();
        if (!oldest.done) this.#buckets.delete(oldest.value);
      }
      bucket = new TokenBucket({ ...this.#rateLimit, now: this.#now });
    } else {
      // Re-inserted below to move it to the most recently used end.
      this.#buckets.delete(key);
    }
    this.#buckets.set(key, bucket);
    return bucket.take();
  }

  count(reason: RefusalReason): void {
    this.#refusals[reason]++;
  }

  get refusals(): Readonly<Record<RefusalReason, number>> {
    return { ...this.#refusals };
  }

  openFor(key: string): number {
    return this.#perKey.get(key) ?? 0;
  }

  get tracked(): { readonly perIp: number; readonly rate: number } {
    return { perIp: this.#perKey.size, rate: this.#buckets.size };
  }

  whenNotFull(): Promise<void> {
    if (this.#open < this.#cap) return Promise.resolve();
    this.#notFull ??= Promise.withResolvers<void>();
    return this.#notFull.promise;
  }
}

/** {@link SharedCounts} with this Guard's rate limit and clock filled in. */
class SharedGuardCounts implements Counts {
  readonly #shared: SharedCounts;
  readonly #rateLimit: RateLimit | undefined;
  readonly #now: () => number;

  constructor(shared: SharedCounts, rateLimit: RateLimit | undefined, now: () => number) {
    this.#shared = shared;
    this.#rateLimit = rateLimit;
    this.#now = now;
  }

  get open(): number {
    return this.#shared.open;
  }

  get cap(): number {
    return this.#shared.cap;
  }

  lowerCap(limit: number): number {
    return this.#shared.lowerCap(limit);
  }

  tryOpen(key: string, maxPerKey: number): OpenResult {
    return this.#shared.tryOpen(key, maxPerKey);
  }

  close(key: string): void {
    this.#shared.close(key);
  }

  takeToken(key: string): boolean {
    if (this.#rateLimit === undefined) return true;
    const { rate, burst } = this.#rateLimit;
    return this.#shared.takeToken(key, rate, burst, this.#now());
  }

  count(reason: RefusalReason): void {
    this.#shared.count(reason);
  }

  get refusals(): Readonly<Record<RefusalReason, number>> {
    return this.#shared.refusals;
  }

  openFor(key: string): number {
    return this.#shared.openFor(key);
  }

  get tracked(): { readonly perIp: number; readonly rate: number } {
    const { perKey, buckets } = this.#shared.tracked(this.#now());
    return { perIp: perKey, rate: buckets };
  }

  whenNotFull(): Promise<void> {
    return this.#shared.whenNotFull();
  }
}

/** Options for {@linkcode Guard.admit}. */
export interface AdmitOptions {
  /**
   * The caller will wait for a slot and try again rather than refuse (the
   * `wait` mode at the cap), so a `cap` answer is not counted as a refusal.
   */
  waitAtCap?: boolean;
}

/**
 * Decides whether a freshly accepted connection may stay open and keeps the
 * counts needed to decide. Checks run in this order, and the first failing
 * one is the refusal reason: `denied` (deny list, then allow list), `rate`
 * (every attempt that gets this far spends a token, refused or not), `per-ip`,
 * `cap`.
 *
 * Memory: per-key connection counts are deleted when they reach 0, so that
 * map never exceeds `maxConns` entries; token buckets are dropped once full
 * again (swept from the least recently used end on each `admit`, amortised
 * O(1)), and never exceed `maxRateKeys`. With `shared`, the counts live in
 * the fixed-size buffer of {@link SharedCounts} instead.
 *
 * @example
 * ```ts
 * const guard = new Guard({ maxConns: 2, maxConnsPerIp: 1 });
 * const first = guard.admit("10.0.0.1"); // { ok: true, release }
 * guard.admit("10.0.0.1"); // { ok: false, reason: "per-ip" }
 * if (first.ok) first.release();
 * guard.refusals["per-ip"]; // 1
 * ```
 *
 * @example One limit across Workers
 * ```ts
 * import { SharedCounts } from "./shared_counts.ts";
 *
 * // Main thread: create the counts once and post `counts.buffer` to each Worker.
 * const counts = SharedCounts.create();
 * // In each Worker, with the buffer it was posted:
 * const guard = new Guard({ maxConns: 1_000, shared: SharedCounts.from(counts.buffer) });
 * ```
 */
export class Guard {
  readonly #maxConnsPerIp: number;
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  readonly #counts: Counts;

  /**
   * @throws {RangeError} for an out-of-range option, naming the option and
   *   value, e.g. `invalid maxConns 0: must be a positive integer`.
   * @throws {TypeError} when `allow`/`deny` is not an array or `now` is not a function.
   */
  constructor(options: GuardOptions = {}) {
    const maxConns = positiveInteger("maxConns", options.maxConns, GUARD_DEFAULTS.maxConns);
    this.#maxConnsPerIp = positiveInteger(
      "maxConnsPerIp",
      options.maxConnsPerIp,
      GUARD_DEFAULTS.maxConnsPerIp,
    );
    const maxRateKeys = positiveInteger(
      "maxRateKeys",
      options.maxRateKeys,
      GUARD_DEFAULTS.maxRateKeys,
    );

    const { rate } = options;
    if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0)) {
      throw new RangeError(`invalid rate ${describeValue(rate)}: must be a positive finite number`);
    }
    if (rate === undefined && options.burst !== undefined) {
      throw new RangeError(
        `invalid burst ${describeValue(options.burst)}: requires rate to be set`,
      );
    }
    const burst = positiveInteger(
      "burst",
      options.burst,
      rate === undefined ? 1 : Math.max(1, Math.ceil(rate)),
    );
    const rateLimit = rate === undefined ? undefined : { rate, burst };

    this.#allow = cidrList("allow", options.allow);
    this.#deny = cidrList("deny", options.deny);

    const { now, shared } = options;
    if (now !== undefined && typeof now !== "function") {
      throw new TypeError(`invalid now ${describeValue(now)}: must be a function`);
    }
    if (shared === undefined) {
      this.#counts = new LocalCounts(
        maxConns,
        rateLimit,
        maxRateKeys,
        now ?? (() => performance.now()),
      );
    } else {
      shared.lowerCap(maxConns);
      this.#counts = new SharedGuardCounts(
        shared,
        rateLimit,
        now ?? (() => performance.timeOrigin + performance.now()),
      );
    }
  }

  /**
   * Decides on a connection from `address` (as in `Deno.NetAddr.hostname`).
   * A refusal is counted in {@link Guard.refusals}; an admission is counted
   * in {@link Guard.open} and {@link Guard.openFor} until `release()`.
   *
   * @example
   * ```ts
   * const guard = new Guard();
   * const admission = guard.admit("192.0.2.1");
   * if (admission.ok) {
   *   // serve, then in a finally block:
   *   admission.release();
   * } else {
   *   // close the socket; admission.reason says why
   * }
   * ```
   */
  admit(address: string, options: AdmitOptions = {}): Admission {
    if (this.#denied(address)) return this.#refuse("denied");
    const key = addressKey(address);
    if (!this.#counts.takeToken(key)) return this.#refuse("rate");
    const result = this.#counts.tryOpen(key, this.#maxConnsPerIp);
    if (result === "cap" && options.waitAtCap) return { ok: false, reason: "cap" };
    if (result !== "ok") return this.#refuse(result);

    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#counts.close(key);
    };
    return { ok: true, release };
  }

  /**
   * Open admitted connections (admitted and not yet released); with
   * `shared`, in every Guard sharing the counts.
   *
   * @example
   * ```ts
   * new Guard().open; // 0
   * ```
   */
  get open(): number {
    return this.#counts.open;
  }

  /**
   * True when `open >= maxConns`, i.e. the next admit would be refused with `cap`.
   *
   * @example
   * ```ts
   * new Guard({ maxConns: 1 }).full; // false
   * ```
   */
  get full(): boolean {
    return this.#counts.open >= this.#counts.cap;
  }

  /**
   * The cap on open connections now: `maxConns`, or lower after
   * {@link Guard.lowerCap} (with `shared`, by any Guard sharing the counts).
   *
   * @example
   * ```ts
   * new Guard({ maxConns: 5 }).maxConns; // 5
   * ```
   */
  get maxConns(): number {
    return this.#counts.cap;
  }

  /**
   * Lowers the cap to `limit` (never raises it, never below 1), for when the
   * process learns that it cannot hold more, e.g. when accept runs out of
   * file descriptors. Returns the cap now in force. With `shared`, the cap
   * is lowered for every Guard sharing the counts.
   *
   * @example
   * ```ts
   * const guard = new Guard({ maxConns: 10_000 });
   * guard.lowerCap(1_000); // 1000
   * ```
   */
  lowerCap(limit: number): number {
    return this.#counts.lowerCap(limit);
  }

  /**
   * Resolves immediately when not full, otherwise on the first release that
   * brings `open` below `maxConns` (with `shared`, a release by any Guard
   * sharing the counts, in any thread). All pending waiters wake together, so
   * a waiter must still go through {@link Guard.admit}, which may refuse.
   *
   * @example
   * ```ts
   * const guard = new Guard();
   * // in the accept loop, "wait" mode:
   * await guard.whenNotFull();
   * ```
   */
  whenNotFull(): Promise<void> {
    return this.#counts.whenNotFull();
  }

  /**
   * Records a close decided elsewhere, such as `idle` or `lifetime` timeouts.
   *
   * @throws {RangeError} for a reason not in {@link REFUSAL_REASONS}.
   *
   * @example
   * ```ts
   * const guard = new Guard();
   * guard.count("idle");
   * guard.refusals.idle; // 1
   * ```
   */
  count(reason: RefusalReason): void {
    if (!REFUSAL_REASONS.includes(reason)) {
      throw new RangeError(`invalid refusal reason ${describeValue(reason)}`);
    }
    this.#counts.count(reason);
  }

  /**
   * Snapshot of refusal counters, one per {@link RefusalReason}, starting at
   * 0; with `shared`, summed over every Guard sharing the counts.
   *
   * @example
   * ```ts
   * new Guard().refusals; // { cap: 0, "per-ip": 0, rate: 0, denied: 0, idle: 0, lifetime: 0 }
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    return this.#counts.refusals;
  }

  /**
   * Open connections counted against `address`'s client key, so
   * `openFor("2001:db8::1")` includes every address in `2001:db8::/64`
   * (with `shared`, also any key hashed to the same slot).
   *
   * @example
   * ```ts
   * new Guard().openFor("10.0.0.1"); // 0
   * ```
   */
  openFor(address: string): number {
    return this.#counts.openFor(addressKey(address));
  }

  /**
   * Sizes of the per-key maps, for metrics and for checking memory bounds;
   * with `shared`, the slots in use (a scan of every slot).
   *
   * @example
   * ```ts
   * new Guard().tracked; // { perIp: 0, rate: 0 }
   * ```
   */
  get tracked(): { readonly perIp: number; readonly rate: number } {
    return this.#counts.tracked;
  }

  #refuse(reason: "cap" | "per-ip" | "rate" | "denied"): Admission {
    this.#counts.count(reason);
    return { ok: false, reason };
  }

  #denied(address: string): boolean {
    if (this.#deny.length === 0 && this.#allow.length === 0) return false;
    const ip = parseIp(address);
    // An address we cannot parse can match no deny rule, and cannot be proven allowed.
    if (ip === null) return this.#allow.length > 0;
    for (const cidr of this.#deny) {
      if (cidrContainsIp(cidr, ip)) return true;
    }
    if (this.#allow.length === 0) return false;
    for (const cidr of this.#allow) {
      if (cidrContainsIp(cidr, ip)) return false;
    }
    return true;
  }
}
