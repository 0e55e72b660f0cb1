/**
 * One connection's OpenSSL session (`SSL`), as the epoll engine's TLS
 * connection drives it: started over a socket (and, after a PROXY header,
 * over the bytes read past it first), moved through its handshake, written
 * to until the socket is full, and ended with close_notify. Each call says
 * what it needs next instead of blocking; readiness is the connection's
 * business.
 *
 * @module
 */
import { E, errorFor } from "./libc.ts";
import { type OpenSsl, peerSubject, S, takeError, verifyError } from "./openssl.ts";
import { describeHandshakeFailure } from "./tls_words.ts";
import { takeRefusedSubject } from "./tls_context.ts";

/** What every TLS connection of one listener shares. */
export interface TlsShared {
  /** OpenSSL, opened. */
  readonly lib: OpenSsl;
  /** The context that handshakes starting from now on use (replaced by a reload). */
  context: Deno.PointerObject;
  /** How long a handshake may take from its start. */
  readonly handshakeTimeoutMs: number;
  /** Whether handshakes starting from now on ask the client for a certificate (mutual TLS). */
  clientCertificates: boolean;
  /** Handshakes finished and sessions freed so far: what leaves the heap to trim. */
  churn: number;
}

/** What a handshake step needs next: nothing (done), the socket readable, or writable. */
export type HandshakeStep = "done" | "read" | "write";

/** An `SSL` on a socket, server side. */
export class TlsSession {
  readonly #lib: OpenSsl;
  /** The session; `null` once freed. */
  ssl: Deno.PointerObject | null;
  /** While OpenSSL reads bytes given back first: the memory BIO that holds them. */
  #memoryBio: Deno.PointerObject | null = null;
  #socketBio: Deno.PointerObject | null = null;
  /** Set after a fatal error: OpenSSL then allows no close_notify. */
  #broken = false;
  #notified = false;

  /**
   * Starts a server session with `context` on `fd`; OpenSSL reads `first`,
   * when given, before the socket.
   */
  constructor(lib: OpenSsl, context: Deno.PointerObject, fd: number, first?: Uint8Array) {
    this.#lib = lib;
    const ssl = lib.ssl.SSL_new(context);
    if (ssl === null) throw new Error(`OpenSSL could not start TLS (${takeError(lib)})`);
    this.ssl = ssl;
    if (first === undefined) lib.ssl.SSL_set_fd(ssl, fd);
    else this.#readFirst(fd, first);
    lib.ssl.SSL_set_accept_state(ssl);
  }

  /**
   * Moves the handshake on as far as the socket allows.
   *
   * @throws {Error} whose message says, in the log's words, why it failed.
   */
  handshake(): HandshakeStep {
    const { ssl: calls, crypto } = this.#lib;
    const ssl = this.ssl;
    for (;;) {
      const r = calls.SSL_do_handshake(ssl);
      if (r === 1) return "done";
      const error = calls.SSL_get_error(ssl, r);
      if (error === S.SSL_ERROR_WANT_WRITE) return "write";
      if (error === S.SSL_ERROR_WANT_READ) {
        const memory = this.#memoryBio;
        if (
          memory === null || Number(crypto.BIO_ctrl(memory, S.BIO_CTRL_PENDING, 0n, null)) !== 0
        ) {
          return "read";
        }
        // The bytes given back are all read: from now on, the socket.
        crypto.BIO_up_ref(this.#socketBio);
        calls.SSL_set0_rbio(ssl, this.#socketBio);
        this.#memoryBio = null;
        continue;
      }
      this.#broken = true;
      const reason = takeError(this.#lib);
      const verify = reason !== undefined && /certificate verify failed/.test(reason)
        ? verifyError(this.#lib, ssl)
        : undefined;
      throw new Error(describeHandshakeFailure(reason, verify, takeRefusedSubject()));
    }
  }

  /** The subject of the client's certificate, after the handshake; `undefined` without one. */
  clientSubject(): string | undefined {
    return peerSubject(this.#lib, this.ssl);
  }

  /**
   * One `SSL_read` into `bytes`: how many came, `null` at the end of the
   * peer's stream, or what the socket must be first (`read`, `write`).
   *
   * @throws {Error} when the connection failed.
   */
  receive(bytes: Uint8Array): number | null | "read" | "write" {
    const calls = this.#lib.ssl;
    const n = calls.SSL_read(this.ssl, bytes, bytes.length);
    if (n > 0) return n;
    const error = calls.SSL_get_error(this.ssl, n);
    if (error === S.SSL_ERROR_WANT_READ) return "read";
    if (error === S.SSL_ERROR_WANT_WRITE) return "write";
    if (error === S.SSL_ERROR_ZERO_RETURN) return null;
    throw this.failure(error, "SSL_read");
  }

  /**
   * `SSL_write`s the first `n` bytes of `bytes` until the socket is full;
   * returns how many were taken. A retry after a short count must start with
   * the bytes not taken (they may be copied elsewhere meanwhile).
   *
   * @throws {Error} when the connection failed (a reset is `ConnectionReset`).
   */
  send(bytes: Uint8Array, n: number): number {
    const calls = this.#lib.ssl;
    const ssl = this.ssl;
    let sent = 0;
    while (sent < n) {
      const w = calls.SSL_write(ssl, sent === 0 ? bytes : bytes.subarray(sent), n - sent);
      if (w > 0) {
        sent += w;
        continue;
      }
      const error = calls.SSL_get_error(ssl, w);
      if (error === S.SSL_ERROR_WANT_WRITE || error === S.SSL_ERROR_WANT_READ) break;
      throw this.failure(error, "SSL_write");
    }
    return sent;
  }

  /** What a failed `SSL_read` or `SSL_write` (`call`) ends the connection with: a reset when the socket failed. */
  failure(error: number, call: string): Error {
    this.#broken = true;
    const reason = takeError(this.#lib);
    if (error === S.SSL_ERROR_SYSCALL || reason === undefined) return errorFor(call, E.ECONNRESET);
    return new Error(`TLS failed: ${reason}`);
  }

  /** Sends close_notify, once, after a handshake that `open` says is done, where TLS allows. */
  notify(open: boolean): void {
    if (this.#notified || !open || this.#broken) return;
    this.#notified = true;
    if (this.#lib.ssl.SSL_shutdown(this.ssl) < 0) takeError(this.#lib);
  }

  /** Frees the session (the socket stays open: it is not OpenSSL's to close); true if it was not yet. */
  free(): boolean {
    const ssl = this.ssl;
    if (ssl !== null) this.#lib.ssl.SSL_free(ssl);
    this.ssl = this.#memoryBio = this.#socketBio = null;
    return ssl !== null;
  }

  /** OpenSSL reads `bytes` from memory first, then the socket (see `handshake`). */
  #readFirst(fd: number, bytes: Uint8Array): void {
    const { crypto, ssl: calls } = this.#lib;
    const memory = crypto.BIO_new(crypto.BIO_s_mem());
    const socket = crypto.BIO_new_socket(fd, S.BIO_NOCLOSE);
    if (memory === null || socket === null) {
      if (memory !== null) crypto.BIO_free(memory);
      if (socket !== null) crypto.BIO_free(socket);
      this.free();
      throw new Error("OpenSSL could not make a BIO");
    }
    crypto.BIO_write(memory, bytes, bytes.length);
    // Empty is "try again" (-1), not the end of the stream.
    crypto.BIO_ctrl(memory, S.BIO_C_SET_BUF_MEM_EOF_RETURN, -1n, null);
    calls.SSL_set_bio(this.ssl, memory, socket);
    this.#memoryBio = memory;
    this.#socketBio = socket;
  }
}
