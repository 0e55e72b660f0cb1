/**
 * `--report FILE.html`: one self-contained page (no network needed to open
 * it) with the run's throughput and latency percentiles per second, its
 * latency distribution on a log percentile axis as HdrHistogram plots it,
 * and its settings, figures and errors. The charts are uPlot's, inlined.
 *
 * @module
 */
import uplotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import { optionText } from "./compare.ts";
import type { Histogram } from "./histogram.ts";
import { percentileSteps } from "./hgrm.ts";
import { fixed, int } from "./numbers.ts";
import { type BenchReport, formatReport } from "./report.ts";

/** What the page draws, as it reads it from the JSON in the page. */
interface PageData {
  /** Seconds, echoes per second, MB/s, p50, p99, p99.9 (ms) per second. */
  t: number[];
  msgs: number[];
  mb: number[];
  p50: number[];
  p99: number[];
  p999: number[];
  /** Whether the run was a stream, whose throughput is in bytes. */
  stream: boolean;
  /** The distribution: 1/(1-percentile) and the latency (ms) there. */
  inverse: number[];
  latency: number[];
}

/**
 * The page for `report`, its distribution drawn from `histogram`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { htmlReport } from "./html_report.ts";
 * import { Histogram } from "./histogram.ts";
 * import { runBench } from "./mod.ts";
 * import { serve } from "../server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const report = await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 1, durationMs: 100, size: 8,
 *   mode: "pingpong",
 * });
 * ok(htmlReport(report, new Histogram()).startsWith("<!doctype html>"));
 * ```
 */
export function htmlReport(report: BenchReport, histogram: Histogram): string {
  const series = report.series ?? [];
  // The last step (100 %) has no finite 1/(1-p): it is drawn one decade past the one before.
  const steps = percentileSteps(histogram);
  const inverse = steps.map(([p]) => p < 100 ? 100 / (100 - p) : 0);
  if (inverse.length > 1) inverse[inverse.length - 1] = inverse[inverse.length - 2] * 10;
  const data: PageData = {
    stream: report.options.mode === "stream",
    t: series.map((s) => s.t),
    msgs: series.map((s) => s.msgsPerS),
    mb: series.map((s) => s.mbPerS),
    p50: series.map((s) => s.p50 / 1000),
    p99: series.map((s) => s.p99 / 1000),
    p999: series.map((s) => s.p99_9 / 1000),
    inverse,
    latency: steps.map(([, us]) => us / 1000),
  };
  const o = report.options;
  const l = report.latencyUs;
  const title = `echo-server bench: ${o.mode}, ${int(o.connections)} × ${int(o.size)} B`;
  // Worded as `bench compare` words them: no `null` rate, nothing undefined.
  const settings: [string, string][] = Object.entries(o)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, optionText(k, v)]);
  const figures: [string, string][] = [
    ["result", report.ok ? "OK" : "FAILED"],
    ["elapsed", `${fixed(report.elapsedS, 2)} s`],
    ["messages", `${int(report.messages)} (${int(report.msgsPerS)} msg/s)`],
    ["throughput", `${fixed(report.mbPerS, 2)} MB/s`],
    [
      "latency µs",
      `p50 ${int(l.p50)}, p99 ${int(l.p99)}, p99.9 ${int(l.p99_9)}, max ${int(l.max)}`,
    ],
    [
      "errors",
      `${int(report.errors)} (${int(report.refused)} refused, ${int(report.resets)} reset)`,
    ],
    ["mismatches", `${int(report.mismatches)}`],
    ["first error", report.firstError ?? "none"],
  ];
  const spread = report.perConnection;
  if (spread !== undefined) {
    figures.push([
      "per connection",
      `${int(spread.none)} got no echo; min ${int(spread.min)}, p1 ${int(spread.p1)}, median ${
        int(spread.p50)
      }, max ${int(spread.max)}`,
    ]);
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>${escape(title)}</title>
<style>${uplotStyle}
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td{padding:2px 12px 2px 0;vertical-align:top}
td:first-child{color:#666}.chart{margin:8px 0 24px}pre{background:#f6f6f6;padding:8px}
</style></head><body>
<h1>${escape(title)}</h1>
<h2>Figures</h2>${table(figures)}
<h2>Throughput per second${
    report.options.mode === "stream" ? " (MB/s)" : " (echoes/s)"
  }</h2><div class="chart" id="throughput"></div>
<h2>Latency per second (ms)</h2><div class="chart" id="latency"></div>
<h2>Latency distribution (ms by percentile)</h2><div class="chart" id="distribution"></div>
<h2>Settings</h2>${table(settings)}
<h2>Text report</h2><pre>${escape(formatReport(report))}</pre>
<script type="application/json" id="data">${jsonForScript(data)}</script>
<script>${uplotScript}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}

/** Draws the three charts; marks the body with how many it drew, or the error that stopped it. */
const PAGE_SCRIPT = `
window.addEventListener("error", (e) => { document.body.dataset.error = String(e.message); });
(() => {
  const d = JSON.parse(document.getElementById("data").textContent);
  const width = Math.min(1000, document.body.clientWidth || 1000);
  const line = (label, stroke) => ({ label, stroke, width: 1.5 });
  // Room on the right for the last x label ("99.9999%"), which uPlot centres on the edge.
  const padding = [null, 40, null, null];
  const charts = [];
  // A stream's figure is its bytes; the others' their echoes (their MB/s is the same curve).
  const [unit, rate] = d.stream ? ["MB/s", d.mb] : ["msg/s", d.msgs];
  charts.push(new uPlot({
    width, height: 260, padding, scales: { x: { time: false } },
    axes: [{ label: "s" }, { label: unit, size: 80 }],
    series: [{ label: "s" }, line(unit, "#1f77b4")],
  }, [d.t, rate], document.getElementById("throughput")));
  charts.push(new uPlot({
    width, height: 260, padding, scales: { x: { time: false } },
    axes: [{ label: "s" }, { label: "ms", size: 80 }],
    series: [{ label: "s" }, line("p50", "#2ca02c"), line("p99", "#ff7f0e"), line("p99.9", "#d62728")],
  }, [d.t, d.p50, d.p99, d.p999], document.getElementById("latency")));
  const percent = (v) => v <= 1 ? "0%" : (100 - 100 / v).toPrecision(6).replace(/\\.?0+$/, "") + "%";
  const keep = d.inverse.map((v) => v >= 1);
  charts.push(new uPlot({
    width, height: 300, padding, scales: { x: { time: false, distr: 3, log: 10 } },
    axes: [{
      label: "percentile",
      // One tick a decade of 1/(1-p): 0 %, 90 %, 99 %, 99.9 %…
      splits: (u, i, min, max) => {
        const out = [];
        for (let v = 1; v <= max * 1.0001; v *= 10) if (v >= min / 1.0001) out.push(v);
        return out;
      },
      values: (u, vs) => vs.map(percent),
    }, { label: "ms", size: 80 }],
    series: [{ label: "percentile", value: (u, v) => v == null ? "" : percent(v) }, line("latency", "#9467bd")],
  }, [d.inverse.filter((_, i) => keep[i]), d.latency.filter((_, i) => keep[i])],
    document.getElementById("distribution")));
  document.body.dataset.charts = String(charts.length);
})();
`;

/** A two-column table of `rows`, escaped. */
function table(rows: readonly (readonly [string, string])[]): string {
  return `<table>${
    rows.map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(v)}</td></tr>`).join("")
  }</table>`;
}

/** Text as HTML. */
function escape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot end the script element it sits in. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}
