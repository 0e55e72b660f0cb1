/**
 * Where the server's connections come from. The acceptor needs no more of a
 * listener than {@linkcode Listener} says, so that a TLS or Unix socket
 * listener, or another I/O engine, plugs in without touching the admission
 * rules or the echo handler.
 *
 * @module
 */
import { formatAddress } from "../text/address.ts";
import type { Duplex, EchoDone, EchoOptions } from "./echo.ts";

/**
 * An accepted connection: a byte stream with a peer. `Deno.TcpConn`,
 * `Deno.TlsConn` and `Deno.UnixConn` fit.
 */
export interface Connection extends Duplex {
  /** Who is on the other end; the admission rules key on it. */
  readonly remoteAddr: Deno.Addr;
  /** Turns Nagle's algorithm off, where the transport has it. */
  setNoDelay?(noDelay?: boolean): void;
  /**
   * Runs the echo itself, driven by readiness rather than by a read per
   * chunk, under the rules of `echoConnection` (every byte back in order; a
   * peer that does not read stalls only itself); `done` hears how it ended.
   * The buffer sizes of `options` are the engine's own business: the epoll
   * engine reads every connection into one shared buffer. An engine that has
   * its own loop offers it, and the server then uses it instead of
   * `echoConnection`.
   */
  echo?(options: EchoOptions, done: EchoDone): void;
  /**
   * Ends the connection from the server's side without destroying what was
   * already written to it: stops reading and echoing, shuts writing down (a
   * FIN after the bytes still queued), and closes for real once the peer has
   * taken them, has closed, or `graceMs` has passed. A running echo then ends
   * as after `close()`, and its `bytesOut` counts only the bytes that left
   * (those the peer acknowledged). Used at the drain timeout; without it the
   * server calls `close()`, which with unread input sends a reset that can
   * discard echoes the peer has not read yet.
   */
  closeGently?(graceMs: number): void;
  /**
   * Shuts writing down: a FIN goes after the bytes still queued, and the
   * peer reads to the end. Where a connection has this and not
   * `closeGently`, the server uses it at the drain timeout, and closes the
   * connection for good after the grace.
   */
  closeWrite?(): Promise<void>;
  /**
   * Ends the connection with a reset (`SO_LINGER` 0) instead of a FIN: what
   * a fault asks for on purpose. Where a transport cannot, the server closes.
   */
  reset?(): void;
  /**
   * The subject of the certificate the client presented (mutual TLS), e.g.
   * `CN=client-1,O=Example`, once its handshake is done; absent otherwise.
   */
  readonly clientSubject?: string;
  /**
   * For a connection whose client is asked for a certificate (mutual TLS):
   * settles once its handshake is over, done or failed (it never rejects),
   * `clientSubject` set by then when it was done. The server logs the
   * connection's `opened` line at that moment, so that the line can name
   * the client. It does not start the handshake (the echo does).
   */
  readonly identified?: Promise<void>;
}

/**
 * A source of connections; `Deno.TcpListener`, `Deno.TlsListener` and
 * `Deno.UnixListener` fit.
 *
 * The acceptor iterates it. An iteration that ends means the listener is
 * closed; one that throws means one accept failed (out of file descriptors,
 * say), and the acceptor backs off and iterates again with a fresh iterator,
 * as Deno's listeners allow.
 */
export interface Listener<A extends Deno.Addr = Deno.Addr> extends AsyncIterable<Connection> {
  /** The address it listens on. */
  readonly addr: A;
  /** Stops listening; a pending iteration then ends. */
  close(): void;
  /**
   * For a listener that runs a loop of its own (the epoll engine's): settles
   * once that loop has stopped, after `close()` and the close of every
   * connection it gave out.
   */
  readonly stopped?: Promise<void>;
  /** The I/O engine that runs it, where it is not Deno's own: the `listening on` line names it. */
  readonly engine?: "epoll";
  /**
   * For a TLS listener: serve `material` to the handshakes that begin from
   * now on; connections already open go on as they are (SIGHUP reloads the
   * certificate files through this).
   *
   * @throws {Error} when `material` cannot serve TLS: nothing changes then.
   */
  updateTls?(material: TlsMaterial): void;
}

/**
 * What a TLS listener serves, as PEM text: the certificate chain and its key,
 * and for mutual TLS the CAs a client certificate must be signed by.
 */
export interface TlsMaterial {
  /** The certificate chain, PEM: the server's certificate first, then any intermediates. */
  cert: string;
  /** The certificate's private key, PEM (PKCS#8, RSA or EC). */
  key: string;
  /** With it, a client must present a certificate signed by one of these CAs (PEM). */
  clientCa?: string;
}

/**
 * A TCP listening address, as `Deno.connect` takes it (`Deno.NetAddr` would
 * also allow `udp`).
 */
export interface TcpAddr {
  /** Always `tcp`. */
  readonly transport: "tcp";
  /** The address, e.g. `127.0.0.1` or `::`. */
  readonly hostname: string;
  /** The port; the real one when 0 was asked for. */
  readonly port: number;
}

/** The server could not listen: the message says where and why. */
export class ListenError extends Error {
  /**
   * Makes the error from its whole message.
   *
   * @param message the whole sentence, e.g. `cannot listen on 0.0.0.0:8000: address already in use`
   * @param options the underlying error as `cause`
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenError";
  }
}

/**
 * The transport under a connection failed before the echo could read from it,
 * e.g. a TLS handshake. Its message is the whole reason the connection's
 * `closed` log line gives, peer included.
 */
export class TransportError extends Error {
  /**
   * Makes the error from its whole message.
   *
   * @param message e.g. `TLS handshake with 10.0.0.7:51234 failed: the client does not speak TLS`
   * @param options the underlying error as `cause`
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** A connection's peer, in the two forms the server needs. */
export interface Peer {
  /** What the admission rules key on: the IP address, or the socket path. */
  readonly host: string;
  /** How log lines name it, e.g. `[::1]:52100`. */
  readonly text: string;
}

/**
 * An IP peer. Its text is made when a line asks for it: at `--log-level
 * warning` most peers are never named, and none is kept for a connection's
 * life (the connection table names it again from the socket).
 */
class IpPeer implements Peer {
  constructor(readonly host: string, readonly port: number) {}

  get text(): string {
    return formatAddress(this.host, this.port);
  }
}

/**
 * Names the peer at `addr` for the admission rules and the log.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { peerOf } from "./contract.ts";
 * const peer = peerOf({ transport: "tcp", hostname: "::1", port: 80 });
 * equal(peer.host, "::1");
 * equal(peer.text, "[::1]:80");
 * ```
 */
export function peerOf(addr: Deno.Addr): Peer {
  switch (addr.transport) {
    case "tcp":
    case "udp":
      return new IpPeer(addr.hostname, addr.port);
    case "unix":
    case "unixpacket":
      // The client end of a Unix socket is usually unnamed (Deno gives its path
      // as null): all such clients share one admission key, the empty one.
      return { host: addr.path ?? "", text: describeAddr(addr) };
    case "vsock":
      return { host: `vsock:${addr.cid}`, text: describeAddr(addr) };
  }
}

/**
 * Puts any kind of address into words: `127.0.0.1:8000`, `[::1]:8000`, a
 * socket path.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeAddr } from "./contract.ts";
 * equal(describeAddr({ transport: "unix", path: "/run/echo.sock" }), "/run/echo.sock");
 * ```
 */
export function describeAddr(addr: Deno.Addr): string {
  switch (addr.transport) {
    case "tcp":
    case "udp":
      return formatAddress(addr.hostname, addr.port);
    case "unix":
    case "unixpacket":
      // The client end of a Unix socket is usually unnamed: its path is empty, or null.
      return addr.path === "" || addr.path === null ? "an unnamed socket" : addr.path;
    case "vsock":
      return `vsock:${addr.cid}:${addr.port}`;
  }
}

/** Closes a connection or listener that may be closed already: either way, it ends closed. */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: the aim is reached.
  }
}

/**
 * Tells whether `error` is the system saying that the process (`EMFILE`) or
 * the whole system (`ENFILE`) is out of file descriptors.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isOutOfDescriptors } from "./contract.ts";
 * equal(isOutOfDescriptors(Object.assign(new Error("x"), { code: "EMFILE" })), true);
 * equal(isOutOfDescriptors(new Deno.errors.ConnectionReset("x")), false);
 * ```
 */
export function isOutOfDescriptors(error: unknown): boolean {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  return code === "EMFILE" || code === "ENFILE";
}
