/**
 * The engine of `echo-server bench`: a load generator that drives an echo
 * server over many TCP connections, verifies every echoed byte and reports
 * throughput and a latency histogram.
 *
 * Every connection sends a seeded pseudo-random byte pattern, a different
 * stretch of it for each message, so corrupted, reordered, added or missing
 * bytes all show as mismatches. A message is read back while it is still
 * being written, so messages of any size up to 16 MiB work against a server
 * that echoes as it reads. When the duration is up, no new message is sent
 * and in-flight echoes get a bounded time (the duration, clamped to 0.2–2 s)
 * to come back; a message with no byte back by then counts as timed out, one
 * partly echoed (or still partly written) as a short echo.
 *
 * An echo that came back full length but differs is corrupted, always. A
 * connection the server closes before any echo completed (after sending
 * nothing, or a short non-echo line such as "busy") is an error, `refused`,
 * not a mismatch; one it closes between two echoes is a reset. A run that
 * verified nothing is not OK. Connections that got no echo before sending
 * stopped (a server queueing them at its connection limit, say) are counted
 * as `starved` and shown, but do not fail the run by themselves.
 * The hot path uses `Deno.Conn` read/write directly with preallocated
 * buffers and a native compare, so one core can saturate a Deno echo server.
 *
 * @example
 * ```ts
 * import { formatReport, runBench } from "./bench.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const report = await runBench({
 *   host: "127.0.0.1",
 *   port: server.addr.port,
 *   connections: 10,
 *   durationMs: 300,
 *   size: 64,
 *   mode: "pingpong",
 * });
 * console.log(formatReport(report));
 * console.assert(report.ok);
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Histogram } from "./histogram.ts";

/**
 * What the load generator does on each connection.
 *
 * - `pingpong`: send `size` bytes, wait for exactly those bytes back, verify,
 *   record the round trip, repeat.
 * - `stream`: write continuously (~64 KiB writes, at most 256 KiB unechoed per
 *   connection) while concurrently reading and verifying the echoed stream;
 *   `size` is not used. Latency is from a write to the end of its echo.
 * - `churn`: connect, echo `size` bytes, close, repeat; latency is
 *   connect + echo + close.
 *
 * @example
 * ```ts
 * import type { BenchMode } from "./bench.ts";
 *
 * const mode: BenchMode = "churn";
 * ```
 */
export type BenchMode = "pingpong" | "stream" | "churn";

/** The largest load {@linkcode runBench} accepts; the command line checks the same bounds. */
export const BENCH_LIMITS = {
  /** Concurrent connections at most. */
  maxConnections: 100_000,
  /** Message size at most, in bytes. */
  maxSize: 16 * 1024 * 1024,
} as const;

/**
 * Settings of one benchmark run.
 *
 * @example
 * ```ts
 * import type { BenchOptions } from "./bench.ts";
 *
 * const options: BenchOptions = {
 *   host: "127.0.0.1",
 *   port: 7,
 *   connections: 100,
 *   durationMs: 10_000,
 *   size: 64,
 *   mode: "pingpong",
 *   rate: 50_000, // open loop: latency counted from each message's scheduled time
 *   signal: AbortSignal.timeout(60_000),
 *   onProgress: (p) => console.log(p.msgsPerS),
 * };
 * ```
 */
export interface BenchOptions {
  /** Server host name or IP address. */
  host: string;
  /** Server TCP port, 1–65535. */
  port: number;
  /** Concurrent connections (churn: concurrent connect/echo/close slots). */
  connections: number;
  /** How long to send, in milliseconds; in-flight echoes are then drained. */
  durationMs: number;
  /** Message size in bytes for pingpong and churn, 1 to 16 MiB (stream ignores it). */
  size: number;
  /** See {@linkcode BenchMode}. */
  mode: BenchMode;
  /**
   * Open-loop rate in messages per second, in total over all connections
   * (pingpong and churn only). Each connection sends on a fixed schedule and
   * latency is measured from the scheduled time, so a stalled server cannot
   * hide its stall by delaying the requests that would have measured it
   * (no coordinated omission). Without it every connection sends as fast as
   * echoes come back.
   */
  rate?: number;
  /** Stops the run early; the report covers the time until then. */
  signal?: AbortSignal;
  /** Called about once a second with the figures of the last interval. */
  onProgress?: (p: BenchProgress) => void;
}

/**
 * Figures of one progress interval (about a second), for the live line.
 *
 * @example
 * ```ts
 * import { type BenchProgress, formatProgress } from "./bench.ts";
 *
 * const p: BenchProgress = {
 *   elapsedS: 3, messages: 510_000, msgsPerS: 170_000, mbPerS: 10.9, p99Us: 1_300,
 *   openConnections: 100, errors: 0, mismatches: 0,
 * };
 * console.log(formatProgress(p));
 * ```
 */
export interface BenchProgress {
  /** Seconds since the load started. */
  elapsedS: number;
  /** Messages echoed and verified since the start. */
  messages: number;
  /** Messages per second over the last interval. */
  msgsPerS: number;
  /** Echoed megabytes (10^6 bytes) per second over the last interval. */
  mbPerS: number;
  /** 99th percentile latency over the last interval, µs (0 when none). */
  p99Us: number;
  /** Connections open now. */
  openConnections: number;
  /** Connections opened per second over the last interval (what churn shows). */
  connectionsPerS?: number;
  /** The run's mode; churn shows `connectionsPerS` rather than `openConnections`. */
  mode?: BenchMode;
  /** Connect failures, refusals and resets since the start. */
  errors: number;
  /** Corrupted or short echoes since the start. */
  mismatches: number;
}

/**
 * Latency summary in microseconds.
 *
 * @example
 * ```ts
 * import type { LatencyReport } from "./bench.ts";
 *
 * const l: LatencyReport = {
 *   count: 1, min: 40, p50: 40, p90: 40, p99: 40, p99_9: 40, max: 40, mean: 40,
 * };
 * ```
 */
export interface LatencyReport {
  /**
   * Samples: one per verified message, so it equals the report's `messages`
   * (stream: 64 KiB chunks written → echoed).
   */
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
 * ```ts
 * import { runBench } from "./bench.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const r = await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 4, durationMs: 200, size: 64,
 *   mode: "pingpong",
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
  /**
   * Open loop: `msgsPerS / options.rate`, below 1 when the server or this
   * client could not keep up with the requested rate; `null` without a rate.
   */
  rateAchievedFraction: number | null;
  /** Echoed megabytes (10^6 bytes) per second: `bytesReceived / elapsedS / 1e6`. */
  mbPerS: number;
  /**
   * Connections established and served (churn: one per echo); those the server
   * closed before echoing anything count as `refused` instead.
   */
  connectionsOpened: number;
  /** Connection attempts that failed to connect, plus `refused`. */
  connectionsFailed: number;
  /**
   * Of `connectionsFailed`: connections the server accepted and then closed
   * (or reset) before any echo completed, e.g. refused at admission. Up to
   * 4 KiB of non-echo bytes it sent first, short of a full echo (a refusal
   * line), are not counted as corrupted; a full-length echo that differs is.
   */
  refused: number;
  /** `connectionsOpened / elapsedS`, the figure that matters for churn. */
  connectionsPerS: number;
  /** `connectionsFailed + resets`. */
  errors: number;
  /** Connections that had served and were then reset, failed or closed by the server mid-run. */
  resets: number;
  /** `corrupted + short`. */
  mismatches: number;
  /** Echoes whose bytes differed from what was sent, or had bytes added. */
  corrupted: number;
  /**
   * Echoes that stopped partway: the server closed the connection after
   * echoing part of a message, or the message was still partly written or
   * unechoed when the drain time ran out.
   */
  short: number;
  /**
   * Messages (stream: connections) with not one byte back when the drain time
   * ran out, e.g. from a server that accepts and never echoes: neither a
   * mismatch nor an error, but the run is not OK (`no reply within the run`).
   */
  timedOut: number;
  /**
   * Connections (churn: slots) that sent but completed no echo before sending
   * stopped, and did not fail otherwise: typically queued by a server at its
   * connection limit and served, if at all, only during the drain. Shown in
   * the report's connections line; deliberately not a failure by itself (the
   * server did nothing wrong, and a starved connection that never gets its
   * echo is counted as timed out anyway), but a sign that the load was not
   * what `connections` says.
   */
  starved: number;
  /**
   * The first error seen, for diagnosis (a corruption names the byte offset
   * and the expected and actual byte), or why a run without errors is not OK
   * (`no reply within the run`, `no echo completed within the run`); `null`
   * when none.
   */
  firstError: string | null;
  /**
   * No errors, no mismatches, nothing timed out and at least one verified
   * echo (stream: bytes echoed): the figure a CLI's exit code should follow.
   * `starved` does not affect it.
   */
  ok: boolean;
  /**
   * Round-trip latency, µs (pingpong: send → echo; churn: connect → echo →
   * close, the first connection of each slot timed by its own connect plus its
   * echo, as it was opened before the clock started).
   */
  latencyUs: LatencyReport;
}

type Timer = ReturnType<typeof setTimeout>;

/** Pattern period and stream write size: a prime just under 64 KiB, see {@linkcode Pattern}. */
const PERIOD = 65521;
/** Distinct message payloads per connection in pingpong and churn. */
const SLOTS = 64;
/** Read buffer size cap. */
const READ_MAX = 65536;
/** Largest `size` accepted; the pattern is that long plus one period. */
/**
 * Deno's timers fire 0.1–1.4 ms late, so sleeps are cut short by this much:
 * a message sent early is timed from its actual send, one sent late from its
 * schedule, so erring early keeps the timer's lateness out of the latency.
 */
const TIMER_SLACK_MS = 2;
/**
 * How long the first connections may take before the run gives up on them:
 * the duration, within 1–10 s.
 */
const CONNECT_TIMEOUT_MIN_MS = 1_000;
const CONNECT_TIMEOUT_MAX_MS = 10_000;
/** Below this share of the requested open-loop rate the report says so. */
const RATE_SHORTFALL = 0.95;
/** Wait before a churn slot retries a failed connect, so it does not spin. */
const RETRY_MS = 10;
/**
 * Most bytes a stream connection keeps unechoed. Without a bound the kernel's
 * buffers fill and the latency measured is theirs (tens of milliseconds), and
 * on loopback a small window keeps the data in cache: 256 KiB doubled the
 * throughput of 1 MiB (the C load generator's choice), 3.2 against 1.6 GB/s.
 * Over a real network it caps a connection at 256 KiB per round trip, so use
 * more connections there.
 */
const STREAM_WINDOW = 256 * 1024;
/** Stream latency markers kept per connection; more in flight go unsampled. */
const MARKS = 256;
/**
 * Most bytes a server may send on a connection, none of them a correct echo,
 * and then close it for that to count as a refusal (with a refusal line)
 * rather than as corrupted echoes.
 */
const BANNER_MAX = 4096;

/**
 * Validates the options, runs the load and reports. Rejects with
 * `cannot connect to HOST:PORT: REASON` when not one connection can be opened,
 * and with a `RangeError` for invalid options. Every socket and timer is closed
 * before it resolves.
 *
 * @example
 * ```ts
 * import { runBench } from "./bench.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * // A long run, ended early (as Ctrl-C would) by aborting the signal.
 * const report = await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 5, durationMs: 30_000, size: 512,
 *   mode: "churn", signal: AbortSignal.timeout(300),
 * });
 * console.log(report.connectionsPerS, report.latencyUs.p99);
 * ```
 */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  validate(options);
  const run = new Run(options);
  const external = options.signal;
  const onAbort = () => run.stop();
  external?.addEventListener("abort", onAbort, { once: true });
  if (external?.aborted) run.stop();
  try {
    return await execute(run, options);
  } finally {
    external?.removeEventListener("abort", onAbort);
    run.closeAll();
  }
}

/**
 * Renders a report as human-readable text (several lines, no trailing newline).
 *
 * @example
 * ```ts
 * import { formatReport, runBench } from "./bench.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const r = await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 4, durationMs: 200, size: 64,
 *   mode: "pingpong",
 * });
 * console.log(formatReport(r));
 * ```
 */
export function formatReport(r: BenchReport): string {
  const o = r.options;
  const what = o.mode === "stream"
    ? `stream, ${plural(o.connections, "connection", "connections")}`
    : `${o.mode}, ${
      o.mode === "churn"
        ? plural(o.connections, "slot", "slots")
        : plural(o.connections, "connection", "connections")
    } × ${bytes(o.size)}`;
  const pace = o.rate === null ? "closed loop" : `open loop at ${rate(o.rate)} msg/s`;
  const l = r.latencyUs;
  const connectFailed = r.connectionsFailed - r.refused;
  const starvedWho = o.mode === "churn" ? plural(r.starved, "slot", "slots") : int(r.starved);
  const starved = r.starved > 0
    ? `, ${starvedWho} got no echo during the run (queued by the server?)`
    : "";
  const lines = [
    `bench ${what}, ${fixed(r.elapsedS, 2)} s against ${hostPort(o.host, o.port)} (${pace})`,
    `  messages     ${int(r.messages)}  (${int(r.msgsPerS)} msg/s)`,
  ];
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
    `  throughput   ${fixed(r.mbPerS, 1)} MB/s echoed  (sent ${mb(r.bytesSent)}, received ${
      mb(r.bytesReceived)
    })`,
    `  connections  ${int(r.connectionsOpened)} served (${int(r.connectionsPerS)}/s), ${
      int(r.refused)
    } closed by the server before echoing, ${int(connectFailed)} failed to connect${starved}`,
    `  errors       ${int(r.errors)}  (${int(connectFailed)} connect, ${int(r.refused)} refused, ${
      int(r.resets)
    } reset)${r.firstError === null ? "" : `  first: ${r.firstError}`}`,
    `  mismatches   ${int(r.mismatches)}  (${int(r.corrupted)} corrupted, ${int(r.short)} short)`,
  );
  if (r.timedOut > 0) {
    lines.push(`  timed out    ${int(r.timedOut)}  (no reply within the run)`);
  }
  if (l.count === 0) {
    lines.push("  latency      no samples");
  } else {
    const cells: [string, number][] = [
      ["p50", l.p50],
      ["p90", l.p90],
      ["p99", l.p99],
      ["p99.9", l.p99_9],
      ["max", l.max],
    ];
    const widest = Math.max(...cells.map(([, v]) => v), 1);
    const measured = o.mode === "stream"
      ? "write → echo per 64 KiB"
      : o.mode === "churn"
      ? "connect → echo → close"
      : "round trip";
    lines.push(
      `  latency µs   ${measured}, ${int(l.count)} samples, mean ${int(l.mean)}, min ${int(l.min)}`,
    );
    for (const [name, v] of cells) {
      // Bars scale with log(value) so p50 stays visible next to a long max.
      const bar = "█".repeat(Math.max(1, Math.round(30 * Math.log1p(v) / Math.log1p(widest))));
      lines.push(`    ${name.padEnd(6)}${int(v).padStart(12)}  ${bar}`);
    }
  }
  lines.push(`  result       ${r.ok ? "OK" : "FAILED"}`);
  return lines.join("\n");
}

/**
 * Renders one progress interval as a single line without control characters;
 * the caller decides between `\r` (TTY) and `\n` (plain).
 *
 * @example
 * ```ts
 * import { formatProgress, runBench } from "./bench.ts";
 * import { serve } from "../server.ts";
 *
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * await runBench({
 *   host: "127.0.0.1", port: server.addr.port, connections: 10, durationMs: 1_200, size: 64,
 *   mode: "pingpong", onProgress: (p) => console.log(formatProgress(p)),
 * });
 * ```
 */
export function formatProgress(p: BenchProgress): string {
  return [
    `${fixed(p.elapsedS, 0).padStart(4)}s`,
    `${int(p.msgsPerS).padStart(11)} msg/s`,
    `${fixed(p.mbPerS, 1).padStart(8)} MB/s`,
    `p99 ${int(p.p99Us).padStart(8)} µs`,
    p.mode === "churn"
      ? `${int(p.connectionsPerS ?? 0)} conn/s`
      : plural(p.openConnections, "conn", "conns"),
    `${int(p.errors)} errors`,
    `${int(p.mismatches)} mismatches`,
  ].join("  ");
}

function validate(o: BenchOptions): void {
  const intIn = (name: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new RangeError(`${name} must be an integer from ${lo} to ${hi}, got ${v}`);
    }
  };
  if (typeof o.host !== "string" || o.host === "") {
    throw new RangeError("host must be a non-empty string");
  }
  intIn("port", o.port, 1, 65535);
  intIn("connections", o.connections, 1, BENCH_LIMITS.maxConnections);
  intIn("size", o.size, 1, BENCH_LIMITS.maxSize);
  // setTimeout fires at once beyond 2^31 - 1 ms.
  if (!(o.durationMs > 0) || !(o.durationMs <= 2 ** 31 - 1)) {
    throw new RangeError(`durationMs must be > 0 and at most 2147483647, got ${o.durationMs}`);
  }
  if (o.mode !== "pingpong" && o.mode !== "stream" && o.mode !== "churn") {
    throw new RangeError(`mode must be pingpong, stream or churn, got ${String(o.mode)}`);
  }
  if (o.rate !== undefined) {
    if (!(o.rate > 0) || !Number.isFinite(o.rate)) {
      throw new RangeError(`rate must be a positive number of messages per second, got ${o.rate}`);
    }
    if (o.mode === "stream") throw new RangeError("rate applies to pingpong and churn, not stream");
  }
}

/**
 * The bytes every connection sends: a seeded pseudo-random sequence repeating
 * every PERIOD bytes. Byte `i` of a message or stream is
 * `bytes[(start + i) % PERIOD]`, the start differing per message (pingpong,
 * churn) or per connection (stream). PERIOD is prime, so a lost, repeated or
 * reordered buffer, whose size is in practice a power of two, shifts the
 * pattern and is caught; only a multiple of PERIOD bytes could slip through.
 */
class Pattern {
  readonly bytes: Uint8Array;
  // Buffer#compare is a native memcmp; a JS loop over the same bytes cost a
  // third of the client's time at 4 KiB messages.
  readonly #native: Buffer;

  /** `span`: the most bytes ever compared or sent from one offset. */
  constructor(span: number) {
    this.bytes = new Uint8Array(PERIOD + span);
    let x = 0x9e3779b9;
    for (let i = 0; i < PERIOD; i++) {
      // xorshift32: deterministic, so a failing run can be reproduced.
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.bytes[i] = x >>> 24;
    }
    for (let i = PERIOD; i < this.bytes.length; i++) this.bytes[i] = this.bytes[i - PERIOD];
    this.#native = Buffer.from(this.bytes.buffer, 0, this.bytes.length);
  }

  /** Whether `buf[0, n)` equals the pattern from `at` on, `at + n` ≤ PERIOD + span. */
  matches(buf: Uint8Array, n: number, at: number): boolean {
    return this.#native.compare(buf, 0, n, at, at + n) === 0;
  }
}

/**
 * Wakes sleeping connections from one timer, a binary heap of wake-up times
 * in front of it. A timer per message costs more than the message itself at
 * tens of thousands of messages a second, and Deno's timers run about a
 * millisecond late anyway, so everything due within TIMER_SLACK_MS goes at
 * once.
 */
class Wakeups {
  readonly #times: number[] = [];
  readonly #wakes: (() => void)[] = [];
  #timer: Timer | undefined;
  #timerFor = Infinity;

  at(time: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#push(time, resolve);
    if (time < this.#timerFor) this.#arm(time);
    return promise;
  }

  wakeAll(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerFor = Infinity;
    const wakes = this.#wakes.splice(0);
    this.#times.length = 0;
    for (const wake of wakes) wake();
  }

  #arm(time: number): void {
    clearTimeout(this.#timer);
    this.#timerFor = time;
    this.#timer = setTimeout(this.#fire, Math.max(0, time - performance.now() - TIMER_SLACK_MS));
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#timerFor = Infinity;
    const horizon = performance.now() + TIMER_SLACK_MS;
    while (this.#times.length > 0 && this.#times[0] <= horizon) this.#pop()();
    if (this.#times.length > 0) this.#arm(this.#times[0]);
  };

  #push(time: number, wake: () => void): void {
    const times = this.#times;
    const wakes = this.#wakes;
    let i = times.length;
    times.push(time);
    wakes.push(wake);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent] <= time) break;
      times[i] = times[parent];
      wakes[i] = wakes[parent];
      i = parent;
    }
    times[i] = time;
    wakes[i] = wake;
  }

  #pop(): () => void {
    const times = this.#times;
    const wakes = this.#wakes;
    const top = wakes[0];
    const lastTime = times[times.length - 1];
    const lastWake = wakes[wakes.length - 1];
    times.pop();
    wakes.pop();
    const n = times.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1] < times[child]) child++;
      if (times[child] >= lastTime) break;
      times[i] = times[child];
      wakes[i] = wakes[child];
      i = child;
    }
    times[i] = lastTime;
    wakes[i] = lastWake;
    return top;
  }
}

/** Shared state of one run: counters, histograms, open sockets, timers. */
class Run {
  readonly host: string;
  readonly port: number;
  readonly size: number;
  /** How long in-flight echoes may take to come back once sending stops. */
  readonly drainMs: number;
  readonly pattern: Pattern;
  /** Pattern offsets of the pingpong/churn payloads, and views of them to send. */
  readonly slotAt: Int32Array = new Int32Array(SLOTS);
  readonly slotView: Uint8Array[] = [];
  /** Aborts the first connects when they take too long or the run stops. */
  readonly dialing = new AbortController();
  /** Aborts churn's pending connects when the run is torn down. */
  readonly teardown = new AbortController();
  readonly open = new Set<Deno.TcpConn>();
  /** Latency of the current progress interval; merged into `total` at each tick. */
  readonly window = new Histogram();
  readonly total = new Histogram();

  /** No new messages once set; in-flight echoes may still complete. */
  stopping = false;
  /** Set when sockets are being force-closed: errors from then on are expected. */
  closing = false;
  readonly stopped: Promise<void>;
  #resolveStopped: () => void;
  readonly #wakeups = new Wakeups();

  readonly mode: BenchMode;
  /** When the first connects began; `startedAt` when the load began (0 before). */
  dialStartedAt = 0;
  startedAt = 0;
  stoppedAt = 0;
  lastEchoAt = 0;
  messages = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** Connections established, including those later `refused`. */
  opened = 0;
  /** Connect attempts that failed. */
  failed = 0;
  refused = 0;
  resets = 0;
  corrupted = 0;
  short = 0;
  timedOut = 0;
  starved = 0;
  firstError: string | null = null;

  constructor(o: BenchOptions) {
    this.host = o.host;
    this.port = o.port;
    this.size = o.size;
    this.mode = o.mode;
    this.drainMs = Math.min(2000, Math.max(200, o.durationMs));
    this.pattern = new Pattern(o.mode === "stream" ? READ_MAX + 1 : Math.max(o.size, READ_MAX + 1));
    for (let i = 0; i < SLOTS; i++) {
      // 1031 is prime: the offsets spread over the whole period.
      const at = (i * 1031) % PERIOD;
      this.slotAt[i] = at;
      this.slotView.push(this.pattern.bytes.subarray(at, at + o.size));
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.stopped = promise;
    this.#resolveStopped = resolve;
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stoppedAt = performance.now();
    this.dialing.abort(new Error("stopped"));
    this.#wakeups.wakeAll();
    this.#resolveStopped();
  }

  /** Resolves about at `time` (performance.now() clock), or at once when the run stops. */
  until(time: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.#wakeups.at(time);
  }

  /** Opens a connection; null on failure, which is counted unless we stopped. */
  async connect(signal: AbortSignal): Promise<Deno.TcpConn | null> {
    try {
      // The signal only aborts the connect: an open connection stays open.
      const conn = await Deno.connect({ hostname: this.host, port: this.port, signal });
      if (this.closing) {
        conn.close();
        return null;
      }
      conn.setNoDelay(true);
      this.open.add(conn);
      this.opened++;
      return conn;
    } catch (err) {
      if (!this.stopping) {
        this.failed++;
        this.noteError(err);
      }
      return null;
    }
  }

  release(conn: Deno.TcpConn): void {
    if (!this.open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed by the peer's reset or by the teardown signal.
    }
  }

  noteError(err: unknown): void {
    this.firstError ??= typeof err === "string" ? err : describe(err);
  }

  closeAll(): void {
    this.closing = true;
    this.stop();
    this.teardown.abort();
    for (const conn of [...this.open]) this.release(conn);
  }
}

async function execute(run: Run, o: BenchOptions): Promise<BenchReport> {
  run.dialStartedAt = performance.now();
  const timeout = Math.min(CONNECT_TIMEOUT_MAX_MS, Math.max(CONNECT_TIMEOUT_MIN_MS, o.durationMs));
  const dialTimer = setTimeout(
    () => run.dialing.abort(new Error(`timed out after ${timeout / 1000} s`)),
    timeout,
  );
  // How long each first connect took: churn times its first echo by it.
  const dialMs = new Float64Array(o.connections);
  const dialed = await Promise.all(
    Array.from({ length: o.connections }, async (_, i) => {
      const t = performance.now();
      const conn = await run.connect(run.dialing.signal);
      dialMs[i] = performance.now() - t;
      return conn;
    }),
  );
  clearTimeout(dialTimer);
  const conns = dialed.filter((c): c is Deno.TcpConn => c !== null);
  if (conns.length === 0 && !run.stopping) {
    throw new Error(
      `cannot connect to ${hostPort(o.host, o.port)}: ${run.firstError ?? "no connection"}`,
    );
  }
  // Stopped while connecting (Ctrl-C): the run lasted from the first connect.
  run.startedAt = run.stopping ? run.dialStartedAt : performance.now();
  const deadline = setTimeout(() => run.stop(), o.durationMs);
  const ticker = o.onProgress === undefined ? undefined : startProgress(run, o.onProgress);
  // Latency is measured per connection from its scheduled send time; with no
  // rate the interval is 0 and each message goes as soon as the last came back.
  const senders = o.mode === "churn" ? o.connections : conns.length;
  const interval = o.rate === undefined ? 0 : (1000 * senders) / o.rate;
  let loops: Promise<void>[];
  if (o.mode === "stream") {
    loops = conns.map((c, i) => stream(run, c, i));
  } else if (o.mode === "pingpong") {
    loops = conns.map((c, i) => pingpong(run, c, i, i * interval / senders, interval));
  } else {
    // Churn keeps every slot, even one whose first connect failed: it retries.
    loops = dialed.map((c, i) => churn(run, c, dialMs[i], i, i * interval / senders, interval));
  }
  const all = Promise.all(loops);
  try {
    await Promise.race([all, run.stopped]);
    run.stop();
    // Give in-flight echoes a bounded time to come back; what is still missing
    // then is a short echo.
    let drain: Timer | undefined;
    const drained = new Promise<void>((resolve) => {
      drain = setTimeout(resolve, run.drainMs);
    });
    await Promise.race([all, drained]);
    clearTimeout(drain);
  } finally {
    clearTimeout(deadline);
    if (ticker !== undefined) clearInterval(ticker);
    run.closeAll();
    await all;
  }
  return report(run, o);
}

function startProgress(run: Run, onProgress: (p: BenchProgress) => void): Timer {
  let lastAt = run.startedAt;
  let lastMessages = 0;
  let lastBytes = 0;
  let lastOpened = run.opened;
  return setInterval(() => {
    const now = performance.now();
    const dt = Math.max(now - lastAt, 1) / 1000;
    const p: BenchProgress = {
      elapsedS: (now - run.startedAt) / 1000,
      messages: run.messages,
      msgsPerS: (run.messages - lastMessages) / dt,
      mbPerS: (run.bytesReceived - lastBytes) / dt / 1e6,
      p99Us: run.window.percentile(99),
      openConnections: run.open.size,
      connectionsPerS: (run.opened - lastOpened) / dt,
      mode: run.mode,
      errors: run.failed + run.refused + run.resets,
      mismatches: run.corrupted + run.short,
    };
    run.total.merge(run.window);
    run.window.reset();
    lastAt = now;
    lastMessages = run.messages;
    lastBytes = run.bytesReceived;
    lastOpened = run.opened;
    try {
      onProgress(p);
    } catch {
      // A failing progress printer must not break the measurement.
    }
  }, 1000);
}

function report(run: Run, o: BenchOptions): BenchReport {
  run.total.merge(run.window);
  run.window.reset();
  const end = Math.max(run.stoppedAt, run.lastEchoAt);
  const elapsedS = run.startedAt === 0 ? 0 : Math.max(end - run.startedAt, 0) / 1000;
  const per = (x: number) => elapsedS > 0 ? x / elapsedS : 0;
  const h = run.total;
  const failed = run.failed + run.refused;
  const errors = failed + run.resets;
  const mismatches = run.corrupted + run.short;
  // A run that verified nothing proves nothing, even without an error.
  const verified = o.mode === "stream" ? run.bytesReceived > 0 : run.messages > 0;
  if (!verified) run.noteError("no echo completed within the run");
  const msgsPerS = per(run.messages);
  return {
    options: {
      host: o.host,
      port: o.port,
      connections: o.connections,
      durationMs: o.durationMs,
      size: o.size,
      mode: o.mode,
      rate: o.rate ?? null,
    },
    elapsedS,
    messages: run.messages,
    bytesSent: run.bytesSent,
    bytesReceived: run.bytesReceived,
    msgsPerS,
    rateAchievedFraction: o.rate === undefined ? null : msgsPerS / o.rate,
    mbPerS: per(run.bytesReceived) / 1e6,
    connectionsOpened: run.opened - run.refused,
    connectionsFailed: failed,
    refused: run.refused,
    connectionsPerS: per(run.opened - run.refused),
    errors,
    resets: run.resets,
    mismatches,
    corrupted: run.corrupted,
    short: run.short,
    timedOut: run.timedOut,
    starved: run.starved,
    firstError: run.firstError,
    ok: errors === 0 && mismatches === 0 && run.timedOut === 0 && verified,
    latencyUs: {
      count: h.count,
      min: h.min,
      p50: h.percentile(50),
      p90: h.percentile(90),
      p99: h.percentile(99),
      p99_9: h.percentile(99.9),
      max: h.max,
      mean: h.mean,
    },
  };
}

/**
 * Waits for a connection's next send time in open-loop mode and returns the
 * time to measure its latency from: the scheduled time, or the actual send if
 * the timer woke us early (never before the bytes left).
 */
async function paced(run: Run, due: number): Promise<number> {
  if (due - performance.now() > TIMER_SLACK_MS) await run.until(due);
  return Math.min(due, performance.now());
}

const ECHO_OK = 0;
const ECHO_BAD = 1;
/** We closed the connection with the echo incomplete, the drain time having run out (counted). */
const ECHO_CUT = 2;
/** The connection failed or the server closed it before the echo was complete (counted). */
const ECHO_DEAD = 3;
/** The server closed the connection before it had completed any echo (counted). */
const ECHO_REFUSED = 4;

/** Why a message with no byte back when the drain time ran out failed. */
const NO_REPLY = "no reply within the run";

/** A read that returned end of file: the server closed the connection. */
const EOF = new Error("closed by the server");

/** What one pingpong or churn connection has done so far, to tell a refusal from a failure. */
class Link {
  /** Echoes completed on this connection, intact or corrupted. */
  echoes = 0;
  /** The start of what the server sent first, when that was not the echo. */
  banner: string | null = null;

  clear(): void {
    this.echoes = 0;
    this.banner = null;
  }
}

/**
 * Accounts for a message whose echo ended before it was complete, `got` of
 * its bytes back (`intact` while they matched) and `sent` written:
 *
 * - we closed the connection (the drain time ran out): a timeout when no
 *   byte of the message had come back, else a short echo;
 * - the server closed it before any echo had completed, having sent nothing
 *   or a short non-echo line (at most BANNER_MAX bytes): a refusal;
 * - the server closed it between two echoes: a reset;
 * - the server closed it partway through an echo: a short echo and a reset.
 */
function lost(
  run: Run,
  link: Link,
  err: unknown,
  sent: number,
  got: number,
  intact: boolean,
): number {
  const why = err === EOF ? "" : `: ${describe(err)}`;
  if (run.closing) {
    if (got === 0) {
      run.timedOut++;
      run.noteError(NO_REPLY);
      return ECHO_CUT;
    }
    run.short++;
    run.noteError(
      `an echo was still incomplete when the drain time (${run.drainMs / 1000} s) ran out (${
        int(got)
      } of ${int(run.size)} bytes back, ${int(sent)} sent)`,
    );
    return ECHO_CUT;
  }
  if (link.echoes === 0 && (got === 0 || !intact) && got <= BANNER_MAX) {
    run.refused++;
    run.noteError(refusal(err, link.banner));
    return ECHO_REFUSED;
  }
  run.resets++;
  if (got === 0) {
    run.noteError(
      `the server closed the connection between echoes, after ${int(link.echoes)} echo${
        link.echoes === 1 ? "" : "es"
      }${why}`,
    );
  } else {
    run.short++;
    run.noteError(
      `the server closed the connection mid-echo (${int(got)} of ${
        int(run.size)
      } bytes back)${why}`,
    );
  }
  return ECHO_DEAD;
}

/** Why a connection was counted as refused: `err` ended it, after `banner` if any. */
function refusal(err: unknown, banner: string | null): string {
  const what = "the server closed the connection before echoing (refused?)";
  if (banner !== null) return `${what}; it sent ${banner}`;
  return err === EOF ? what : `${what}: ${describe(err)}`;
}

/**
 * The first bytes of `buf` as a double-quoted string safe to print on a
 * terminal, JSON.stringify-style: valid UTF-8 text keeps its printable
 * characters, control and format characters become `\uXXXX`, and bytes that
 * are not UTF-8 become `\xNN`.
 */
function excerpt(buf: Uint8Array, n: number): string {
  const head = buf.subarray(0, Math.min(n, 60));
  let text: string;
  try {
    // A multi-byte character cut at the 60th byte is not invalid text.
    text = new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
  } catch {
    text = "";
    for (const b of head) {
      const c = String.fromCharCode(b);
      text += b === 0x22 || b === 0x5c
        ? `\\${c}`
        : b >= 0x20 && b < 0x7f
        ? c
        : `\\x${hex(b).slice(2)}`;
    }
    return `"${text}"${n > 60 ? "…" : ""}`;
  }
  const quoted = JSON.stringify(text).replace(
    /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return n > 60 ? `${quoted}…` : quoted;
}

/** `0x0a`. */
function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, "0")}`;
}

/**
 * Where `buf[0, n)`, echoed at byte `got` of a `size`-byte message starting at
 * pattern offset `at`, first differs from what was sent, for an error message.
 */
function mismatch(run: Run, buf: Uint8Array, n: number, at: number, got: number): string {
  const size = run.size;
  const bytes = run.pattern.bytes;
  const m = Math.min(n, size - got);
  for (let i = 0; i < m; i++) {
    if (buf[i] !== bytes[at + got + i]) {
      return `a corrupted echo: byte ${int(got + i)} of ${int(size)} was ${hex(buf[i])}, expected ${
        hex(bytes[at + got + i])
      }`;
    }
  }
  return `a corrupted echo: more bytes came back than the ${int(size)} sent`;
}

/**
 * Finishes one message of slot `slot` after its first write put `sent`
 * bytes out: writes the rest while reading the echo back, so that a message
 * larger than the socket buffers cannot deadlock against a server that
 * echoes as it reads. `first` is the result of a read already done, if any.
 * Verifies as it goes. ECHO_BAD: corrupted or extra bytes (counted);
 * ECHO_CUT, ECHO_DEAD, ECHO_REFUSED: the connection ended first (counted,
 * see {@linkcode lost}) and is closed.
 */
async function finishEcho(
  run: Run,
  conn: Deno.TcpConn,
  link: Link,
  buf: Uint8Array,
  slot: number,
  sent: number,
  first: number | null | undefined,
): Promise<number> {
  const size = run.size;
  const view = run.slotView[slot];
  const at = run.slotAt[slot];
  let writeError: unknown = undefined;
  let writer: Promise<void> | undefined;
  if (sent < size) {
    writer = (async () => {
      try {
        while (sent < size) {
          const n = await conn.write(view.subarray(sent));
          run.bytesSent += n;
          sent += n;
        }
      } catch (err) {
        writeError = err;
        // Ends the read too, should the connection still deliver nothing.
        run.release(conn);
      }
    })();
  }
  let got = 0;
  let intact = true;
  let extra = false;
  let why = "";
  try {
    let n = first === undefined ? await conn.read(buf) : first;
    for (;;) {
      if (n === null) throw EOF;
      run.bytesReceived += n;
      const fresh = got === 0 && link.echoes === 0;
      if (n > size - got) {
        // More bytes than were sent: the echo added some.
        if (intact) why = mismatch(run, buf, n, at, got);
        intact = false;
        extra = true;
      } else if (intact && !run.pattern.matches(buf, n, at + got)) {
        intact = false;
        why = mismatch(run, buf, n, at, got);
      }
      if (!intact && fresh) link.banner ??= excerpt(buf, n);
      if (extra) break;
      got += n;
      if (got === size) break;
      n = await conn.read(buf);
    }
  } catch (err) {
    // A failed write closes the connection, which fails the read: report the write's error.
    const cause = writeError ?? err;
    run.release(conn);
    await writer;
    return lost(run, link, cause, sent, got, intact);
  }
  // Every byte is back, so every byte went out: the writer has finished or
  // is about to (after extra bytes, it may still be waiting on the server).
  await writer;
  if (intact) return ECHO_OK;
  // A full-length echo that differs is corrupted, whatever the server does next.
  run.corrupted++;
  run.noteError(why);
  return ECHO_BAD;
}

/**
 * Sends the message of `slot` and reads its echo back. The common case, one
 * write and one read carrying the whole message, stays in this function:
 * every extra async call per message costs throughput.
 */
async function exchange(
  run: Run,
  conn: Deno.TcpConn,
  link: Link,
  buf: Uint8Array,
  slot: number,
): Promise<number> {
  const size = run.size;
  let sent = 0;
  let n: number | null = null;
  try {
    sent = await conn.write(run.slotView[slot]);
    run.bytesSent += sent;
    if (sent === size) n = await conn.read(buf);
  } catch (err) {
    run.release(conn);
    return lost(run, link, err, sent, 0, true);
  }
  if (sent === size && n === size && run.pattern.matches(buf, n, run.slotAt[slot])) {
    run.bytesReceived += n;
    return ECHO_OK;
  }
  return await finishEcho(run, conn, link, buf, slot, sent, sent === size ? n : undefined);
}

async function pingpong(
  run: Run,
  conn: Deno.TcpConn,
  index: number,
  phase: number,
  interval: number,
): Promise<void> {
  const size = run.size;
  const buf = new Uint8Array(Math.min(size, READ_MAX) + 1);
  const link = new Link();
  let slot = index % SLOTS;
  let due = run.startedAt + phase;
  let start = performance.now();
  /** Sent a message; had an echo complete before the run stopped; ended in an error. */
  let asked = false;
  let fed = false;
  let failed = false;
  while (!run.stopping) {
    if (interval > 0) {
      start = await paced(run, due);
      if (run.stopping) break;
      due += interval;
    }
    asked = true;
    // exchange(), inlined: this loop is the client's whole per-message cost, and
    // the extra async call measured 3-4 % fewer messages against the C server.
    let outcome: number;
    let sent = 0;
    let n: number | null = null;
    try {
      sent = await conn.write(run.slotView[slot]);
      run.bytesSent += sent;
      if (sent === size) n = await conn.read(buf);
    } catch (err) {
      failed = lost(run, link, err, sent, 0, true) >= ECHO_DEAD;
      break;
    }
    if (sent === size && n === size && run.pattern.matches(buf, n, run.slotAt[slot])) {
      run.bytesReceived += n;
      outcome = ECHO_OK;
    } else {
      outcome = await finishEcho(run, conn, link, buf, slot, sent, sent === size ? n : undefined);
      if (outcome >= ECHO_CUT) {
        failed = outcome >= ECHO_DEAD;
        break;
      }
    }
    const done = performance.now();
    link.echoes++;
    if (!run.stopping) fed = true;
    if (outcome === ECHO_OK) {
      run.messages++;
      run.window.record((done - start) * 1000);
    }
    run.lastEchoAt = done;
    // Closed loop: the next message leaves now, so its round trip starts now.
    start = done;
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
  }
  if (asked && !fed && !failed) run.starved++;
  run.release(conn);
}

/**
 * One churn slot. `first`, when not null, was opened before the clock
 * started together with every other slot's, `firstMs` its connect time: its
 * echo takes the first place in the schedule and is timed as that connect
 * plus the echo, leaving out the wait for the other connects.
 */
async function churn(
  run: Run,
  first: Deno.TcpConn | null,
  firstMs: number,
  index: number,
  phase: number,
  interval: number,
): Promise<void> {
  const buf = new Uint8Array(Math.min(run.size, READ_MAX) + 1);
  const link = new Link();
  let slot = index % SLOTS;
  let due = run.startedAt + phase + (first === null ? 0 : interval);
  let conn = first;
  let start = performance.now() - firstMs;
  let failedBefore = first === null;
  /** As in pingpong, over all of this slot's connections. */
  let asked = false;
  let fed = false;
  let failed = first === null && !run.stopping;
  while (!run.stopping) {
    if (conn === null) {
      // After a failed connect or a refusal, pause so that the slot does not spin.
      if (failedBefore) await run.until(performance.now() + RETRY_MS);
      if (run.stopping) break;
      start = interval > 0 ? await paced(run, due) : performance.now();
      if (run.stopping) break;
      conn = await run.connect(run.teardown.signal);
      if (conn === null) {
        failedBefore = true;
        failed ||= !run.stopping;
        continue;
      }
      if (interval > 0) due += interval;
    }
    link.clear();
    asked = true;
    const outcome = await exchange(run, conn, link, buf, slot);
    run.release(conn);
    conn = null;
    const done = performance.now();
    if (outcome === ECHO_OK) {
      run.messages++;
      run.window.record((done - start) * 1000);
    }
    if (outcome < ECHO_CUT) {
      run.lastEchoAt = done;
      if (!run.stopping) fed = true;
    }
    if (outcome >= ECHO_DEAD) failed = true;
    failedBefore = outcome === ECHO_REFUSED;
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
  }
  if (asked && !fed && !failed) run.starved++;
  if (conn !== null) run.release(conn);
}

/** Per-connection state shared by a stream's writer and reader. */
class StreamState {
  sent = 0;
  /**
   * Bytes of the write in progress. Its echo can be read before the write's
   * own promise settles, so the reader's bound on what may come back is
   * `sent + writing`.
   */
  writing = 0;
  received = 0;
  /** Reads that matched, and that did not: all bad and then closed is a refusal. */
  intactReads = 0;
  badReads = 0;
  /** The start of what the server sent first, when that was not the echo. */
  banner: string | null = null;
  /** Where the first corrupted read went wrong; reported once it cannot be a refusal line. */
  bad: string | null = null;
  /** Wrote something; read something before the run stopped; ended in an error. */
  asked = false;
  fed = false;
  failed = false;
  writerDone = false;
  /** Set once the connection's end is accounted for: the other side stays quiet. */
  finished = false;
  /** Ring of (stream offset after a write, time the write completed). */
  readonly markAt = new Float64Array(MARKS);
  readonly markTime = new Float64Array(MARKS);
  head = 0;
  tail = 0;
  /** Wakes the writer once the reader has made room under STREAM_WINDOW. */
  room: (() => void) | null = null;
}

async function stream(run: Run, conn: Deno.TcpConn, index: number): Promise<void> {
  const st = new StreamState();
  // Connections start at different points of the pattern, and every write is
  // exactly one period long, so each full write is the same view.
  const phase = (index * 7919) % PERIOD;
  const chunk = run.pattern.bytes.subarray(phase, phase + PERIOD);
  /** Ends the connection once; `err` marks a failure rather than the normal end. */
  const finish = (err?: unknown) => {
    if (st.finished) return;
    st.finished = true;
    let refused = false;
    st.room?.();
    st.room = null;
    if (err === undefined) {
      // The normal end.
    } else if (run.closing) {
      // The drain time ran out: what was written and not echoed back never will be.
      if (st.received === 0 && (st.sent > 0 || st.writing > 0)) {
        run.timedOut++;
        run.noteError(NO_REPLY);
      } else if (st.received < st.sent || st.writing > 0) {
        run.short++;
        run.noteError(
          `a stream echo was still incomplete when the drain time (${
            run.drainMs / 1000
          } s) ran out (${int(st.sent - st.received)} bytes written and not echoed${
            st.writing > 0 ? ", a write pending" : ""
          })`,
        );
      }
    } else if (st.intactReads === 0 && st.received <= BANNER_MAX) {
      st.failed = true;
      refused = true;
      run.refused++;
      run.corrupted -= st.badReads;
      run.noteError(refusal(err, st.banner));
    } else {
      st.failed = true;
      run.resets++;
      if (st.received < st.sent) run.short++;
      run.noteError(
        err === EOF
          ? "the server closed the connection mid-stream"
          : `the connection failed mid-stream: ${describe(err)}`,
      );
    }
    if (st.bad !== null && !refused) {
      run.noteError(st.bad);
    }
    run.release(conn);
  };
  const writer = async () => {
    try {
      while (!run.stopping && !st.finished) {
        if (st.sent - st.received > STREAM_WINDOW) {
          const { promise, resolve } = Promise.withResolvers<void>();
          st.room = resolve;
          await promise;
          continue;
        }
        let done = 0;
        while (done < PERIOD) {
          st.writing = PERIOD - done;
          st.asked = true;
          const n = await conn.write(done === 0 ? chunk : chunk.subarray(done));
          st.writing = 0;
          done += n;
          st.sent += n;
          run.bytesSent += n;
        }
        const next = (st.tail + 1) % MARKS;
        if (next !== st.head) {
          st.markAt[st.tail] = st.sent;
          st.markTime[st.tail] = performance.now();
          st.tail = next;
        }
      }
    } catch (err) {
      finish(err);
    }
    st.writerDone = true;
    if (st.received >= st.sent) finish();
  };
  const reader = async () => {
    const buf = new Uint8Array(READ_MAX);
    try {
      while (!(st.writerDone && st.received >= st.sent)) {
        const n = await conn.read(buf);
        if (n === null) throw EOF;
        run.bytesReceived += n;
        if (!run.stopping) st.fed = true;
        // A flipped byte leaves the stream aligned, so keep going and count
        // each corrupted read; a dropped one misaligns the rest, which then
        // counts on every read, as it should.
        if (
          st.received + n <= st.sent + st.writing &&
          run.pattern.matches(buf, n, (phase + st.received) % PERIOD)
        ) {
          st.intactReads++;
        } else {
          run.corrupted++;
          st.badReads++;
          if (st.received === 0) st.banner = excerpt(buf, n);
          st.bad ??= streamMismatch(run, st, buf, n, phase);
        }
        st.received += n;
        // Past a refusal line's worth, or after a good read, corruption is corruption.
        if (st.bad !== null && (st.intactReads > 0 || st.received > BANNER_MAX)) {
          run.noteError(st.bad);
        }
        if (st.room !== null && st.sent - st.received <= STREAM_WINDOW) {
          st.room();
          st.room = null;
        }
        if (st.head !== st.tail && st.received >= st.markAt[st.head]) {
          const now = performance.now();
          run.lastEchoAt = now;
          do {
            run.window.record((now - st.markTime[st.head]) * 1000);
            run.messages++;
            st.head = (st.head + 1) % MARKS;
          } while (st.head !== st.tail && st.received >= st.markAt[st.head]);
        }
      }
      finish();
    } catch (err) {
      finish(err);
    }
  };
  await Promise.all([writer(), reader()]);
  if (st.asked && !st.fed && !st.failed) run.starved++;
}

/** Where a corrupted stream read of `n` bytes first differs from what was written. */
function streamMismatch(
  run: Run,
  st: StreamState,
  buf: Uint8Array,
  n: number,
  phase: number,
): string {
  const bytes = run.pattern.bytes;
  const start = (phase + st.received) % PERIOD;
  const m = Math.min(n, Math.max(0, st.sent + st.writing - st.received));
  for (let i = 0; i < m; i++) {
    if (buf[i] !== bytes[start + i]) {
      return `a corrupted echo: stream byte ${int(st.received + i)} was ${hex(buf[i])}, expected ${
        hex(bytes[start + i])
      }`;
    }
  }
  return `a corrupted echo: more bytes came back than were written (${int(st.received + n)} of ${
    int(st.sent + st.writing)
  })`;
}

/** `Connection refused (os error 111)` → `connection refused`. */
function describe(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const bare = text.replace(/\s*\(os error \d+\)\s*$/, "");
  return bare.charAt(0).toLowerCase() + bare.slice(1);
}

function hostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `1 connection`, `2 connections`. */
function plural(n: number, one: string, many: string): string {
  return `${int(n)} ${Math.round(n) === 1 ? one : many}`;
}

function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** A rate in msg/s: grouped, fractions kept (`0.5`, `1,234.5`, `0.00125`). */
function rate(n: number): string {
  return n.toLocaleString(
    "en-US",
    n >= 1 ? { maximumFractionDigits: 3 } : { maximumSignificantDigits: 3 },
  );
}

function fixed(n: number, digits: number): string {
  return n.toFixed(digits);
}

function mb(n: number): string {
  return `${fixed(n / 1e6, 1)} MB`;
}

function bytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}
