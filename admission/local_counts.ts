/**
 * Exact admission counts in Maps, private to one `Guard` and so to one
 * thread; the default when no shared counts are given.
 *
 * @module
 */
import { TokenBuckets } from "./buckets.ts";
import type { Counts, OpenResult } from "./counts.ts";
import type { RateLimit } from "./limits.ts";
import { noRefusals, refusalIndex, type RefusalReason } from "./refusals.ts";

/**
 * {@link Counts} kept exactly, per client key.
 *
 * Memory: a key's open count is deleted when it drops to 0, so that map never
 * holds more than `cap` keys. Token buckets are a {@link TokenBuckets}:
 * full ones are dropped on each `takeToken` (amortised O(1)), and beyond
 * `maxRateKeys` the least recently seen key is forgotten, and so forgiven.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * const counts = new LocalCounts(2, 100_000);
 * equal(counts.tryOpen("10.0.0.1", 1), "ok");
 * equal(counts.tryOpen("10.0.0.1", 1), "per-ip");
 * equal(counts.tryOpen("10.0.0.2", 1), "ok");
 * equal(counts.tryOpen("10.0.0.3", 1), "cap");
 * ```
 */
export class LocalCounts implements Counts {
  #cap: number;
  /** Open connections per client key; absent means 0. */
  readonly #perKey = new Map<string, number>();
  /** Per client key, its token bucket. */
  readonly #buckets: TokenBuckets;
  readonly #refusals: Record<RefusalReason, number> = noRefusals();
  #open = 0;
  /** Shared by all waiters: one close wakes them all, and each re-checks through tryOpen. */
  #notFull: PromiseWithResolvers<void> | null = null;

  /**
   * Empty counts with a cap of `cap` open connections and at most
   * `maxRateKeys` token buckets; both are trusted to be positive integers.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new LocalCounts(10, 100).cap, 10);
   * ```
   */
  constructor(cap: number, maxRateKeys: number) {
    this.#cap = cap;
    this.#buckets = new TokenBuckets(maxRateKeys);
  }

  /**
   * Open connections.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new LocalCounts(10, 100).open, 0);
   * ```
   */
  get open(): number {
    return this.#open;
  }

  /**
   * The cap on open connections now in force.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new LocalCounts(10, 100).cap, 10);
   * ```
   */
  get cap(): number {
    return this.#cap;
  }

  /**
   * Lowers the cap to `limit` (never raises it, never below 1); returns the
   * cap in force.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = new LocalCounts(10, 100);
   * equal(counts.lowerCap(4), 4);
   * equal(counts.lowerCap(8), 4);
   * ```
   */
  lowerCap(limit: number): number {
    this.#cap = Math.max(1, Math.min(this.#cap, Math.floor(limit)));
    return this.#cap;
  }

  /**
   * Sets the cap to `limit` (at least 1), up or down, for a reload; open
   * connections above a lowered cap stay open. Returns the cap in force.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = new LocalCounts(10, 100);
   * equal(counts.setCap(4), 4);
   * equal(counts.setCap(20), 20);
   * ```
   */
  setCap(limit: number): number {
    this.#cap = Math.max(1, Math.floor(limit));
    if (this.#notFull !== null && this.#open < this.#cap) {
      const waiters = this.#notFull;
      this.#notFull = null;
      waiters.resolve();
    }
    return this.#cap;
  }

  /**
   * Counts a connection for `key` within `maxPerKey` and the cap, or names the
   * limit that refused (`per-ip` first) and changes nothing.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new LocalCounts(10, 100).tryOpen("10.0.0.1", 4), "ok");
   * ```
   */
  tryOpen(key: string, maxPerKey: number): OpenResult {
    const forKey = this.#perKey.get(key) ?? 0;
    if (forKey >= maxPerKey) return "per-ip";
    if (this.#open >= this.#cap) return "cap";
    this.#open++;
    this.#perKey.set(key, forKey + 1);
    return "ok";
  }

  /**
   * Uncounts a connection admitted for `key`, and wakes waiters once below the cap.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = new LocalCounts(10, 100);
   * counts.tryOpen("10.0.0.1", 4);
   * counts.close("10.0.0.1");
   * equal(counts.open, 0);
   * ```
   */
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

  /**
   * Spends a token from `key`'s bucket at `nowMs`; false when it is empty.
   * `limit` is trusted to be checked.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = new LocalCounts(10, 100);
   * const limit = { rate: 1, burst: 1 };
   * equal(counts.takeToken("10.0.0.1", limit, 0), true);
   * equal(counts.takeToken("10.0.0.1", limit, 999), false);
   * equal(counts.takeToken("10.0.0.1", limit, 1000), true);
   * ```
   */
  takeToken(key: string, limit: RateLimit, nowMs: number): boolean {
    return this.#buckets.take(key, limit, nowMs);
  }

  /**
   * Adds one to the counter for `reason`.
   *
   * @throws {RangeError} for a reason not in `REFUSAL_REASONS`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const counts = new LocalCounts(10, 100);
   * counts.count("idle");
   * equal(counts.refusals.idle, 1);
   * ```
   */
  count(reason: RefusalReason): void {
    refusalIndex(reason);
    this.#refusals[reason]++;
  }

  /**
   * Snapshot of the refusal counters.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * equal(new LocalCounts(10, 100).refusals.cap, 0);
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    return { ...this.#refusals };
  }

  /**
   * Resolves at once when below the cap, otherwise on the close that brings
   * `open` below it; all waiters wake together.
   *
   * @example
   * ```ts no-assert
   * await new LocalCounts(10, 100).whenNotFull();
   * ```
   */
  whenNotFull(): Promise<void> {
    if (this.#open < this.#cap) return Promise.resolve();
    this.#notFull ??= Promise.withResolvers<void>();
    return this.#notFull.promise;
  }
}
