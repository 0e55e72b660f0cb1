/**
 * The run over time: once a second, what the last second added (echoes,
 * bytes, connections, errors, latency percentiles), kept as the report's
 * per-second series and shown as the live progress line; and how evenly the
 * echoes were spread over the connections.
 *
 * @module
 */
import type { BenchProgress } from "./options.ts";
import type { Run } from "./run.ts";

/**
 * One second of a run (the last interval may be shorter).
 *
 * @example
 * ```ts no-assert
 * import type { SecondFigures } from "./series.ts";
 * const s: SecondFigures = {
 *   t: 1, msgsPerS: 170_000, mbPerS: 10.9, connectionsPerS: 0, open: 100, errors: 0,
 *   p50: 480, p99: 1_300, p99_9: 2_100, max: 3_000,
 * };
 * ```
 */
export interface SecondFigures {
  /** Seconds from the start of the measurement to the end of this interval. */
  t: number;
  /** Verified echoes per second in the interval. */
  msgsPerS: number;
  /** Echoed megabytes (10^6 bytes) per second in the interval. */
  mbPerS: number;
  /** Connections opened per second in the interval. */
  connectionsPerS: number;
  /** Connections open at the end of the interval. */
  open: number;
  /** Connect failures, refusals and resets since the start of the run. */
  errors: number;
  /** Latency percentiles of the echoes of the interval, µs (0 when none). */
  p50: number;
  /** 99th percentile, µs. */
  p99: number;
  /** 99.9th percentile, µs. */
  p99_9: number;
  /** Slowest echo of the interval, µs. */
  max: number;
}

/**
 * How the verified echoes were spread over the connections (churn: slots):
 * `none` is how many got not one echo in the measurement, the figure that
 * must be 0; the others are echoes per connection.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { spreadOf } from "./series.ts";
 * deepEqual(spreadOf(new Uint32Array([0, 10, 10, 20])), {
 *   none: 1, min: 0, p1: 0, p50: 10, p99: 20, max: 20, mean: 10,
 * });
 * ```
 */
export interface ConnectionSpread {
  /** Connections with no verified echo. */
  none: number;
  /** Fewest echoes of one connection. */
  min: number;
  /** 1st percentile of the echoes per connection: the poorly served. */
  p1: number;
  /** Median echoes per connection. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** Most echoes of one connection. */
  max: number;
  /** Mean echoes per connection. */
  mean: number;
}

/** The {@linkcode ConnectionSpread} of per-connection echo counts. */
export function spreadOf(counts: ArrayLike<number>): ConnectionSpread {
  const sorted = Float64Array.from(counts).sort();
  const n = sorted.length;
  if (n === 0) return { none: 0, min: 0, p1: 0, p50: 0, p99: 0, max: 0, mean: 0 };
  const at = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
  let none = 0;
  let sum = 0;
  for (const c of sorted) {
    if (c === 0) none++;
    sum += c;
  }
  return {
    none,
    min: sorted[0],
    p1: at(1),
    p50: at(50),
    p99: at(99),
    max: sorted[n - 1],
    mean: sum / n,
  };
}

/**
 * Samples a run once a second: appends to `figures` (and `seconds`, each
 * second's latency histogram, for workers to merge), merges the run's
 * `window` into its `total`, and calls `onProgress`.
 */
export class Ticker {
  /** The series so far. */
  readonly figures: SecondFigures[] = [];
  /** Each interval's latency, as {@linkcode Histogram.toSparse} writes it. */
  readonly seconds: number[][] = [];
  readonly #run: Run;
  readonly #onProgress: ((p: BenchProgress) => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #startedAt = 0;
  #lastAt = 0;
  #messages = 0;
  #bytes = 0;
  #opened = 0;

  /** For `run`; `onProgress` hears each second's figures. */
  constructor(run: Run, onProgress?: (p: BenchProgress) => void) {
    this.#run = run;
    this.#onProgress = onProgress;
  }

  /** Starts (or, after the warm-up, starts over) at the run's `startedAt`, with an empty series. */
  start(): void {
    clearInterval(this.#timer);
    const run = this.#run;
    this.figures.length = 0;
    this.seconds.length = 0;
    this.#startedAt = this.#lastAt = run.startedAt;
    this.#messages = run.messages;
    this.#bytes = run.bytesReceived;
    this.#opened = run.opened;
    this.#timer = setInterval(() => this.#tick(performance.now()), 1000);
  }

  /** Stops, taking the last part of a second as an interval of its own when it is long enough to mean something. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const now = Math.max(this.#run.stoppedAt, this.#run.lastEchoAt, this.#lastAt);
    if (this.#startedAt > 0 && now - this.#lastAt >= 200) this.#tick(now, true);
    else this.#flushWindow();
  }

  #tick(now: number, last = false): void {
    const run = this.#run;
    const dt = Math.max(now - this.#lastAt, 1) / 1000;
    const w = run.window;
    const errors = run.failed + run.refused + run.resets;
    const figures: SecondFigures = {
      t: (now - this.#startedAt) / 1000,
      msgsPerS: (run.messages - this.#messages) / dt,
      mbPerS: (run.bytesReceived - this.#bytes) / dt / 1e6,
      connectionsPerS: (run.opened - this.#opened) / dt,
      open: run.open.size + run.peersOpen,
      errors,
      p50: w.percentile(50),
      p99: w.percentile(99),
      p99_9: w.percentile(99.9),
      max: w.max,
    };
    this.figures.push(figures);
    this.seconds.push(w.toSparse());
    this.#lastAt = now;
    this.#messages = run.messages;
    this.#bytes = run.bytesReceived;
    this.#opened = run.opened;
    this.#flushWindow();
    if (last || this.#onProgress === undefined) return;
    try {
      this.#onProgress({
        elapsedS: figures.t,
        messages: run.messages,
        msgsPerS: figures.msgsPerS,
        mbPerS: figures.mbPerS,
        p99Us: figures.p99,
        openConnections: figures.open,
        connectionsPerS: figures.connectionsPerS,
        mode: run.mode,
        errors,
        mismatches: run.corrupted + run.short,
      });
    } catch {
      // A failing progress printer must not break the measurement.
    }
  }

  #flushWindow(): void {
    this.#run.total.merge(this.#run.window);
    this.#run.window.reset();
  }
}
