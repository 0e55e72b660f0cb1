/**
 * An OpenSSL server context (`SSL_CTX`) made from {@linkcode TlsMaterial}:
 * the certificate chain and key, TLS 1.2 and 1.3, stateless session tickets
 * (no server-side session cache to grow), buffers released while a
 * connection is idle, and, with a client CA, mutual TLS.
 *
 * @module
 */
import type { TlsMaterial } from "../transport/contract.ts";
import { type OpenSsl, S, subjectOf, takeError } from "./openssl.ts";

/** Tells resumed sessions of this server from any other's (needed with client certificates). */
const SESSION_ID_CONTEXT = new TextEncoder().encode("echo-server");
/** One TLS 1.3 ticket per handshake (OpenSSL sends two): a client resumes one at a time. */
const TICKETS = 1n;

/**
 * Makes a server context for `material`.
 *
 * @throws {Error} saying what is wrong (`the key does not match the certificate`); nothing is left allocated.
 */
export function makeTlsContext(lib: OpenSsl, material: TlsMaterial): Deno.PointerObject {
  const { ssl } = lib;
  takeError(lib);
  const method = ssl.TLS_server_method();
  const ctx = method === null ? null : ssl.SSL_CTX_new(method);
  if (ctx === null) throw new Error(`OpenSSL could not make a context (${takeError(lib)})`);
  try {
    useChain(lib, ctx, material.cert);
    useKey(lib, ctx, material.key);
    if (material.clientCa !== undefined) trustClients(lib, ctx, material.clientCa);
    ssl.SSL_CTX_ctrl(ctx, S.SSL_CTRL_SET_MIN_PROTO_VERSION, BigInt(S.TLS1_2_VERSION), null);
    ssl.SSL_CTX_ctrl(
      ctx,
      S.SSL_CTRL_MODE,
      BigInt(
        S.SSL_MODE_ENABLE_PARTIAL_WRITE | S.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
          S.SSL_MODE_RELEASE_BUFFERS,
      ),
      null,
    );
    // Read ahead: one recv takes a record's header and body (and whatever follows) at once.
    ssl.SSL_CTX_ctrl(ctx, S.SSL_CTRL_SET_READ_AHEAD, 1n, null);
    // Tickets resume sessions statelessly; a cache would hold every session of a churn.
    ssl.SSL_CTX_ctrl(ctx, S.SSL_CTRL_SET_SESS_CACHE_MODE, BigInt(S.SSL_SESS_CACHE_OFF), null);
    ssl.SSL_CTX_set_num_tickets(ctx, TICKETS);
    // A peer's FIN without close_notify is the end of its stream, as for Deno's and Node's TLS.
    ssl.SSL_CTX_set_options(ctx, S.SSL_OP_IGNORE_UNEXPECTED_EOF | S.SSL_OP_NO_RENEGOTIATION);
    ssl.SSL_CTX_set_session_id_context(ctx, SESSION_ID_CONTEXT, SESSION_ID_CONTEXT.length);
    return ctx;
  } catch (error) {
    ssl.SSL_CTX_free(ctx);
    takeError(lib);
    throw error;
  }
}

/** Releases this holder's reference; connections that use it keep theirs. */
export function freeTlsContext(lib: OpenSsl, ctx: Deno.PointerObject): void {
  lib.ssl.SSL_CTX_free(ctx);
}

/** The certificate, then each intermediate of the chain (a client's certificate too). */
export function useChain(lib: OpenSsl, ctx: Deno.PointerObject, pem: string): void {
  const certs = readCertificates(lib, pem);
  if (certs.length === 0) throw new Error("the certificate holds no PEM certificate");
  const [leaf, ...chain] = certs;
  const used = lib.ssl.SSL_CTX_use_certificate(ctx, leaf);
  lib.crypto.X509_free(leaf);
  if (used !== 1) {
    for (const cert of chain) lib.crypto.X509_free(cert);
    throw new Error(`the certificate cannot serve (${takeError(lib)})`);
  }
  for (const cert of chain) {
    // add0: the context owns it from now on.
    if (Number(lib.ssl.SSL_CTX_ctrl(ctx, S.SSL_CTRL_CHAIN_CERT, 0n, cert)) !== 1) {
      lib.crypto.X509_free(cert);
    }
  }
}

/** The private key of the certificate in use. */
export function useKey(lib: OpenSsl, ctx: Deno.PointerObject, pem: string): void {
  const bio = memoryOf(lib, pem);
  const key = lib.crypto.PEM_read_bio_PrivateKey(bio, null, null, null);
  lib.crypto.BIO_free(bio);
  if (key === null) {
    takeError(lib);
    throw new Error("the key holds no PEM private key (PKCS#8, RSA or EC)");
  }
  const used = lib.ssl.SSL_CTX_use_PrivateKey(ctx, key);
  lib.crypto.EVP_PKEY_free(key);
  if (used !== 1 || lib.ssl.SSL_CTX_check_private_key(ctx) !== 1) {
    takeError(lib);
    throw new Error("the key does not match the certificate");
  }
}

/** Requires a client certificate signed by one of the CAs in `pem`. */
function trustClients(lib: OpenSsl, ctx: Deno.PointerObject, pem: string): void {
  const cas = readCertificates(lib, pem);
  if (cas.length === 0) throw new Error("the client CA file holds no PEM certificate");
  const store = lib.ssl.SSL_CTX_get_cert_store(ctx);
  for (const ca of cas) {
    lib.crypto.X509_STORE_add_cert(store, ca);
    // Named in the certificate request, so that a client with several picks the right one.
    lib.ssl.SSL_CTX_add_client_CA(ctx, ca);
    lib.crypto.X509_free(ca);
  }
  takeError(lib);
  lib.ssl.SSL_CTX_set_verify(
    ctx,
    S.SSL_VERIFY_PEER | S.SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
    noteRefused(lib).pointer,
  );
}

/** The subject of the last client certificate refused: read once by the handshake that refused it. */
let refusedSubject: string | undefined;
const VERIFY = { parameters: ["i32", "pointer"], result: "i32" } as const;
let verifyCallback: Deno.UnsafeCallback<typeof VERIFY> | undefined;

/**
 * OpenSSL's verify callback, which notes the subject of a client certificate
 * it refuses: by the time the handshake fails, OpenSSL has dropped it, and
 * the default engine's log names it. It runs inside `SSL_do_handshake`, a
 * synchronous call on this thread, so the note belongs to that handshake.
 */
function noteRefused(lib: OpenSsl): Deno.UnsafeCallback<typeof VERIFY> {
  verifyCallback ??= new Deno.UnsafeCallback(
    VERIFY,
    (ok, store) => {
      const cert = ok === 0 ? lib.crypto.X509_STORE_CTX_get0_cert(store) : null;
      if (cert !== null) refusedSubject = subjectOf(lib, cert);
      return ok;
    },
  );
  return verifyCallback;
}

/** The subject {@linkcode noteRefused} noted for the handshake that just failed, once. */
export function takeRefusedSubject(): string | undefined {
  const subject = refusedSubject;
  refusedSubject = undefined;
  return subject;
}

/** Every PEM certificate in `pem`, in order; the caller frees them. */
export function readCertificates(lib: OpenSsl, pem: string): Deno.PointerObject[] {
  const bio = memoryOf(lib, pem);
  const certs: Deno.PointerObject[] = [];
  for (;;) {
    const cert = lib.crypto.PEM_read_bio_X509(bio, null, null, null);
    if (cert === null) break;
    certs.push(cert);
  }
  lib.crypto.BIO_free(bio);
  // The end of the input is an error ("no start line") on the queue.
  takeError(lib);
  return certs;
}

/** A memory BIO holding a copy of `text`; the caller frees it. */
function memoryOf(lib: OpenSsl, text: string): Deno.PointerObject {
  const bytes = new TextEncoder().encode(text);
  const bio = lib.crypto.BIO_new(lib.crypto.BIO_s_mem());
  if (bio === null) throw new Error(`OpenSSL could not read PEM (${takeError(lib)})`);
  if (bytes.length > 0 && lib.crypto.BIO_write(bio, bytes, bytes.length) !== bytes.length) {
    lib.crypto.BIO_free(bio);
    throw new Error(`OpenSSL could not read PEM (${takeError(lib)})`);
  }
  return bio;
}
