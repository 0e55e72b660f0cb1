/**
 * Token buckets per client key in a Map, with bounded memory: what the
 * connection rate limit of one thread and the UDP reply limit both keep.
 *
 * @module
 */
import { isFull, spendToken, toMicros } from "./gcra.ts";
import type { RateLimit } from "./limits.ts";

/**
 * GCRA token buckets (see gcra.ts), one per client key, kept in least
 * recently used order. Full buckets are dropped from the old end on each
 * {@link TokenBuckets.take} (amortised O(1)): a full bucket is no different
 * from a fresh one. Beyond `maxKeys` the least recently seen key is
 * forgotten, and so forgiven, so that a flood of distinct (or spoofed)
 * addresses cannot grow the map without bound.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * const buckets = new TokenBuckets(100);
 * const limit = { rate: 1, burst: 2 };
 * deepEqual([0, 0, 0].map(() => buckets.take("10.0.0.1", limit, 0)), [true, true, false]);
 * deepEqual(buckets.take("10.0.0.2", limit, 0), true); // another key, its own bucket
 * ```
 */
export class TokenBuckets {
  readonly #maxKeys: number;
  /** Per client key, the time its bucket is full again (µs, see gcra.ts); LRU first. */
  readonly #fullAt = new Map<string, number>();

  /**
   * Empty buckets, at most `maxKeys` of them at once (trusted to be a
   * positive integer).
   */
  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  /**
   * Buckets held now: never more than `maxKeys`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const buckets = new TokenBuckets(1);
   * buckets.take("a", { rate: 1, burst: 1 }, 0);
   * buckets.take("b", { rate: 1, burst: 1 }, 0);
   * equal(buckets.size, 1);
   * ```
   */
  get size(): number {
    return this.#fullAt.size;
  }

  /**
   * Spends a token from `key`'s bucket at `nowMs` (a millisecond clock);
   * false when it is empty. `limit` is trusted to be checked (see `checkRate`).
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * const buckets = new TokenBuckets(100);
   * const limit = { rate: 1, burst: 1 };
   * equal(buckets.take("10.0.0.1", limit, 0), true);
   * equal(buckets.take("10.0.0.1", limit, 999), false);
   * equal(buckets.take("10.0.0.1", limit, 1000), true);
   * ```
   */
  take(key: string, limit: RateLimit, nowMs: number): boolean {
    const now = toMicros(nowMs);
    // The map is in least recently used order, and a bucket left alone long
    // enough refills, so full buckets collect at the front: drop them there.
    for (const [staleKey, fullAt] of this.#fullAt) {
      if (!isFull(fullAt, now)) break;
      this.#fullAt.delete(staleKey);
    }
    const stored = this.#fullAt.get(key);
    if (stored === undefined) {
      if (this.#fullAt.size >= this.#maxKeys) {
        const oldest = this.#fullAt.keys().next();
        if (!oldest.done) this.#fullAt.delete(oldest.value);
      }
    } else {
      // Re-inserted below, refused or not, to move it to the most recently used end.
      this.#fullAt.delete(key);
    }
    const fullAt = spendToken(stored ?? now, now, limit);
    this.#fullAt.set(key, fullAt ?? stored ?? now);
    return fullAt !== undefined;
  }
}
