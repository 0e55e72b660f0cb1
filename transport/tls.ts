/**
 * The TLS listener: TCP accepted by Deno (`Deno.listen`, so that the
 * acceptor's back-off and the admission rules see every connection before
 * any TLS work), and a server-side handshake by `node:tls` on each admitted
 * connection (see `transport/adopt.ts`), under a deadline of its own. A
 * connection whose handshake does not finish in time, or that is refused or
 * closed before it, is closed for real: its descriptor is released and the
 * peer sees the end at once. (Deno's own TLS listener kept such a socket open
 * as long as the peer stayed silent.)
 *
 * A failed handshake ends that connection alone, with a readable reason in
 * its `closed` log line; the echo itself runs on the TLS socket's events,
 * reading nothing more from a peer that does not take its echoes.
 *
 * With a client CA (mutual TLS), the client must present a certificate:
 * none fails the handshake, and one that does not verify against the CA
 * ends the connection as soon as the handshake is done, before any byte is
 * echoed (`node:tls` in Deno leaves that decision to the caller, as Node
 * does for a socket made outside `tls.Server`). The certificate and key can
 * be replaced while serving ({@linkcode Listener.updateTls}): handshakes
 * that begin later use the new ones.
 *
 * @module
 */
import { formatAddress } from "../text/address.ts";
import { adoptionUnavailable, adoptTcp } from "./adopt.ts";
import { secureContextOf, TlsConnection, type TlsContext } from "./tls_connection.ts";
import { checkTlsMaterial, type ServeTlsOptions } from "./tls_material.ts";

export type { ServeTlsOptions } from "./tls_material.ts";
import {
  closeQuietly,
  type Connection,
  isOutOfDescriptors,
  type Listener,
  ListenError,
  type TcpAddr,
  type TlsMaterial,
} from "./contract.ts";
import { listenTcp, type TcpListenOptions } from "./tcp.ts";

/** What {@linkcode listenTls} uses for the options left out. */
export const TLS_DEFAULTS = {
  /** How long a connection may take to finish its handshake, from its admission. */
  handshakeTimeoutMs: 10_000,
} as const;

/** Where and how {@linkcode listenTls} listens. */
export interface TlsListenOptions extends TcpListenOptions, ServeTlsOptions {
  /**
   * Close a connection whose handshake has not finished this long after it
   * was admitted. @default {TLS_DEFAULTS.handshakeTimeoutMs}
   */
  handshakeTimeoutMs?: number;
}

/**
 * Listens for TLS connections on a TCP port. Each connection's handshake
 * starts when the server first reads, writes or echoes it; one that fails
 * or takes longer than `handshakeTimeoutMs` ends that connection with a
 * {@linkcode TransportError} naming the peer and what went wrong.
 *
 * @throws {ListenError} when the port cannot be had, or the certificate or
 *   key cannot serve, saying where and why.
 *
 * @example
 * ```ts ignore
 * import { listenTls } from "./tls.ts";
 * const listener = listenTls({
 *   hostname: "127.0.0.1",
 *   port: 8443,
 *   cert: Deno.readTextFileSync("server.pem"),
 *   key: Deno.readTextFileSync("server.key"),
 * });
 * ```
 */
export function listenTls(options: TlsListenOptions): Listener<TcpAddr> {
  const { hostname, port, cert, key, clientCa } = options;
  const where = formatAddress(hostname, port);
  const unavailable = adoptionUnavailable();
  if (unavailable !== undefined) {
    throw new ListenError(`cannot listen with TLS on ${where}: ${unavailable}`);
  }
  const problem = checkTlsMaterial({ cert, key, clientCa });
  if (problem !== undefined) {
    throw new ListenError(
      `cannot listen${problem.kind === "other" ? "" : " with TLS"} on ${where}: ${problem.text}`,
    );
  }
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? TLS_DEFAULTS.handshakeTimeoutMs;
  if (!(handshakeTimeoutMs > 0)) {
    throw new RangeError(`invalid handshakeTimeoutMs ${handshakeTimeoutMs}: must be above 0`);
  }
  const tcp = listenTcp(options);
  /** Replaced whole by a reload: a connection keeps the one it was accepted under. */
  let context: TlsContext = { ...secureContextOf({ cert, key, clientCa }), handshakeTimeoutMs };
  /**
   * Accepted, but not yet handed to node:tls for want of a descriptor: it
   * waits here (in no one's table, as it would in the backlog) while the
   * acceptor backs off, and is tried again first.
   */
  let waiting: Deno.TcpConn | undefined;
  return {
    addr: tcp.addr,
    close: () => {
      tcp.close();
      if (waiting !== undefined) closeQuietly(waiting);
      waiting = undefined;
    },
    updateTls: (material: TlsMaterial) => {
      const problem = checkTlsMaterial(material);
      if (problem !== undefined) throw new Error(problem.text);
      context = { ...secureContextOf(material), handshakeTimeoutMs };
    },
    [Symbol.asyncIterator]: () => {
      const accepted = tcp[Symbol.asyncIterator]();
      return {
        next: async (): Promise<IteratorResult<Connection>> => {
          let conn = waiting;
          waiting = undefined;
          if (conn === undefined) {
            const next = await accepted.next();
            if (next.done) return next;
            conn = next.value as Deno.TcpConn;
          }
          try {
            return { done: false, value: new TlsConnection(conn, adoptTcp(conn), context) };
          } catch (error) {
            // Out of descriptors is the acceptor's to back off from, as a failed accept is.
            if (isOutOfDescriptors(error)) waiting = conn;
            else closeQuietly(conn);
            throw error;
          }
        },
      };
    },
  };
}
