/**
 * The load tester as a library: drives an echo server over many TCP
 * connections in one of three modes (pingpong, stream, churn), verifies every
 * echoed byte and reports throughput and a latency histogram.
 *
 * Every connection sends a seeded pseudo-random byte pattern, a different
 * stretch of it for each message, so corrupted, reordered, added or missing
 * bytes all show as mismatches. A message is read back while it is still
 * being written, so messages of any size up to 16 MiB work against a server
 * that echoes as it reads. When the duration is up, in-flight echoes get a
 * bounded time (the duration, clamped to 0.2–2 s) to come back.
 *
 * A connection the server closes before any echo completed counts as
 * refused, not as a mismatch; one closed between echoes as a reset. A run
 * that verified nothing is not OK. Connections that got no echo before
 * sending stopped (queued by a server at its connection limit, say) are shown
 * as `starved` but do not fail the run.
 *
 * With `udp`, it sends datagrams instead, from one socket per connection, and
 * counts lost, duplicated and reordered ones as well (`BenchReport.udp`);
 * lost datagrams are reported but do not fail the run.
 *
 * @example
 * ```ts ignore
 * import { formatReport, runBench } from "./mod.ts";
 *
 * const report = await runBench({
 *   host: "127.0.0.1",
 *   port: 8000,
 *   connections: 10,
 *   durationMs: 3_000,
 *   size: 64,
 *   mode: "pingpong",
 * });
 * console.log(formatReport(report));
 * if (!report.ok) Deno.exitCode = 1;
 * ```
 *
 * @module
 */
export { runBench } from "./engine.ts";
export {
  BENCH_LIMITS,
  BENCH_MODES,
  type BenchMode,
  type BenchOptions,
  type BenchProgress,
} from "./options.ts";
export { type BenchReport, formatProgress, formatReport, type LatencyReport } from "./report.ts";
export type { UdpFigures } from "./udp_report.ts";
export type { ConnectionSpread, SecondFigures } from "./series.ts";
