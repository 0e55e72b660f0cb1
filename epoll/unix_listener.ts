/**
 * {@linkcode listenEpollUnix}: a Unix domain socket listener of the epoll
 * engine, with the socket-file handling of `transport/unix.ts`: a socket
 * file no server answers on (a server that died) is replaced, one a server
 * answers on is "address already in use", a file of any other kind is left
 * alone, and the socket file goes when the listener closes.
 *
 * @module
 */
import { ListenError } from "../transport/contract.ts";
import {
  bindReplacingStale,
  listenError,
  removeIfSame,
  socketPath,
  statOf,
} from "../transport/socket_file.ts";
import { EpollConnection } from "./connection.ts";
import { type EpollListener, epollListenerOn, listenOn, type MakeConnection } from "./listener.ts";
import { Reactor } from "./reactor.ts";

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
  const name = socketPath(path);
  // struct sockaddr_un: the family (host order), the path, a NUL.
  const address = new Uint8Array(2 + name.length + 1);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  const reactor = new Reactor();
  try {
    const fd = await bindReplacingStale(path, () => listenOn(reactor.sys, address, false).fd);
    const listener = epollListenerOn(reactor, fd, { transport: "unix", path }, unix);
    const made = statOf(path);
    return {
      addr: listener.addr,
      stopped: listener.stopped,
      engine: "epoll",
      [Symbol.asyncIterator]: () => listener[Symbol.asyncIterator](),
      close: () => {
        listener.close();
        // As Deno's listener does; only the file this listener made, not one a successor made since.
        removeIfSame(path, made);
      },
    };
  } catch (error) {
    // A loop that never got a user stops at once.
    reactor.retain();
    reactor.release();
    throw error instanceof ListenError ? error : listenError(path, error);
  }
}
