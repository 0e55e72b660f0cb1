/**
 * {@linkcode serve}: a listener, an {@linkcode Acceptor} that admits or
 * refuses what it accepts, and a {@linkcode ConnectionTable} that echoes the
 * admitted connections, joined into one running server that can shut down.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { Guard } from "../admission/guard.ts";
import { logger } from "../log/log.ts";
import { Acceptor, type WhenFull } from "./acceptor.ts";
import { ConnectionTable } from "./connections.ts";
import { LimitLog } from "./limit_log.ts";
import { describeAddr, type Listener, listenTcp, type TcpAddr } from "./listener.ts";
import { type ServerStats, summary } from "./stats.ts";

/** What {@linkcode serve} uses for the options left out; the command line shows and uses the same. */
export const SERVE_DEFAULTS = {
  /** Listen on every IPv4 address. */
  hostname: "0.0.0.0",
  /** The port to listen on. */
  port: 8000,
  /** How long open connections may finish after a shutdown. */
  drainTimeoutMs: 10_000,
  /** At the cap, queue newcomers in the backlog. */
  whenFull: "wait",
  /** Close a connection silent this long. */
  idleTimeoutMs: 300_000,
  /** No limit on a connection's lifetime. */
  maxLifetimeMs: 0,
} as const satisfies Required<
  Pick<
    ServeOptions,
    "hostname" | "port" | "drainTimeoutMs" | "whenFull" | "idleTimeoutMs" | "maxLifetimeMs"
  >
>;

/** Options for {@linkcode serve}; `A` is the listener's kind of address. */
export interface ServeOptions<A extends Deno.Addr = TcpAddr> {
  /**
   * Where the connections come from, e.g. a TLS or Unix socket listener;
   * `hostname`, `port` and `reusePort` are then unused. The server closes it
   * at shutdown. @default {a TCP listener on hostname and port}
   */
  listener?: Listener<A>;
  /** Address to listen on; `::` listens on IPv6 too. @default {"0.0.0.0"} */
  hostname?: string;
  /** Port to listen on; 0 picks a free one (see {@linkcode EchoServer.addr}). @default {8000} */
  port?: number;
  /** Let several listeners share the port (for workers; unstable `net`). @default {false} */
  reusePort?: boolean;
  /** How long open connections may finish after {@linkcode EchoServer.shutdown}. @default {10000} */
  drainTimeoutMs?: number;
  /** The admission limits. @default {new Guard()} */
  guard?: Guard;
  /**
   * At the guard's cap: `wait` stops accepting until a connection closes, so
   * newcomers queue in the kernel's backlog; `refuse` accepts and closes them.
   * @default {"wait"}
   */
  whenFull?: WhenFull;
  /** Close a connection that has sent nothing for this long; 0 turns it off. @default {300000} */
  idleTimeoutMs?: number;
  /** Close any connection open for this long; 0 turns it off. @default {0} */
  maxLifetimeMs?: number;
  /** A line written to refused connections before they are closed. */
  rejectMessage?: string;
}

/** A running echo server; `A` is its listener's kind of address. */
export interface EchoServer<A extends Deno.Addr = TcpAddr> extends AsyncDisposable {
  /** The address it listens on, with the real port when 0 was asked for. */
  readonly addr: A;
  /**
   * Settles when the server has stopped: resolves after a shutdown, rejects
   * when the listener died under it.
   */
  readonly finished: Promise<ServerStats>;
  /** Stops accepting, lets connections drain, closes the rest; resolves with the final stats. */
  shutdown(): Promise<ServerStats>;
  /** The counters as they are now. */
  stats(): ServerStats;
}

const log = logger("server");

/**
 * Starts an echo server on a TCP port and returns at once; it serves until
 * {@linkcode EchoServer.shutdown}.
 *
 * @throws {ListenError} when it cannot listen.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { serve } from "./serve.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * using conn = await Deno.connect(server.addr);
 * await conn.write(new TextEncoder().encode("hi"));
 * const reply = new Uint8Array(2);
 * await conn.read(reply);
 * deepEqual(new TextDecoder().decode(reply), "hi");
 * ```
 */
export function serve(options?: ServeOptions): EchoServer;
/**
 * Starts an echo server on connections from `options.listener` and returns
 * at once; it serves until {@linkcode EchoServer.shutdown}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { serve } from "./serve.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * await using server = serve({ listener });
 * equal(server.addr.port, listener.addr.port);
 * ```
 */
export function serve<A extends Deno.Addr>(
  options: ServeOptions<A> & { listener: Listener<A> },
): EchoServer<A>;
export function serve(options: ServeOptions<Deno.Addr> = {}): EchoServer<Deno.Addr> {
  const listener = options.listener ?? listenTcp({
    hostname: options.hostname ?? SERVE_DEFAULTS.hostname,
    port: options.port ?? SERVE_DEFAULTS.port,
    reusePort: options.reusePort,
  });
  return new Server(listener, options);
}

/** The glue: starts the parts, reports their counts, and stops them in order. */
class Server implements EchoServer<Deno.Addr> {
  readonly addr: Deno.Addr;
  readonly finished: Promise<ServerStats>;
  readonly #finished = Promise.withResolvers<ServerStats>();
  readonly #drainTimeoutMs: number;
  readonly #limits = new LimitLog();
  readonly #table: ConnectionTable;
  readonly #acceptor: Acceptor;
  readonly #accepting: Promise<void>;
  #state: "serving" | "draining" | "stopped" = "serving";

  constructor(listener: Listener, options: ServeOptions<Deno.Addr>) {
    this.addr = listener.addr;
    this.finished = this.#finished.promise;
    // Callers that never await it must not see an unhandled rejection.
    this.finished.catch(() => {});
    this.#drainTimeoutMs = options.drainTimeoutMs ?? SERVE_DEFAULTS.drainTimeoutMs;
    const guard = options.guard ?? new Guard();
    log.info("listening on {address}", { address: describeAddr(this.addr) });
    this.#table = new ConnectionTable({
      idleTimeoutMs: options.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
      maxLifetimeMs: options.maxLifetimeMs ?? SERVE_DEFAULTS.maxLifetimeMs,
      onLimit: (reason, peer, id) => {
        guard.count(reason);
        this.#limits.record(reason, peer, id);
      },
    });
    this.#acceptor = new Acceptor(listener, {
      guard,
      whenFull: options.whenFull ?? SERVE_DEFAULTS.whenFull,
      rejectLine: options.rejectMessage === undefined
        ? undefined
        : new TextEncoder().encode(options.rejectMessage + "\n"),
      onAdmitted: (conn, peer, release) => this.#table.add(conn, peer, release),
      onRefused: (reason, peer) => this.#limits.record(reason, peer),
    });
    this.#accepting = this.#acceptor.run().then(
      (end) => {
        if (end === "listener closed") this.#lose("the listener closed");
      },
      (error: unknown) => this.#lose(describeError(error), error),
    );
  }

  stats(): ServerStats {
    return { ...this.#table.counts(), refusals: this.#limits.counts };
  }

  async shutdown(): Promise<ServerStats> {
    if (this.#state !== "serving") return await this.finished;
    this.#state = "draining";
    this.#acceptor.stop();
    await this.#accepting;
    await this.#table.drain(this.#drainTimeoutMs);
    this.#state = "stopped";
    this.#table.stop();
    const stats = this.stats();
    log.info("stopped: {summary}", { ...stats, summary: summary(stats) });
    this.#finished.resolve(stats);
    return stats;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /** The listener died while serving: nothing will be accepted again, so stop everything. */
  #lose(why: string, cause?: unknown): void {
    if (this.#state !== "serving") return;
    this.#state = "stopped";
    this.#table.stop();
    this.#table.closeAll("listener lost");
    this.#finished.reject(
      new Error(`stopped listening on ${describeAddr(this.addr)}: ${why}`, { cause }),
    );
  }
}
