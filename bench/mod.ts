/**
 * The load tester as a library: runs verified pingpong, stream or churn load
 * against an echo server and reports throughput and latency.
 *
 * @module
 */
export {
  BENCH_LIMITS,
  type BenchMode,
  type BenchOptions,
  type BenchProgress,
  type BenchReport,
  formatProgress,
  formatReport,
  type LatencyReport,
  runBench,
} from "./bench.ts";
