/**
 * The admission decision for the accept loop: allow/deny lists, per-client
 * connection rate, per-client and total open connection caps, and refusal
 * counters. Pure bookkeeping; the caller owns sockets and timers.
 *
 * @module
 */
import { addressKey, type Cidr, cidrContainsIp, parseIp } from "./cidr.ts";
import type { Counts } from "./counts.ts";
import { checkGuardOptions, type GuardOptions } from "./guard_options.ts";
import type { RateLimit } from "./limits.ts";
import { LocalCounts } from "./local_counts.ts";
import type { RefusalReason } from "./refusals.ts";

export { GUARD_DEFAULTS } from "./limits.ts";
export type { GuardOptions } from "./guard_options.ts";

/**
 * Result of {@link Guard.admit}. When `ok`, the connection is counted until
 * `release()` is called on it (calling it again does nothing). `release` is
 * a method, not a closure, so that an open connection costs the server one
 * small object here: call it on the admission, or bind it.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * const admission: Admission = new Guard().admit("10.0.0.1");
 * ok(admission.ok);
 * admission.release();
 * ```
 */
export type Admission =
  | { readonly ok: true; release(): void }
  | { ok: false; reason: "cap" | "per-ip" | "rate" | "denied" };

/** An admitted connection's place in the counts, until released. */
class Admitted {
  #counts: Counts | undefined;
  readonly #key: string;

  constructor(counts: Counts, key: string) {
    this.#counts = counts;
    this.#key = key;
  }

  /** Always true (a getter: one field less on every open connection). */
  get ok(): true {
    return true;
  }

  release(): void {
    this.#counts?.close(this.#key);
    this.#counts = undefined;
  }
}

/**
 * Options for {@link Guard.admit}.
 *
 * @example
 * ```ts no-assert
 * const options: AdmitOptions = { waitAtCap: true };
 * ```
 */
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
 * The counts are exact and private to this Guard by default (see
 * local_counts.ts for their memory bounds), or with `shared` live in the
 * fixed-size buffer of `SharedCounts`.
 *
 * @example
 * ```ts
 * import { deepEqual, equal, ok } from "node:assert/strict";
 * const guard = new Guard({ maxConns: 2, maxConnsPerIp: 1 });
 * const first = guard.admit("10.0.0.1");
 * ok(first.ok);
 * deepEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per-ip" });
 * first.release();
 * equal(guard.refusals["per-ip"], 1);
 * ```
 *
 * @example One limit across Workers
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { SharedCounts } from "./shared_counts.ts";
 *
 * // Main thread: create the counts once and post `counts.buffer` to each Worker.
 * const counts = SharedCounts.create();
 * // In each Worker, with the buffer it was posted:
 * const guard = new Guard({ maxConns: 1_000, shared: new SharedCounts(counts.buffer) });
 * equal(counts.cap, 1_000);
 * ```
 */
export class Guard {
  /** The configured cap, which {@link Guard.restoreCap} returns to. */
  #maxConns: number;
  #maxConnsPerIp: number;
  #rate: RateLimit | undefined;
  #allow: readonly Cidr[];
  #deny: readonly Cidr[];
  readonly #now: () => number;
  readonly #counts: Counts;

  /**
   * A Guard with the given limits; see {@link GuardOptions} for each and its default.
   *
   * @throws {LimitError} (a RangeError) for an out-of-range limit, naming the
   *   option and value, e.g. `invalid maxConns 0: must be a positive integer`.
   * @throws {TypeError} when `allow`/`deny` is not an array or `now` is not a function.
   *
   * @example
   * ```ts
   * import { throws } from "node:assert/strict";
   * throws(() => new Guard({ burst: 5 }), { message: "invalid burst 5: requires rate to be set" });
   * ```
   */
  constructor(options: GuardOptions = {}) {
    const checked = checkGuardOptions(options);
    this.#maxConns = checked.maxConns;
    this.#maxConnsPerIp = checked.maxConnsPerIp ?? Infinity;
    this.#rate = checked.rate;
    this.#allow = checked.allow;
    this.#deny = checked.deny;
    this.#now = checked.now;
    if (checked.shared === undefined) {
      this.#counts = new LocalCounts(checked.maxConns, checked.maxRateKeys);
    } else {
      checked.shared.lowerCap(checked.maxConns);
      this.#counts = checked.shared;
    }
  }

  /**
   * Replaces the limits with `options` (a reload), keeping the open counts,
   * the token buckets and the refusal counters. Checked like the
   * constructor's, and all or nothing: on a bad value it throws and changes
   * nothing. Open connections are never closed: a cap lowered below the open
   * count only stops admitting. `now` and `shared` stay as they were; with
   * `shared`, `maxConns` sets the cap for every Guard sharing the counts (a
   * reload reaches each of them).
   *
   * @throws {LimitError} (a RangeError) or {TypeError}, as the constructor does.
   *
   * @example
   * ```ts
   * import { deepEqual, ok } from "node:assert/strict";
   * const guard = new Guard({ maxConnsPerIp: 2 });
   * const first = guard.admit("10.0.0.1");
   * guard.reconfigure({ maxConnsPerIp: 1 });
   * deepEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per-ip" });
   * ok(first.ok);
   * ```
   */
  reconfigure(options: Omit<GuardOptions, "now" | "shared" | "maxRateKeys">): void {
    const checked = checkGuardOptions(options);
    this.#maxConns = checked.maxConns;
    this.#maxConnsPerIp = checked.maxConnsPerIp ?? Infinity;
    this.#rate = checked.rate;
    this.#allow = checked.allow;
    this.#deny = checked.deny;
    this.#counts.setCap(checked.maxConns);
  }

  /**
   * Decides on a connection from `address` (as in `Deno.NetAddr.hostname`).
   * A refusal is counted in {@link Guard.refusals}; an admission is counted
   * in {@link Guard.open} until `release()`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const guard = new Guard();
   * const admission = guard.admit("192.0.2.1");
   * if (admission.ok) {
   *   // serve, then in a finally block:
   *   admission.release();
   * } else {
   *   // close the socket; admission.reason says why
   * }
   * equal(guard.open, 0);
   * ```
   */
  admit(address: string, options: AdmitOptions = {}): Admission {
    if (this.#denied(address)) return this.#refuse("denied");
    const key = addressKey(address);
    if (this.#rate !== undefined && !this.#counts.takeToken(key, this.#rate, this.#now())) {
      return this.#refuse("rate");
    }
    const result = this.#counts.tryOpen(key, this.#maxConnsPerIp);
    if (result === "cap" && options.waitAtCap) return { ok: false, reason: "cap" };
    if (result !== "ok") return this.#refuse(result);

    return new Admitted(this.#counts, key);
  }

  /**
   * Open admitted connections (admitted and not yet released); with
   * `shared`, in every Guard sharing the counts.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new Guard().open, 0);
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
   * import { equal } from "node:assert/strict";
   * const guard = new Guard({ maxConns: 1 });
   * equal(guard.full, false);
   * guard.admit("10.0.0.1");
   * equal(guard.full, true);
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
   * import { equal } from "node:assert/strict";
   * equal(new Guard({ maxConns: 5 }).maxConns, 5);
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
   * import { equal } from "node:assert/strict";
   * const guard = new Guard({ maxConns: 10_000 });
   * equal(guard.lowerCap(1_000), 1_000);
   * ```
   */
  lowerCap(limit: number): number {
    return this.#counts.lowerCap(limit);
  }

  /**
   * Lifts a cap that {@link Guard.lowerCap} lowered back to the configured
   * `maxConns` (with `shared`, for every Guard sharing the counts), waking
   * whoever waits for room; returns the cap now in force.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const guard = new Guard({ maxConns: 10_000 });
   * guard.lowerCap(1_000);
   * equal(guard.restoreCap(), 10_000);
   * ```
   */
  restoreCap(): number {
    return this.#counts.setCap(this.#maxConns);
  }

  /**
   * Resolves immediately when not full, otherwise on the first release that
   * brings `open` below `maxConns` (with `shared`, a release by any Guard
   * sharing the counts, in any thread). All pending waiters wake together, so
   * a waiter must still go through {@link Guard.admit}, which may refuse.
   *
   * @example
   * ```ts
   * import { ok } from "node:assert/strict";
   * const guard = new Guard({ maxConns: 1 });
   * const held = guard.admit("10.0.0.1");
   * const room = guard.whenNotFull(); // in the accept loop, "wait" mode
   * if (held.ok) held.release();
   * await room;
   * ok(guard.admit("10.0.0.2").ok);
   * ```
   */
  whenNotFull(): Promise<void> {
    return this.#counts.whenNotFull();
  }

  /**
   * Records a close decided elsewhere, such as `idle` or `lifetime` timeouts.
   *
   * @throws {RangeError} for a reason not in `REFUSAL_REASONS`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const guard = new Guard();
   * guard.count("idle");
   * equal(guard.refusals.idle, 1);
   * ```
   */
  count(reason: RefusalReason): void {
    this.#counts.count(reason);
  }

  /**
   * Snapshot of refusal counters, one per {@link RefusalReason}, starting at
   * 0; with `shared`, summed over every Guard sharing the counts.
   *
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { noRefusals } from "./refusals.ts";
   * deepEqual(new Guard().refusals, noRefusals());
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    return this.#counts.refusals;
  }

  /**
   * True when `--deny`/`--allow` turn `address` away: the first check of
   * {@link Guard.admit}, alone, counting nothing. For traffic that is not a
   * connection, such as UDP datagrams, which keep counts of their own.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { parseCidr } from "./cidr.ts";
   * const guard = new Guard({ deny: [parseCidr("192.0.2.0/24")] });
   * equal(guard.denies("192.0.2.7"), true);
   * equal(guard.denies("10.0.0.1"), false);
   * equal(guard.refusals.denied, 0);
   * ```
   */
  denies(address: string): boolean {
    return this.#denied(address);
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
