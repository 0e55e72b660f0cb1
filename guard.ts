/**
 * Admission control for the accept loop: allow/deny lists, per-client
 * connection rate, per-client and total open connection caps, and refusal
 * counters. Pure bookkeeping; the caller owns sockets and timers.
 *
 * @module
 */

import { addressKey, type Cidr, cidrContainsIp, parseIp } from "./cidr.ts";
import { TokenBucket } from "./token_bucket.ts";

/**
 * Why a connection was refused or closed. `idle` and `lifetime` are decided
 * outside the guard and only recorded through {@link Guard.count}.
 *
 * @example
 * ```ts
 * const reason: RefusalReason = "per-ip";
 * ```
 */
export type RefusalReason = "cap" | "per-ip" | "rate" | "denied" | "idle" | "lifetime";

/**
 * Every {@link RefusalReason}, in a stable order for metrics output.
 *
 * @example
 * ```ts
 * for (const reason of REFUSAL_REASONS) console.log(reason);
 * ```
 */
export const REFUSAL_REASONS: readonly RefusalReason[] = Object.freeze([
  "cap",
  "per-ip",
  "rate",
  "denied",
  "idle",
  "lifetime",
]);

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
   * forgotten (and so forgiven).
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
   * Monotonic clock in milliseconds.
   * @default performance.now
   */
  now?: () => number;
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

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`invalid ${name} ${describe(value)}: must be a positive integer`);
  }
  return value;
}

function cidrList(name: string, value: readonly Cidr[] | undefined): readonly Cidr[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`invalid ${name} ${describe(value)}: must be an array of CIDRs`);
  }
  // Copied so later mutation of the caller's array cannot change policy behind our back.
  return [...value];
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
 * O(1)), and never exceed `maxRateKeys`.
 *
 * @example
 * ```ts
 * const guard = new Guard({ maxConns: 2, maxConnsPerIp: 1 });
 * const first = guard.admit("10.0.0.1"); // { ok: true, release }
 * guard.admit("10.0.0.1"); // { ok: false, reason: "per-ip" }
 * if (first.ok) first.release();
 * guard.refusals["per-ip"]; // 1
 * ```
 */
export class Guard {
  #maxConns: number;
  readonly #maxConnsPerIp: number;
  readonly #rate: number | undefined;
  readonly #burst: number;
  readonly #maxRateKeys: number;
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  readonly #now: () => number;
  /** Open connections per client key; absent means 0. */
  readonly #perKey = new Map<string, number>();
  /** Token buckets per client key, in least-recently-used-first order. */
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #refusals: Record<RefusalReason, number> = {
    cap: 0,
    "per-ip": 0,
    rate: 0,
    denied: 0,
    idle: 0,
    lifetime: 0,
  };
  #open = 0;
  /** Shared by all waiters: one release wakes them all, and each re-checks via admit. */
  #notFull: PromiseWithResolvers<void> | null = null;

  /**
   * @throws {RangeError} for an out-of-range option, naming the option and
   *   value, e.g. `invalid maxConns 0: must be a positive integer`.
   * @throws {TypeError} when `allow`/`deny` is not an array or `now` is not a function.
   */
  constructor(options: GuardOptions = {}) {
    this.#maxConns = positiveInteger("maxConns", options.maxConns, 10_000);
    this.#maxConnsPerIp = positiveInteger("maxConnsPerIp", options.maxConnsPerIp, 256);
    this.#maxRateKeys = positiveInteger("maxRateKeys", options.maxRateKeys, 100_000);

    const { rate } = options;
    if (rate !== undefined && (!Number.isFinite(rate) || rate <= 0)) {
      throw new RangeError(`invalid rate ${describe(rate)}: must be a positive finite number`);
    }
    if (rate === undefined && options.burst !== undefined) {
      throw new RangeError(`invalid burst ${describe(options.burst)}: requires rate to be set`);
    }
    this.#rate = rate;
    this.#burst = positiveInteger(
      "burst",
      options.burst,
      rate === undefined ? 1 : Math.max(1, Math.ceil(rate)),
    );

    this.#allow = cidrList("allow", options.allow);
    this.#deny = cidrList("deny", options.deny);

    const { now } = options;
    if (now !== undefined && typeof now !== "function") {
      throw new TypeError(`invalid now ${describe(now)}: must be a function`);
    }
    this.#now = now ?? (() => performance.now());
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
  admit(address: string): Admission {
    if (this.#denied(address)) return this.#refuse("denied");
    const key = addressKey(address);
    if (this.#rate !== undefined && !this.#takeToken(key, this.#rate)) {
      return this.#refuse("rate");
    }
    const forKey = this.#perKey.get(key) ?? 0;
    if (forKey >= this.#maxConnsPerIp) return this.#refuse("per-ip");
    if (this.#open >= this.#maxConns) return this.#refuse("cap");

    this.#open++;
    this.#perKey.set(key, forKey + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#release(key);
    };
    return { ok: true, release };
  }

  /**
   * Open admitted connections (admitted and not yet released).
   *
   * @example
   * ```ts
   * new Guard().open; // 0
   * ```
   */
  get open(): number {
    return this.#open;
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
    return this.#open >= this.#maxConns;
  }

  /**
   * The cap on open connections now: `maxConns`, or lower after
   * {@link Guard.lowerCap}.
   *
   * @example
   * ```ts
   * new Guard({ maxConns: 5 }).maxConns; // 5
   * ```
   */
  get maxConns(): number {
    return this.#maxConns;
  }

  /**
   * Lowers the cap to `limit` (never raises it, never below 1), for when the
   * process learns that it cannot hold more, e.g. when accept runs out of
   * file descriptors. Returns the cap now in force.
   *
   * @example
   * ```ts
   * const guard = new Guard({ maxConns: 10_000 });
   * guard.lowerCap(1_000); // 1000
   * ```
   */
  lowerCap(limit: number): number {
    this.#maxConns = Math.max(1, Math.min(this.#maxConns, Math.floor(limit)));
    return this.#maxConns;
  }

  /**
   * Resolves immediately when not full, otherwise on the first release that
   * brings `open` below `maxConns`. All pending waiters wake together, so a
   * waiter must still go through {@link Guard.admit}, which may refuse.
   *
   * @example
   * ```ts
   * const guard = new Guard();
   * // in the accept loop, "wait" mode:
   * await guard.whenNotFull();
   * ```
   */
  whenNotFull(): Promise<void> {
    if (!this.full) return Promise.resolve();
    this.#notFull ??= Promise.withResolvers<void>();
    return this.#notFull.promise;
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
    if (!Object.hasOwn(this.#refusals, reason)) {
      throw new RangeError(`invalid refusal reason ${describe(reason)}`);
    }
    this.#refusals[reason]++;
  }

  /**
   * Snapshot of refusal counters, one per {@link RefusalReason}, starting at 0.
   *
   * @example
   * ```ts
   * new Guard().refusals; // { cap: 0, "per-ip": 0, rate: 0, denied: 0, idle: 0, lifetime: 0 }
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    return { ...this.#refusals };
  }

  /**
   * Open connections counted against `address`'s client key, so
   * `openFor("2001:db8::1")` includes every address in `2001:db8::/64`.
   *
   * @example
   * ```ts
   * new Guard().openFor("10.0.0.1"); // 0
   * ```
   */
  openFor(address: string): number {
    return this.#perKey.get(addressKey(address)) ?? 0;
  }

  /**
   * Sizes of the per-key maps, for metrics and for checking memory bounds.
   *
   * @example
   * ```ts
   * new Guard().tracked; // { perIp: 0, rate: 0 }
   * ```
   */
  get tracked(): { readonly perIp: number; readonly rate: number } {
    return { perIp: this.#perKey.size, rate: this.#buckets.size };
  }

  #refuse(reason: "cap" | "per-ip" | "rate" | "denied"): Admission {
    this.#refusals[reason]++;
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

  #takeToken(key: string, rate: number): boolean {
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
      bucket = new TokenBucket({ rate, burst: this.#burst, now: this.#now });
    } else {
      // Re-inserted below to move it to the most recently used end.
      this.#buckets.delete(key);
    }
    this.#buckets.set(key, bucket);
    return bucket.take();
  }

  #release(key: string): void {
    this.#open--;
    const remaining = (this.#perKey.get(key) ?? 1) - 1;
    if (remaining > 0) this.#perKey.set(key, remaining);
    else this.#perKey.delete(key);
    if (this.#notFull !== null && this.#open < this.#maxConns) {
      const waiters = this.#notFull;
      this.#notFull = null;
      waiters.resolve();
    }
  }
}
