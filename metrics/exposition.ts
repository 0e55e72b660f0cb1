/**
 * The Prometheus text exposition format (version 0.0.4), written from plain
 * data: HELP and TYPE lines, escaped label values, and histograms with
 * cumulative buckets, `+Inf`, `_sum` and `_count`. Pure code, no I/O.
 *
 * @module
 */

/** The media type of the text this module writes, for the `Content-Type` header. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label names and values of one sample; values are escaped when written. */
export type Labels = Readonly<Record<string, string>>;

/** One value of a counter or a gauge. */
export interface Sample {
  /** The sample's labels, if any. */
  readonly labels?: Labels;
  /** The value; counters never go down. */
  readonly value: number;
}

/** One histogram: per-bucket counts (not cumulative: the writer adds them up). */
export interface HistogramSample {
  /** The histogram's labels, if any (never `le`, which the writer adds). */
  readonly labels?: Labels;
  /** Upper bounds of the buckets, ascending, without `+Inf`. */
  readonly bounds: readonly number[];
  /**
   * Observations in each bucket alone: `counts[i]` fell in
   * `(bounds[i-1], bounds[i]]`, and `counts[bounds.length]`, when present,
   * above the last bound.
   */
  readonly counts: readonly number[];
  /** The sum of all observations. */
  readonly sum: number;
}

/** A metric family: its name, help line, type and samples. */
export type MetricFamily =
  | {
    /** The metric name; counters end in `_total`. */
    readonly name: string;
    /** One line saying what it counts, in which unit. */
    readonly help: string;
    /** `counter` or `gauge`. */
    readonly type: "counter" | "gauge";
    /** Its values, one per label set. */
    readonly samples: readonly Sample[];
  }
  | {
    /** The metric name, in base units (`_seconds`, `_bytes`). */
    readonly name: string;
    /** One line saying what it measures. */
    readonly help: string;
    /** `histogram`. */
    readonly type: "histogram";
    /** Its histograms, one per label set. */
    readonly samples: readonly HistogramSample[];
  };

/**
 * Escapes a HELP text: backslash and newline.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { escapeHelp } from "./exposition.ts";
 * equal(escapeHelp('a\\b\n"c"'), 'a\\\\b\\n"c"');
 * ```
 */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/**
 * Escapes a label value: backslash, double quote and newline.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { escapeLabelValue } from "./exposition.ts";
 * equal(escapeLabelValue('a\\b\n"c"'), 'a\\\\b\\n\\"c\\"');
 * ```
 */
export function escapeLabelValue(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

/**
 * A number as the format writes it: `+Inf`, `-Inf`, `NaN`, or JavaScript's
 * shortest round-tripping form (which Go and Python parse alike).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatValue } from "./exposition.ts";
 * equal(formatValue(Infinity), "+Inf");
 * equal(formatValue(0.005), "0.005");
 * equal(formatValue(3), "3");
 * ```
 */
export function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelText(labels: Labels | undefined, extra?: readonly [string, string]): string {
  const pairs = Object.entries(labels ?? {});
  if (extra !== undefined) pairs.push([extra[0], extra[1]]);
  if (pairs.length === 0) return "";
  for (const [name] of pairs) {
    if (!LABEL_NAME.test(name)) throw new RangeError(`invalid label name "${name}"`);
  }
  return `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/**
 * Writes metric families in the text exposition format, each with its HELP
 * and TYPE lines; a histogram's buckets are written cumulative, ending with
 * `le="+Inf"` (the count), then `_sum` and `_count`.
 *
 * @throws {RangeError} for an invalid metric or label name, or a histogram
 * whose bounds are not ascending or whose counts do not fit them.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatMetrics } from "./exposition.ts";
 * const text = formatMetrics([
 *   { name: "up_total", help: "Starts.", type: "counter", samples: [{ value: 1 }] },
 *   {
 *     name: "wait_seconds",
 *     help: "Waits.",
 *     type: "histogram",
 *     samples: [{ bounds: [0.1, 1], counts: [2, 1, 1], sum: 3.5 }],
 *   },
 * ]);
 * equal(text, [
 *   "# HELP up_total Starts.",
 *   "# TYPE up_total counter",
 *   "up_total 1",
 *   "# HELP wait_seconds Waits.",
 *   "# TYPE wait_seconds histogram",
 *   'wait_seconds_bucket{le="0.1"} 2',
 *   'wait_seconds_bucket{le="1"} 3',
 *   'wait_seconds_bucket{le="+Inf"} 4',
 *   "wait_seconds_sum 3.5",
 *   "wait_seconds_count 4",
 *   "",
 * ].join("\n"));
 * ```
 */
export function formatMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (!NAME.test(family.name)) throw new RangeError(`invalid metric name "${family.name}"`);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    if (family.type === "histogram") {
      for (const sample of family.samples) writeHistogram(lines, family.name, sample);
    } else {
      for (const sample of family.samples) {
        lines.push(`${family.name}${labelText(sample.labels)} ${formatValue(sample.value)}`);
      }
    }
  }
  lines.push("");
  return lines.join("\n");
}

function writeHistogram(lines: string[], name: string, sample: HistogramSample): void {
  const { bounds, counts } = sample;
  if (counts.length !== bounds.length && counts.length !== bounds.length + 1) {
    throw new RangeError(`histogram ${name}: ${counts.length} counts for ${bounds.length} bounds`);
  }
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      throw new RangeError(`histogram ${name}: bounds are not ascending`);
    }
    cumulative += counts[i];
    const le = labelText(sample.labels, ["le", formatValue(bounds[i])]);
    lines.push(`${name}_bucket${le} ${cumulative}`);
  }
  cumulative += counts[bounds.length] ?? 0;
  lines.push(`${name}_bucket${labelText(sample.labels, ["le", "+Inf"])} ${cumulative}`);
  lines.push(`${name}_sum${labelText(sample.labels)} ${formatValue(sample.sum)}`);
  lines.push(`${name}_count${labelText(sample.labels)} ${cumulative}`);
}
