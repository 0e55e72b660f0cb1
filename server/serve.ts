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
import { proxyListener, type ProxyProtocolOptions } from "../proxy/listener.ts";
import { Acceptor } from "./acceptor.ts";
import { ConnectionTable } from "./connections.ts";
import { LimitLog } from "./limit_log.ts";
import {
  closeQuietly,
  describeAddr,
  type Listener,
  ListenError,
  type TlsMaterial,
} from "../transport/contract.ts";
import { listenTcp } from "../transport/tcp.ts";
import { type ServerStats, summary } from "./stats.ts";
import { listenTls } from "../transport/tls.ts";
import { startUdp, type UdpEcho } from "../transport/udp.ts";
import { DatagramFaults } from "../fault/datagram.ts";
import { listenEpoll } from "../epoll/listener.ts";
import { listenEpollTls } from "../epoll/tls_listener.ts";
import { logListening } from "./listening.ts";
import { FaultTable } from "../fault/select.ts";
import { parseFaultSpecs } from "../fault/spec.ts";

export {
  type EchoServer,
  IO_ENGINES,
  type IoEngine,
  type LiveOptions,
  SERVE_DEFAULTS,
  type ServeOptions,
} from "./serve_options.ts";
import {
  type EchoServer,
  type IoEngine,
  type LiveOptions,
  SERVE_DEFAULTS,
  type ServeOptions,
} from "./serve_options.ts";

const log = logger("server");

/** How a datagram's echo is sent. */
type DatagramSend = (data: Uint8Array, to: Deno.NetAddr) => Promise<void> | void;

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
  const io = options.io ?? SERVE_DEFAULTS.io;
  if (options.tls !== undefined && options.proxyProtocol !== undefined && io !== "epoll") {
    throw new TypeError(
      'tls and proxyProtocol combine on io "epoll" only: the PROXY header comes before the TLS handshake',
    );
  }
  for (let attempt = 1;; attempt++) {
    const listener = options.listener ?? listenFor(io, options);
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
      const table = this.#faults;
      const shaper = table && ((send: DatagramSend) => new DatagramFaults(table, send));
      this.#udp = udp ? startUdp(this.addr, udp === true ? {} : udp, guard, shaper) : undefined;
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

  updateTls(material: TlsMaterial): void {
    if (this.#listener.updateTls === undefined) throw new Error("the server does not serve TLS");
    this.#listener.updateTls(material);
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

/** The listener `serve` makes when it is given none: TLS or plain TCP, on the engine `io`. */
function listenFor(io: IoEngine, options: ServeOptions<Deno.Addr>): Listener {
  const where = {
    hostname: options.hostname ?? SERVE_DEFAULTS.hostname,
    port: options.port ?? SERVE_DEFAULTS.port,
    reusePort: options.reusePort,
  };
  if (options.tls === undefined) return io === "epoll" ? listenEpoll(where) : listenTcp(where);
  const tls = { ...where, ...options.tls, handshakeTimeoutMs: handshakeTimeout(options) };
  return io === "epoll" ? listenEpollTls(tls) : listenTls(tls);
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
