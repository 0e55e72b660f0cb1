/**
 * How a server's connections ended: a count by reason and a histogram of how
 * long they lasted. Plain data, so that workers can post it and metrics can
 * read it; one update per closed connection, nothing per chunk.
 *
 * @module
 */

/**
 * Why a connection ended: the client closed it (`client-closed`) or reset it
 * (`reset`), a limit closed it (`idle`, `lifetime`), the drain's time ran out
 * (`shutdown`), the listener died (`listener-lost`), the echo failed
 * (`error`, including a failed TLS handshake), or a fault asked for on
 * purpose ended it (`fault`: `--fault close-after`, `reset-after`, `refuse`).
 */
export type CloseReason =
  | "client-closed"
  | "reset"
  | "idle"
  | "lifetime"
  | "shutdown"
  | "listener-lost"
  | "error"
  | "fault";

/** Every {@link CloseReason}, in a stable order for metrics output. */
export const CLOSE_REASONS: readonly CloseReason[] = Object.freeze([
  "client-closed",
  "reset",
  "idle",
  "lifetime",
  "shutdown",
  "listener-lost",
  "error",
  "fault",
]);

/**
 * Upper bounds, in seconds, of the connection duration buckets: from a quick
 * exchange (1 ms) to an hour, about ×3-5 apart, so that both churning and
 * long-lived clients land in buckets that tell them apart.
 */
export const DURATION_BOUNDS_S: readonly number[] = Object.freeze([
  0.001,
  0.005,
  0.025,
  0.1,
  0.5,
  1,
  5,
  30,
  60,
  300,
  900,
  3600,
]);

/** Counts of connection durations: one per bucket of {@link DURATION_BOUNDS_S}, then above. */
export interface DurationHistogram {
  /** Connections in each bucket alone (not cumulative); the last one is above the last bound. */
  counts: number[];
  /** Sum of all durations, in seconds. */
  sum: number;
}

/** Zeroed counts of closes by reason. */
export function noCloses(): Record<CloseReason, number> {
  return {
    "client-closed": 0,
    reset: 0,
    idle: 0,
    lifetime: 0,
    shutdown: 0,
    "listener-lost": 0,
    error: 0,
    fault: 0,
  };
}

/** An empty duration histogram. */
export function noDurations(): DurationHistogram {
  return { counts: new Array<number>(DURATION_BOUNDS_S.length + 1).fill(0), sum: 0 };
}

/**
 * Adds one duration, in seconds, to `histogram`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noDurations, observeDuration } from "./closes.ts";
 * const histogram = noDurations();
 * observeDuration(histogram, 0.001);
 * observeDuration(histogram, 7200);
 * equal(histogram.counts[0], 1);
 * equal(histogram.counts.at(-1), 1);
 * equal(histogram.sum, 7200.001);
 * ```
 */
export function observeDuration(histogram: DurationHistogram, seconds: number): void {
  let i = 0;
  while (i < DURATION_BOUNDS_S.length && seconds > DURATION_BOUNDS_S[i]) i++;
  histogram.counts[i]++;
  histogram.sum += seconds;
}

/**
 * The sum of two duration histograms, such as two workers'.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { addDurations, noDurations, observeDuration } from "./closes.ts";
 * const one = noDurations();
 * observeDuration(one, 2);
 * equal(addDurations(one, one).counts[6], 2);
 * ```
 */
export function addDurations(a: DurationHistogram, b: DurationHistogram): DurationHistogram {
  return { counts: a.counts.map((n, i) => n + (b.counts[i] ?? 0)), sum: a.sum + b.sum };
}
