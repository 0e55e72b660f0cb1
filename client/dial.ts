/**
 * Where a client connects, and connecting there: plain TCP, TLS over TCP, or
 * a Unix domain socket, as one {@linkcode Endpoint} that the client and the
 * load tester both dial.
 *
 * @module
 */
import { formatAddress } from "../text/address.ts";
import { describeTlsError } from "../text/tls.ts";
import { connectTls } from "./tls_conn.ts";

/** How to speak TLS to a server. */
export interface ClientTlsOptions {
  /**
   * Certificates (PEM) to trust instead of the built-in roots (Mozilla's), as
   * `openssl -CAfile` and `curl --cacert` do: a server is trusted when its
   * certificate is signed by one of them, or is exactly one of them (a
   * self-signed test certificate). The name is checked either way.
   */
  caCerts?: readonly string[];
  /**
   * The name the certificate must be valid for, sent as SNI too.
   * @default {the host connected to}
   */
  serverName?: string;
  /** A client certificate chain (PEM) to present, for a server that asks for one (mutual TLS). */
  cert?: string;
  /** The private key of `cert` (PEM). */
  key?: string;
  /** Do not verify the server's certificate or name at all: for a quick test only. */
  insecure?: boolean;
}

/** Where to connect: a TCP port, a TLS port, or a Unix socket. */
export type Endpoint =
  | { readonly transport: "tcp"; readonly hostname: string; readonly port: number }
  | (
    & { readonly transport: "tls"; readonly hostname: string; readonly port: number }
    & Readonly<
      ClientTlsOptions
    >
  )
  | { readonly transport: "unix"; readonly path: string };

/** The ways a caller names an endpoint: host and port, and TLS or a socket path. */
export interface EndpointOptions {
  /** Host name or address. */
  host: string;
  /** Port. */
  port: number;
  /** Speak TLS; `true` trusts only the roots Deno trusts. */
  tls?: boolean | ClientTlsOptions;
  /** A Unix domain socket's path; `host` and `port` are then unused. */
  path?: string;
}

/**
 * The endpoint that `options` name.
 *
 * @throws {TypeError} for TLS over a Unix socket, which Deno cannot speak.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { endpointOf } from "./dial.ts";
 * deepEqual(endpointOf({ host: "::1", port: 8443, tls: true }), {
 *   transport: "tls",
 *   hostname: "::1",
 *   port: 8443,
 * });
 * deepEqual(endpointOf({ host: "127.0.0.1", port: 8000, path: "/run/echo.sock" }), {
 *   transport: "unix",
 *   path: "/run/echo.sock",
 * });
 * ```
 */
export function endpointOf(options: EndpointOptions): Endpoint {
  const { host: hostname, port, tls, path } = options;
  if (path !== undefined) {
    if (tls !== undefined && tls !== false) {
      throw new TypeError("TLS runs over TCP only, not over a Unix socket");
    }
    return { transport: "unix", path };
  }
  if (tls === undefined || tls === false) return { transport: "tcp", hostname, port };
  return { transport: "tls", hostname, port, ...(tls === true ? {} : tls) };
}

/**
 * How messages name an endpoint: `127.0.0.1:8000`, `[::1]:8443`, a socket path.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeEndpoint } from "./dial.ts";
 * equal(describeEndpoint({ transport: "tls", hostname: "::1", port: 8443 }), "[::1]:8443");
 * equal(describeEndpoint({ transport: "unix", path: "/run/echo.sock" }), "/run/echo.sock");
 * ```
 */
export function describeEndpoint(endpoint: Endpoint): string {
  return endpoint.transport === "unix"
    ? endpoint.path
    : formatAddress(endpoint.hostname, endpoint.port);
}

/**
 * Connects to `endpoint`, with Nagle's algorithm off where there is one. For
 * TLS it completes the handshake before it resolves, so that a certificate
 * the client does not trust fails here, with an error whose message says so
 * in words (`certificate not trusted (issued by an unknown authority)`).
 * `signal` aborts the connecting, the handshake included; an open
 * connection stays open.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { dial } from "./dial.ts";
 * using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * using conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: listener.addr.port });
 * equal(conn.remoteAddr.transport, "tcp");
 * ```
 */
export async function dial(endpoint: Endpoint, signal?: AbortSignal): Promise<Deno.Conn> {
  signal?.throwIfAborted();
  if (endpoint.transport === "unix") {
    try {
      return await Deno.connect({ transport: "unix", path: endpoint.path });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error("no such socket file", { cause: error });
      }
      throw error;
    }
  }
  if (endpoint.transport === "tls") return await handshake(endpoint, signal);
  const tcp = await Deno.connect({ hostname: endpoint.hostname, port: endpoint.port, signal });
  try {
    tcp.setNoDelay(true);
  } catch {
    // Only latency is at stake; a dead connection shows itself on the first use.
  }
  return tcp;
}

/** Connects over TLS; a failed handshake rejects with its reason in words. */
async function handshake(
  endpoint: Extract<Endpoint, { transport: "tls" }>,
  signal: AbortSignal | undefined,
): Promise<Deno.Conn> {
  try {
    return await connectTls(endpoint, signal);
  } catch (error) {
    if (signal?.aborted || !(error instanceof Error)) throw error;
    // Connected, then closed before the handshake was done: a refusal, over TLS.
    if (
      error instanceof Deno.errors.UnexpectedEof ||
      /before secure TLS connection was established/.test(error.message)
    ) {
      throw new HandshakeClosed(describeTlsError(new Deno.errors.UnexpectedEof(), "client"), {
        cause: error,
      });
    }
    // A refused connection is not the handshake's: its words are the connect's own.
    if (error instanceof Deno.errors.ConnectionRefused) throw error;
    throw new Error(describeTlsError(error, "client"), { cause: error });
  }
}

/**
 * The server closed the connection during the TLS handshake, after the TCP
 * connect succeeded: over TLS, what a server's refusal at accept looks like.
 */
export class HandshakeClosed extends Error {
  /** Makes the error from its whole message; the handshake's own error as `cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeClosed";
  }
}
