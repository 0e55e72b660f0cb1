/**
 * The engine of `echo-server bench`: a load generator that drives an echo
 * server over many TCP connections, verifies every echoed byte and reports
 * throughput and a latency histogram.
 *
 * Every connection sends a seeded pseudo-random byte pattern, a different
 * stretch of it for each message, so corrupted, reordered, added or missing
 * bytes all show as mismatches. When the duration is up, no new message is
 * sent and in-flight echoes get a bounded time (the duration, clamped to
 * 0.2–2 s) to come back; what is still missing then counts as a short echo.
 * The hot path uses `Deno.Conn` read/write directly with preallocated
 * buffers and a native compare, so one core can saturate a Deno echo server.
 *
 * @example
 * ```ts
 * import { formatReport, runBench } from "./bench.ts";
 *
 * const report = await runBench({
 *   host: "127.0.0.1",
 *   port: 7,
 *   connections: 100,
 *   durationMs: 5_000,
 *   size: 64,
 *   mode: "pingpong",
 * });
 * console.log(formatReport(report));
 * if (!report.ok) Deno.exitCode = 1;
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
  /** Connect failures and resets since the start. */
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
  /** Samples: verified round trips (stream: 64 KiB chunks written → echoed). */
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
 *
 * const r = await runBench({
 *   host: "127.0.0.1", port: 7, connections: 4, durationMs: 1_000, size: 64, mode: "pingpong",
 * });
 * console.log(JSON.stringify(r));
 * ```
 */
export interface BenchReport {
  /** The options of the run (without `signal` and `onProgress`; no rate is `null`). */
  options: {
    host: string;
    port: number;
    connections: number;
    durationMs: number;
    size: number;
    mode: BenchMode;
    rate: number | null;
  };
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
  /** Echoed megabytes (10^6 bytes) per second: `bytesReceived / elapsedS / 1e6`. */
  mbPerS: number;
  /** Connections established (churn: one per echo). */
  connectionsOpened: number;
  /** Connection attempts that failed. */
  connectionsFailed: number;
  /** `connectionsOpened / elapsedS`, the figure that matters for churn. */
  connectionsPerS: number;
  /** Connect failures plus resets. */
  errors: number;
  /** Connections reset, failed or closed by the server mid-run. */
  resets: number;
  /** `corrupted + short`. */
  mismatches: number;
  /** Echoes whose bytes differed from what was sent, or had bytes added. */
  corrupted: number;
  /** Echoes cut short: the server closed early or never sent every byte back. */
  short: number;
  /** The first error seen, for diagnosis; `null` when none. */
  firstError: string | null;
  /** No errors and no mismatches: the figure a CLI's exit code should follow. */
  ok: boolean;
  /** Round-trip latency, µs (pingpong: send → echo; churn: connect → echo → close). */
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
const MAX_SIZE = 16 * 1024 * 1024;
/**
 * Deno's timers fire 0.1–1.4 ms late, so sleeps are cut short by this much:
 * a message sent early is timed from its actual send, one sent late from its
 * schedule, so erring early keeps the timer's lateness out of the latency.
 */
const TIMER_SLACK_MS = 2;
/** How long the first connections may take before the run gives up on them. */
const CONNECT_TIMEOUT_MS = 10_000;
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
 * Validates the options, runs the load and reports. Rejects with
 * `cannot connect to HOST:PORT: REASON` when not one connection can be opened,
 * and with a `RangeError` for invalid options. Every socket and timer is closed
 * before it resolves.
 *
 * @example
 * ```ts
 * import { runBench } from "./bench.ts";
 *
 * const ac = new AbortController();
 * Deno.addSignalListener("SIGINT", () => ac.abort());
 * const report = await runBench({
 *   host: "127.0.0.1", port: 7, connections: 50, durationMs: 30_000, size: 512,
 *   mode: "churn", signal: ac.signal,
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
 *
 * const r = await runBench({
 *   host: "127.0.0.1", port: 7, connections: 4, durationMs: 1_000, size: 64, mode: "pingpong",
 * });
 * console.log(formatReport(r));
 * ```
 */
export function formatReport(r: BenchReport): string {
  const o = r.options;
  const what = o.mode === "stream"
    ? `stream, ${o.connections} connections`
    : `${o.mode}, ${o.connections} ${o.mode === "churn" ? "slots" : "connections"} × ${
      bytes(o.size)
    }`;
  const pace = o.rate === null ? "closed loop" : `open loop at ${int(o.rate)} msg/s`;
  const l = r.latencyUs;
  const lines = [
    `bench ${what}, ${fixed(r.elapsedS, 2)} s against ${hostPort(o.host, o.port)} (${pace})`,
    `  messages     ${int(r.messages)}  (${int(r.msgsPerS)} msg/s)`,
    `  throughput   ${fixed(r.mbPerS, 1)} MB/s echoed  (sent ${mb(r.bytesSent)}, received ${
      mb(r.bytesReceived)
    })`,
    `  connections  ${int(r.connectionsOpened)} opened (${int(r.connectionsPerS)}/s), ${
      int(r.connectionsFailed)
    } failed`,
    `  errors       ${int(r.errors)}  (${int(r.connectionsFailed)} connect, ${
      int(r.resets)
    } reset)${r.firstError === null ? "" : `  first: ${r.firstError}`}`,
    `  mismatches   ${int(r.mismatches)}  (${int(r.corrupted)} corrupted, ${int(r.short)} short)`,
  ];
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
 *
 * await runBench({
 *   host: "127.0.0.1", port: 7, connections: 10, durationMs: 5_000, size: 64, mode: "pingpong",
 *   onProgress: (p) => console.log(formatProgress(p)),
 * });
 * ```
 */
export function formatProgress(p: BenchProgress): string {
  return [
    `${fixed(p.elapsedS, 0).padStart(4)}s`,
    `${int(p.msgsPerS).padStart(11)} msg/s`,
    `${fixed(p.mbPerS, 1).padStart(8)} MB/s`,
    `p99 ${int(p.p99Us).padStart(8)} µs`,
    `${int(p.openConnections)} conns`,
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
  intIn("connections", o.connections, 1, 1_000_000);
  intIn("size", o.size, 1, MAX_SIZE);
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

  startedAt = 0;
  stoppedAt = 0;
  lastEchoAt = 0;
  messages = 0;
  bytesSent = 0;
  bytesReceived = 0;
  opened = 0;
  failed = 0;
  resets = 0;
  corrupted = 0;
  short = 0;
  firstError: string | null = null;

  constructor(o: BenchOptions) {
    this.host = o.host;
    this.port = o.port;
    this.size = o.size;
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

  /** Counts a connection that died mid-run, unless we are the ones closing it. */
  reset(err: unknown): void {
    if (this.closing) return;
    this.resets++;
    this.noteError(err);
  }

  noteError(err: unknown): void {
    this.firstError ??= describe(err);
  }

  closeAll(): void {
    this.closing = true;
    this.stop();
    this.teardown.abort();
    for (const conn of [...this.open]) this.release(conn);
  }
}

async function execute(run: Run, o: BenchOptions): Promise<BenchReport> {
  const dialTimer = setTimeout(
    () => run.dialing.abort(new Error(`timed out after ${CONNECT_TIMEOUT_MS / 1000} s`)),
    CONNECT_TIMEOUT_MS,
  );
  const dialed = await Promise.all(
    Array.from({ length: o.connections }, () => run.connect(run.dialing.signal)),
  );
  clearTimeout(dialTimer);
  const conns = dialed.filter((c): c is Deno.TcpConn => c !== null);
  if (conns.length === 0 && !run.stopping) {
    throw new Error(
      `cannot connect to ${hostPort(o.host, o.port)}: ${run.firstError ?? "no connection"}`,
    );
  }
  run.startedAt = performance.now();
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
    loops = dialed.map((c, i) => churn(run, c, i, i * interval / senders, interval));
  }
  const all = Promise.all(loops);
  try {
    await Promise.race([all, run.stopped]);
    run.stop();
    // Give in-flight echoes a bounded time to come back; what is still missing
    // then is a short echo.
    let drain: Timer | undefined;
    const drained = new Promise<void>((resolve) => {
      drain = setTimeout(resolve, Math.min(2000, Math.max(200, o.durationMs)));
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
      errors: run.failed + run.resets,
      mismatches: run.corrupted + run.short,
    };
    run.total.merge(run.window);
    run.window.reset();
    lastAt = now;
    lastMessages = run.messages;
    lastBytes = run.bytesReceived;
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
  const errors = run.failed + run.resets;
  const mismatches = run.corrupted + run.short;
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
    msgsPerS: per(run.messages),
    mbPerS: per(run.bytesReceived) / 1e6,
    connectionsOpened: run.opened,
    connectionsFailed: run.failed,
    connectionsPerS: per(run.opened),
    errors,
    resets: run.resets,
    mismatches,
    corrupted: run.corrupted,
    short: run.short,
    firstError: run.firstError,
    ok: errors === 0 && mismatches === 0,
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

/** Writes `view` from `sent` on, after a partial write; throws if the connection fails. */
async function writeRest(run: Run, conn: Deno.TcpConn, view: Uint8Array, sent: number) {
  while (sent < view.length) {
    const n = await conn.write(view.subarray(sent));
    run.bytesSent += n;
    sent += n;
  }
}

const ECHO_OK = 0;
const ECHO_BAD = 1;
const ECHO_DEAD = 2;

/**
 * Reads the rest of one `size`-byte message sent from pattern slot `slot`,
 * given what the first read returned, verifying as it goes. ECHO_BAD:
 * corrupted or extra bytes (counted). ECHO_DEAD: the connection ended first
 * (counted as a short echo and, unless we closed it, a reset).
 */
async function readEcho(
  run: Run,
  conn: Deno.TcpConn,
  buf: Uint8Array,
  slot: number,
  first: number | null,
): Promise<number> {
  const size = run.size;
  const at = run.slotAt[slot];
  let got = 0;
  let intact = true;
  let n = first;
  try {
    for (;;) {
      if (n === null) throw new Error("connection closed by the server mid-echo");
      run.bytesReceived += n;
      const want = size - got;
      if (n > want) {
        // More bytes than were sent: the echo added some.
        intact = false;
        break;
      }
      if (intact && !run.pattern.matches(buf, n, at + got)) intact = false;
      got += n;
      if (got === size) break;
      n = await conn.read(buf);
    }
  } catch (err) {
    return dead(run, err);
  }
  if (intact) return ECHO_OK;
  run.corrupted++;
  return ECHO_BAD;
}

function dead(run: Run, err: unknown): number {
  run.short++;
  run.reset(err);
  return ECHO_DEAD;
}

/**
 * Sends the message of `slot` and reads its echo back. The common case, one
 * write and one read carrying the whole message, stays in this function:
 * every extra async call per message costs throughput.
 */
async function exchange(
  run: Run,
  conn: Deno.TcpConn,
  buf: Uint8Array,
  slot: number,
): Promise<number> {
  const view = run.slotView[slot];
  try {
    const sent = await conn.write(view);
    run.bytesSent += sent;
    if (sent < view.length) await writeRest(run, conn, view, sent);
  } catch (err) {
    run.reset(err);
    return ECHO_DEAD;
  }
  let n: number | null;
  try {
    n = await conn.read(buf);
  } catch (err) {
    return dead(run, err);
  }
  if (n === view.length && run.pattern.matches(buf, n, run.slotAt[slot])) {
    run.bytesReceived += n;
    return ECHO_OK;
  }
  return await readEcho(run, conn, buf, slot, n);
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
  let slot = index % SLOTS;
  let due = run.startedAt + phase;
  let start = performance.now();
  while (!run.stopping) {
    if (interval > 0) {
      start = await paced(run, due);
      if (run.stopping) break;
      due += interval;
    }
    // exchange(), inlined: this loop is the client's whole per-message cost.
    const view = run.slotView[slot];
    let outcome = ECHO_DEAD;
    try {
      const sent = await conn.write(view);
      run.bytesSent += sent;
      if (sent < size) await writeRest(run, conn, view, sent);
    } catch (err) {
      run.reset(err);
      break;
    }
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch (err) {
      dead(run, err);
      break;
    }
    if (n === size && run.pattern.matches(buf, n, run.slotAt[slot])) {
      run.bytesReceived += n;
      outcome = ECHO_OK;
    } else {
      outcome = await readEcho(run, conn, buf, slot, n);
      if (outcome === ECHO_DEAD) break;
    }
    const done = performance.now();
    if (outcome === ECHO_OK) {
      run.messages++;
      run.window.record((done - start) * 1000);
    }
    run.lastEchoAt = done;
    // Closed loop: the next message leaves now, so its round trip starts now.
    start = done;
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
  }
  run.release(conn);
}

async function churn(
  run: Run,
  first: Deno.TcpConn | null,
  index: number,
  phase: number,
  interval: number,
): Promise<void> {
  const buf = new Uint8Array(Math.min(run.size, READ_MAX) + 1);
  let slot = index % SLOTS;
  // The first connection was opened before the clock started, together with
  // all the others: its echo counts and takes the first slot of the schedule,
  // its latency would not mean much.
  let due = run.startedAt + phase + (first === null ? 0 : interval);
  let conn = first;
  let start = -1;
  let failedBefore = first === null;
  while (!run.stopping) {
    if (conn === null) {
      if (failedBefore) await run.until(performance.now() + RETRY_MS);
      if (run.stopping) break;
      start = interval > 0 ? await paced(run, due) : performance.now();
      if (run.stopping) break;
      conn = await run.connect(run.teardown.signal);
      if (conn === null) {
        failedBefore = true;
        continue;
      }
      if (interval > 0) due += interval;
    }
    failedBefore = false;
    const outcome = await exchange(run, conn, buf, slot);
    run.release(conn);
    conn = null;
    const done = performance.now();
    if (outcome === ECHO_OK) {
      run.messages++;
      if (start >= 0) run.window.record((done - start) * 1000);
    }
    if (outcome !== ECHO_DEAD) run.lastEchoAt = done;
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
  }
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
    st.room?.();
    st.room = null;
    if (err !== undefined) {
      // What was written and not echoed back never will be.
      if (st.received < st.sent) run.short++;
      run.reset(err);
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
        if (n === null) throw new Error("connection closed by the server mid-stream");
        run.bytesReceived += n;
        // A flipped byte leaves the stream aligned, so keep going and count
        // each corrupted read; a dropped one misaligns the rest, which then
        // counts on every read, as it should.
        if (st.received + n > st.sent + st.writing) run.corrupted++;
        else if (!run.pattern.matches(buf, n, (phase + st.received) % PERIOD)) {
          run.corrupted++;
        }
        st.received += n;
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

function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
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
