/**
 * What a `Guard` needs counted, as one interface, so that a single admission
 * path serves both the exact counts private to one thread (local_counts.ts)
 * and the hashed ones shared between Workers (shared_counts.ts).
 *
 * @module
 */
import type { RateLimit } from "./limits.ts";
import type { RefusalReason } from "./refusals.ts";

/**
 * Result of a `tryOpen`: `ok`, or the limit that refused.
 *
 * @example
 * ```ts no-assert
 * const result: OpenResult = "per-ip";
 * ```
 */
export type OpenResult = "ok" | "per-ip" | "cap";

/**
 * Open connections in total and per client key, the cap, token buckets per
 * client key, and refusal counters.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { LocalCounts } from "./local_counts.ts";
 * const counts: Counts = new LocalCounts(10_000, 100_000);
 * equal(counts.tryOpen("10.0.0.1", 256), "ok");
 * counts.close("10.0.0.1");
 * equal(counts.open, 0);
 * ```
 */
export interface Counts {
  /** Open connections. */
  readonly open: number;
  /** The cap on open connections now in force. */
  readonly cap: number;
  /** Lowers the cap to `limit` (never raises it, never below 1); returns the cap in force. */
  lowerCap(limit: number): number;
  /** Sets the cap to `limit` (at least 1), up or down, waking waiters when it rises; returns it. */
  setCap(limit: number): number;
  /**
   * Counts a connection for `key` if its own count stays within `maxPerKey`
   * and the total within the cap; otherwise changes nothing and names the
   * limit, `per-ip` first.
   */
  tryOpen(key: string, maxPerKey: number): OpenResult;
  /** Uncounts a connection that `tryOpen` admitted for `key`; wakes `whenNotFull`. */
  close(key: string): void;
  /** Spends a token from `key`'s bucket at `nowMs`; false when it is empty. */
  takeToken(key: string, limit: RateLimit, nowMs: number): boolean;
  /** Adds one to the counter for `reason`, or throws a RangeError for an unknown one. */
  count(reason: RefusalReason): void;
  /** Snapshot of the refusal counters. */
  readonly refusals: Readonly<Record<RefusalReason, number>>;
  /** Resolves when `open` is below the cap. */
  whenNotFull(): Promise<void>;
}
