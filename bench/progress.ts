/**
 * The live progress line's figures: once a second, what the last second
 * added to a run's running totals, for TCP and UDP runs alike.
 *
 * @module
 */
import type { Histogram } from "./histogram.ts";
import type { BenchMode, BenchProgress } from "./options.ts";

/** A run's running totals, read at each tick. */
export interface Tally {
  /** Echoes completed. */
  readonly messages: number;
  /** Bytes echoed back. */
  readonly bytesReceived: number;
  /** Connections opened so far; leave it out where connections are not counted (UDP). */
  readonly opened?: number;
  /** Connections or sockets open now. */
  readonly open: number;
  /** Failures so far. */
  readonly errors: number;
  /** Corrupted and short echoes so far. */
  readonly mismatches: number;
  /** The run's mode. */
  readonly mode: BenchMode;
}

/**
 * Calls `onProgress` once a second with the last second's figures. The
 * latencies of the second are in `window`, which is then merged into `total`
 * and emptied.
 *
 * @example
 * ```ts no-assert
 * import { Histogram } from "./histogram.ts";
 * import { startProgress } from "./progress.ts";
 * const window = new Histogram(), total = new Histogram();
 * const tally = () => ({ messages: 0, bytesReceived: 0, open: 0, errors: 0, mismatches: 0, mode: "pingpong" as const });
 * clearInterval(startProgress(performance.now(), tally, window, total, console.log));
 * ```
 */
export function startProgress(
  startedAt: number,
  tally: () => Tally,
  window: Histogram,
  total: Histogram,
  onProgress: (p: BenchProgress) => void,
): ReturnType<typeof setInterval> {
  let lastAt = startedAt;
  let last = tally();
  return setInterval(() => {
    const now = performance.now();
    const dt = Math.max(now - lastAt, 1) / 1000;
    const t = tally();
    const p: BenchProgress = {
      elapsedS: (now - startedAt) / 1000,
      messages: t.messages,
      msgsPerS: (t.messages - last.messages) / dt,
      mbPerS: (t.bytesReceived - last.bytesReceived) / dt / 1e6,
      p99Us: window.percentile(99),
      openConnections: t.open,
      connectionsPerS: t.opened === undefined ? undefined : (t.opened - (last.opened ?? 0)) / dt,
      mode: t.mode,
      errors: t.errors,
      mismatches: t.mismatches,
    };
    total.merge(window);
    window.reset();
    lastAt = now;
    last = t;
    try {
      onProgress(p);
    } catch {
      // A failing progress printer must not break the measurement.
    }
  }, 1000);
}
