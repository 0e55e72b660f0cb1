/**
 * A TCP echo server with admission limits and a graceful drain.
 *
 * The parts, in the order a connection meets them:
 *
 * | part             | module                  | job                                                             |
 * | ---------------- | ----------------------- | --------------------------------------------------------------- |
 * | listener         | `transport/`            | yields connections: TCP by default, or any {@linkcode Listener} |
 * | acceptor         | `server/acceptor.ts`    | the accept loop: back-off, out of descriptors, waiting for room |
 * | guard            | `admission/guard.ts`    | admits or refuses: allow/deny lists, rate, per-address and cap  |
 * | connection table | `server/connections.ts` | runs each echo in a task of its own; counts, timeouts, drain    |
 * | echo             | `transport/echo.ts`     | reads a chunk, writes all of it back, repeats                   |
 *
 * {@linkcode serve} (`server/serve.ts`) joins them and stops them in order. With
 * `udp`, it also echoes datagrams on the same port (`transport/udp.ts`): not a
 * stream, so one loop of its own, under the guard's allow/deny rules and a
 * reply limit per source address (`admission/datagrams.ts`).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Guard, serve } from "./server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0, guard: new Guard({ maxConns: 100 }) });
 * using conn = await Deno.connect(server.addr);
 * await conn.write(new TextEncoder().encode("hi"));
 * const reply = new Uint8Array(2);
 * await conn.read(reply);
 * equal(new TextDecoder().decode(reply), "hi");
 * ```
 *
 * @module
 */
export {
  type EchoServer,
  IO_ENGINES,
  type IoEngine,
  type LiveOptions,
  serve,
  SERVE_DEFAULTS,
  type ServeOptions,
} from "./server/serve.ts";
export type { WhenFull } from "./server/acceptor.ts";
export {
  type Connection,
  type Listener,
  ListenError,
  type TcpAddr,
  type TlsMaterial,
  TransportError,
} from "./transport/contract.ts";
export { listenTcp, type TcpListenOptions } from "./transport/tcp.ts";
export { checkTlsMaterial, type TlsMaterialProblem } from "./transport/tls_material.ts";
export {
  listenTls,
  type ServeTlsOptions,
  TLS_DEFAULTS,
  type TlsListenOptions,
} from "./transport/tls.ts";
export { listenUnix } from "./transport/unix.ts";
export type { ServerStats } from "./server/stats.ts";
export type { CloseReason, DurationHistogram } from "./server/closes.ts";
export type { Duplex, EchoCounters, EchoDone, EchoEnd, EchoOptions } from "./transport/echo.ts";
export { epollUnavailable } from "./epoll/libc.ts";
export { type EpollListener, listenEpoll } from "./epoll/listener.ts";
export {
  type EpollTlsListener,
  type EpollTlsOptions,
  listenEpollTls,
} from "./epoll/tls_listener.ts";
export { listenEpollUnix } from "./epoll/unix_listener.ts";
export type { DatagramStats, UdpOptions } from "./transport/udp.ts";
export type { FaultCounts } from "./fault/select.ts";
export type { Amount, FaultName, FaultSettings } from "./fault/spec.ts";
export { PROXY_DEFAULTS, type ProxyProtocolOptions } from "./proxy/listener.ts";
// The admission rules that ServeOptions.guard takes, so that one import serves.
export * from "./admission/mod.ts";
