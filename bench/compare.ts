/**
 * `bench compare A.json B.json`: two runs' `--json` reports side by side,
 * each figure with its ratio B/A, and the settings in which they differ.
 *
 * @module
 */
import { describeFileError } from "../text/address.ts";
import { fixed, int } from "./numbers.ts";
import type { BenchReport } from "./report.ts";

/** A figure as a cell: whole numbers, or three significant digits where those would lose them. */
type Cell = (n: number) => string;

/**
 * Three significant digits, at least the units: `1.54`, `12.3`, `1,512`. A
 * slow run's MB/s is often below 10, where a whole number says nothing.
 */
const precise: Cell = (n) =>
  n.toLocaleString(
    "en-US",
    Math.abs(n) >= 100 ? { maximumFractionDigits: 0 } : {
      maximumSignificantDigits: 3,
    },
  );

/** One compared figure: its name, where it is in a report, and how it is written. */
const FIGURES: readonly [string, (r: BenchReport) => number | undefined, Cell?][] = [
  ["msg/s", (r) => r.msgsPerS],
  ["MB/s", (r) => r.mbPerS, precise],
  ["connections/s", (r) => r.connectionsPerS],
  ["latency p50 µs", (r) => r.latencyUs.p50],
  ["latency p90 µs", (r) => r.latencyUs.p90],
  ["latency p99 µs", (r) => r.latencyUs.p99],
  ["latency p99.9 µs", (r) => r.latencyUs.p99_9],
  ["latency max µs", (r) => r.latencyUs.max],
  ["errors", (r) => r.errors],
  ["mismatches", (r) => r.mismatches],
  ["starved", (r) => r.starved],
  ["got no echo", (r) => r.perConnection?.none],
];

/**
 * Checks that `value` (parsed JSON) is a bench report, or throws an `Error`
 * whose message says what it is instead.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { asReport } from "./compare.ts";
 * throws(() => asReport({ ok: false, error: "cannot connect" }, "a.json"), /a.json/);
 * ```
 */
export function asReport(value: unknown, name: string): BenchReport {
  const r = value as Partial<BenchReport> | null;
  if (
    typeof r !== "object" || r === null || typeof r.msgsPerS !== "number" ||
    typeof r.latencyUs !== "object" || typeof r.options !== "object"
  ) {
    const error = typeof r === "object" && r !== null && "error" in r ? `: ${String(r.error)}` : "";
    throw new Error(`${name} is not the JSON report of a bench run${error}`);
  }
  return r as BenchReport;
}

/**
 * The two reports side by side, as text: figure, A, B, B/A.
 *
 * @example
 * ```ts ignore
 * import { compareReports } from "./compare.ts";
 * console.log(compareReports(a, b, "a.json", "b.json"));
 * ```
 */
export function compareReports(
  a: BenchReport,
  b: BenchReport,
  nameA: string,
  nameB: string,
): string {
  const rows: string[][] = [["", nameA, nameB, "B/A"]];
  for (const [label, get, cell = int] of FIGURES) {
    const x = get(a);
    const y = get(b);
    if (x === undefined && y === undefined) continue;
    const ratio = x !== undefined && y !== undefined && x > 0 ? fixed(y / x, 2) : "";
    rows.push([label, x === undefined ? "" : cell(x), y === undefined ? "" : cell(y), ratio]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
  );
  const unlike = unlikeLoads(a, b);
  if (unlike !== null) lines.unshift(unlike);
  const differ = settingsDiffer(a, b);
  if (differ.length > 0) lines.push("", "settings that differ:", ...differ.map((d) => `  ${d}`));
  return lines.join("\n");
}

/**
 * One warning line when the two runs loaded the server differently (mode or
 * message size), whose figures are then not like for like; else `null`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { unlikeLoads } from "./compare.ts";
 * import type { BenchReport } from "./report.ts";
 * const run = (mode: "pingpong" | "stream") => ({ options: { mode, size: 64 } }) as BenchReport;
 * equal(unlikeLoads(run("pingpong"), run("pingpong")), null);
 * equal(
 *   unlikeLoads(run("pingpong"), run("stream")),
 *   "warning: the runs differ in mode (pingpong → stream): their figures are not like for like",
 * );
 * ```
 */
export function unlikeLoads(a: BenchReport, b: BenchReport): string | null {
  const what: string[] = [];
  if (a.options.mode !== b.options.mode) what.push(`mode (${a.options.mode} → ${b.options.mode})`);
  // A stream's size is not a message's: it does not make the loads unlike by itself.
  if (
    a.options.size !== b.options.size && a.options.mode !== "stream" && b.options.mode !== "stream"
  ) {
    what.push(`size (${a.options.size} → ${b.options.size} B)`);
  }
  if (what.length === 0) return null;
  return `warning: the runs differ in ${what.join(" and ")}: their figures are not like for like`;
}

/**
 * What a report leaves out of its options when it was not given: the value
 * the run used, so that a difference reads `io: epoll → deno`.
 */
const DEFAULTS: Readonly<Record<string, string>> = {
  io: "deno",
  tls: "false",
  tlsResume: "true",
  warmupMs: "0",
  rampMs: "0",
  proxy: "none",
  path: "none",
  proxySources: "the real address",
};

/**
 * An option of a report as words: one left out as its default, a `null`
 * rate as a closed loop.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { optionText } from "./compare.ts";
 * equal(optionText("rate", null), "closed loop");
 * equal(optionText("io", undefined), "deno");
 * ```
 */
export function optionText(key: string, value: unknown): string {
  if (value === undefined) return DEFAULTS[key] ?? "—";
  if (value === null) return key === "rate" ? "closed loop" : "—";
  return String(value);
}

/** `key: A → B` for every option the two runs did not share. */
function settingsDiffer(a: BenchReport, b: BenchReport): string[] {
  const oa = a.options as unknown as Record<string, unknown>;
  const ob = b.options as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(oa), ...Object.keys(ob)])];
  const differ = keys.filter((k) => JSON.stringify(oa[k]) !== JSON.stringify(ob[k]));
  if (a.workers !== b.workers) differ.push("workers");
  return differ.map((k) =>
    k === "workers"
      ? `workers: ${a.workers ?? 1} → ${b.workers ?? 1}`
      : `${k}: ${optionText(k, oa[k])} → ${optionText(k, ob[k])}`
  );
}

/**
 * Reads two `--json` reports and compares them; rejects with one sentence
 * for a file that cannot be read, is not JSON, or is not a report.
 */
export async function compareFiles(pathA: string, pathB: string): Promise<string> {
  const read = async (path: string) => {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      throw new Error(`cannot read ${path}: ${describeFileError(error)}`);
    }
    try {
      return asReport(JSON.parse(text), path);
    } catch (error) {
      if (error instanceof SyntaxError) throw new Error(`${path} is not JSON: ${error.message}`);
      throw error;
    }
  };
  return compareReports(await read(pathA), await read(pathB), pathA, pathB);
}
