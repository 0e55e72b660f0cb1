import assert from "node:assert/strict";
import { Histogram } from "../../bench/histogram.ts";

/** Exact percentile by the same rule as the histogram: smallest value with ≥ p % at or below. */
function exact(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** Deterministic uniform [0, 1) numbers, so a failure reproduces. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Within `relative` after `slack` µs: values are bucketed at whole microseconds. */
function assertClose(actual: number, expected: number, relative: number, what: string, slack = 1) {
  const error = Math.max(Math.abs(actual - expected) - slack, 0) / Math.max(expected, 1);
  assert.ok(
    error <= relative,
    `${what}: got ${actual}, want ${expected} ± ${relative * 100} % (off by ${
      (error * 100).toFixed(2)
    } %)`,
  );
}

Deno.test("uniform 1..10000 µs: percentiles within 1 %", () => {
  const h = new Histogram();
  for (let us = 1; us <= 10_000; us++) h.record(us);
  assert.equal(h.count, 10_000);
  assert.equal(h.min, 1);
  assert.equal(h.max, 10_000);
  assert.equal(h.mean, 5000.5);
  for (const [p, want] of [[50, 5000], [90, 9000], [99, 9900], [99.9, 9990]]) {
    assertClose(h.percentile(p), want, 0.01, `p${p}`);
    // Percentiles err high, never low.
    assert.ok(h.percentile(p) >= want, `p${p} under-reports`);
  }
  assert.equal(h.percentile(100), 10_000);
  assert.equal(h.percentile(0), 1);
});

Deno.test("exact below 256 µs", () => {
  const h = new Histogram();
  for (let us = 0; us < 256; us++) h.record(us);
  for (let p = 1; p <= 100; p++) assert.equal(h.percentile(p), exact([...Array(256).keys()], p));
});

Deno.test("long-tailed distribution: percentiles within 1 % of the exact ones", () => {
  const next = prng(42);
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 0; i < 50_000; i++) {
    // Log-uniform from 10 µs to 10 s: every bucket size gets exercised.
    const us = 10 * 10 ** (6 * next());
    values.push(us);
    h.record(us);
  }
  values.sort((a, b) => a - b);
  for (const p of [1, 10, 50, 90, 99, 99.9, 99.99]) {
    assertClose(h.percentile(p), exact(values, p), 0.01, `p${p}`);
  }
  assert.equal(h.max, values[values.length - 1]);
  assert.equal(h.min, values[0]);
  assertClose(h.mean, values.reduce((a, b) => a + b, 0) / values.length, 1e-9, "mean", 0);
});

Deno.test("every magnitude from 1 µs to 100 s is bucketed within 1/128", () => {
  const h = new Histogram();
  for (let v = 1; v <= 1e8; v = Math.ceil(v * 1.07)) {
    h.reset();
    h.record(v);
    // A second, larger sample keeps the exact max from masking the bucket edge.
    h.record(2e8);
    const got = h.percentile(50);
    assert.ok(got >= v && (got - v) / v <= 1 / 128, `${v} µs reported as ${got}`);
  }
});

Deno.test("merge equals recording everything in one histogram", () => {
  const next = prng(7);
  const a = new Histogram();
  const b = new Histogram();
  const both = new Histogram();
  for (let i = 0; i < 10_000; i++) {
    const us = 1 + 5000 * next() ** 3;
    (i % 3 === 0 ? a : b).record(us);
    both.record(us);
  }
  const bCount = b.count;
  a.merge(b);
  assert.equal(b.count, bCount, "merge leaves the other histogram alone");
  assert.equal(a.count, both.count);
  assert.equal(a.min, both.min);
  assert.equal(a.max, both.max);
  assertClose(a.mean, both.mean, 1e-12, "mean", 0);
  for (const p of [0, 25, 50, 90, 99, 99.9, 100]) assert.equal(a.percentile(p), both.percentile(p));
});

Deno.test("merging an empty histogram, or into one, keeps the figures", () => {
  const h = new Histogram();
  h.record(10);
  h.merge(new Histogram());
  assert.equal(h.count, 1);
  assert.equal(h.min, 10);
  const empty = new Histogram();
  empty.merge(h);
  assert.equal(empty.count, 1);
  assert.equal(empty.min, 10);
  assert.equal(empty.max, 10);
  assert.equal(empty.percentile(50), 10);
});

Deno.test("empty histogram reports zeros", () => {
  const h = new Histogram();
  assert.equal(h.count, 0);
  assert.equal(h.min, 0);
  assert.equal(h.max, 0);
  assert.equal(h.mean, 0);
  assert.equal(h.percentile(50), 0);
  assert.equal(h.percentile(100), 0);
});

Deno.test("edge values: zero, negative, fractions, beyond the range", () => {
  const h = new Histogram();
  h.record(0);
  h.record(-5); // a clock step backwards must not corrupt the histogram
  h.record(0.4);
  assert.equal(h.count, 3);
  assert.equal(h.min, 0);
  assert.equal(h.percentile(100), 0.4);
  assert.equal(h.percentile(50), 0);

  const big = new Histogram();
  big.record(5e9); // ~83 minutes: above the top bucket, still counted, max exact
  big.record(1e10);
  assert.equal(big.count, 2);
  assert.equal(big.max, 1e10);
  assert.equal(big.percentile(100), 1e10);
  assert.equal(big.percentile(50), 5e9);
});

Deno.test("out-of-range percentiles clamp to min and max", () => {
  const h = new Histogram();
  for (const us of [100, 200, 300]) h.record(us);
  assert.equal(h.percentile(-1), 100);
  assert.equal(h.percentile(Number.NaN), 100);
  assert.equal(h.percentile(150), 300);
});

Deno.test("reset forgets everything", () => {
  const h = new Histogram();
  h.record(1234);
  h.reset();
  assert.equal(h.count, 0);
  assert.equal(h.max, 0);
  assert.equal(h.percentile(99), 0);
  h.record(7);
  assert.equal(h.min, 7);
  assert.equal(h.max, 7);
});
