/**
 * What a benchmark run is asked to do: the load modes, the bounds and the
 * options of `runBench`, and their validation.
 *
 * @module
 */
import { LONGEST_MS } from "../text/duration.ts";
import { checkProxyOptions } from "./proxy.ts";
import { checkUdpOptions } from "./datagram.ts";
import type { ClientTlsOptions } from "../client/dial.ts";

/**
 * What the load generator does on each connection.
 *
 * - `pingpong`: send `size` bytes, wait for exactly those bytes back, verify,
 *   record the round trip, repeat.
 * - `stream`: write continuously while reading and verifying the echoed
 *   stream; `size` is not used. Latency is from a 64 KiB write to the end of
 *   its echo.
 * - `churn`: connect, echo `size` bytes, close, repeat; latency is
 *   connect + echo + close.
 *
 * @example
 * ```ts no-assert
 * import type { BenchMode } from "./options.ts";
 *
 * const mode: BenchMode = "churn";
 * ```
 */
export type BenchMode = "pingpong" | "stream" | "churn";

/**
 * Every {@linkcode BenchMode}, in the order the help lists them.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { BENCH_MODES } from "./options.ts";
 * ok(BENCH_MODES.includes("churn"));
 * ```
 */
export const BENCH_MODES: readonly BenchMode[] = ["pingpong", "stream", "churn"];

/**
 * The largest load `runBench` accepts; the command line checks the same bounds.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { BENCH_LIMITS } from "./options.ts";
 * equal(BENCH_LIMITS.maxSize, 16 * 1024 * 1024);
 * ```
 */
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
 * ```ts no-assert
 * import type { BenchOptions } from "./options.ts";
 *
 * const options: BenchOptions = {
 *   host: "127.0.0.1",
 *   port: 7,
 *   connections: 100,
 *   durationMs: 10_000,
 *   size: 64,
 *   mode: "pingpong",
 *   rate: 50_000, // open loop: latency counted from each message's scheduled time
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
   * Open loop (pingpong and churn only): messages per second over all
   * connections, each sent on a fixed schedule and timed from it, so a stalled
   * server cannot hide its stall (no coordinated omission). Without it every
   * connection sends as soon as its echo is back.
   */
  rate?: number;
  /**
   * Speak as a proxy: every connection first sends a PROXY protocol header of
   * this version (1 or 2), then runs its mode as usual.
   */
  proxy?: 1 | 2;
  /**
   * With `proxy`: the client addresses the headers carry, taken in turn from
   * this CIDR block (IPv6: one per /64), so that per-address limits can be
   * loaded from one machine. Without it, each header carries the
   * connection's own address.
   */
  proxySources?: string;
  /**
   * Speak TLS on every connection, verifying the server's certificate
   * (`true`: against the roots Deno trusts). The handshake is part of the
   * connect, and of churn's latency.
   */
  tls?: boolean | ClientTlsOptions;
  /**
   * With `tls` on `io: "epoll"`: `false` makes every connection a full
   * handshake; by default each offers the last connection's session.
   * @default {true}
   */
  tlsResume?: boolean;
  /** Connect to this Unix domain socket instead of `host` and `port` (not with `tls` or `udp`). */
  path?: string;
  /**
   * Send UDP datagrams instead (pingpong only): one socket, and so one source
   * port, per connection; each datagram carries its socket and sequence
   * number, so that lost, duplicated and reordered ones are counted. `size`
   * is then 8 to 65,507 bytes.
   */
  udp?: boolean;
  /**
   * With `udp`, closed loop: datagrams each socket keeps in flight, waiting
   * for an echo (or a second without one, counted lost) before sending more.
   * @default {1}
   */
  window?: number;
  /**
   * What drives the TCP connections: `deno` (the default), Deno's own
   * sockets with a `Promise` loop per connection; or `epoll`, the libc epoll
   * engine the server has too (Linux, `--allow-ffi`, TCP and TLS through
   * the system's OpenSSL 3: not with `path` or `udp`), a state machine per
   * connection with no `Promise` per message.
   */
  io?: "deno" | "epoll";
  /**
   * Load this long first, measured but left out of the report (errors
   * excepted): the run lasts `warmupMs + durationMs`.
   * @default {0}
   */
  warmupMs?: number;
  /**
   * Open the connections gradually over this long from the start, connection
   * `i` of `n` at `i / n` of it, each loading as soon as it is open; part of
   * the run's time (leave it out of the figures with `warmupMs` ≥ `rampMs`).
   * @default {0}
   */
  rampMs?: number;
  /** Stops the run early; the report covers the time until then. */
  signal?: AbortSignal;
  /** Called about once a second with the figures of the last interval. */
  onProgress?: (p: BenchProgress) => void;
}

/**
 * Figures of one progress interval (about a second), for the live line.
 *
 * @example
 * ```ts no-assert
 * import type { BenchProgress } from "./options.ts";
 *
 * const p: BenchProgress = {
 *   elapsedS: 3, messages: 510_000, msgsPerS: 170_000, mbPerS: 10.9, p99Us: 1_300,
 *   openConnections: 100, errors: 0, mismatches: 0,
 * };
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
 * Checks the options, throwing a `RangeError` that names the first one out of
 * bounds.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { validateOptions } from "./options.ts";
 * throws(
 *   () =>
 *     validateOptions({
 *       host: "127.0.0.1", port: 8000, connections: 0, durationMs: 1000, size: 64,
 *       mode: "pingpong",
 *     }),
 *   RangeError,
 * );
 * ```
 */
export function validateOptions(o: BenchOptions): void {
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
  if (!(o.durationMs > 0) || !(o.durationMs <= LONGEST_MS)) {
    throw new RangeError(`durationMs must be > 0 and at most ${LONGEST_MS}, got ${o.durationMs}`);
  }
  if (!BENCH_MODES.includes(o.mode)) {
    throw new RangeError(`mode must be pingpong, stream or churn, got ${String(o.mode)}`);
  }
  if (o.rate !== undefined) {
    if (!(o.rate > 0) || !Number.isFinite(o.rate)) {
      throw new RangeError(`rate must be a positive number of messages per second, got ${o.rate}`);
    }
    if (o.mode === "stream") throw new RangeError("rate applies to pingpong and churn, not stream");
  }
  checkProxyOptions(o);
  checkUdpOptions(o);
  checkTransport(o);
  checkTiming(o);
}

/** The engine, the warm-up and the ramp. */
function checkTiming(o: BenchOptions): void {
  if (o.io !== undefined && o.io !== "deno" && o.io !== "epoll") {
    throw new RangeError(`io must be deno or epoll, got ${String(o.io)}`);
  }
  if (o.tlsResume === false && (o.io !== "epoll" || o.tls === undefined || o.tls === false)) {
    throw new RangeError("tlsResume applies to tls on io epoll");
  }
  if (o.io === "epoll" && (o.path !== undefined || o.udp)) {
    const what = o.path !== undefined ? "path" : "udp";
    throw new RangeError(`io epoll drives TCP connections: not with ${what}`);
  }
  for (const [name, v] of [["warmupMs", o.warmupMs], ["rampMs", o.rampMs]] as const) {
    if (v !== undefined && !(v >= 0 && v <= LONGEST_MS)) {
      throw new RangeError(`${name} must be from 0 to ${LONGEST_MS}, got ${v}`);
    }
    if (v !== undefined && v > 0 && o.udp) throw new RangeError(`${name} is not for udp`);
  }
  if ((o.rampMs ?? 0) > (o.warmupMs ?? 0) + o.durationMs) {
    throw new RangeError("rampMs must fit in the run: at most warmupMs + durationMs");
  }
}

/** TLS and Unix sockets: stream transports, one at a time, and not under a PROXY header. */
function checkTransport(o: BenchOptions): void {
  if (o.path !== undefined && (typeof o.path !== "string" || o.path === "")) {
    throw new RangeError("path must be a non-empty string");
  }
  const tls = o.tls !== undefined && o.tls !== false;
  if (tls && o.path !== undefined) {
    throw new RangeError("tls runs over TCP, not over a Unix socket");
  }
  if (o.udp && (tls || o.path !== undefined)) {
    throw new RangeError(`udp sends datagrams, not over ${tls ? "TLS" : "a Unix socket"}`);
  }
  if (tls && o.proxy !== undefined) {
    throw new RangeError("proxy headers go before the TLS handshake: not with tls");
  }
}
