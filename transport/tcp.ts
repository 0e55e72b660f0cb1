/**
 * Plain TCP on Deno's own sockets: the listener the default engine starts with.
 *
 * @module
 */
import { describeError, formatAddress } from "../text/address.ts";
import { hasUnstableNet, UNSTABLE_NET_OFF } from "../text/unstable.ts";
import { type Listener, ListenError, type TcpAddr } from "./contract.ts";

/** Where {@linkcode listenTcp} listens. */
export interface TcpListenOptions {
  /** The address to listen on; `::` listens on IPv6 too. */
  hostname: string;
  /** The port; 0 picks a free one. */
  port: number;
  /** Let several listeners share the port (for workers; unstable `net`). */
  reusePort?: boolean;
}

/**
 * Listens on a TCP port.
 *
 * @throws {ListenError} when the port cannot be had, saying where and why.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { listenTcp } from "./tcp.ts";
 * const listener = listenTcp({ hostname: "127.0.0.1", port: 0 });
 * equal(listener.addr.transport, "tcp");
 * listener.close();
 * ```
 */
export function listenTcp(options: TcpListenOptions): Listener<TcpAddr> {
  const { hostname, port } = options;
  // Without the unstable API, Deno would end the whole process (exit 70) instead of throwing.
  if (options.reusePort && !hasUnstableNet()) {
    throw new ListenError(
      `cannot share ${formatAddress(hostname, port)} (reusePort): ${UNSTABLE_NET_OFF}`,
    );
  }
  let tcp: Deno.TcpListener;
  try {
    tcp = Deno.listen({ hostname, port, reusePort: options.reusePort });
  } catch (error) {
    throw new ListenError(
      `cannot listen on ${formatAddress(hostname, port)}: ${describeError(error)}`,
      { cause: error },
    );
  }
  const addr: TcpAddr = { transport: "tcp", hostname: tcp.addr.hostname, port: tcp.addr.port };
  return {
    addr,
    close: () => tcp.close(),
    [Symbol.asyncIterator]: () => tcp[Symbol.asyncIterator](),
  };
}
