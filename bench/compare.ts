/**
 * `bench compare A.json B.json`: two runs' `--json` reports side by side,
 * each figure with its ratio B/A, and the settings in which they differ.
 *
 * @module
 */
import { fixed, int } from "./numbers.ts";
import type { BenchReport } from "./report.ts";

/** One compared figure: its name and where it is in a report. */
const FIGURES: readonly [string, (r: BenchReport) => number | undefined][] = [
  ["msg/s", (r) => r.msgsPerS],
  ["MB/s", (r) => r.mbPerS],
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
  for (const [label, get] of FIGURES) {
    const x = get(a);
    const y = get(b);
    if (x === undefined && y === undefined) continue;
    const ratio = x !== undefined && y !== undefined && x > 0 ? fixed(y / x, 2) : "";
    rows.push([label, x === undefined ? "" : int(x), y === undefined ? "" : int(y), ratio]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
  );
  const differ = settingsDiffer(a, b);
  if (differ.length > 0) lines.push("", "settings that differ:", ...differ.map((d) => `  ${d}`));
  return lines.join("\n");
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
      : `${k}: ${String(oa[k] ?? "—")} → ${String(ob[k] ?? "—")}`
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
      throw new Error(`cannot read ${path}: ${error instanceof Error ? error.message : error}`);
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
