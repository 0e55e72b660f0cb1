/**
 * The Unix domain socket listener: listens on a path, replaces the socket
 * file a dead server left behind, and leaves anything else at that path
 * alone.
 *
 * Clients of a Unix socket have no IP address (and usually no name), so they
 * all share one admission key: `--max-conns-per-ip` and `--rate` count them
 * together, and allow/deny rules cannot match them.
 *
 * @module
 */
import type { Listener } from "./contract.ts";
import { bindReplacingStale, socketPath } from "./socket_file.ts";

/**
 * Listens on a Unix domain socket at `path`. A socket file that no server
 * answers on (a server that died without removing it) is replaced; a socket
 * that a server answers on is "address already in use"; a file of any other
 * kind is left untouched. The socket file is removed when the listener is
 * closed.
 *
 * @throws {ListenError} saying where and why it cannot listen.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { listenUnix } from "./unix.ts";
 * const dir = Deno.makeTempDirSync();
 * const listener = await listenUnix(`${dir}/echo.sock`);
 * equal(listener.addr.path, `${dir}/echo.sock`);
 * listener.close();
 * Deno.removeSync(dir);
 * ```
 */
export async function listenUnix(path: string): Promise<Listener<Deno.UnixAddr>> {
  socketPath(path);
  const unix = await bindReplacingStale(path, () => Deno.listen({ transport: "unix", path }));
  return {
    addr: unix.addr,
    // Deno removes the socket file as it closes the listener.
    close: () => unix.close(),
    [Symbol.asyncIterator]: () => unix[Symbol.asyncIterator](),
  };
}
