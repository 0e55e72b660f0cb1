/**
 * {@linkcode listenEpollTls}: the epoll engine's TLS listener, an epoll TCP
 * listener whose connections speak TLS through the system's OpenSSL 3
 * (`tls_connection.ts`), with the certificate replaceable while it serves
 * ({@linkcode EpollListener.updateTls}).
 *
 * @module
 */
import { describeError, formatAddress, unbracket } from "../text/address.ts";
import { ListenError, type TlsMaterial } from "../transport/contract.ts";
import type { TcpListenOptions } from "../transport/tcp.ts";
import { type EpollListener, listenEpollWith } from "./listener.ts";
import { openLibc } from "./libc.ts";
import { openSsl, opensslUnavailable } from "./openssl.ts";
import { EpollTlsConnection } from "./tls_connection.ts";
import type { TlsShared } from "./tls_session.ts";
import { freeTlsContext, makeTlsContext } from "./tls_context.ts";

/** Where and how {@linkcode listenEpollTls} listens, and what it serves. */
export interface EpollTlsOptions extends TcpListenOptions, TlsMaterial {
  /** Close a connection whose handshake has not finished this long after it started. */
  handshakeTimeoutMs: number;
}

/** An epoll TLS listener: {@linkcode EpollListener} with `updateTls`. */
export interface EpollTlsListener extends EpollListener {
  /** See `Listener.updateTls`: new handshakes use `material`; open connections go on. */
  updateTls(material: TlsMaterial): void;
}

/**
 * Listens for TLS on a TCP port with the epoll engine (Linux,
 * `--allow-ffi`, `libssl.so.3`).
 *
 * @throws {ListenError} when OpenSSL cannot be opened, the certificate or
 *   key cannot serve, or the port cannot be had, saying where and why.
 *
 * @example
 * ```ts ignore
 * import { listenEpollTls } from "./tls_listener.ts";
 * const listener = listenEpollTls({
 *   hostname: "127.0.0.1",
 *   port: 8443,
 *   cert: Deno.readTextFileSync("server.pem"),
 *   key: Deno.readTextFileSync("server.key"),
 *   handshakeTimeoutMs: 10_000,
 * });
 * ```
 */
export function listenEpollTls(options: EpollTlsOptions): EpollTlsListener {
  const where = formatAddress(unbracket(options.hostname), options.port);
  const { handshakeTimeoutMs } = options;
  if (!(handshakeTimeoutMs > 0)) {
    throw new RangeError(`invalid handshakeTimeoutMs ${handshakeTimeoutMs}: must be above 0`);
  }
  const unavailable = opensslUnavailable();
  if (unavailable !== undefined) {
    throw new ListenError(`cannot listen with TLS on ${where}: ${unavailable}`);
  }
  const lib = openSsl();
  let context: Deno.PointerObject;
  try {
    context = makeTlsContext(lib, options);
  } catch (error) {
    throw new ListenError(`cannot listen with TLS on ${where}: ${describeError(error)}`, {
      cause: error,
    });
  }
  const shared: TlsShared = {
    lib,
    context,
    handshakeTimeoutMs,
    clientCertificates: options.clientCa !== undefined,
    churn: 0,
  };
  let inner: EpollListener;
  try {
    inner = listenEpollWith(
      options,
      (reactor, fd, peer) => new EpollTlsConnection(reactor, fd, peer, shared),
    );
  } catch (error) {
    freeTlsContext(lib, context);
    throw error;
  }
  const trimming = trimAfterChurn(shared);
  // Once the loop has stopped, no connection is left to start a handshake with it.
  inner.stopped.then(() => {
    clearInterval(trimming);
    freeTlsContext(lib, shared.context);
  });
  return {
    addr: inner.addr,
    stopped: inner.stopped,
    engine: "epoll",
    close: () => inner.close(),
    [Symbol.asyncIterator]: () => inner[Symbol.asyncIterator](),
    updateTls: (material: TlsMaterial) => {
      // Throws, with nothing changed, when the material cannot serve.
      const next = makeTlsContext(lib, material);
      const before = shared.context;
      shared.context = next;
      shared.clientCertificates = material.clientCa !== undefined;
      // Connections made with it hold references of their own.
      freeTlsContext(lib, before);
    },
  };
}

/**
 * How often, while handshakes happen and sessions end, the heap's free pages go back to the
 * system. A handshake allocates and frees some 50 KiB in OpenSSL; after a
 * burst of them, glibc keeps the freed pages resident between what the
 * open connections still hold, and `malloc_trim` is what returns them
 * (measured: 19 → 17 KiB per idle connection, 5,000 of them, and a third of
 * the memory back once they left).
 */
const TRIM_MS = 1000;

function trimAfterChurn(shared: TlsShared): ReturnType<typeof setInterval> {
  const { libc } = openLibc();
  let seen = 0;
  const timer = setInterval(() => {
    if (shared.churn === seen) return;
    seen = shared.churn;
    libc.malloc_trim(0n);
  }, TRIM_MS);
  Deno.unrefTimer(timer);
  return timer;
}
