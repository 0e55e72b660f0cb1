/**
 * TLS client connections on the epoll engine through OpenSSL 3: a client
 * context ({@linkcode TlsClient}) made from the client's options as the
 * default engine's `node:tls` takes them (`--ca`, `--servername`,
 * `--insecure`, `--cert`/`--key`), and a session per socket
 * ({@linkcode TlsClientSession}) whose handshake, reads and writes say what
 * they need next instead of blocking. The client keeps the last resumable
 * session and offers it on the next connect, as a client that resumes does.
 *
 * @module
 */
import { E } from "./libc.ts";
import { type OpenSsl, S, takeError } from "./openssl.ts";
import { readCertificates, useChain, useKey } from "./tls_context.ts";
import { describeClientFailure } from "./tls_client_words.ts";
import type { HandshakeStep } from "./tls_session.ts";

/** What a client context is made from: `client/dial.ts`'s `ClientTlsOptions` and the host dialled. */
export interface TlsClientOptions {
  /** The host connected to: the name checked and sent as SNI unless `serverName` is given. */
  readonly host: string;
  /** Certificates (PEM) trusted instead of the system's: a CA, or the server's own certificate. */
  readonly caCerts?: readonly string[];
  /** The name the certificate must be valid for, sent as SNI too (not when it is an IP address). */
  readonly serverName?: string;
  /** A client certificate chain (PEM), and its key, for mutual TLS. */
  readonly cert?: string;
  readonly key?: string;
  /** No verification of the certificate or the name at all. */
  readonly insecure?: boolean;
  /** Whether each connect offers the last connection's session (`false`: full handshakes). */
  readonly resume: boolean;
}

/** The server closed the connection (or reset it) during the handshake: over TLS, a refusal. */
export class TlsHandshakeClosed extends Error {
  /** Makes the error with the default engine's words for it. */
  constructor() {
    super("the server closed the connection during the TLS handshake");
    this.name = "TlsHandshakeClosed";
  }
}

/** An IPv4 or IPv6 address, which the certificate must name as such (no SNI for it). */
function isIpAddress(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(":");
}

/** A NUL-terminated C string. */
function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

/** One client context, and the session it resumes next. */
export class TlsClient {
  /** OpenSSL, opened. */
  readonly lib: OpenSsl;
  /** The name checked (and sent as SNI where it is a host name). */
  readonly name: string;
  readonly #ctx: Deno.PointerObject;
  readonly #verify: boolean;
  readonly #resume: boolean;
  readonly #nameC: Uint8Array;
  readonly #ip: boolean;
  /** The last resumable session a connection had; `null` before the first. */
  #session: Deno.PointerValue = null;

  /**
   * Makes the context.
   *
   * @throws {Error} saying what is wrong with the options (`the key does not match the certificate`).
   */
  constructor(lib: OpenSsl, o: TlsClientOptions) {
    this.lib = lib;
    const host = o.host.startsWith("[") && o.host.endsWith("]") ? o.host.slice(1, -1) : o.host;
    this.name = o.serverName ?? host;
    this.#nameC = cString(this.name);
    this.#ip = isIpAddress(this.name);
    this.#verify = o.insecure !== true;
    this.#resume = o.resume;
    takeError(lib);
    const method = lib.ssl.TLS_client_method();
    const ctx = method === null ? null : lib.ssl.SSL_CTX_new(method);
    if (ctx === null) throw new Error(`OpenSSL could not make a context (${takeError(lib)})`);
    this.#ctx = ctx;
    try {
      this.#configure(o);
    } catch (error) {
      lib.ssl.SSL_CTX_free(ctx);
      takeError(lib);
      throw error;
    }
  }

  #configure(o: TlsClientOptions): void {
    const { ssl } = this.lib;
    const ctx = this.#ctx;
    if (o.caCerts !== undefined && o.caCerts.length > 0) {
      const store = ssl.SSL_CTX_get_cert_store(ctx);
      const certs = o.caCerts.flatMap((pem) => readCertificates(this.lib, pem));
      if (certs.length === 0) throw new Error("the CA file holds no PEM certificate");
      for (const cert of certs) {
        // A self-signed server certificate trusted as its own root, as node:tls's `ca` does.
        this.lib.crypto.X509_STORE_add_cert(store, cert);
        this.lib.crypto.X509_free(cert);
      }
      takeError(this.lib);
    } else if (this.#verify && ssl.SSL_CTX_set_default_verify_paths(ctx) !== 1) {
      throw new Error(`OpenSSL could not load the system's certificates (${takeError(this.lib)})`);
    }
    if (o.cert !== undefined && o.key !== undefined) {
      useChain(this.lib, ctx, o.cert);
      useKey(this.lib, ctx, o.key);
    }
    ssl.SSL_CTX_set_verify(ctx, this.#verify ? S.SSL_VERIFY_PEER : S.SSL_VERIFY_NONE, null);
    ssl.SSL_CTX_ctrl(ctx, S.SSL_CTRL_SET_MIN_PROTO_VERSION, BigInt(S.TLS1_2_VERSION), null);
    ssl.SSL_CTX_ctrl(
      ctx,
      S.SSL_CTRL_MODE,
      BigInt(S.SSL_MODE_ENABLE_PARTIAL_WRITE | S.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER),
      null,
    );
    // A server's FIN without close_notify ends its stream, as for node:tls.
    ssl.SSL_CTX_set_options(ctx, S.SSL_OP_IGNORE_UNEXPECTED_EOF | S.SSL_OP_NO_RENEGOTIATION);
  }

  /** A new client `SSL` on `fd`, set to check the name and to resume the last session. */
  open(fd: number): Deno.PointerObject {
    const { ssl: calls, crypto } = this.lib;
    const ssl = calls.SSL_new(this.#ctx);
    if (ssl === null) throw new Error(`OpenSSL could not start TLS (${takeError(this.lib)})`);
    calls.SSL_set_fd(ssl, fd);
    calls.SSL_set_connect_state(ssl);
    if (!this.#ip) calls.SSL_ctrl(ssl, S.SSL_CTRL_SET_TLSEXT_HOSTNAME, 0n, this.#nameC);
    if (this.#verify) {
      const set = this.#ip
        ? crypto.X509_VERIFY_PARAM_set1_ip_asc(calls.SSL_get0_param(ssl), this.#nameC)
        : calls.SSL_set1_host(ssl, this.#nameC);
      if (set !== 1) {
        calls.SSL_free(ssl);
        takeError(this.lib);
        throw new Error(`cannot check the certificate against the name ${this.name}`);
      }
    }
    if (this.#session !== null) calls.SSL_set_session(ssl, this.#session);
    return ssl;
  }

  /** Keeps `ssl`'s session for the next connect, when it can be resumed. */
  keep(ssl: Deno.PointerObject): void {
    if (!this.#resume) return;
    const { ssl: calls } = this.lib;
    const session = calls.SSL_get1_session(ssl);
    if (session === null) return;
    if (calls.SSL_SESSION_is_resumable(session) !== 1) return calls.SSL_SESSION_free(session);
    if (this.#session !== null) calls.SSL_SESSION_free(this.#session);
    this.#session = session;
  }

  /** Frees the context and the session kept; sessions open keep their own references. */
  free(): void {
    if (this.#session !== null) this.lib.ssl.SSL_SESSION_free(this.#session);
    this.#session = null;
    this.lib.ssl.SSL_CTX_free(this.#ctx);
  }
}

/** A client `SSL` on a non-blocking socket. */
export class TlsClientSession {
  readonly #client: TlsClient;
  readonly #lib: OpenSsl;
  readonly #ssl: Deno.PointerObject;
  #ready = false;
  #broken = false;

  /** Starts a client session on `fd`, connected. */
  constructor(client: TlsClient, fd: number) {
    this.#client = client;
    this.#lib = client.lib;
    this.#ssl = client.open(fd);
  }

  /** Whether the session resumed an earlier one (after the handshake). */
  get resumed(): boolean {
    return this.#lib.ssl.SSL_session_reused(this.#ssl) === 1;
  }

  /**
   * Moves the handshake on as far as the socket allows.
   *
   * @throws {TlsHandshakeClosed} when the server closed the connection meanwhile;
   * {@linkcode Error} with the reason in words otherwise (`certificate not trusted (…)`).
   */
  handshake(): HandshakeStep {
    const { ssl: calls } = this.#lib;
    const r = calls.SSL_do_handshake(this.#ssl);
    if (r === 1) {
      this.#ready = true;
      return "done";
    }
    const error = calls.SSL_get_error(this.#ssl, r);
    if (error === S.SSL_ERROR_WANT_READ) return "read";
    if (error === S.SSL_ERROR_WANT_WRITE) return "write";
    this.#broken = true;
    const reason = takeError(this.#lib);
    if (reason === undefined || /unexpected eof/.test(reason)) throw new TlsHandshakeClosed();
    const verify = Number(calls.SSL_get_verify_result(this.#ssl));
    const names = verify === 62 || verify === 64 ? certificateNames(this.#lib, this.#ssl) : [];
    throw new Error(describeClientFailure(reason, verify, this.#client.name, names));
  }

  /**
   * `SSL_write`s the first `n` bytes of `bytes` until the socket is full:
   * how many were taken, or `-EAGAIN` when none were. A retry after a short
   * count starts with the bytes not taken.
   *
   * @throws {Error} when TLS failed.
   */
  send(bytes: Uint8Array, n: number): number {
    const calls = this.#lib.ssl;
    let sent = 0;
    while (sent < n) {
      const w = calls.SSL_write(this.#ssl, sent === 0 ? bytes : bytes.subarray(sent), n - sent);
      if (w > 0) {
        sent += w;
        continue;
      }
      const error = calls.SSL_get_error(this.#ssl, w);
      if (error === S.SSL_ERROR_WANT_WRITE || error === S.SSL_ERROR_WANT_READ) break;
      if (error === S.SSL_ERROR_SYSCALL) return this.#reset();
      throw this.#failure();
    }
    return sent > 0 ? sent : -E.EAGAIN;
  }

  /**
   * `SSL_read`s into `buf`: how many bytes, 0 at the server's end of the
   * stream, `-EAGAIN` when none are there yet, `-ECONNRESET` when the
   * socket failed.
   *
   * @throws {Error} when TLS failed (a server's alert, in words).
   */
  recv(buf: Uint8Array): number {
    const calls = this.#lib.ssl;
    const r = calls.SSL_read(this.#ssl, buf, buf.length);
    if (r > 0) return r;
    const error = calls.SSL_get_error(this.#ssl, r);
    if (error === S.SSL_ERROR_WANT_READ || error === S.SSL_ERROR_WANT_WRITE) return -E.EAGAIN;
    if (error === S.SSL_ERROR_ZERO_RETURN) return 0;
    if (error === S.SSL_ERROR_SYSCALL) return this.#reset();
    throw this.#failure();
  }

  /**
   * Ends the session before its socket is closed: close_notify where the
   * handshake is done and nothing failed, its session kept for the next
   * connect, and the `SSL` freed.
   */
  end(): void {
    const { ssl: calls } = this.#lib;
    if (this.#ready && !this.#broken) {
      this.#client.keep(this.#ssl);
      if (calls.SSL_shutdown(this.#ssl) < 0) takeError(this.#lib);
    }
    calls.SSL_free(this.#ssl);
  }

  #reset(): number {
    this.#broken = true;
    takeError(this.#lib);
    return -E.ECONNRESET;
  }

  #failure(): Error {
    this.#broken = true;
    return new Error(describeClientFailure(takeError(this.#lib) ?? "unknown error"));
  }
}

/** The names (subject alternative names) of the server's certificate, unverified, as OpenSSL prints them. */
function certificateNames(lib: OpenSsl, ssl: Deno.PointerObject): string[] {
  const chain = lib.ssl.SSL_get_peer_cert_chain(ssl);
  const leaf = chain === null ? null : lib.crypto.OPENSSL_sk_value(chain, 0);
  const bio = leaf === null ? null : lib.crypto.BIO_new(lib.crypto.BIO_s_mem());
  if (bio === null) return [];
  try {
    if (lib.crypto.X509_print_ex(bio, leaf, 0n, 0n) !== 1) return [];
    const out = new Uint8Array(16384);
    const n = lib.crypto.BIO_read(bio, out, out.length);
    const text = new TextDecoder().decode(out.subarray(0, Math.max(0, n)));
    const line = /X509v3 Subject Alternative Name:[^\n]*\n\s*([^\n]+)/.exec(text);
    return line === null
      ? []
      : line[1].split(", ").map((name) => name.replace(/^(DNS|IP Address):/, ""));
  } finally {
    lib.crypto.BIO_free(bio);
    takeError(lib);
  }
}
