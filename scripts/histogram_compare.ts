/**
 * The bench's latency recorder on its hot path: `bench/histogram.ts`
 * against npm's hdr-histogram-js (HdrHistogram's TypeScript port, in its
 * JavaScript and its WebAssembly builds), recording the same 5 million
 * latencies, in interleaved rounds. Prints nanoseconds per `record` and the
 * ratio; the bench keeps the faster.
 *
 *   deno run scripts/histogram_compare.ts [--rounds 5]
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as hdr from "hdr-histogram-js";
import { Histogram } from "../bench/histogram.ts";

let rounds = 0;
try {
  const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
  rounds = Number(values.rounds);
} catch (error) {
  console.error(`histogram_compare: ${error instanceof Error ? error.message : error}`);
  Deno.exit(2);
}
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20)) {
  console.error("histogram_compare: --rounds from 1 to 20");
  Deno.exit(2);
}
const N = 5_000_000;
// Latencies as a pingpong sees them: mostly hundreds of µs, a long tail to a few ms.
const samples = new Float64Array(N);
let x = 0x9e3779b9;
for (let i = 0; i < N; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  const u = (x >>> 0) / 2 ** 32;
  samples[i] = 20 + u * u * u * 3000;
}

function ours(): number {
  const h = new Histogram();
  const t = performance.now();
  for (let i = 0; i < N; i++) h.record(samples[i]);
  return ((performance.now() - t) * 1e6) / N;
}

function theirs(useWebAssembly: boolean): number {
  const h = hdr.build({
    numberOfSignificantValueDigits: 2,
    highestTrackableValue: 2 ** 27,
    useWebAssembly,
  });
  const t = performance.now();
  // It records integers: the rounding is part of its cost, as it is of ours.
  for (let i = 0; i < N; i++) h.recordValue(Math.round(samples[i]));
  const ns = ((performance.now() - t) * 1e6) / N;
  h.destroy();
  return ns;
}

await hdr.initWebAssembly();
const results: number[][] = [[], [], []];
for (let r = 0; r < rounds; r++) {
  results[0].push(ours());
  results[1].push(theirs(false));
  results[2].push(theirs(true));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(results[0]);
console.log("| recorder | ns per record (median) | × bench/histogram.ts |");
console.log("|---|---|---|");
for (
  const [i, name] of [
    "bench/histogram.ts",
    "hdr-histogram-js (JS)",
    "hdr-histogram-js (WebAssembly)",
  ].entries()
) {
  console.log(
    `| ${name} | ${median(results[i]).toFixed(1)} | ${(median(results[i]) / base).toFixed(2)} |`,
  );
}
