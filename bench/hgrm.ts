/**
 * A latency histogram in HdrHistogram's percentile distribution text (the
 * `.hgrm` files of wrk2 and HdrHistogram's own `outputPercentileDistribution`),
 * which HdrHistogram's plotter and other tools read: values in milliseconds,
 * five reporting ticks per half distance to 100 %.
 *
 * @module
 */
import type { Histogram } from "./histogram.ts";

/** Reporting ticks per half distance, as wrk2 and HdrHistogram's default. */
const TICKS_PER_HALF_DISTANCE = 5;
/** Microseconds per output unit: the file is in milliseconds, as wrk2's. */
const SCALE = 1000;
/**
 * `bench/histogram.ts`'s layout in HdrHistogram's terms: 256 sub-buckets
 * (two significant digits) and 20 buckets up to 2^27 µs.
 */
const BUCKETS = 20;
const SUB_BUCKETS = 256;

/**
 * Writes `h` (microseconds) as HdrHistogram's percentile distribution,
 * line for line as its `PercentileIterator` walks it.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Histogram } from "./histogram.ts";
 * import { hgrmOf } from "./hgrm.ts";
 * const h = new Histogram();
 * for (let us = 1; us <= 100; us++) h.record(us);
 * const text = hgrmOf(h);
 * ok(text.includes("       0.100 1.000000000000        100"));
 * ```
 */
export function hgrmOf(h: Histogram): string {
  const lines = [
    `${"Value".padStart(12)} ${"Percentile".padStart(14)} ${"TotalCount".padStart(10)} ${
      "1/(1-Percentile)".padStart(14)
    }`,
    "",
  ];
  let sumSquares = 0;
  h.forEachBucket((value, count) => sumSquares += count * (value - h.mean) ** 2);
  for (const [level, value, count] of percentileSteps(h)) {
    lines.push(line(value, level, count, level < 100));
  }
  const total = h.count;
  const f = (v: number) => (v / SCALE).toFixed(3).padStart(12);
  lines.push(
    `#[Mean    = ${f(h.mean)}, StdDeviation   = ${
      f(total > 0 ? Math.sqrt(sumSquares / total) : 0)
    }]`,
    `#[Max     = ${f(h.max)}, Total count    = ${String(total).padStart(12)}]`,
    `#[Buckets = ${String(BUCKETS).padStart(12)}, SubBuckets     = ${
      String(SUB_BUCKETS).padStart(12)
    }]`,
  );
  return lines.join("\n") + "\n";
}

/**
 * The steps of HdrHistogram's percentile iteration over `h`: `[percentile
 * (0–100), value µs, samples at or below it]`, ending at 100 with the
 * largest; what the distribution is plotted from.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { Histogram } from "./histogram.ts";
 * import { percentileSteps } from "./hgrm.ts";
 * const h = new Histogram();
 * h.record(5);
 * deepEqual(percentileSteps(h), [[0, 5, 1], [100, 5, 1]]);
 * ```
 */
export function percentileSteps(h: Histogram): [number, number, number][] {
  const steps: [number, number, number][] = [];
  const total = h.count;
  let level = 0;
  let seen = 0;
  let lastValue = 0;
  h.forEachBucket((value, count) => {
    seen += count;
    lastValue = value;
    while (level < 100 && (100 * seen) / total >= level) {
      steps.push([level, value, seen]);
      // Finer steps as the level nears 100: TICKS per halving of what is left.
      const ticks = TICKS_PER_HALF_DISTANCE * 2 ** (Math.floor(Math.log2(100 / (100 - level))) + 1);
      level += 100 / ticks;
      // Past the last sample the iterator goes straight to 100 %.
      if (seen === total) break;
    }
  });
  if (total > 0) steps.push([100, lastValue, total]);
  return steps;
}

/** One line: value (ms), percentile as a fraction, count so far, and 1/(1-p) but on the last. */
function line(us: number, level: number, count: number, inverse: boolean): string {
  const p = level / 100;
  const head = `${(us / SCALE).toFixed(3).padStart(12)} ${p.toFixed(12)} ${
    String(count).padStart(10)
  }`;
  return inverse ? `${head} ${(1 / (1 - p)).toFixed(2).padStart(14)}` : head;
}
