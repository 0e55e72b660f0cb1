/**
 * {@linkcode serve}: a listener, an {@linkcode Acceptor} that admits or
 * refuses what it accepts, and a {@linkcode ConnectionTable} that echoes the
 * admitted connections, joined into one running server that can shut down.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { Guard, type GuardOptions } from "../admission/guard.ts";
import { logger } from "../log/log.ts";
import { proxyListener, type ProxyProtocolOptions } from "../proxy/listener.ts";
import { Acceptor, type WhenFull } from "./acceptor.ts";
import { ConnectionTable } from "./connections.ts";
import { LimitLog } from "./limit_log.ts";
import {
  closeQuietly,
  describeAddr,
  type Listener,
  ListenError,
  type TcpAddr,
} from "../transport/contract.ts";
import { listenTcp } from "../transport/tcp.ts";
import { type ServerStats, summary } from "./stats.ts";
import { listenTls, type ServeTlsOptions, TLS_DEFAULTS } from "../transport/tls.ts";
import { startUdp, type UdpEcho, type UdpOptions } from "../transport/udp.ts";
import { listenEpoll } from "../epoll/listener.ts";
import { logListening } from "./listening.ts";
import { FaultTable } from "../fault/select.ts";
import { parseFaultSpecs } from "../fault/spec.ts";

/** The I/O engines: Deno's own sockets, or epoll driven through libc (Linux, `--allow-ffi`). */
export const IO_ENGINES = ["deno", "epoll"] as const;
/** Which I/O engine serves TCP; see {@linkcode IO_ENGINES}. */
export type IoEngine = typeof IO_ENGINES[number];

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
  /** Deno's own sockets: nothing but `--allow-net` needed. */
  io: "deno",
  /** A TLS handshake must finish this soon after admission (and never after the idle timeout). */
  handshakeTimeoutMs: TLS_DEFAULTS.handshakeTimeoutMs,
} as const satisfies Required<
  Pick<
    ServeOptions,
    | "hostname"
    | "port"
    | "drainTimeoutMs"
    | "whenFull"
    | "idleTimeoutMs"
    | "maxLifetimeMs"
    | "io"
    | "handshakeTimeoutMs"
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
  /**
   * Serve TLS with this certificate and key (PEM text) on `hostname` and
   * `port`; each connection's handshake runs once it is admitted, within
   * `handshakeTimeoutMs`. Not with `proxyProtocol` (yet: the PROXY header
   * comes before the handshake). For a Unix socket, pass
   * `listener: await listenUnix(path)`. @default {plain TCP}
   */
  tls?: ServeTlsOptions;
  /**
   * With `tls`: close a connection whose handshake has not finished this
   * long after its admission, releasing its descriptor; never later than
   * `idleTimeoutMs` when that is on. @default {SERVE_DEFAULTS.handshakeTimeoutMs}
   */
  handshakeTimeoutMs?: number;
  /** Address to listen on; `::` listens on IPv6 too. @default {SERVE_DEFAULTS.hostname} */
  hostname?: string;
  /** Port to listen on; 0 picks a free one (see {@linkcode EchoServer.addr}). @default {SERVE_DEFAULTS.port} */
  port?: number;
  /** Let several listeners share the port (for workers; unstable `net`). @default {false} */
  reusePort?: boolean;
  /**
   * The I/O engine of the TCP listener made from `hostname` and `port`:
   * `epoll` drives epoll through libc (Linux only, needs `--allow-ffi`, and
   * takes an IP address, not a name); it does not serve TLS.
   * @default {SERVE_DEFAULTS.io}
   */
  io?: IoEngine;
  /** How long open connections may finish after {@linkcode EchoServer.shutdown}. @default {SERVE_DEFAULTS.drainTimeoutMs} */
  drainTimeoutMs?: number;
  /** The admission limits. @default {new Guard()} */
  guard?: Guard;
  /**
   * At the guard's cap: `wait` stops accepting until a connection closes, so
   * newcomers queue in the kernel's backlog; `refuse` accepts and closes them.
   * @default {SERVE_DEFAULTS.whenFull}
   */
  whenFull?: WhenFull;
  /** Close a connection that has sent nothing for this long; 0 turns it off. @default {SERVE_DEFAULTS.idleTimeoutMs} */
  idleTimeoutMs?: number;
  /** Close any connection open for this long; 0 turns it off. @default {SERVE_DEFAULTS.maxLifetimeMs} */
  maxLifetimeMs?: number;
  /** A line written to refused connections before they are closed. */
  rejectMessage?: string;
  /**
   * Expect a PROXY protocol header (v1 or v2) at the start of every
   * connection, from the trusted proxies only; the client address it carries
   * is then the peer for the admission rules and the logs. See `proxy/listener.ts`.
   */
  proxyProtocol?: ProxyProtocolOptions;
  /**
   * Also echo UDP datagrams on the same address and port (with port 0, the
   * one the listener got), within the guard's allow/deny rules and a reply
   * rate per source address; `true` takes the default rate. See `transport/udp.ts`.
   * @default {false}
   */
  udp?: boolean | UdpOptions;
  /**
   * Faults to inject on purpose, as `--fault` specs (see `fault/spec.ts`);
   * given, even empty, the server can take others at run time
   * ({@linkcode EchoServer.reconfigureFaults}). @default {none, and none later}
   */
  faults?: readonly string[];
}

/** What a running server takes again on a reload; see {@linkcode EchoServer.reconfigure}. */
export interface LiveOptions {
  /** The admission limits, all of them: a limit left out goes back to its default (off). */
  guard: Omit<GuardOptions, "now" | "shared" | "maxRateKeys">;
  /** A line written to refused connections before they are closed; none when undefined. */
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
  /**
   * Applies new limits to the connections admitted from now on and to the
   * caps at once; open connections stay open, even above a lowered cap.
   * All or nothing: throws on a bad limit and changes nothing.
   */
  reconfigure(options: LiveOptions): void;
  /**
   * Puts these fault specs in force for the connections and datagram
   * sources selected from now on, replacing the ones before; for a server
   * started with `faults`. All or nothing: throws on a bad spec.
   */
  reconfigureFaults?(specs: readonly string[]): void;
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
  if (options.tls !== undefined && options.proxyProtocol !== undefined) {
    throw new TypeError(
      "tls and proxyProtocol do not combine: the PROXY header comes before the TLS handshake",
    );
  }
  const io = options.io ?? SERVE_DEFAULTS.io;
  if (io === "epoll" && options.tls !== undefined) {
    throw new TypeError('the epoll engine serves plain TCP: TLS needs io "deno"');
  }
  for (let attempt = 1;; attempt++) {
    const where = {
      hostname: options.hostname ?? SERVE_DEFAULTS.hostname,
      port: options.port ?? SERVE_DEFAULTS.port,
      reusePort: options.reusePort,
    };
    const listener = options.listener ??
      (options.tls !== undefined
        ? listenTls({ ...where, ...options.tls, handshakeTimeoutMs: handshakeTimeout(options) })
        : io === "epoll"
        ? listenEpoll(where)
        : listenTcp(where));
    try {
      return new Server(listener, options);
    } catch (error) {
      // Port 0 and UDP: the free TCP port may be taken for UDP; another free one will do.
      const retry = options.listener === undefined && (options.port ?? 1) === 0 && attempt < 5 &&
        error instanceof ListenError && error.cause instanceof Deno.errors.AddrInUse;
      if (!retry) throw error;
    }
  }
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
  readonly #udp: UdpEcho | undefined;
  readonly #guard: Guard;
  readonly #listener: Listener;
  readonly #faults: FaultTable | undefined;
  #state: "serving" | "draining" | "stopped" = "serving";

  constructor(listener: Listener, options: ServeOptions<Deno.Addr>) {
    this.addr = listener.addr;
    this.#listener = listener;
    this.finished = this.#finished.promise;
    // Callers that never await it must not see an unhandled rejection.
    this.finished.catch(() => {});
    this.#drainTimeoutMs = options.drainTimeoutMs ?? SERVE_DEFAULTS.drainTimeoutMs;
    const guard = options.guard ?? new Guard();
    this.#guard = guard;
    const source = this.#withProxyProtocol(listener, options.proxyProtocol, guard);
    try {
      const faults = options.faults;
      this.#faults = faults === undefined ? undefined : new FaultTable(parseFaultSpecs(faults));
      const udp = options.udp;
      this.#udp = udp
        ? startUdp(this.addr, udp === true ? {} : udp, guard, this.#faults)
        : undefined;
    } catch (error) {
      closeQuietly(source);
      closeQuietly(listener);
      throw error;
    }
    logListening(this.addr, options);
    this.#table = new ConnectionTable({
      idleTimeoutMs: options.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
      maxLifetimeMs: options.maxLifetimeMs ?? SERVE_DEFAULTS.maxLifetimeMs,
      onLimit: (reason, peer, id) => {
        guard.count(reason);
        this.#limits.record(reason, peer, id);
      },
      faults: this.#faults,
    });
    this.#acceptor = new Acceptor(source, {
      guard,
      whenFull: options.whenFull ?? SERVE_DEFAULTS.whenFull,
      rejectLine: rejectLine(options.rejectMessage),
      onAdmitted: (conn, peer, slot) => this.#table.add(conn, peer, slot),
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
    const datagrams = this.#udp?.stats();
    return {
      ...this.#table.counts(),
      refusals: this.#limits.counts,
      ...(datagrams === undefined ? {} : { datagrams }),
      acceptErrors: this.#acceptor.acceptErrors,
      ...(this.#faults === undefined
        ? {}
        : { faulted: this.#faults.faulted, faults: { ...this.#faults.counts } }),
    };
  }

  reconfigureFaults(specs: readonly string[]): void {
    if (this.#faults === undefined) throw new Error("this server was started without faults");
    this.#faults.replace(parseFaultSpecs(specs));
  }

  reconfigure(options: LiveOptions): void {
    this.#guard.reconfigure(options.guard);
    this.#acceptor.setRejectLine(rejectLine(options.rejectMessage));
  }

  async shutdown(): Promise<ServerStats> {
    if (this.#state !== "serving") return await this.finished;
    this.#state = "draining";
    this.#acceptor.stop();
    await this.#udp?.close();
    await this.#accepting;
    await this.#table.drain(this.#drainTimeoutMs);
    await this.#listener.stopped;
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

  /** `listener`, or with the PROXY protocol, the connections from it that passed it. */
  #withProxyProtocol(
    listener: Listener,
    proxy: ProxyProtocolOptions | undefined,
    guard: Guard,
  ): Listener {
    if (proxy === undefined) return listener;
    try {
      return proxyListener(listener, proxy, {
        maxConns: guard.maxConns,
        onRefused: (reason, peer, detail) => {
          guard.count(reason);
          this.#limits.record(reason, peer, undefined, detail);
        },
      });
    } catch (error) {
      closeQuietly(listener);
      throw error;
    }
  }

  /** The listener died while serving: nothing will be accepted again, so stop everything. */
  #lose(why: string, cause?: unknown): void {
    if (this.#state !== "serving") return;
    this.#state = "stopped";
    this.#acceptor.stop(); // an acceptor that failed must not leave its listener open
    void this.#udp?.close();
    this.#table.stop();
    this.#table.closeAll("listener lost");
    this.#finished.reject(
      new Error(`stopped listening on ${describeAddr(this.addr)}: ${why}`, { cause }),
    );
  }
}

/** The handshake timeout in force: the option's, or the idle timeout where that is shorter. */
function handshakeTimeout(options: ServeOptions<Deno.Addr>): number {
  const handshake = options.handshakeTimeoutMs ?? SERVE_DEFAULTS.handshakeTimeoutMs;
  const idle = options.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs;
  return idle > 0 ? Math.min(handshake, idle) : handshake;
}

/** The bytes written to a refused connection: the message and a newline, or none. */
function rejectLine(message: string | undefined): Uint8Array | undefined {
  return message === undefined ? undefined : new TextEncoder().encode(message + "\n");
}
