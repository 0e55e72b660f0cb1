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
 * @module
 */
import tls from "node:tls";
import type { Buffer } from "node:buffer";
import { formatAddress } from "../text/address.ts";
import { describeTlsError } from "../text/tls.ts";
import { formatExactDuration } from "../text/duration.ts";
import { type Adopted, adoptionUnavailable, adoptTcp } from "./adopt.ts";
import { checkTlsMaterial, type ServeTlsOptions } from "./tls_material.ts";

export type { ServeTlsOptions } from "./tls_material.ts";
import { isOutOfDescriptors } from "./contract.ts";
import type { EchoCounters, EchoDone, EchoOptions } from "./echo.ts";
import {
  closeQuietly,
  type Connection,
  type Listener,
  ListenError,
  peerOf,
  type TcpAddr,
  TransportError,
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
  const { hostname, port, cert, key } = options;
  const where = formatAddress(hostname, port);
  const unavailable = adoptionUnavailable();
  if (unavailable !== undefined) {
    throw new ListenError(`cannot listen with TLS on ${where}: ${unavailable}`);
  }
  const problem = checkTlsMaterial({ cert, key });
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
  const context: TlsContext = {
    secure: tls.createSecureContext({ cert, key }),
    handshakeTimeoutMs,
  };
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

/** What every connection of one listener shares. */
interface TlsContext {
  readonly secure: tls.SecureContext;
  readonly handshakeTimeoutMs: number;
}

/**
 * How old a connection gets before Deno's second descriptor of it is given
 * back (see `transport/adopt.ts`): it costs a tenth of a millisecond, which a
 * churn of short connections should not pay.
 */
const SHED_AFTER_MS = 1000;
/**
 * How long a connection the server closes (an idle timeout, a lifetime, a
 * refusal line) has to take its close_notify before it is cut.
 */
const CLOSE_NOTIFY_MS = 1000;

/** The errors of a Node socket that mean the peer went away: an echo's `reset`. */
const PEER_GONE_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ENOTCONN"]);

/**
 * One TLS connection: a TCP connection that becomes TLS when first used.
 * Until then it is only a socket, which a refusal closes at once.
 */
class TlsConnection implements Connection {
  readonly remoteAddr: Deno.NetAddr;
  readonly #context: TlsContext;
  /** The connection in node:tls's hands (its descriptor duplicated, its socket made when used). */
  readonly #adopted: Adopted;
  #socket: tls.TLSSocket | undefined;
  #shedTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while a gentle close waits for the peer: closes for good when it runs out. */
  #cutTimer: ReturnType<typeof setTimeout> | undefined;
  #released = false;
  #secure = false;
  #closed = false;
  /** Set when the handshake failed or timed out: the reason the connection ended. */
  #failure: TransportError | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** What came before a read asked for it (read() only; the echo takes it as it comes). */
  #unread: Buffer | undefined;

  constructor(conn: Deno.TcpConn, adopted: Adopted, context: TlsContext) {
    this.#adopted = adopted;
    this.#context = context;
    this.remoteAddr = conn.remoteAddr;
  }

  setNoDelay(noDelay = true): void {
    // On the TCP socket under the TLS records: a small echo leaves at once.
    this.#adopted.setNoDelay(noDelay);
  }

  echo(options: EchoOptions, done: EchoDone): void {
    const socket = this.#start();
    const counters: EchoCounters = options.counters ?? { bytesIn: 0, bytesOut: 0 };
    const { onChunk } = options;
    let ended = false;
    const end = (how: "eof" | "reset" | "error", error?: unknown) => {
      if (ended) return;
      ended = true;
      done.echoEnded(how, error);
    };
    const adopted = this.#adopted;
    const resume = () => {
      adopted.startReading();
      socket.resume();
    };
    socket.on("data", (chunk: Buffer) => {
      const n = chunk.length;
      counters.bytesIn += n;
      onChunk?.(n);
      // Counted once the TLS layer has taken it, as a write to a socket is.
      const flowing = socket.write(chunk, (error) => {
        if (error === undefined || error === null) counters.bytesOut += n;
      });
      // The peer does not take its echoes: read nothing more from it until it does.
      if (!flowing) {
        socket.pause();
        adopted.stopReading();
        socket.once("drain", resume);
      }
    });
    // The peer's close_notify or FIN: whatever is still queued goes out first (Node ends
    // the writing side after it, allowHalfOpen being off), then "close" says it is over.
    socket.on("close", () => {
      if (this.#closed) {
        return end("error", new Deno.errors.BadResource("the connection was closed"));
      }
      if (this.#failure !== undefined) return end("error", this.#failure);
      if (!this.#secure) {
        return end(
          "error",
          this.#handshakeError("the client closed the connection during the TLS handshake"),
        );
      }
      end("eof");
    });
    socket.on("error", (error: Error & { code?: string }) => {
      if (this.#closed || this.#failure !== undefined) return;
      if (!this.#secure) {
        this.#failure = this.#handshakeError(describeTlsError(error, "server"), error);
      } else if (error.code !== undefined && PEER_GONE_CODES.has(error.code)) {
        end("reset");
      } else {
        end("error", error);
      }
    });
  }

  async read(p: Uint8Array): Promise<number | null> {
    const socket = this.#start();
    return await new Promise((resolve, reject) => {
      const take = () => {
        const chunk: Buffer | null = this.#unread ?? socket.read();
        this.#unread = undefined;
        if (chunk === null) return false;
        const n = Math.min(p.length, chunk.length);
        p.set(chunk.subarray(0, n));
        if (n < chunk.length) this.#unread = chunk.subarray(n);
        resolve(n);
        return true;
      };
      if (take()) return;
      const cleanup = () => {
        socket.off("readable", onReadable);
        socket.off("end", onEnd);
        socket.off("close", onClose);
        socket.off("error", onError);
      };
      const onReadable = () => {
        if (take()) cleanup();
      };
      const onEnd = () => {
        cleanup();
        resolve(null);
      };
      const onClose = () => {
        cleanup();
        reject(this.#failure ?? new Deno.errors.BadResource("the connection was closed"));
      };
      const onError = (error: Error) => {
        cleanup();
        reject(this.#secure ? error : this.#failure ?? error);
      };
      socket.on("readable", onReadable);
      socket.once("end", onEnd);
      socket.once("close", onClose);
      socket.once("error", onError);
    });
  }

  async write(p: Uint8Array): Promise<number> {
    const socket = this.#start();
    return await new Promise((resolve, reject) => {
      socket.write(p, (error) => {
        if (error === undefined || error === null) resolve(p.length);
        else reject(this.#failure ?? error);
      });
    });
  }

  /**
   * Closes the connection: after its handshake, as TLS says (close_notify,
   * then a FIN, the peer given {@linkcode CLOSE_NOTIFY_MS} to take them);
   * before it, at once.
   */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
    this.#closed = true;
    this.#end(CLOSE_NOTIFY_MS);
  }

  /** See `Connection.closeGently`: close_notify and a FIN after the echoes still queued. */
  closeGently(graceMs: number): void {
    if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
    this.#closed = true;
    this.#end(graceMs);
  }

  /** Ends TLS with close_notify after what is queued, and lets go within `graceMs`. */
  #end(graceMs: number): void {
    const socket = this.#socket;
    // Before its handshake, nothing was sent to it; a socket already closed has nothing to say.
    if (socket === undefined || !this.#secure || socket.destroyed) return this.#release();
    // Nothing more is read, so nothing more is echoed: what is queued goes, then the end.
    socket.pause();
    this.#adopted.stopReading();
    this.#cutTimer = setTimeout(() => this.#release(), graceMs);
    socket.once("close", () => this.#release());
    socket.end();
  }

  /** Lets go of everything the connection holds, once: timers, Node's socket, Deno's descriptor. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#shedTimer);
    clearTimeout(this.#cutTimer);
    this.#adopted.close();
  }

  /**
   * The TLS socket, made on first use: the connection goes to node:tls, the
   * handshake starts, and its deadline with it.
   */
  #start(): tls.TLSSocket {
    if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
    if (this.#socket !== undefined) return this.#socket;
    const adopted = this.#adopted;
    const socket = new tls.TLSSocket(adopted.socket, {
      isServer: true,
      secureContext: this.#context.secure,
    });
    this.#socket = socket;
    const { handshakeTimeoutMs } = this.#context;
    this.#timer = setTimeout(() => {
      this.#failure = this.#handshakeError(
        `no handshake within ${formatExactDuration(handshakeTimeoutMs)}`,
      );
      // Closed for real: the descriptor goes, and the peer sees the end now.
      socket.destroy();
    }, handshakeTimeoutMs);
    // A connection that lasts gives Deno's descriptor back; one of a churn is gone before.
    this.#shedTimer = setTimeout(() => adopted.shed().catch(() => {}), SHED_AFTER_MS);
    socket.once("secure", () => {
      this.#secure = true;
      clearTimeout(this.#timer);
    });
    // Errors are taken by whoever uses the socket; this one keeps an unheard one from throwing.
    socket.on("error", () => {});
    return socket;
  }

  #handshakeError(why: string, cause?: unknown): TransportError {
    return new TransportError(`TLS handshake with ${peerOf(this.remoteAddr).text} failed: ${why}`, {
      cause,
    });
  }
}
