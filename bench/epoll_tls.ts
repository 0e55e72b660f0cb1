/**
 * TLS for the bench's epoll engine (`--io epoll --tls`): the client context
 * made from the run's TLS options, the handshake step a connection takes on
 * each readiness event, and a failed connect or handshake counted as the
 * Deno engine counts it (`run.ts`: a server that closes during the
 * handshake refused, anything else a failed connect).
 *
 * @module
 */
import { C } from "../epoll/libc.ts";
import { openSsl, opensslUnavailable } from "../epoll/openssl.ts";
import { TlsClient, type TlsClientSession, TlsHandshakeClosed } from "../epoll/tls_client.ts";
import type { BenchOptions } from "./options.ts";
import type { Run } from "./run.ts";

/**
 * The TLS client of a run of `o`, or `undefined` when it speaks plain TCP.
 *
 * @throws {Error} in one sentence when OpenSSL does not open or the options do not make a context.
 */
export function tlsClientOf(o: BenchOptions): TlsClient | undefined {
  if (o.tls === undefined || o.tls === false) return undefined;
  const why = epollTlsUnavailable();
  if (why !== undefined) throw new Error(why);
  const options = o.tls === true ? {} : o.tls;
  return new TlsClient(openSsl(), { host: o.host, resume: o.tlsResume !== false, ...options });
}

/** Why `--io epoll --tls` cannot run here (OpenSSL 3 does not open), in one sentence; else `undefined`. */
export function epollTlsUnavailable(): string | undefined {
  return opensslUnavailable()?.replace("serves TLS", "speaks TLS");
}

/**
 * Moves `session`'s handshake on: 0 when it is done, the readiness to wait
 * for (`EPOLLIN`, `EPOLLOUT`) while it is not, or the failure.
 */
export function handshakeStep(session: TlsClientSession): number | Error {
  try {
    const step = session.handshake();
    return step === "done" ? 0 : step === "read" ? C.EPOLLIN : C.EPOLLOUT;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Counts a connect or handshake that failed with `error`, as `Run.connect` does. */
export function connectFailure(run: Run, error: unknown): void {
  run.connectFailed(error, error instanceof TlsHandshakeClosed);
}
