/**
 * Admission counts kept in a SharedArrayBuffer, so that several Workers, each
 * with its own listener and `Guard`, enforce one set of global limits:
 * total open connections and its cap, open connections per client key, token
 * buckets per client key, and refusal counters.
 *
 * Every operation is a handful of `Atomics` calls on the buffer: no locks, no
 * messages between threads on the accept path.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";
import type { OpenResult } from "./counts.ts";
import { spendToken, toMicros } from "./gcra.ts";
import type { RateLimit } from "./limits.ts";
import { noRefusals, REFUSAL_REASONS, refusalIndex, type RefusalReason } from "./refusals.ts";
import {
  allocate,
  attach,
  capFor,
  HEADER_CAP,
  HEADER_OPEN,
  type SharedCountsOptions,
  type SharedViews,
  slotOf,
} from "./shared_layout.ts";

export type { OpenResult } from "./counts.ts";
export type { SharedCountsOptions } from "./shared_layout.ts";

/**
 * Limits and counters shared by every thread holding the same buffer. Create
 * it once with {@link SharedCounts.create}, post {@link SharedCounts.buffer}
 * to each Worker, and attach there with `new SharedCounts(buffer)`.
 *
 * Keys (normally `addressKey` results from cidr.ts) are hashed into a fixed
 * number of slots, so memory never grows with the number of clients. Two keys
 * in one slot share their open count and their token bucket: each is limited
 * at least as strictly as configured, never less, which is the safe side for
 * admission control.
 *
 * Atomicity: the total and each per-key count only move through
 * compare-and-swap loops that re-check the limit on every attempt, so no
 * interleaving of threads admits beyond `cap` or `maxPerKey`. A per-key
 * increment is rolled back when the total then turns out to be full; in that
 * short window a concurrent attempt for the same slot may be refused
 * `per-ip` although it would have fit, which errs on the strict side.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * const counts = SharedCounts.create({ cap: 100 });
 * // Post counts.buffer to each Worker; there: new SharedCounts(event.data)
 * const sameCounts = new SharedCounts(counts.buffer);
 * equal(sameCounts.tryOpen("10.0.0.1", 8), "ok");
 * equal(counts.open, 1);
 * counts.close("10.0.0.1");
 * equal(sameCounts.open, 0);
 * ```
 */
export class SharedCounts {
  readonly #buffer: SharedArrayBuffer;
  readonly #header: Int32Array;
  readonly #refusals: BigInt64Array;
  /** Per slot: time in µs at which the token bucket is full again (see gcra.ts). */
  readonly #buckets: BigInt64Array;
  /** Per slot: open connections. */
  readonly #counts: Int32Array;
  readonly #mask: number;
  /** Shared by this instance's waiters: one wake-up resolves them all. */
  #notFull: PromiseWithResolvers<void> | null = null;

  /**
   * Allocates and initialises a new buffer.
   * @throws {RangeError} for an invalid option, naming it and its value.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { REFUSAL_REASONS } from "./refusals.ts";
   * const counts = SharedCounts.create({ slots: 1 << 16 }); // header, refusals, slots
   * equal(counts.buffer.byteLength, 16 + REFUSAL_REASONS.length * 8 + (1 << 16) * 12);
   * ```
   */
  static create(options: SharedCountsOptions = {}): SharedCounts {
    return new SharedCounts(allocate(options).buffer);
  }

  /**
   * Attaches to a buffer made by {@link SharedCounts.create}, typically one
   * received through `postMessage` in a Worker.
   *
   * @throws {TypeError} when `buffer` is not a SharedArrayBuffer laid out by `create`.
   *
   * @example
   * ```ts
   * import { throws } from "node:assert/strict";
   * throws(() => new SharedCounts(new SharedArrayBuffer(64)), TypeError);
   * ```
   */
  constructor(buffer: SharedArrayBuffer) {
    const views: SharedViews = attach(buffer);
    this.#buffer = views.buffer;
    this.#header = views.header;
    this.#refusals = views.refusals;
    this.#buckets = views.buckets;
    this.#counts = views.counts;
    this.#mask = views.mask;
  }

  /**
   * The underlying buffer, to post to other Workers.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create({ cap: 3 });
   * equal(new SharedCounts(counts.buffer).cap, 3); // same counts
   * ```
   */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /**
   * Open connections, summed over every thread.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(SharedCounts.create().open, 0);
   * ```
   */
  get open(): number {
    return Atomics.load(this.#header, HEADER_OPEN);
  }

  /**
   * The cap on total open connections now in force.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(SharedCounts.create({ cap: 50 }).cap, 50);
   * ```
   */
  get cap(): number {
    return Atomics.load(this.#header, HEADER_CAP);
  }

  /**
   * True when `open >= cap`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(SharedCounts.create({ cap: 1 }).full, false);
   * ```
   */
  get full(): boolean {
    return Atomics.load(this.#header, HEADER_OPEN) >= Atomics.load(this.#header, HEADER_CAP);
  }

  /**
   * Lowers the cap to `limit` for every thread (never raises it, never below
   * 1) and returns the cap now in force; a RangeError when `limit` is NaN.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create({ cap: 100 });
   * equal(counts.lowerCap(40), 40);
   * equal(counts.lowerCap(60), 40);
   * ```
   */
  lowerCap(limit: number): number {
    const target = capFor(limit);
    for (;;) {
      const cap = Atomics.load(this.#header, HEADER_CAP);
      if (cap <= target) return cap;
      if (Atomics.compareExchange(this.#header, HEADER_CAP, cap, target) === cap) return target;
    }
  }

  /**
   * Sets the cap to `limit` (at least 1), up or down, for every thread, for a
   * reload; open connections above a lowered cap stay open. A rise wakes the
   * {@link SharedCounts.whenNotFull} waiters of every thread. Returns the cap
   * (a RangeError when `limit` is NaN).
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create({ cap: 100 });
   * equal(counts.setCap(40), 40);
   * equal(counts.setCap(60), 60);
   * ```
   */
  setCap(limit: number): number {
    const target = capFor(limit);
    const before = Atomics.exchange(this.#header, HEADER_CAP, target);
    // Waiters sleep on the open count, which did not change: wake them to see
    // the new cap (a reload calls setCap in every thread, whose local wake
    // reaches any waiter that read the old cap just before the exchange).
    if (target > before) Atomics.notify(this.#header, HEADER_OPEN);
    if (!this.full) this.#wake();
    return target;
  }

  /**
   * Counts a new connection for `key` if its slot stays within `maxPerKey`
   * and the total within {@link SharedCounts.cap}; otherwise changes nothing
   * and names the limit (`per-ip` is checked first). Refusals are not
   * counted here; see {@link SharedCounts.count}.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create({ cap: 10 });
   * equal(counts.tryOpen("10.0.0.1", 1), "ok");
   * equal(counts.tryOpen("10.0.0.1", 1), "per-ip");
   * ```
   */
  tryOpen(key: string, maxPerKey: number): OpenResult {
    const slot = slotOf(key, this.#mask);
    if (!this.#incrementBelow(slot, maxPerKey)) return "per-ip";
    for (;;) {
      const open = Atomics.load(this.#header, HEADER_OPEN);
      if (open >= Atomics.load(this.#header, HEADER_CAP)) {
        Atomics.sub(this.#counts, slot, 1);
        return "cap";
      }
      if (Atomics.compareExchange(this.#header, HEADER_OPEN, open, open + 1) === open) {
        return "ok";
      }
    }
  }

  /**
   * Uncounts a connection admitted by {@link SharedCounts.tryOpen} with the
   * same key (call it exactly once per admission), and wakes
   * {@link SharedCounts.whenNotFull} waiters in every thread.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create();
   * equal(counts.tryOpen("10.0.0.1", 4), "ok");
   * counts.close("10.0.0.1");
   * equal(counts.open, 0);
   * ```
   */
  close(key: string): void {
    Atomics.sub(this.#counts, slotOf(key, this.#mask), 1);
    const before = Atomics.sub(this.#header, HEADER_OPEN, 1);
    const cap = Atomics.load(this.#header, HEADER_CAP);
    // A waiter only sleeps on a value it saw at or above the cap, and the cap
    // never rises, so the first close after it sleeps starts from >= cap:
    // notifying just then loses no wake-up and costs nothing below the cap.
    if (before >= cap) Atomics.notify(this.#header, HEADER_OPEN);
    // The notify reaches this thread's own waitAsync only through the event
    // loop; resolve local waiters now, as the in-process Guard does.
    if (before - 1 < cap) this.#wake();
  }

  /**
   * Spends a token from `key`'s bucket, which refills at `limit.rate` per
   * second up to `limit.burst` (see gcra.ts; an empty slot is a full
   * bucket). `nowMs` must come from a clock that every thread shares, such
   * as `performance.timeOrigin + performance.now()`: each Worker's own
   * `performance.now()` starts at 0.
   *
   * `limit` is trusted (the Guard checked it once with `checkRate`).
   * @throws {RangeError} when `nowMs` is not finite.
   *
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * const counts = SharedCounts.create();
   * const limit = { rate: 1, burst: 2 };
   * const takes = [0, 0, 0, 1000].map((t) => counts.takeToken("10.0.0.1", limit, t));
   * deepEqual(takes, [true, true, false, true]);
   * ```
   */
  takeToken(key: string, limit: RateLimit, nowMs: number): boolean {
    if (!Number.isFinite(nowMs)) {
      throw new RangeError(`invalid nowMs ${describeValue(nowMs)}: must be a finite number`);
    }
    const slot = slotOf(key, this.#mask);
    const now = toMicros(nowMs);
    for (;;) {
      const stored = Atomics.load(this.#buckets, slot);
      const fullAt = spendToken(Number(stored), now, limit);
      if (fullAt === undefined) return false;
      if (Atomics.compareExchange(this.#buckets, slot, stored, BigInt(fullAt)) === stored) {
        return true;
      }
    }
  }

  /**
   * Adds one to the counter for `reason`; a RangeError for an unknown one.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create();
   * counts.count("idle");
   * equal(counts.refusals.idle, 1);
   * ```
   */
  count(reason: RefusalReason): void {
    Atomics.add(this.#refusals, refusalIndex(reason), 1n);
  }

  /**
   * Snapshot of the refusal counters of every thread, one per reason.
   *
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { noRefusals } from "./refusals.ts";
   * deepEqual(SharedCounts.create().refusals, noRefusals());
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    const result = noRefusals();
    REFUSAL_REASONS.forEach((reason, index) => {
      result[reason] = Number(Atomics.load(this.#refusals, index));
    });
    return result;
  }

  /**
   * Resolves immediately when not full, otherwise once `open` drops below
   * `cap` after a {@link SharedCounts.close} in any thread. All waiters wake
   * together and must still go through {@link SharedCounts.tryOpen}.
   *
   * Cross-thread wake-ups use `Atomics.waitAsync`, which does not keep the
   * event loop alive by itself (the listener or the Worker does); an
   * abandoned wait holds no timer or resource.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = SharedCounts.create({ cap: 1 });
   * counts.tryOpen("10.0.0.1", 1);
   * const room = counts.whenNotFull();
   * counts.close("10.0.0.1"); // possibly in another Worker
   * await room;
   * equal(counts.full, false);
   * ```
   */
  whenNotFull(): Promise<void> {
    if (!this.full) return Promise.resolve();
    let waiters = this.#notFull;
    if (waiters === null) {
      waiters = Promise.withResolvers<void>();
      this.#notFull = waiters;
      // #watch may find room at once (another thread closed since `full`
      // was read) and settle `waiters` before returning: keep our own
      // reference rather than reading this.#notFull again.
      void this.#watch(waiters);
    }
    return waiters.promise;
  }

  /** Sleeps on the total until not full, unless a local close wakes `waiters` first. */
  async #watch(waiters: PromiseWithResolvers<void>): Promise<void> {
    while (this.#notFull === waiters) {
      const open = Atomics.load(this.#header, HEADER_OPEN);
      if (open < Atomics.load(this.#header, HEADER_CAP)) {
        this.#wake();
        return;
      }
      // No timeout: the wait is neither a timer nor a resource, so an
      // abandoned one trips no sanitizer and holds no process open; and a
      // close after `open` was read either changes the value first (the
      // wait returns "not-equal" at once) or notifies it.
      const wait = Atomics.waitAsync(this.#header, HEADER_OPEN, open);
      if (wait.async) await wait.value;
    }
  }

  #wake(): void {
    const waiters = this.#notFull;
    if (waiters === null) return;
    this.#notFull = null;
    waiters.resolve();
  }

  #incrementBelow(slot: number, limit: number): boolean {
    for (;;) {
      const count = Atomics.load(this.#counts, slot);
      if (count >= limit) return false;
      if (Atomics.compareExchange(this.#counts, slot, count, count + 1) === count) return true;
    }
  }
}
