/**
 * {@linkcode listenEpollUnix}: a Unix domain socket listener of the epoll
 * engine, with the socket-file handling of `transport/unix.ts`: a socket
 * file no server answers on (a server that died) is replaced, one a server
 * answers on is "address already in use", a file of any other kind is left
 * alone, and the socket file goes when the listener closes.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { ListenError } from "../transport/contract.ts";
import { EpollConnection } from "./connection.ts";
import { type EpollListener, epollListenerOn, listenOn, type MakeConnection } from "./listener.ts";
import { Reactor } from "./reactor.ts";

const log = logger("server");

/** Longest socket path Linux takes (`sun_path` holds 108 bytes with the final NUL). */
const MAX_PATH_BYTES = 107;
/** `AF_UNIX`. */
const AF_UNIX = 1;
/** What the client end of a Unix socket is called: it has no name. */
const UNNAMED: Deno.UnixAddr = { transport: "unix", path: "" };

/** A connection on a Unix socket: its peer is unnamed, and it has no Nagle to turn off. */
class UnixEpollConnection extends EpollConnection {
  override get remoteAddr(): Deno.Addr {
    return UNNAMED;
  }

  override setNoDelay(): void {
    // A Unix socket sends at once.
  }
}

const unix: MakeConnection = (reactor, fd, peer) => new UnixEpollConnection(reactor, fd, peer);

/**
 * Listens on a Unix domain socket at `path` with the epoll engine (Linux,
 * `--allow-ffi`, and read and write permission for the path).
 *
 * @throws {ListenError} saying where and why it cannot listen.
 */
export async function listenEpollUnix(path: string): Promise<EpollListener<Deno.UnixAddr>> {
  const name = new TextEncoder().encode(path);
  if (name.length > MAX_PATH_BYTES) {
    throw new ListenError(
      `cannot listen on ${path}: too long for a Unix socket path (at most ${MAX_PATH_BYTES} bytes)`,
    );
  }
  // struct sockaddr_un: the family (host order), the path, a NUL.
  const address = new Uint8Array(2 + name.length + 1);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  const reactor = new Reactor();
  try {
    const fd = await bindReplacingStale(reactor, path, address);
    const listener = epollListenerOn(reactor, fd, { transport: "unix", path }, unix);
    const made = statOf(path);
    return {
      addr: listener.addr,
      stopped: listener.stopped,
      [Symbol.asyncIterator]: () => listener[Symbol.asyncIterator](),
      close: () => {
        listener.close();
        // As Deno's listener does; only the file this listener made, not one a successor made since.
        const now = statOf(path);
        if (now !== undefined && made !== undefined && now.ino === made.ino) {
          try {
            Deno.removeSync(path);
          } catch {
            // Gone already: the aim is reached.
          }
        }
      },
    };
  } catch (error) {
    // A loop that never got a user stops at once.
    reactor.retain();
    reactor.release();
    throw error instanceof ListenError ? error : listenError(path, error);
  }
}

/** Binds and listens at `path`, replacing a socket file that no server answers on. */
async function bindReplacingStale(
  reactor: Reactor,
  path: string,
  address: Uint8Array,
): Promise<number> {
  try {
    return listenOn(reactor.sys, address, false).fd;
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw listenError(path, error);
  }
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
    const now = statOf(path);
    if (now !== undefined && now.ino === found.ino && now.dev === found.dev) {
      Deno.removeSync(path);
      log.info("replaced the stale socket file {path}: no server answered on it", { path });
    }
  }
  return listenOn(reactor.sys, address, false).fd;
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
    if (error instanceof Deno.errors.ConnectionRefused) return false;
    if (error instanceof Deno.errors.NotFound) return false;
    throw listenError(path, error);
  }
}

function listenError(path: string, error: unknown): ListenError {
  const why =
    error instanceof Deno.errors.NotFound || (error as { code?: string }).code === "ENOENT"
      ? "no such directory"
      : error instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : describeError(error);
  return new ListenError(`cannot listen on ${path}: ${why}`, { cause: error });
}
