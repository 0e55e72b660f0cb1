/**
 * The system's OpenSSL 3 (`libssl.so.3`, `libcrypto.so.3`), opened once per
 * isolate through `Deno.dlopen` as `libc.ts` opens libc: the few functions
 * the epoll engine's TLS calls, with the constants they take.
 * {@linkcode opensslUnavailable} says, in one sentence, why it cannot be
 * used.
 *
 * The hot path (`SSL_read`, `SSL_write`, `SSL_get_error`) takes only
 * pointers, buffers and 32-bit integers: no BigInt, no allocation per call.
 *
 * @module
 */

const SSL_SYMBOLS = {
  TLS_server_method: { parameters: [], result: "pointer" },
  SSL_CTX_new: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_free: { parameters: ["pointer"], result: "void" },
  SSL_CTX_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  SSL_CTX_set_options: { parameters: ["pointer", "u64"], result: "u64" },
  SSL_CTX_use_certificate: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_use_PrivateKey: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_check_private_key: { parameters: ["pointer"], result: "i32" },
  SSL_CTX_set_verify: { parameters: ["pointer", "i32", "pointer"], result: "void" },
  SSL_CTX_get_cert_store: { parameters: ["pointer"], result: "pointer" },
  SSL_CTX_add_client_CA: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_CTX_set_session_id_context: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  SSL_CTX_set_num_tickets: { parameters: ["pointer", "usize"], result: "i32" },
  SSL_new: { parameters: ["pointer"], result: "pointer" },
  SSL_free: { parameters: ["pointer"], result: "void" },
  SSL_set_fd: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_set_bio: { parameters: ["pointer", "pointer", "pointer"], result: "void" },
  SSL_set0_rbio: { parameters: ["pointer", "pointer"], result: "void" },
  SSL_set_accept_state: { parameters: ["pointer"], result: "void" },
  SSL_do_handshake: { parameters: ["pointer"], result: "i32" },
  SSL_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  SSL_get_error: { parameters: ["pointer", "i32"], result: "i32" },
  SSL_has_pending: { parameters: ["pointer"], result: "i32" },
  SSL_shutdown: { parameters: ["pointer"], result: "i32" },
  SSL_get1_peer_certificate: { parameters: ["pointer"], result: "pointer" },
  SSL_get_verify_result: { parameters: ["pointer"], result: "i64" },
  SSL_session_reused: { parameters: ["pointer"], result: "i32" },
  // The client side (the bench's epoll engine).
  TLS_client_method: { parameters: [], result: "pointer" },
  SSL_CTX_set_default_verify_paths: { parameters: ["pointer"], result: "i32" },
  SSL_set_connect_state: { parameters: ["pointer"], result: "void" },
  SSL_ctrl: { parameters: ["pointer", "i32", "i64", "buffer"], result: "i64" },
  SSL_set1_host: { parameters: ["pointer", "buffer"], result: "i32" },
  SSL_get0_param: { parameters: ["pointer"], result: "pointer" },
  SSL_set_session: { parameters: ["pointer", "pointer"], result: "i32" },
  SSL_get1_session: { parameters: ["pointer"], result: "pointer" },
  SSL_SESSION_is_resumable: { parameters: ["pointer"], result: "i32" },
  SSL_SESSION_free: { parameters: ["pointer"], result: "void" },
  SSL_get_peer_cert_chain: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const CRYPTO_SYMBOLS = {
  BIO_new: { parameters: ["pointer"], result: "pointer" },
  BIO_s_mem: { parameters: [], result: "pointer" },
  BIO_new_socket: { parameters: ["i32", "i32"], result: "pointer" },
  BIO_write: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_read: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  BIO_ctrl: { parameters: ["pointer", "i32", "i64", "pointer"], result: "i64" },
  BIO_up_ref: { parameters: ["pointer"], result: "i32" },
  BIO_free: { parameters: ["pointer"], result: "i32" },
  PEM_read_bio_X509: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  PEM_read_bio_PrivateKey: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "pointer",
  },
  EVP_PKEY_free: { parameters: ["pointer"], result: "void" },
  X509_free: { parameters: ["pointer"], result: "void" },
  X509_get_subject_name: { parameters: ["pointer"], result: "pointer" },
  X509_NAME_print_ex: { parameters: ["pointer", "pointer", "i32", "u64"], result: "i32" },
  X509_STORE_add_cert: { parameters: ["pointer", "pointer"], result: "i32" },
  X509_verify_cert_error_string: { parameters: ["i64"], result: "pointer" },
  X509_STORE_CTX_get0_cert: { parameters: ["pointer"], result: "pointer" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_clear_error: { parameters: [], result: "void" },
  ERR_reason_error_string: { parameters: ["u64"], result: "pointer" },
  X509_VERIFY_PARAM_set1_ip_asc: { parameters: ["pointer", "buffer"], result: "i32" },
  OPENSSL_sk_value: { parameters: ["pointer", "i32"], result: "pointer" },
  X509_print_ex: { parameters: ["pointer", "pointer", "u64", "u64"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libssl's functions, as Deno types them. */
export type Ssl = Deno.DynamicLibrary<typeof SSL_SYMBOLS>["symbols"];
/** libcrypto's functions, as Deno types them. */
export type Crypto = Deno.DynamicLibrary<typeof CRYPTO_SYMBOLS>["symbols"];

/** Both libraries, opened. */
export interface OpenSsl {
  /** libssl. */
  readonly ssl: Ssl;
  /** libcrypto. */
  readonly crypto: Crypto;
}

/** OpenSSL 3's constants, from its headers. */
export const S = {
  SSL_ERROR_SSL: 1,
  SSL_ERROR_WANT_READ: 2,
  SSL_ERROR_WANT_WRITE: 3,
  SSL_ERROR_SYSCALL: 5,
  SSL_ERROR_ZERO_RETURN: 6,
  SSL_CTRL_MODE: 33,
  SSL_CTRL_SET_READ_AHEAD: 41,
  SSL_CTRL_SET_SESS_CACHE_MODE: 44,
  SSL_CTRL_CHAIN_CERT: 89,
  SSL_CTRL_SET_MIN_PROTO_VERSION: 123,
  SSL_MODE_ENABLE_PARTIAL_WRITE: 0x1,
  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: 0x2,
  SSL_MODE_RELEASE_BUFFERS: 0x10,
  SSL_SESS_CACHE_OFF: 0,
  SSL_OP_IGNORE_UNEXPECTED_EOF: 1n << 7n,
  SSL_OP_NO_RENEGOTIATION: 1n << 30n,
  SSL_VERIFY_NONE: 0,
  SSL_VERIFY_PEER: 1,
  /** `SSL_set_tlsext_host_name` is this `SSL_ctrl` with `TLSEXT_NAMETYPE_host_name` (0). */
  SSL_CTRL_SET_TLSEXT_HOSTNAME: 55,
  SSL_VERIFY_FAIL_IF_NO_PEER_CERT: 2,
  TLS1_2_VERSION: 0x0303,
  BIO_NOCLOSE: 0,
  BIO_C_SET_BUF_MEM_EOF_RETURN: 130,
  BIO_CTRL_PENDING: 10,
  /**
   * `XN_FLAG_RFC2253` without `XN_FLAG_DN_REV`: `CN=client-1,O=Example` in the
   * certificate's own order, as node's `X509Certificate` (the default engine) gives it.
   */
  XN_FLAG_RFC2253: 0x1010317n,
} as const;

/** Where the libraries are looked for: the names the dynamic loader resolves. */
export const OPENSSL_LIBRARIES = { ssl: "libssl.so.3", crypto: "libcrypto.so.3" } as const;

let opened: OpenSsl | undefined;

/**
 * Opens OpenSSL 3, once per isolate. Check {@linkcode opensslUnavailable}
 * first: this throws where a library does not open.
 */
export function openSsl(): OpenSsl {
  if (opened !== undefined) return opened;
  const crypto = Deno.dlopen(OPENSSL_LIBRARIES.crypto, CRYPTO_SYMBOLS).symbols;
  const ssl = Deno.dlopen(OPENSSL_LIBRARIES.ssl, SSL_SYMBOLS).symbols;
  opened = { ssl, crypto };
  return opened;
}

/**
 * Why TLS on the epoll engine cannot run in this process, as one sentence
 * naming the fix, or `undefined` when it can. `open` is what opens the
 * libraries (a test gives one that fails).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { opensslUnavailable } from "./openssl.ts";
 * const why = opensslUnavailable(() => {
 *   throw new Error("libssl.so.3: cannot open shared object file: No such file or directory");
 * });
 * equal(why, "--io epoll serves TLS through the system's OpenSSL 3 (libssl.so.3), which did not open (libssl.so.3: cannot open shared object file: No such file or directory): install it (Debian: apt-get install libssl3), or use --io deno");
 * ```
 */
export function opensslUnavailable(open: () => unknown = openSsl): string | undefined {
  try {
    open();
    return undefined;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return `--io epoll serves TLS through the system's OpenSSL 3 (${OPENSSL_LIBRARIES.ssl}), which did not open (${why}): install it (Debian: apt-get install libssl3), or use --io deno`;
  }
}

/**
 * The reason of the oldest error on this thread's OpenSSL error queue, in
 * OpenSSL's words (`wrong version number`), or `undefined` when it is
 * empty; the queue is emptied, so that the next call's errors are its own.
 */
export function takeError(lib: OpenSsl): string | undefined {
  const code = lib.crypto.ERR_get_error();
  let reason: string | undefined;
  if (code !== 0n) {
    const text = lib.crypto.ERR_reason_error_string(code);
    reason = text === null ? `OpenSSL error ${code}` : Deno.UnsafePointerView.getCString(text);
  }
  lib.crypto.ERR_clear_error();
  return reason;
}

/** Why a certificate did not verify, in OpenSSL's words (`unable to get local issuer certificate`). */
export function verifyError(lib: OpenSsl, ssl: Deno.PointerValue): { code: number; text: string } {
  const code = Number(lib.ssl.SSL_get_verify_result(ssl));
  const text = lib.crypto.X509_verify_cert_error_string(BigInt(code));
  return {
    code,
    text: text === null ? `verify error ${code}` : Deno.UnsafePointerView.getCString(text),
  };
}

/** The subject of the peer's certificate, `CN=client-1,O=Example`, or `undefined` without one. */
export function peerSubject(lib: OpenSsl, ssl: Deno.PointerValue): string | undefined {
  const cert = lib.ssl.SSL_get1_peer_certificate(ssl);
  if (cert === null) return undefined;
  try {
    return subjectOf(lib, cert);
  } finally {
    lib.crypto.X509_free(cert);
  }
}

/** The subject of `cert`, `CN=client-1,O=Example`; the caller keeps it. */
export function subjectOf(lib: OpenSsl, cert: Deno.PointerObject): string | undefined {
  const bio = lib.crypto.BIO_new(lib.crypto.BIO_s_mem());
  if (bio === null) return undefined;
  try {
    const name = lib.crypto.X509_get_subject_name(cert);
    if (lib.crypto.X509_NAME_print_ex(bio, name, 0, S.XN_FLAG_RFC2253) < 0) return undefined;
    const out = new Uint8Array(1024);
    const n = lib.crypto.BIO_read(bio, out, out.length);
    return n > 0 ? new TextDecoder().decode(out.subarray(0, n)) : "";
  } finally {
    lib.crypto.BIO_free(bio);
  }
}
