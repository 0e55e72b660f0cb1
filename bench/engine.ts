/**
 * {@linkcode runBench}: runs the load on the chosen engine (`deno_load.ts`,
 * `epoll_load.ts`) under the run's clock (the warm-up, the duration, the
 * per-second series), and sums up.
 *
 * @module
 */
import { type Clock, loadDeno } from "./deno_load.ts";
import { loadEpoll } from "./epoll_load.ts";
import { Histogram } from "./histogram.ts";
import { type BenchOptions, validateOptions } from "./options.ts";
import { type BenchReport, latencyOf, reportedOptions } from "./report.ts";
import { Run } from "./run.ts";
import { spreadOf, Ticker } from "./series.ts";
import { runUdpBench } from "./udp.ts";

/**
 * A run's report with what it was made from: the whole latency histogram
 * (for `--hgrm` and the HTML page), each second's, and each connection's
 * echo count, so that the runs of several workers can be merged.
 */
export interface Measured {
  /** The report. */
  report: BenchReport;
  /** Every latency sample of the measurement. */
  histogram: Histogram;
  /** Each second's latency ({@linkcode Histogram.toSparse}), in the order of `report.series`. */
  seconds: number[][];
  /** Verified echoes of each connection (churn: slot). */
  perConnection: Uint32Array;
}

/**
 * Validates the options, runs the load and reports. Rejects with
 * `cannot connect to HOST:PORT: REASON` when not one connection can be opened,
 * and with a `RangeError` for invalid options. Every socket and timer is closed
 * before it resolves.
 *
 * @example
 * ```ts
 * import { equal, ok } from "node:assert/strict";
 * import { runBench } from "./mod.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const report = await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 2, durationMs: 200, size: 64,
 *   mode: "pingpong",
 * });
 * ok(report.ok && report.messages > 0);
 * equal(report.mismatches, 0);
 * ```
 *
 * @example A long run ended early, as Ctrl-C would, by aborting the signal
 * ```ts ignore
 * import { runBench } from "./mod.ts";
 *
 * const report = await runBench({
 *   host: "127.0.0.1", port: 8000, connections: 5, durationMs: 30_000, size: 512,
 *   mode: "churn", signal: AbortSignal.timeout(300),
 * });
 * console.log(report.connectionsPerS, report.latencyUs.p99);
 * ```
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  return (await measure(options)).report;
}

/**
 * {@linkcode runBench}, returning the histograms and counts that its
 * report was made from as well.
 */
export async function measure(options: BenchOptions): Promise<Measured> {
  validateOptions(options);
  if (options.udp) {
    const report = await runUdpBench(options);
    return { report, histogram: new Histogram(), seconds: [], perConnection: new Uint32Array() };
  }
  const run = new Run(options);
  const external = options.signal;
  const onAbort = () => {
    // After the duration the run is stopping already: that is its normal end.
    if (!run.stopping) run.interrupted = true;
    run.stop();
  };
  external?.addEventListener("abort", onAbort, { once: true });
  if (external?.aborted) onAbort();
  const ticker = new Ticker(run, options.onProgress);
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let warmup: ReturnType<typeof setTimeout> | undefined;
  const clock: Clock = {
    start() {
      // Stopped while connecting (Ctrl-C): the run lasted from the first connect.
      run.startedAt = run.stopping ? run.dialStartedAt : performance.now();
      const warmupMs = options.warmupMs ?? 0;
      deadline = setTimeout(() => run.stop(), warmupMs + options.durationMs);
      if (warmupMs > 0 && !run.stopping) {
        warmup = setTimeout(() => {
          run.endWarmup(performance.now());
          ticker.start();
        }, warmupMs);
      }
      ticker.start();
    },
  };
  try {
    run.dialStartedAt = performance.now();
    await (options.io === "epoll" ? loadEpoll : loadDeno)(run, options, clock);
  } finally {
    clearTimeout(deadline);
    clearTimeout(warmup);
    ticker.stop();
    external?.removeEventListener("abort", onAbort);
    run.closeAll();
  }
  return {
    report: summarize(run, options, ticker),
    histogram: run.total,
    seconds: ticker.seconds,
    perConnection: run.perConnection,
  };
}

/** The report of a finished run. */
function summarize(run: Run, o: BenchOptions, ticker: Ticker): BenchReport {
  run.total.merge(run.window);
  run.window.reset();
  const end = Math.max(run.stoppedAt, run.lastEchoAt);
  const elapsedS = run.startedAt === 0 ? 0 : Math.max(end - run.startedAt, 0) / 1000;
  const per = (x: number) => elapsedS > 0 ? x / elapsedS : 0;
  const h = run.total;
  const failed = run.failed + run.refused;
  const errors = failed + run.resets;
  const mismatches = run.corrupted + run.short;
  // A run that verified nothing proves nothing, even without an error.
  const verified = o.mode === "stream" ? run.bytesReceived > 0 : run.messages > 0;
  if (!verified) run.noteError("no echo completed within the run");
  const msgsPerS = per(run.messages);
  return {
    options: reportedOptions(o),
    elapsedS,
    messages: run.messages,
    bytesSent: run.bytesSent,
    // Below 0 only when echoes of the warm-up's last bytes never came.
    bytesReceived: Math.max(0, run.bytesReceived),
    msgsPerS,
    rateAchievedFraction: o.rate === undefined ? null : msgsPerS / o.rate,
    mbPerS: per(Math.max(0, run.bytesReceived)) / 1e6,
    connectionsOpened: run.opened - run.refused,
    connectionsFailed: failed,
    refused: run.refused,
    connectionsPerS: per(run.opened - run.refused),
    errors,
    resets: run.resets,
    mismatches,
    corrupted: run.corrupted,
    short: run.short,
    timedOut: run.timedOut,
    starved: run.starved,
    firstError: run.firstError,
    interrupted: run.interrupted,
    ok: errors === 0 && mismatches === 0 && run.timedOut === 0 && verified,
    latencyUs: latencyOf(h),
    perConnection: spreadOf(run.perConnection),
    series: ticker.figures,
  };
}
