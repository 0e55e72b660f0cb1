/**
 * One TLS connection of the listener in `transport/tls.ts`: a TCP connection
 * accepted by Deno that becomes TLS, in `node:tls`'s hands, when first used,
 * and the context its handshake runs under.
 *
 * @module
 */
import tls from "node:tls";
import type { Buffer } from "node:buffer";
import { X509Certificate } from "node:crypto";
import { describeClientCertificate, describeTlsError } from "../text/tls.ts";
import { formatExactDuration } from "../text/duration.ts";
import type { Adopted } from "./adopt.ts";
import type { EchoCounters, EchoDone, EchoOptions } from "./echo.ts";
import { type Connection, peerOf, type TlsMaterial, TransportError } from "./contract.ts";

/** What every connection of one listener shares (until a reload makes another). */
export interface TlsContext {
  readonly secure: tls.SecureContext;
  /** Whether the client must present a certificate signed by a CA of `secure`. */
  readonly requestCert: boolean;
  readonly handshakeTimeoutMs: number;
}

/** The secure context of `material`, and whether it asks clients for a certificate. */
export function secureContextOf(material: TlsMaterial): Omit<TlsContext, "handshakeTimeoutMs"> {
  const { cert, key, clientCa } = material;
  return {
    secure: tls.createSecureContext({ cert, key, ca: clientCa }),
    requestCert: clientCa !== undefined,
  };
}

/** A certificate's subject as one line: `CN=client-1,O=Example`. */
function subjectOf(raw: Uint8Array | undefined): string | undefined {
  if (raw === undefined || raw.length === 0) return undefined;
  try {
    return new X509Certificate(raw).subject.split("\n").join(",");
  } catch {
    return undefined;
  }
}

/** The part of a server-side TLS socket's native side that tells how verifying the peer went. */
interface VerifyingSocket {
  ssl?: { verifyError?(): unknown };
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
export class TlsConnection implements Connection {
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
  /** The subject of the client's certificate, once verified (mutual TLS). */
  clientSubject: string | undefined;
  /** With mutual TLS: settles when the handshake is over (see `Connection.identified`). */
  readonly identified: Promise<void> | undefined;
  #identify: (() => void) | undefined;

  constructor(conn: Deno.TcpConn, adopted: Adopted, context: TlsContext) {
    this.#adopted = adopted;
    this.#context = context;
    this.remoteAddr = conn.remoteAddr;
    if (context.requestCert) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.identified = promise;
      this.#identify = resolve;
    }
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
    const { secure, requestCert, handshakeTimeoutMs } = this.#context;
    const socket = new tls.TLSSocket(adopted.socket, {
      isServer: true,
      secureContext: secure,
      requestCert,
      rejectUnauthorized: requestCert,
    });
    this.#socket = socket;
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
      clearTimeout(this.#timer);
      if (requestCert && !this.#verifyClient(socket)) return;
      this.#secure = true;
      this.#identify?.();
    });
    // Whatever ends it first: a failed or timed-out handshake leaves no one waiting.
    if (requestCert) socket.once("close", () => this.#identify?.());
    // Errors are taken by whoever uses the socket; this one keeps an unheard one from throwing.
    socket.on("error", () => {});
    return socket;
  }

  /**
   * Checks the client's certificate against the client CA once the
   * handshake is done: true when it verified (its subject then noted);
   * false when it did not, the connection then failing with the reason.
   */
  #verifyClient(socket: tls.TLSSocket): boolean {
    const verifyError = (socket as unknown as VerifyingSocket).ssl?.verifyError?.();
    const raw = socket.getPeerCertificate()?.raw;
    const problem = raw === undefined || raw.length === 0 ? "none" : verifyError;
    if (problem === undefined || problem === null || problem === "") {
      this.clientSubject = subjectOf(raw);
      return true;
    }
    this.#failure = this.#handshakeError(describeClientCertificate(problem, subjectOf(raw)));
    socket.destroy();
    return false;
  }

  #handshakeError(why: string, cause?: unknown): TransportError {
    return new TransportError(`TLS handshake with ${peerOf(this.remoteAddr).text} failed: ${why}`, {
      cause,
    });
  }
}
