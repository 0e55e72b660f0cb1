/**
 * A TLS connection made by `node:tls`, as a `Deno.Conn`. Deno's own TLS
 * (`Deno.startTls`, rustls and webpki) refuses a self-signed certificate
 * that is marked `CA:TRUE` and used as the server's own, which is what
 * `openssl req -x509` makes, and it can neither skip verification nor
 * present a client certificate. `node:tls` in Deno does all three as
 * OpenSSL does: a certificate found in the trusted set is accepted as it
 * is, and the host name is still checked.
 *
 * @module
 */
import tls from "node:tls";
import { isIP } from "node:net";
import type { Buffer } from "node:buffer";
import { describeTlsError } from "../text/tls.ts";

/** What {@linkcode connectTls} needs: where, and how to verify and be verified. */
export interface TlsDialOptions {
  /** Host name or address to connect to. */
  hostname: string;
  /** Port. */
  port: number;
  /** The name the certificate must be valid for, sent as SNI when it is a name. */
  serverName?: string;
  /** Trust these certificates (PEM) instead of the built-in roots: CAs, or a server's own. */
  caCerts?: readonly string[];
  /** A client certificate chain (PEM) to present, with its key. */
  cert?: string;
  /** The key of `cert` (PEM). */
  key?: string;
  /** Skip verifying the server's certificate and name. */
  insecure?: boolean;
}

/** The Node error codes that mean the connection broke, as Deno names them. */
const NODE_ERRORS: Readonly<
  Record<string, new (message: string, options?: ErrorOptions) => Error>
> = {
  ECONNREFUSED: Deno.errors.ConnectionRefused,
  ECONNRESET: Deno.errors.ConnectionReset,
  ECONNABORTED: Deno.errors.ConnectionAborted,
  EPIPE: Deno.errors.BrokenPipe,
  ETIMEDOUT: Deno.errors.TimedOut,
  ENOTFOUND: Deno.errors.NotFound,
  EAI_AGAIN: Deno.errors.NotFound,
  EADDRNOTAVAIL: Deno.errors.AddrNotAvailable,
};

/**
 * A Node socket error as the Deno error of the same meaning (so that one
 * set of words describes both), its message and code kept; other errors
 * as they are.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fromNodeError } from "./tls_conn.ts";
 * const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
 * equal(fromNodeError(refused) instanceof Deno.errors.ConnectionRefused, true);
 * ```
 */
export function fromNodeError(error: unknown): unknown {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  const kind = typeof code === "string" ? NODE_ERRORS[code] : undefined;
  if (kind === undefined) return error;
  return Object.assign(new kind((error as Error).message, { cause: error }), { code });
}

/**
 * Connects and completes the TLS handshake, the certificate verified unless
 * `insecure`; `signal` aborts both. Rejects with the Node error of a
 * refused certificate or handshake (its `code` says which), or the Deno
 * error of a refused connection.
 */
export async function connectTls(
  options: TlsDialOptions,
  signal?: AbortSignal,
): Promise<NodeTlsConn> {
  signal?.throwIfAborted();
  const name = options.serverName ?? options.hostname;
  const socket = tls.connect({
    host: options.hostname,
    port: options.port,
    // Node sends no SNI for an address, and checks the certificate's IP names against it.
    servername: isIP(name) === 0 ? name : undefined,
    ca: options.caCerts === undefined ? undefined : [...options.caCerts],
    cert: options.cert,
    key: options.key,
    rejectUnauthorized: options.insecure !== true,
  });
  // A small message leaves at once, as over plain TCP (the handshake's flights too).
  socket.setNoDelay(true);
  // Errors before the handshake is done reject below; later ones are the connection's.
  socket.on("error", () => {});
  const ready = Promise.withResolvers<void>();
  const onAbort = () => {
    socket.destroy();
    ready.reject(signal?.reason);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  socket.once("secureConnect", () => ready.resolve());
  socket.once("error", (error) => ready.reject(fromNodeError(error)));
  socket.once(
    "close",
    () => ready.reject(new Deno.errors.UnexpectedEof("closed during the TLS handshake")),
  );
  try {
    await ready.promise;
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  return new NodeTlsConn(socket);
}

/** The largest read a stream of {@linkcode NodeTlsConn.readable} asks for. */
const STREAM_READ = 16 * 1024;

/**
 * A `node:tls` socket whose handshake is done, with the reads, writes and
 * closes of a `Deno.Conn`: a read resolves with what came, or `null` at the
 * end; errors are Deno's (`ConnectionReset`, `BrokenPipe`); a second
 * `close()` throws `BadResource`.
 */
export class NodeTlsConn implements Deno.Conn<Deno.NetAddr> {
  readonly localAddr: Deno.NetAddr;
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: tls.TLSSocket;
  /** What a read took beyond the buffer it was given: the next read's. */
  #unread: Buffer | undefined;
  #ended = false;
  #closed = false;
  #error: unknown;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  constructor(socket: tls.TLSSocket) {
    this.#socket = socket;
    this.localAddr = netAddr(socket.localAddress, socket.localPort);
    this.remoteAddr = netAddr(socket.remoteAddress, socket.remotePort);
    socket.on("end", () => this.#ended = true);
    socket.on("error", (error) => this.#error ??= connectionError(error));
  }

  read(p: Uint8Array): Promise<number | null> {
    const socket = this.#socket;
    return new Promise((resolve, reject) => {
      const take = (): boolean => {
        const chunk: Buffer | null = this.#unread ?? socket.read();
        this.#unread = undefined;
        if (chunk !== null) {
          const n = Math.min(p.length, chunk.length);
          p.set(chunk.subarray(0, n));
          if (n < chunk.length) this.#unread = chunk.subarray(n);
          resolve(n);
          return true;
        }
        if (this.#ended) resolve(null);
        else if (this.#error !== undefined) reject(this.#error);
        else if (socket.destroyed) reject(new Deno.errors.BadResource("the connection is closed"));
        else return false;
        return true;
      };
      if (take()) return;
      const retry = () => {
        if (!take()) return;
        socket.off("readable", retry);
        socket.off("end", retry);
        socket.off("close", retry);
      };
      socket.on("readable", retry);
      socket.once("end", retry);
      socket.once("close", retry);
    });
  }

  write(p: Uint8Array): Promise<number> {
    const socket = this.#socket;
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("the connection is closed"));
    }
    return new Promise((resolve, reject) => {
      socket.write(p, (error) => {
        if (error === undefined || error === null) resolve(p.length);
        else reject(this.#error ?? connectionError(error));
      });
    });
  }

  /** Sends close_notify and a FIN after what is queued; reading goes on. */
  closeWrite(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed) return Promise.reject(new Deno.errors.NotConnected("not connected"));
    return new Promise((resolve) => socket.end(resolve));
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the connection is closed");
    this.#closed = true;
    this.#socket.destroy();
  }

  /** Turns Nagle's algorithm off (or on) under the TLS records. */
  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }

  ref(): void {
    this.#socket.ref();
  }

  unref(): void {
    this.#socket.unref();
  }

  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return this.#readable ??= new ReadableStream({
      pull: async (controller) => {
        const buffer = new Uint8Array(STREAM_READ);
        const n = await this.read(buffer);
        if (n === null) controller.close();
        else controller.enqueue(buffer.subarray(0, n));
      },
      cancel: () => this[Symbol.dispose](),
    });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream({
      write: async (chunk) => void await this.write(chunk),
      close: () => this.closeWrite(),
      abort: () => this[Symbol.dispose](),
    });
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }
}

/**
 * An error of an open connection: Deno's for a broken one, and for one that
 * TLS ended (an alert after the handshake, such as a server that wants a
 * client certificate saying so in TLS 1.3) the reason in words.
 */
function connectionError(error: unknown): unknown {
  const mapped = fromNodeError(error);
  if (mapped !== error || !(error instanceof Error)) return mapped;
  return new Error(describeTlsError(error, "client"), { cause: error });
}

function netAddr(hostname: string | undefined, port: number | undefined): Deno.NetAddr {
  return { transport: "tcp", hostname: hostname ?? "", port: port ?? 0 };
}
