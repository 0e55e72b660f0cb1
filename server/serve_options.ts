/**
 * What {@linkcode serve} takes and gives: its options and their defaults,
 * the options a running server can change, and the running server.
 *
 * @module
 */
import type { GuardOptions } from "../admission/guard.ts";
import type { ProxyProtocolOptions } from "../proxy/listener.ts";
import type { WhenFull } from "./acceptor.ts";
import type { Listener, TcpAddr, TlsMaterial } from "../transport/contract.ts";
import type { ServerStats } from "./stats.ts";
import { type ServeTlsOptions, TLS_DEFAULTS } from "../transport/tls.ts";
import type { UdpOptions } from "../transport/udp.ts";
import type { Guard } from "../admission/guard.ts";

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
   * `port`, and with `clientCa`, require a client certificate signed by it
   * (mutual TLS); each connection's handshake runs once it is admitted,
   * within `handshakeTimeoutMs`. With `proxyProtocol` on io `epoll` only (the
   * PROXY header is read first, then the handshake runs). For a Unix socket, pass
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
   * takes an IP address, not a name); with `tls`, through the system's
   * OpenSSL 3 (`libssl.so.3`).
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
   * Serves `material` (certificate, key, client CA) to the TLS handshakes
   * that begin from now on, whatever the engine; open connections go on as
   * they are. SIGHUP reloads the certificate files through this.
   *
   * @throws {Error} when the server does not serve TLS, or `material`
   *   cannot serve it (the reason in words): nothing changes then.
   */
  updateTls(material: TlsMaterial): void;
  /**
   * Puts these fault specs in force for the connections and datagram
   * sources selected from now on, replacing the ones before; for a server
   * started with `faults`. All or nothing: throws on a bad spec.
   */
  reconfigureFaults?(specs: readonly string[]): void;
}
