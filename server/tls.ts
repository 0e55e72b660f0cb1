/**
 * The TLS listener: Deno's own (`Deno.listenTls`), as a {@linkcode Listener}
 * whose connections finish their handshake on their first read, so that the
 * acceptor never waits for a handshake and a failed one ends that connection
 * alone, with a readable reason in its `closed` log line.
 *
 * Deno's accept returns before the handshake, which runs on the first read.
 * A peer that never sends its ClientHello therefore sits in the connection
 * table like any silent client, and the idle timeout closes it and frees its
 * slot. (Deno keeps such a socket open until the peer sends a byte or goes
 * away, even after `close()`: see the README's TLS section.)
 *
 * @module
 */
import { describeError, formatAddress } from "../text/address.ts";
import { describeTlsError } from "../text/tls.ts";
import {
  type Connection,
  type Listener,
  ListenError,
  peerOf,
  type TcpAddr,
  type TcpListenOptions,
  TransportError,
} from "./listener.ts";

/** The certificate and key a TLS listener serves, as PEM text. */
export interface ServeTlsOptions {
  /** The certificate chain, PEM: the server's certificate first, then any intermediates. */
  cert: string;
  /** The certificate's private key, PEM (PKCS#8, RSA or EC). */
  key: string;
}

/** What is wrong with a certificate and key, as {@linkcode checkTlsMaterial} finds it. */
export type TlsMaterialProblem =
  | { kind: "cert"; text: string }
  | { kind: "key"; text: string }
  | { kind: "mismatch"; text: string }
  | { kind: "other"; text: string };

/**
 * Tells what, if anything, keeps `cert` and `key` from serving TLS: no PEM
 * certificate, no PEM key, a key that is not the certificate's. Deno checks
 * them only when it listens, so this listens once on a free loopback port
 * and closes at once; it lets a command say which file is wrong before it
 * starts anything.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { checkTlsMaterial } from "./tls.ts";
 * equal(checkTlsMaterial({ cert: "not PEM", key: "not PEM" })?.kind, "cert");
 * ```
 */
export function checkTlsMaterial(material: ServeTlsOptions): TlsMaterialProblem | undefined {
  try {
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...material }).close();
    return undefined;
  } catch (error) {
    return materialProblem(error);
  }
}

/** Deno's complaint about a certificate or key, in words; `other` for any other error. */
function materialProblem(error: unknown): TlsMaterialProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (/no certificates found/i.test(message)) {
    return { kind: "cert", text: "the certificate holds no PEM certificate" };
  }
  if (/no keys found/i.test(message)) {
    return { kind: "key", text: "the key holds no PEM private key (PKCS#8, RSA or EC)" };
  }
  if (/KeyMismatch|keys may not be consistent/i.test(message)) {
    return { kind: "mismatch", text: "the key does not match the certificate" };
  }
  return { kind: "other", text: describeError(error) };
}

/**
 * Listens for TLS connections on a TCP port. Each connection's handshake runs
 * on its first read; one that fails rejects that read with a
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
export function listenTls(options: TcpListenOptions & ServeTlsOptions): Listener<TcpAddr> {
  const { hostname, port, cert, key } = options;
  let tls: Deno.TlsListener;
  try {
    tls = Deno.listenTls({ hostname, port, cert, key, reusePort: options.reusePort });
  } catch (error) {
    const where = formatAddress(hostname, port);
    const problem = materialProblem(error);
    throw new ListenError(
      `cannot listen${problem.kind === "other" ? "" : " with TLS"} on ${where}: ${problem.text}`,
      { cause: error },
    );
  }
  const addr: TcpAddr = { transport: "tcp", hostname: tls.addr.hostname, port: tls.addr.port };
  return {
    addr,
    close: () => tls.close(),
    [Symbol.asyncIterator]: () => {
      const accepted = tls[Symbol.asyncIterator]();
      return {
        next: async (): Promise<IteratorResult<Connection>> => {
          const next = await accepted.next();
          return next.done ? next : { done: false, value: new TlsConnection(next.value) };
        },
      };
    },
  };
}

/**
 * A TLS connection that completes its handshake before its first read and
 * turns a failed one into a {@linkcode TransportError}. Writes need no such
 * care: the echo writes only what it has read.
 */
class TlsConnection implements Connection {
  readonly remoteAddr: Deno.NetAddr;
  readonly #conn: Deno.TlsConn;
  #handshaken = false;

  constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
  }

  read(p: Uint8Array): Promise<number | null> {
    return this.#handshaken ? this.#conn.read(p) : this.#firstRead(p);
  }

  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  close(): void {
    this.#conn.close();
  }

  async #firstRead(p: Uint8Array): Promise<number | null> {
    try {
      await this.#conn.handshake();
    } catch (error) {
      // When the server itself closed it (idle timeout, shutdown), the
      // connection table reports its own reason instead of this one.
      throw new TransportError(
        `TLS handshake with ${peerOf(this.remoteAddr).text} failed: ${
          describeTlsError(error, "server")
        }`,
        { cause: error },
      );
    }
    this.#handshaken = true;
    return await this.#conn.read(p);
  }
}
