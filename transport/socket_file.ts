/**
 * The socket file of a Unix domain socket listener, whichever engine binds
 * it: a path Linux can take, a socket file a dead server left behind
 * replaced, one a server answers on reported as in use, a file of any other
 * kind left untouched, and the listener's own file removed when it closes.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { ListenError } from "./contract.ts";

const log = logger("server");

/** Longest socket path Linux takes (`sun_path` holds 108 bytes with the final NUL). */
export const MAX_PATH_BYTES = 107;

/**
 * `path` as the bytes of a socket address.
 *
 * @throws {ListenError} when it is longer than Linux takes.
 */
export function socketPath(path: string): Uint8Array {
  const name = new TextEncoder().encode(path);
  if (name.length > MAX_PATH_BYTES) {
    throw new ListenError(
      `cannot listen on ${path}: too long for a Unix socket path (at most ${MAX_PATH_BYTES} bytes)`,
    );
  }
  return name;
}

/**
 * Binds with `bind`, and when the path is taken, finds out by what: a socket
 * file no server answers on is replaced and `bind` runs again; anything else
 * is a {@linkcode ListenError} that says what is there.
 *
 * @throws {ListenError} saying where and why it cannot listen.
 */
export async function bindReplacingStale<T>(path: string, bind: () => T): Promise<T> {
  try {
    return bind();
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw listenError(path, error);
  }
  // Something is there already: find out what before touching it.
  const found = statOf(path);
  if (found !== undefined) {
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
  }
  try {
    return bind();
  } catch (error) {
    throw listenError(path, error);
  }
}

/**
 * Removes the socket file at `path` if it is still `made` (the one the
 * listener bound), not one a successor has bound since.
 */
export function removeIfSame(path: string, made: Deno.FileInfo | undefined): void {
  const now = statOf(path, false);
  if (now === undefined || made === undefined || now.ino !== made.ino || now.dev !== made.dev) {
    return;
  }
  try {
    Deno.removeSync(path);
  } catch {
    // Gone already: the aim is reached.
  }
}

/**
 * What is at `path`, without following a symbolic link; undefined when
 * nothing is (or, with `strict` false, when it cannot be told).
 */
export function statOf(path: string, strict = true): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || !strict) return undefined;
    throw listenError(path, error);
  }
}

/**
 * Why listening on `path` failed, in words.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { listenError } from "./socket_file.ts";
 * const error = listenError("/run/x/echo.sock", new Deno.errors.NotFound("x"));
 * equal(error.message, "cannot listen on /run/x/echo.sock: no such directory");
 * ```
 */
export function listenError(path: string, error: unknown): ListenError {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  const why = error instanceof Deno.errors.NotFound || code === "ENOENT"
    ? "no such directory"
    : error instanceof Deno.errors.AddrInUse
    ? "address already in use"
    : describeError(error);
  return new ListenError(`cannot listen on ${path}: ${why}`, { cause: error });
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
