/**
 * The shared state of one run: counters, latency histograms, open sockets and
 * the stop signal, which every connection loop updates.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { dial, type Endpoint, endpointOf, HandshakeClosed } from "../client/dial.ts";
import { Fairness } from "./fairness.ts";
import { Histogram } from "./histogram.ts";
import type { BenchMode, BenchOptions } from "./options.ts";
import { Pattern, PERIOD } from "./pattern.ts";
import { type ProxyHeaders, proxyHeaders } from "./proxy.ts";
import { TIMER_SLACK_MS, Wakeups } from "./schedule.ts";

/**
 * How long a TLS connection the run ends may take to close cleanly: the
 * server's close_notify and FIN after ours, or the connection is closed anyway.
 */
export const GENTLE_CLOSE_MS = 1000;

/** Distinct message payloads per connection in pingpong and churn. */
export const SLOTS = 64;
/** Read buffer size cap. */
export const READ_MAX = 65536;

/** Shared state of one run: counters, histograms, open sockets, timers. */
export class Run {
  /** Server host name or address. */
  readonly host: string;
  /** Server port. */
  readonly port: number;
  /** Where every connection goes: TCP, TLS or a Unix socket. */
  readonly endpoint: Endpoint;
  /** Message size (pingpong, churn). */
  readonly size: number;
  /** The run's mode. */
  readonly mode: BenchMode;
  /** How long in-flight echoes may take to come back once sending stops. */
  readonly drainMs: number;
  /** What every connection sends. */
  readonly pattern: Pattern;
  /** The PROXY headers every connection sends first, when the run speaks as a proxy. */
  readonly proxyHeaders: ProxyHeaders | undefined;
  /** Pattern offsets of the pingpong/churn payloads, and views of them to send. */
  readonly slotAt: Int32Array = new Int32Array(SLOTS);
  /** The payload of each slot, a view of the pattern from `slotAt`. */
  readonly slotView: Uint8Array[] = [];
  /** Aborts the first connects when they take too long or the run stops. */
  readonly dialing = new AbortController();
  /** Aborts churn's pending connects when the run is torn down. */
  readonly teardown = new AbortController();
  /** Connections open now. */
  readonly open = new Set<Deno.Conn>();
  /** Latency of the current progress interval; merged into `total` at each tick. */
  readonly window = new Histogram();
  /** Latency of the intervals already reported. */
  readonly total = new Histogram();
  /** Each connection's wait for its echo, and the pauses that end a starvation. */
  readonly fairness: Fairness;
  /** Verified echoes of each connection (churn: slot), from the measurement's start to its stop. */
  readonly perConnection: Uint32Array;
  /** Connections the epoll engine has open now (the Deno engine's are in `open`). */
  peersOpen = 0;

  /** No new messages once set; in-flight echoes may still complete. */
  stopping = false;
  /** Set when sockets are being force-closed: errors from then on are expected. */
  closing = false;
  /** Resolves when the run stops. */
  readonly stopped: Promise<void>;
  #resolveStopped: () => void;
  readonly #wakeups = new Wakeups();
  /** TLS connections being closed cleanly; the run waits for them before it reports. */
  readonly #ending = new Set<Promise<void>>();

  /** When the first connects began (performance.now() clock). */
  dialStartedAt = 0;
  /** When the load began; 0 before. */
  startedAt = 0;
  /** When sending stopped. */
  stoppedAt = 0;
  /** When the last echo completed. */
  lastEchoAt = 0;
  /** Messages echoed and verified. */
  messages = 0;
  /** Payload bytes written. */
  bytesSent = 0;
  /** Payload bytes read back. */
  bytesReceived = 0;
  /** Connections established, including those later `refused`. */
  opened = 0;
  /** Connect attempts that failed. */
  failed = 0;
  /** Connections the server closed before any echo completed. */
  refused = 0;
  /** Connections that had served and then failed or were closed by the server. */
  resets = 0;
  /** Echoes that came back full length but different, or with bytes added. */
  corrupted = 0;
  /** Echoes that stopped partway. */
  short = 0;
  /** Messages (stream: connections) with no byte back when the drain time ran out. */
  timedOut = 0;
  /** Connections (churn: slots) that got no echo before sending stopped. */
  starved = 0;
  /** The first error noted. */
  firstError: string | null = null;
  /** Stopped by the caller's signal before the duration was up. */
  interrupted = false;

  /** Prepares a run of `o`, validated; nothing is opened yet. */
  constructor(o: BenchOptions) {
    this.host = o.host;
    this.port = o.port;
    this.endpoint = endpointOf(o);
    this.size = o.size;
    this.mode = o.mode;
    this.proxyHeaders = proxyHeaders(o);
    this.drainMs = Math.min(2000, Math.max(200, o.durationMs));
    this.fairness = new Fairness(o.connections);
    this.perConnection = new Uint32Array(o.connections);
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

  /** Stops sending: wakes every sleeper and aborts the first connects. */
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

  /**
   * Calls `wake` about at `time` (performance.now() clock), or at once when
   * the run stops: a sleep for the epoll engine, without a `Promise`.
   */
  wakeAt(time: number, wake: () => void): void {
    if (this.stopping) wake();
    else this.#wakeups.call(time, wake);
  }

  /**
   * Ends the warm-up: what was measured so far (echoes, bytes, latency, each
   * connection's count) is left out of the report, which covers the load
   * from `now` on. Errors are kept: a failure in the warm-up is still one.
   * Bytes count in the period they were sent: those in flight now were sent
   * in the warm-up, and their echoes, which each connection returns before
   * any later byte, are left out of what is received (so it starts below 0).
   */
  endWarmup(now: number): void {
    this.startedAt = now;
    this.messages = 0;
    this.bytesReceived = -Math.max(0, this.bytesSent - this.bytesReceived);
    this.bytesSent = 0;
    this.window.reset();
    this.total.reset();
    this.perConnection.fill(0);
  }

  /**
   * Waits for a connection's next send time in open-loop mode and returns the
   * time to measure its latency from: the scheduled time, or the actual send if
   * the timer woke us early (never before the bytes left).
   */
  async paced(due: number): Promise<number> {
    if (due - performance.now() > TIMER_SLACK_MS) await this.until(due);
    return Math.min(due, performance.now());
  }

  /** Opens a connection; null on failure, which is counted unless we stopped. */
  async connect(signal: AbortSignal): Promise<Deno.Conn | null> {
    try {
      // The signal only aborts the connect: an open connection stays open.
      const conn = await dial(this.endpoint, signal);
      try {
        await this.proxyHeaders?.send(conn);
      } catch (error) {
        conn.close(); // refused by a server that does not trust this proxy
        throw error;
      }
      if (this.closing) {
        conn.close();
        return null;
      }
      this.open.add(conn);
      this.opened++;
      return conn;
    } catch (err) {
      if (this.stopping) return null;
      this.connectFailed(err, err instanceof HandshakeClosed);
      return null;
    }
  }

  /**
   * Counts a connect that failed with `error`. One the server closed as it
   * was made (`closedAtOnce`: before TLS could start) or reset (a flapping
   * backend, `--fault refuse`) is refused, as a plain server refuses; any
   * other failed to connect.
   */
  connectFailed(error: unknown, closedAtOnce = false): void {
    if (closedAtOnce || error instanceof Deno.errors.ConnectionReset) {
      this.opened++;
      this.refused++;
      this.noteError(
        new Error(
          closedAtOnce && error instanceof Error
            ? `${error.message} (refused?)`
            : `the server closed the connection before echoing (refused?): ${describeError(error)}`,
        ),
      );
    } else {
      this.failed++;
      this.noteError(error);
    }
  }

  /** Closes a connection of this run, once. */
  release(conn: Deno.Conn): void {
    if (!this.open.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed by the peer's reset or by the teardown signal.
    }
  }

  /**
   * Ends a connection that is done, with nothing left to read: as
   * {@linkcode release}, except over TLS, where closing at once (and the
   * process exiting soon after) makes the server see a reset instead of the
   * end. There the connection ends in the background as a client should:
   * close_notify and FIN, then the server's own, within {@linkcode GENTLE_CLOSE_MS};
   * {@linkcode ended} waits for it. Not for a connection with a read pending.
   */
  finish(conn: Deno.Conn): void {
    if (this.endpoint.transport !== "tls" || !this.open.has(conn)) return this.release(conn);
    this.open.delete(conn);
    const ending = closeGently(conn, GENTLE_CLOSE_MS);
    this.#ending.add(ending);
    void ending.then(() => this.#ending.delete(ending));
  }

  /** Resolves once the connections being closed cleanly are closed (each within a bound). */
  async ended(): Promise<void> {
    while (this.#ending.size > 0) await Promise.all(this.#ending);
  }

  /** Keeps the first error for the report: a sentence, or an error put into words. */
  noteError(err: unknown): void {
    this.firstError ??= typeof err === "string" ? err : describeError(err);
  }

  /** Stops and closes every socket; errors from then on are the run's own doing. */
  closeAll(): void {
    this.closing = true;
    this.stop();
    this.teardown.abort();
    for (const conn of [...this.open]) this.release(conn);
  }
}

/**
 * Closes `conn` as a well-behaved client does: shuts its writing down (over
 * TLS: close_notify, then FIN), reads what is left up to the server's own
 * close, then closes; at `ms` it closes whatever the state.
 */
async function closeGently(conn: Deno.Conn, ms: number): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), ms);
  try {
    try {
      await conn.closeWrite();
    } catch {
      // Shut already (a half-close of the stream mode): read on to the end all the same.
    }
    const sink = new Uint8Array(READ_MAX);
    while (await conn.read(sink) !== null) {
      // Whatever the server still sends is not measured any more.
    }
  } catch {
    // A reset, or closed at the time limit: either way it is over.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}
