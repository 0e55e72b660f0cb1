/**
 * {@linkcode runBench}: opens the connections, runs the load loops of the
 * chosen mode for the duration, drains the echoes in flight, and sums up.
 *
 * @module
 */
import { churn } from "./churn.ts";
import { type BenchOptions, validateOptions } from "./options.ts";
import { pingpong } from "./pingpong.ts";
import { startProgress } from "./progress.ts";
import { type BenchReport, benchTarget, latencyOf, reportedOptions } from "./report.ts";
import { Run } from "./run.ts";
import type { Timer } from "./schedule.ts";
import { stream } from "./stream.ts";
import { runUdpBench } from "./udp.ts";

/**
 * How long the first connections may take before the run gives up on them:
 * the duration, within 1–10 s.
 */
const CONNECT_TIMEOUT_MIN_MS = 1_000;
const CONNECT_TIMEOUT_MAX_MS = 10_000;

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
  validateOptions(options);
  if (options.udp) return await runUdpBench(options);
  const run = new Run(options);
  const external = options.signal;
  const onAbort = () => {
    // After the duration the run is stopping already: that is its normal end.
    if (!run.stopping) run.interrupted = true;
    run.stop();
  };
  external?.addEventListener("abort", onAbort, { once: true });
  if (external?.aborted) onAbort();
  try {
    return await execute(run, options);
  } finally {
    external?.removeEventListener("abort", onAbort);
    run.closeAll();
  }
}

async function execute(run: Run, o: BenchOptions): Promise<BenchReport> {
  run.dialStartedAt = performance.now();
  const timeout = Math.min(CONNECT_TIMEOUT_MAX_MS, Math.max(CONNECT_TIMEOUT_MIN_MS, o.durationMs));
  const dialTimer = setTimeout(
    () => run.dialing.abort(new Error(`timed out after ${timeout / 1000} s`)),
    timeout,
  );
  // How long each first connect took: churn times its first echo by it.
  const dialMs = new Float64Array(o.connections);
  const dialed = await Promise.all(
    Array.from({ length: o.connections }, async (_, i) => {
      const t = performance.now();
      const conn = await run.connect(run.dialing.signal);
      dialMs[i] = performance.now() - t;
      return conn;
    }),
  );
  clearTimeout(dialTimer);
  const conns = dialed.filter((c): c is Deno.Conn => c !== null);
  // Not one connected (refusals aside, which the report counts): nothing to load.
  if (conns.length === 0 && run.refused === 0 && !run.stopping) {
    throw new Error(
      `cannot connect to ${benchTarget(o)}: ${run.firstError ?? "no connection"}`,
    );
  }
  // Stopped while connecting (Ctrl-C): the run lasted from the first connect.
  run.startedAt = run.stopping ? run.dialStartedAt : performance.now();
  const deadline = setTimeout(() => run.stop(), o.durationMs);
  if (o.mode === "pingpong") run.fairness.start();
  const ticker = o.onProgress === undefined ? undefined : startProgress(
    run.startedAt,
    () => ({
      messages: run.messages,
      bytesReceived: run.bytesReceived,
      opened: run.opened,
      open: run.open.size,
      errors: run.failed + run.refused + run.resets,
      mismatches: run.corrupted + run.short,
      mode: run.mode,
    }),
    run.window,
    run.total,
    o.onProgress,
  );
  // Latency is measured per connection from its scheduled send time; with no
  // rate the interval is 0 and each message goes as soon as the last came back.
  const senders = o.mode === "churn" ? o.connections : conns.length;
  const interval = o.rate === undefined ? 0 : (1000 * senders) / o.rate;
  let loops: Promise<void>[];
  if (o.mode === "stream") {
    loops = conns.map((c, i) => stream(run, c, i));
  } else if (o.mode === "pingpong") {
    loops = conns.map((c, i) => pingpong(run, c, i, i * interval / senders, interval));
  } else {
    // Churn keeps every slot, even one whose first connect failed: it retries.
    loops = dialed.map((c, i) => churn(run, c, dialMs[i], i, i * interval / senders, interval));
  }
  const all = Promise.all(loops);
  try {
    await Promise.race([all, run.stopped]);
    run.stop();
    // Give in-flight echoes a bounded time to come back; what is still missing
    // then is a short echo.
    let drain: Timer | undefined;
    const drained = new Promise<void>((resolve) => {
      drain = setTimeout(resolve, run.drainMs);
    });
    await Promise.race([all, drained]);
    clearTimeout(drain);
  } finally {
    clearTimeout(deadline);
    run.fairness.stop();
    if (ticker !== undefined) clearInterval(ticker);
    run.closeAll();
    await all;
    await run.ended();
  }
  return summarize(run, o);
}

/** The report of a finished run. */
function summarize(run: Run, o: BenchOptions): BenchReport {
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
    bytesReceived: run.bytesReceived,
    msgsPerS,
    rateAchievedFraction: o.rate === undefined ? null : msgsPerS / o.rate,
    mbPerS: per(run.bytesReceived) / 1e6,
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
  };
}
