/**
 * A compact latency histogram in the style of HdrHistogram: log-linear buckets
 * with a fixed relative precision, fixed memory and O(1) {@linkcode Histogram.record}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Histogram } from "./histogram.ts";
 *
 * const h = new Histogram();
 * for (const us of [120, 80, 95, 4000]) h.record(us);
 * equal(h.percentile(50), 95);
 * equal(h.max, 4000);
 * ```
 *
 * @module
 */

/**
 * Linear sub-buckets per power of two, as a power of two: 2^7 = 128, so a value
 * lands in a bucket at most 1/128 (0.78 %) of its size wide.
 */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
/** Values below this are counted exactly, one bucket per microsecond. */
const LINEAR_LIMIT = SUB_COUNT * 2;
/**
 * Largest value a bucket can hold: 2^27 - 1 µs ≈ 134 s. Larger values still
 * count (in the top bucket) and still set {@linkcode Histogram.max} exactly.
 */
const HIGHEST = 2 ** 27 - 1;
const BUCKETS = indexOf(HIGHEST) + 1;

/**
 * The bucket that holds `v`, an integer in [0, HIGHEST]. Below LINEAR_LIMIT the
 * index is the value; above, each power of two adds SUB_COUNT buckets of width
 * 2^shift.
 */
function indexOf(v: number): number {
  if (v < LINEAR_LIMIT) return v;
  const shift = 31 - Math.clz32(v) - SUB_BITS;
  return LINEAR_LIMIT + (shift - 1) * SUB_COUNT + ((v >>> shift) - SUB_COUNT);
}

/** The largest value that falls into bucket `i`: percentiles never under-report. */
function highestIn(i: number): number {
  if (i < LINEAR_LIMIT) return i;
  const shift = Math.floor((i - LINEAR_LIMIT) / SUB_COUNT) + 1;
  const sub = (i - LINEAR_LIMIT) % SUB_COUNT + SUB_COUNT;
  return ((sub + 1) << shift) - 1;
}

/**
 * Latency histogram over microsecond values from 1 µs to ~134 s with ~1 %
 * precision (0.78 % worst case; exact below 256 µs). Uses ~21 KiB whatever the
 * number of samples; `min`, `max` and `mean` are exact.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { Histogram } from "./histogram.ts";
 *
 * const h = new Histogram();
 * h.record(250);
 * h.record(1_000);
 * deepEqual([h.count, h.min, h.max, h.mean, h.percentile(99)], [2, 250, 1000, 625, 1000]);
 * ```
 */
export class Histogram {
  // Float64 rather than Uint32 so a counter cannot wrap in a long run.
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #min = Infinity;
  #max = 0;
  #sum = 0;

  /**
   * Records one value in microseconds. Fractions round to the nearest
   * microsecond for bucketing; negative values count as 0.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * const t0 = performance.now();
   * // … the operation being timed …
   * h.record((performance.now() - t0) * 1000);
   * equal(h.count, 1);
   * ```
   */
  record(us: number): void {
    const v = us > 0 ? us : 0;
    const r = Math.round(v);
    this.#counts[indexOf(r < HIGHEST ? r : HIGHEST)]++;
    this.#count++;
    this.#sum += v;
    if (v < this.#min) this.#min = v;
    if (v > this.#max) this.#max = v;
  }

  /**
   * Adds every sample of `other` to this histogram (`other` is unchanged).
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const total = new Histogram();
   * const perConnection = [new Histogram(), new Histogram()];
   * perConnection[0].record(10);
   * perConnection[1].record(30);
   * for (const h of perConnection) total.merge(h);
   * equal(total.count, 2);
   * equal(total.mean, 20);
   * ```
   */
  merge(other: Histogram): void {
    if (other.#count === 0) return;
    const mine = this.#counts;
    const theirs = other.#counts;
    for (let i = 0; i < BUCKETS; i++) mine[i] += theirs[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /**
   * Forgets every sample, keeping the memory.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * h.record(5);
   * h.reset();
   * equal(h.count, 0);
   * ```
   */
  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#min = Infinity;
    this.#max = 0;
    this.#sum = 0;
  }

  /**
   * The value at or below which `p` percent of the samples fall, for `p` in
   * [0, 100], as the upper edge of its bucket (so it errs high, by under 1 %,
   * never low) clamped to the exact min and max. 0 when empty.
   *
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * for (let us = 1; us <= 100; us++) h.record(us);
   * deepEqual([h.percentile(50), h.percentile(99), h.percentile(100)], [50, 99, 100]);
   * ```
   */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    if (!(p > 0)) return this.#min;
    if (p >= 100) return this.#max;
    // The rank of the sample wanted, 1-based: the smallest value with at least
    // p % of the samples at or below it.
    const rank = Math.max(1, Math.ceil((p / 100) * this.#count));
    const counts = this.#counts;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += counts[i];
      if (seen >= rank) return Math.min(Math.max(highestIn(i), this.#min), this.#max);
    }
    return this.#max;
  }

  /**
   * The histogram as plain numbers, for a worker to post: `[count, min, max,
   * sum, index, n, index, n, …]` over the buckets that hold samples.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   * const h = new Histogram();
   * h.record(42);
   * equal(Histogram.fromSparse(h.toSparse()).percentile(50), 42);
   * ```
   */
  toSparse(): number[] {
    const out = [this.#count, this.#min, this.#max, this.#sum];
    const counts = this.#counts;
    for (let i = 0; i < BUCKETS; i++) if (counts[i] > 0) out.push(i, counts[i]);
    return out;
  }

  /** The histogram that {@linkcode Histogram.toSparse} wrote. */
  static fromSparse(sparse: readonly number[]): Histogram {
    const h = new Histogram();
    if (sparse.length < 4 || sparse[0] === 0) return h;
    h.#count = sparse[0];
    h.#min = sparse[1];
    h.#max = sparse[2];
    h.#sum = sparse[3];
    for (let i = 4; i + 1 < sparse.length; i += 2) h.#counts[sparse[i]] += sparse[i + 1];
    return h;
  }

  /**
   * Calls `each` for every bucket that holds samples, in increasing order,
   * with the largest value the bucket holds (clamped to the exact max) and
   * its count: what a percentile distribution is written from.
   *
   * @example
   * ```ts
   * import { deepEqual } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   * const h = new Histogram();
   * h.record(3);
   * h.record(3);
   * const seen: number[] = [];
   * h.forEachBucket((value, count) => seen.push(value, count));
   * deepEqual(seen, [3, 2]);
   * ```
   */
  forEachBucket(each: (value: number, count: number) => void): void {
    const counts = this.#counts;
    for (let i = 0; i < BUCKETS; i++) {
      if (counts[i] > 0) each(Math.min(Math.max(highestIn(i), this.#min), this.#max), counts[i]);
    }
  }

  /**
   * Number of samples recorded.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * h.record(1);
   * equal(h.count, 1);
   * ```
   */
  get count(): number {
    return this.#count;
  }

  /**
   * Largest sample, exact (not bucketed); 0 when empty.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * h.record(12.5);
   * equal(h.max, 12.5);
   * ```
   */
  get max(): number {
    return this.#max;
  }

  /**
   * Smallest sample, exact (not bucketed); 0 when empty.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * h.record(7);
   * h.record(3);
   * equal(h.min, 3);
   * ```
   */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  /**
   * Arithmetic mean of the samples, exact (not bucketed); 0 when empty.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { Histogram } from "./histogram.ts";
   *
   * const h = new Histogram();
   * h.record(10);
   * h.record(20);
   * equal(h.mean, 15);
   * ```
   */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }
}
