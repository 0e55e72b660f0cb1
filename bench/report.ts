/**
 * The result of a run, as data (`--json`) and as text: the report, its
 * latency summary and the one-line progress figures.
 *
 * @module
 */
import { formatAddress } from "../text/address.ts";
import { plural } from "../text/words.ts";
import { firstOn, NO_REPLY } from "./failures.ts";
import { fixed, int, rate, size, throughput, volume } from "./numbers.ts";
import type { Histogram } from "./histogram.ts";
import type { BenchOptions, BenchProgress } from "./options.ts";
import type { ConnectionSpread, SecondFigures } from "./series.ts";
import { type UdpFigures, udpLines, udpWhat } from "./udp_report.ts";

/**
 * Latency summary in microseconds.
 *
 * @example
 * ```ts no-assert
 * import type { LatencyReport } from "./report.ts";
 *
 * const l: LatencyReport = {
 *   count: 1, min: 40, p50: 40, p90: 40, p99: 40, p99_9: 40, max: 40, mean: 40,
 * };
 * ```
 */
export interface LatencyReport {
  /** Samples: one per verified message (stream: per 64 KiB chunk echoed). */
  count: number;
  /** Fastest sample. */
  min: number;
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** 99.9th percentile. */
  p99_9: number;
  /** Slowest sample. */
  max: number;
  /** Arithmetic mean. */
  mean: number;
}

/**
 * Result of a run: plain data, so `JSON.stringify(report)` is the `--json`
 * output.
 *
 * @example
 * ```ts ignore
 * import { runBench } from "./mod.ts";
 *
 * const r = await runBench({
 *   host: "127.0.0.1", port: 8000, connections: 4, durationMs: 200, size: 64, mode: "pingpong",
 * });
 * console.log(JSON.stringify(r));
 * ```
 */
export interface BenchReport {
  /** The options of the run (without `signal` and `onProgress`; no rate is `null`). */
  options: Omit<BenchOptions, "signal" | "onProgress" | "rate"> & { rate: number | null };
  /** Seconds from the first message to the last echo (or the end of sending). */
  elapsedS: number;
  /** Messages echoed and verified (stream: 64 KiB chunks echoed). */
  messages: number;
  /** Payload bytes written. */
  bytesSent: number;
  /** Payload bytes read back. */
  bytesReceived: number;
  /** `messages / elapsedS`. */
  msgsPerS: number;
  /** Open loop: `msgsPerS / options.rate`, below 1 when the rate was not reached; else `null`. */
  rateAchievedFraction: number | null;
  /** Echoed megabytes (10^6 bytes) per second. */
  mbPerS: number;
  /**
   * Connections established (churn: one per connect), not counting `refused`;
   * those of them that got no echo are counted in `starved` too.
   */
  connectionsOpened: number;
  /** Connection attempts that failed to connect, plus `refused`. */
  connectionsFailed: number;
  /**
   * Connections the server closed before any echo completed, e.g. refused at
   * admission. A short non-echo line it sent first (up to 4 KiB) is quoted in
   * `firstError`, not counted as corrupted.
   */
  refused: number;
  /** `connectionsOpened / elapsedS`, the figure that matters for churn. */
  connectionsPerS: number;
  /** `connectionsFailed + resets`. */
  errors: number;
  /** Connections that had served and were then closed by the server or failed. */
  resets: number;
  /** `corrupted + short`. */
  mismatches: number;
  /** Echoes whose bytes differed from what was sent, or had bytes added. */
  corrupted: number;
  /** Echoes that stopped partway: the connection closed, or the drain time ran out. */
  short: number;
  /**
   * Messages (stream: connections) with not one byte back when the drain time
   * ran out: not a mismatch, but the run is not OK.
   */
  timedOut: number;
  /**
   * Connections (churn: slots) that got no echo before sending stopped, e.g.
   * queued by a server at its connection limit. Shown, but not a failure.
   */
  starved: number;
  /** The first error seen, or why a run without errors is not OK; `null` when none. */
  firstError: string | null;
  /**
   * The run was ended early by `signal` (Ctrl-C, in the command) rather than
   * at the end of its duration: the figures cover the part that ran.
   */
  interrupted: boolean;
  /**
   * No errors, no mismatches, nothing timed out and at least one verified
   * echo: what a CLI's exit code should follow.
   */
  ok: boolean;
  /**
   * Latency, µs: pingpong send → echo; churn connect → echo → close; stream a
   * 64 KiB write → its echo.
   */
  latencyUs: LatencyReport;
  /**
   * How the verified echoes were spread over the connections (churn: slots);
   * `perConnection.none` got not one in the measurement. Not for `udp`.
   */
  perConnection?: ConnectionSpread;
  /** Each second of the measurement (the last may be shorter). Not for `udp`. */
  series?: SecondFigures[];
  /** With `workers`: how many isolates the load was split over. */
  workers?: number;
  /** With `udp`: datagrams sent, echoed, lost, duplicated and reordered. */
  udp?: UdpFigures;
}

/** Below this share of the requested open-loop rate the report says so. */
const RATE_SHORTFALL = 0.95;

/**
 * Renders a report as human-readable text (several lines, no trailing newline).
 *
 * @example
 * ```ts ignore
 * import { formatReport, runBench } from "./mod.ts";
 *
 * const r = await runBench({
 *   host: "127.0.0.1", port: 8000, connections: 4, durationMs: 200, size: 64, mode: "pingpong",
 * });
 * console.log(formatReport(r));
 * ```
 */
export function formatReport(r: BenchReport): string {
  const o = r.options;
  const what = r.udp !== undefined
    ? udpWhat(r.udp.sockets, size(o.size), r.udp.window, o.rate !== null)
    : o.mode === "stream"
    ? `stream, ${counted(o.connections, "connection")}`
    : `${o.mode}, ${counted(o.connections, o.mode === "churn" ? "slot" : "connection")} × ${
      size(o.size)
    }`;
  const pace = o.rate === null ? "closed loop" : `open loop at ${rate(o.rate)} msg/s`;
  const proxy = o.proxy === undefined
    ? ""
    : `, PROXY v${o.proxy} headers from ${o.proxySources ?? "the real address"}`;
  const connectFailed = r.connectionsFailed - r.refused;
  // A connection that got no echo was not served: it is counted with the starved instead.
  const served = Math.max(0, r.connectionsOpened - r.starved);
  const starvedWho = o.mode === "churn" ? counted(r.starved, "slot") : int(r.starved);
  const starved = r.starved > 0
    ? `, ${starvedWho} got no echo during the run (queued by the server, or this client could not keep up)`
    : "";
  // The first problem's words, on the one line that counts it.
  const first = (line: ReturnType<typeof firstOn>) =>
    line !== null && firstOn(r) === line ? `  first: ${r.firstError}` : "";
  const lines = [
    `bench ${what}, ${fixed(r.elapsedS, 2)} s against ${benchTarget(o)} (${
      o.tls ? "TLS, " : ""
    }${pace}${proxy}${o.io === "epoll" ? ", epoll" : ""}${
      r.workers ? `, ${r.workers} workers` : ""
    })`,
  ];
  if (r.interrupted) {
    lines.push(
      `  interrupted  after ${fixed(r.elapsedS, 2)} s of the ${
        fixed(o.durationMs / 1000, 2)
      } s asked for: the figures are for that part`,
    );
  }
  lines.push(`  messages     ${int(r.messages)}  (${int(r.msgsPerS)} msg/s)`);
  if (
    o.rate !== null && r.rateAchievedFraction !== null && r.rateAchievedFraction < RATE_SHORTFALL
  ) {
    lines.push(
      `  rate         achieved ${r.msgsPerS >= 100 ? int(r.msgsPerS) : rate(r.msgsPerS)} of ${
        rate(o.rate)
      } msg/s requested (${fixed(100 * r.rateAchievedFraction, 1)} %)`,
    );
  }
  lines.push(
    `  throughput   ${throughput(r.mbPerS * 1e6)} echoed  (sent ${volume(r.bytesSent)}, received ${
      volume(r.bytesReceived)
    })`,
    ...(r.udp !== undefined ? udpLines(r.udp) : [
      `  connections  ${int(served)} served (${int(r.elapsedS > 0 ? served / r.elapsedS : 0)}/s), ${
        int(r.refused)
      } closed by the server before echoing, ${int(connectFailed)} failed to connect${starved}`,
    ]),
    `  errors       ${int(r.errors)}  (${int(connectFailed)} connect, ${int(r.refused)} refused, ${
      int(r.resets)
    } closed or reset)${first("errors")}`,
    `  mismatches   ${int(r.mismatches)}  (${int(r.corrupted)} corrupted, ${int(r.short)} short)${
      first("mismatches")
    }`,
  );
  if (r.timedOut > 0) {
    lines.push(`  timed out    ${int(r.timedOut)}  (${NO_REPLY})${first("timedOut")}`);
  }
  const s = r.perConnection;
  if (s !== undefined) {
    lines.push(
      `  spread       ${int(s.none)} ${
        o.mode === "churn" ? "slots" : "connections"
      } got no echo; ` +
        `echoes each: min ${int(s.min)}, p1 ${int(s.p1)}, median ${int(s.p50)}, max ${int(s.max)}`,
    );
  }
  lines.push(...latencyLines(r), `  result       ${r.ok ? "OK" : "FAILED"}${first("result")}`);
  return lines.join("\n");
}

/** The latency heading and its percentile bars. */
function latencyLines(r: BenchReport): string[] {
  const l = r.latencyUs;
  if (l.count === 0) return ["  latency      no samples"];
  const cells: [string, number][] = [
    ["p50", l.p50],
    ["p90", l.p90],
    ["p99", l.p99],
    ["p99.9", l.p99_9],
    ["max", l.max],
  ];
  const widest = Math.max(...cells.map(([, v]) => v), 1);
  const mode = r.options.mode;
  const measured = mode === "stream"
    ? "write → echo per 64 KiB"
    : mode === "churn"
    ? "connect → echo → close"
    : "round trip";
  const lines = [
    `  latency µs   ${measured}, ${int(l.count)} samples, mean ${int(l.mean)}, min ${int(l.min)}`,
  ];
  for (const [name, v] of cells) {
    // Bars scale with log(value) so p50 stays visible next to a long max.
    const bar = "█".repeat(Math.max(1, Math.round(30 * Math.log1p(v) / Math.log1p(widest))));
    lines.push(`    ${name.padEnd(6)}${int(v).padStart(12)}  ${bar}`);
  }
  return lines;
}

/**
 * Renders one progress interval as a single line without control characters;
 * the caller decides between `\r` (TTY) and `\n` (plain).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatProgress } from "./report.ts";
 *
 * const line = formatProgress({
 *   elapsedS: 3, messages: 510_000, msgsPerS: 170_000, mbPerS: 10.9, p99Us: 1_300,
 *   openConnections: 100, errors: 0, mismatches: 0,
 * });
 * equal(
 *   line,
 *   "   3s      170,000 msg/s      10.9 MB/s  p99    1,300 µs  100 conns  0 errors  0 mismatches",
 * );
 * ```
 */
export function formatProgress(p: BenchProgress): string {
  return [
    `${fixed(p.elapsedS, 0).padStart(4)}s`,
    `${int(p.msgsPerS).padStart(11)} msg/s`,
    // 13 wide as before ("99,999.9 MB/s"), so the columns stay put; a slow run in kB/s, not 0.0 MB/s.
    throughput(p.mbPerS * 1e6).padStart(13),
    `p99 ${int(p.p99Us).padStart(8)} µs`,
    p.mode === "churn"
      ? `${int(p.connectionsPerS ?? 0)} conn/s`
      : counted(p.openConnections, "conn"),
    `${int(p.errors)} errors`,
    `${int(p.mismatches)} mismatches`,
  ].join("  ");
}

/**
 * `1 connection`, `100,000 connections`: {@linkcode plural}'s wording, with the
 * count grouped like every other figure of the report.
 */
function counted(n: number, noun: string): string {
  return plural(Math.round(n), noun, int);
}

/**
 * The server's address as the report and its errors write it: `127.0.0.1:8000`,
 * `[::1]:8000`; a host already given in brackets (`[::1]`) is written as given.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { serverAddress } from "./report.ts";
 * equal(serverAddress("::1", 8000), "[::1]:8000");
 * equal(serverAddress("[::1]", 8000), "[::1]:8000");
 * ```
 */
export function serverAddress(host: string, port: number): string {
  return host.startsWith("[") ? `${host}:${port}` : formatAddress(host, port);
}

/**
 * What a run loads, as the report and its errors name it: the Unix socket's
 * path, or the server's address.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { benchTarget } from "./report.ts";
 * equal(benchTarget({ host: "::1", port: 8000 }), "[::1]:8000");
 * equal(benchTarget({ host: "127.0.0.1", port: 8000, path: "/run/echo.sock" }), "/run/echo.sock");
 * ```
 */
export function benchTarget(o: Pick<BenchOptions, "host" | "port" | "path">): string {
  return o.path ?? serverAddress(o.host, o.port);
}

/**
 * The options a report repeats: what was asked, without the callbacks, and
 * the optional ones only when set, so that a report is the same after a JSON
 * round trip. TLS is reported as spoken, not with the certificates it trusted.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { reportedOptions } from "./report.ts";
 * const o = { host: "h", port: 1, connections: 2, durationMs: 3, size: 4, mode: "churn" as const };
 * deepEqual(reportedOptions({ ...o, tls: { caCerts: ["…"] } }), { ...o, rate: null, tls: true });
 * ```
 */
export function reportedOptions(o: BenchOptions): BenchReport["options"] {
  return {
    host: o.host,
    port: o.port,
    connections: o.connections,
    durationMs: o.durationMs,
    size: o.size,
    mode: o.mode,
    rate: o.rate ?? null,
    ...(o.proxy === undefined ? {} : { proxy: o.proxy }),
    ...(o.proxySources === undefined ? {} : { proxySources: o.proxySources }),
    ...(o.tls === undefined || o.tls === false ? {} : { tls: true }),
    ...(o.path === undefined ? {} : { path: o.path }),
    ...(o.io === undefined ? {} : { io: o.io }),
    ...(o.tlsResume === false ? { tlsResume: false } : {}),
    ...(o.warmupMs ? { warmupMs: o.warmupMs } : {}),
    ...(o.rampMs ? { rampMs: o.rampMs } : {}),
  };
}

/**
 * A latency histogram as a report gives it, in microseconds.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Histogram } from "./histogram.ts";
 * import { latencyOf } from "./report.ts";
 * const h = new Histogram();
 * h.record(100);
 * equal(latencyOf(h).count, 1);
 * ```
 */
export function latencyOf(h: Histogram): LatencyReport {
  return {
    count: h.count,
    min: h.min,
    p50: h.percentile(50),
    p90: h.percentile(90),
    p99: h.percentile(99),
    p99_9: h.percentile(99.9),
    max: h.max,
    mean: h.mean,
  };
}
