/**
 * The client side of a TCP connection on the epoll engine: a non-blocking
 * socket whose connect ends with `EPOLLOUT`, its result read with
 * `SO_ERROR`, the server's address as libc takes it, and the PROXY header
 * a connection sends first when the run speaks as a proxy.
 *
 * @module
 */
import { C, errorFor, type System } from "../epoll/libc.ts";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_BYTES } from "../epoll/sockaddr.ts";
import { SEND_FLAGS } from "../epoll/socket_calls.ts";
import type { ProxyEndpoint } from "../proxy/header.ts";
import type { ProxyHeaders } from "./proxy.ts";

/** `errno` values of a connect that `epoll/libc.ts` does not name. */
const ECONNREFUSED = 111;
const EINPROGRESS = 115;
/** `int` 1 for `setsockopt`: small messages must leave at once, as the Deno engine's do. */
const ONE = new Uint8Array(new Int32Array([1]).buffer);

/**
 * The error a failed connect of `errno` raises, as Deno's own sockets name
 * it, so that the report words it as it does for `--io deno`.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { connectError } from "./epoll_socket.ts";
 * ok(connectError(111) instanceof Deno.errors.ConnectionRefused);
 * ```
 */
export function connectError(errno: number): Error {
  if (errno === ECONNREFUSED) {
    return new Deno.errors.ConnectionRefused("connect: ECONNREFUSED (os error 111)");
  }
  return errorFor("connect", errno);
}

/**
 * Opens a non-blocking TCP socket and starts connecting it to `address`
 * (a `sockaddr`): the descriptor, to be watched for `EPOLLOUT`, which comes
 * once the connect has ended either way (at once when it already has).
 * Throws when the socket cannot be made or the connect fails at once.
 */
export function startConnect(sys: System, address: Uint8Array): number {
  const family = address[0] | (address[1] << 8);
  const fd = sys.socket(family, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw errorFor("socket", -fd);
  sys.setsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, ONE);
  const r = sys.connect(fd, address);
  if (r === 0 || r === -EINPROGRESS) return fd;
  sys.close(fd);
  throw connectError(-r);
}

/** How the connect of `fd` ended, once it reported `EPOLLOUT`: `undefined` when it connected. */
export function connectResult(sys: System, fd: number): Error | undefined {
  const pending = sys.getsockoptInt(fd, C.SOL_SOCKET, C.SO_ERROR);
  if (pending === 0) return undefined;
  return connectError(pending < 0 ? -pending : pending);
}

/**
 * The server's address as libc takes it: an IP address as it is, a name
 * resolved (IPv4 first, as `Deno.connect` tries it).
 */
export async function resolveSockaddr(host: string, port: number): Promise<Uint8Array> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const literal = encodeSockaddr(bare, port);
  if (literal !== undefined) return literal;
  for (const type of ["A", "AAAA"] as const) {
    try {
      const [first] = await Deno.resolveDns(bare, type);
      const address = first === undefined ? undefined : encodeSockaddr(first, port);
      if (address !== undefined) return address;
    } catch {
      // No record of this type: try the next.
    }
  }
  throw new Deno.errors.NotFound(`cannot resolve ${bare}`);
}

/**
 * Sends the next of `headers` on `fd`, just connected to `server`, first
 * thing: from the socket's own address, or the next of the run's sources.
 * A fresh socket takes the hundred-odd bytes at once, so the send is not
 * waited for: anything short of the whole header is an error.
 */
export function sendProxyHeader(
  sys: System,
  fd: number,
  headers: ProxyHeaders,
  server: ProxyEndpoint,
): Error | undefined {
  const local = new Uint8Array(SOCKADDR_BYTES);
  const length = new Uint32Array([SOCKADDR_BYTES]);
  const named = sys.getsockname(fd, local, new Uint8Array(length.buffer));
  const own = named === 0 ? decodeSockaddr(local.subarray(0, length[0])) : undefined;
  const header = headers.next(
    own?.port ?? 0,
    server,
    own === undefined ? undefined : { address: own.hostname, port: own.port },
  );
  const n = sys.send(fd, header, BigInt(header.length), SEND_FLAGS);
  if (n === header.length) return undefined;
  if (n < 0) return errorFor("send", -n);
  return new Error(`the PROXY header did not go out whole (${n} of ${header.length} bytes)`);
}
