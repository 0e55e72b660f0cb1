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
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { type Listener, ListenError } from "./contract.ts";

const log = logger("server");

/** Longest socket path Linux takes (`sun_path` holds 108 bytes with the final NUL). */
const MAX_PATH_BYTES = 107;

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
  if (new TextEncoder().encode(path).length > MAX_PATH_BYTES) {
    throw new ListenError(
      `cannot listen on ${path}: too long for a Unix socket path (at most ${MAX_PATH_BYTES} bytes)`,
    );
  }
  try {
    return wrap(Deno.listen({ transport: "unix", path }));
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw listenError(path, error);
  }
  // Something is there already: find out what before touching it.
  const found = statOf(path);
  if (found === undefined) return listenAgain(path);
  if (!found.isSocket) {
    throw new ListenError(
      `cannot listen on ${path}: a ${kindOf(found)} is there, not a socket; left untouched`,
    );
  }
  if (await answers(path)) {
    throw new ListenError(
      `cannot listen on ${path}: address already in use (a server answers there)`,
    );
  }
  // Remove it only if it is still the socket just probed, not one a new server made meanwhile.
  const now = statOf(path);
  if (now !== undefined && now.ino === found.ino && now.dev === found.dev) {
    try {
      Deno.removeSync(path);
    } catch (error) {
      throw listenError(path, error);
    }
    log.info("replaced the stale socket file {path}: no server answered on it", { path });
  }
  return listenAgain(path);
}

function listenAgain(path: string): Listener<Deno.UnixAddr> {
  try {
    return wrap(Deno.listen({ transport: "unix", path }));
  } catch (error) {
    throw listenError(path, error);
  }
}

function wrap(unix: Deno.UnixListener): Listener<Deno.UnixAddr> {
  return {
    addr: unix.addr,
    // Deno removes the socket file as it closes the listener.
    close: () => unix.close(),
    [Symbol.asyncIterator]: () => unix[Symbol.asyncIterator](),
  };
}

/** What is at `path`, without following a symbolic link; undefined when nothing is. */
function statOf(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw listenError(path, error);
  }
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isFile) return "regular file";
  if (info.isDirectory) return "directory";
  if (info.isSymlink) return "symbolic link";
  if (info.isFifo) return "named pipe";
  return "file";
}

/** Tells whether a server accepts connections on the socket at `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
    return true;
  } catch (error) {
    // Refused: nobody listens on it. Gone: someone removed it meanwhile.
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    if (error instanceof Deno.errors.NotFound) return false;
    throw listenError(path, error);
  }
}

function listenError(path: string, error: unknown): ListenError {
  const why = error instanceof Deno.errors.NotFound
    ? "no such directory"
    : error instanceof Deno.errors.AddrInUse
    ? "address already in use"
    : describeError(error);
  return new ListenError(`cannot listen on ${path}: ${why}`, { cause: error });
}
