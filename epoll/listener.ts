/**
 * {@linkcode listenEpoll}: a TCP listener of the epoll engine. It is a
 * {@linkcode Listener} like Deno's, so the acceptor, the admission rules and
 * the connection table are the same for both engines; what it yields are
 * {@linkcode EpollConnection}s on one {@linkcode Reactor}.
 *
 * A connection is accepted only when the acceptor asks for the next one, so
 * that in `--when-full wait` the kernel's backlog holds the rest, as with
 * Deno's listener.
 *
 * @module
 */
import { describeError, formatAddress, unbracket } from "../text/address.ts";
import {
  type Connection,
  type Listener,
  ListenError,
  type TcpAddr,
} from "../transport/contract.ts";
import type { TcpListenOptions } from "../transport/tcp.ts";
import { EpollConnection } from "./connection.ts";
import { C, E, errorFor, OsError, type System } from "./libc.ts";
import { Reactor, type Readiness } from "./reactor.ts";
import { decodeSockaddr, encodeSockaddr, type IpPort, SOCKADDR_BYTES } from "./sockaddr.ts";

/** What a peer of an unexpected address family is named (never seen on a TCP socket). */
const NO_PEER = { hostname: "", port: 0 };

/** The backlog Deno's own listener asks for, so that `--when-full wait` queues as many either way. */
const BACKLOG = 511;
/**
 * What `accept4` may fail with because of one pending connection, not the
 * listener (accept(2) says to retry these as if nothing had come).
 */
const RETRY_ACCEPT: ReadonlySet<number> = new Set([
  E.EINTR,
  E.ECONNABORTED,
  E.EPROTO,
  E.ENETDOWN,
  E.ENETUNREACH,
  E.EHOSTUNREACH,
  E.EHOSTDOWN,
  E.ENONET,
  E.ENOPROTOOPT,
  E.EOPNOTSUPP,
]);

/** Makes the connection for a socket that `accept4` gave: a plain one, or one that speaks TLS. */
export type MakeConnection = (reactor: Reactor, fd: number, peer: IpPort) => Connection;

/** The plain connection. */
const plain: MakeConnection = (reactor, fd, peer) => new EpollConnection(reactor, fd, peer);

/** An epoll listener; its `stopped` settles once its loop and every connection are closed. */
export interface EpollListener<A extends Deno.Addr = TcpAddr> extends Listener<A> {
  /** Settles when the loop has stopped: after `close()` and the last connection's close. */
  readonly stopped: Promise<void>;
}

/**
 * Listens on a TCP port with the epoll engine (Linux, `--allow-ffi`; check
 * `epollUnavailable()` first).
 *
 * @throws {ListenError} when the port cannot be had, saying where and why.
 *
 * @example
 * ```ts ignore
 * import { equal } from "node:assert/strict";
 * import { listenEpoll } from "./listener.ts";
 * const listener = listenEpoll({ hostname: "127.0.0.1", port: 0 });
 * equal(listener.addr.transport, "tcp");
 * listener.close();
 * await listener.stopped;
 * ```
 */
export function listenEpoll(options: TcpListenOptions): EpollListener {
  return listenEpollWith(options, plain);
}

/** {@linkcode listenEpoll}, with `make` making each connection it accepts (the TLS listener's). */
export function listenEpollWith(options: TcpListenOptions, make: MakeConnection): EpollListener {
  const { port } = options;
  const hostname = unbracket(options.hostname);
  const where = formatAddress(hostname, port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ListenError(`cannot listen on ${where}: invalid port, expected 0 to 65535`);
  }
  const address = encodeSockaddr(hostname, port);
  if (address === undefined) {
    throw new ListenError(
      `cannot listen on ${where}: --io epoll takes an IP address (such as 0.0.0.0, ::, 127.0.0.1) or localhost, not a name`,
    );
  }
  let reactor: Reactor | undefined;
  try {
    reactor = new Reactor();
    const { sys } = reactor;
    const { fd, local } = listenOn(sys, address, options.reusePort ?? false);
    const decoded = decodeSockaddr(local);
    if (decoded === undefined) {
      sys.close(fd);
      throw new OsError("getsockname", E.EAFNOSUPPORT);
    }
    const addr: TcpAddr = { transport: "tcp", hostname: decoded.hostname, port: decoded.port };
    return new AcceptingListener(reactor, fd, addr, make);
  } catch (error) {
    // A loop that never got a user stops at once.
    reactor?.retain();
    reactor?.release();
    throw new ListenError(`cannot listen on ${where}: ${describeError(error)}`, { cause: error });
  }
}

/**
 * A bound, listening, non-blocking socket and the address it got, as libc
 * lays it out; closed again on any failure. `address` is a socket address
 * of any family (its first byte is the family).
 */
export function listenOn(
  sys: System,
  address: Uint8Array,
  reusePort: boolean,
): { fd: number; local: Uint8Array } {
  const fd = sys.socket(address[0], C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw errorFor("socket", -fd);
  const one = new Uint8Array(new Int32Array([1]).buffer);
  const local = new Uint8Array(SOCKADDR_BYTES);
  const length = new Uint32Array([SOCKADDR_BYTES]);
  /** Closes the socket and throws if `r`, what `call` returned, is a failure (`-errno`). */
  const check = (call: string, r: number): void => {
    if (r >= 0) return;
    sys.close(fd);
    throw errorFor(call, -r);
  };
  // As Deno's listener does: a restarted server may bind while old connections sit in TIME_WAIT.
  check("setsockopt", sys.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, one));
  if (reusePort) check("setsockopt", sys.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEPORT, one));
  check("bind", sys.bind(fd, address));
  check("listen", sys.listen(fd, BACKLOG));
  check("getsockname", sys.getsockname(fd, local, new Uint8Array(length.buffer)));
  return { fd, local };
}

/**
 * The listener on `fd`, a listening socket on `reactor` whose address is
 * `addr`; `make` makes each connection it accepts.
 */
export function epollListenerOn<A extends Deno.Addr>(
  reactor: Reactor,
  fd: number,
  addr: A,
  make: MakeConnection,
): EpollListener<A> {
  return new AcceptingListener(reactor, fd, addr, make);
}

class AcceptingListener<A extends Deno.Addr> implements EpollListener<A>, Readiness {
  readonly engine = "epoll";
  readonly addr: A;
  readonly #reactor: Reactor;
  readonly #fd: number;
  readonly #peer = new Uint8Array(SOCKADDR_BYTES);
  readonly #peerLength = new Uint32Array(1);
  readonly #peerLengthBytes = new Uint8Array(this.#peerLength.buffer);
  #waiter: PromiseWithResolvers<IteratorResult<Connection>> | undefined;
  #watching = false;
  #closed = false;
  /** The loop failed under it. */
  #dead = false;

  readonly #make: MakeConnection;

  constructor(reactor: Reactor, fd: number, addr: A, make: MakeConnection) {
    this.#make = make;
    this.#reactor = reactor;
    this.#fd = fd;
    this.addr = addr;
    reactor.retain();
  }

  get stopped(): Promise<void> {
    return this.#reactor.stopped;
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the listener is closed");
    this.#closed = true;
    this.#reactor.close(this.#fd);
    this.#waiter?.resolve({ done: true, value: undefined });
    this.#waiter = undefined;
    this.#reactor.release();
  }

  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return { next: () => this.#next() };
  }

  ready(): void {
    const waiter = this.#waiter;
    // Nobody asked: stop watching, and leave the rest in the backlog until someone does.
    if (waiter === undefined) return this.#watch(false);
    this.#waiter = undefined;
    try {
      const conn = this.#accept();
      if (conn === undefined) {
        this.#waiter = waiter;
        return;
      }
      waiter.resolve({ done: false, value: conn });
    } catch (error) {
      waiter.reject(error);
    }
    this.#reactor.settled();
  }

  /** The loop under it failed: nothing can be accepted again, so the iteration ends. */
  fail(): void {
    this.#dead = true;
    this.#waiter?.resolve({ done: true, value: undefined });
    this.#waiter = undefined;
  }

  #next(): Promise<IteratorResult<Connection>> {
    // A loop that failed while this listener was not watching never told it: look.
    if (this.#reactor.failed) this.#dead = true;
    if (this.#closed || this.#dead) return Promise.resolve({ done: true, value: undefined });
    if (this.#waiter !== undefined) {
      return Promise.reject(new Deno.errors.Busy("the listener is already being accepted from"));
    }
    try {
      // Often one is already there (a burst of connects): no need to wait for the loop.
      const conn = this.#accept();
      if (conn !== undefined) return Promise.resolve({ done: false, value: conn });
      this.#watch(true);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#waiter = Promise.withResolvers();
    return this.#waiter.promise;
  }

  /** One connection from the backlog, `undefined` when it is empty; throws what the acceptor must back off from. */
  #accept(): Connection | undefined {
    const { sys } = this.#reactor;
    while (true) {
      this.#peerLength[0] = SOCKADDR_BYTES;
      const fd = sys.accept4(
        this.#fd,
        this.#peer,
        this.#peerLengthBytes,
        C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
      );
      if (fd >= 0) {
        return this.#make(this.#reactor, fd, decodeSockaddr(this.#peer) ?? NO_PEER);
      }
      const code = -fd;
      if (code === E.EAGAIN) return undefined;
      // The connection died in the backlog, or a signal came: neither is the listener's problem.
      if (RETRY_ACCEPT.has(code)) continue;
      throw new OsError("accept4", code);
    }
  }

  #watch(on: boolean): void {
    if (on === this.#watching || this.#closed) return;
    if (on) this.#reactor.add(this.#fd, C.EPOLLIN, this);
    else this.#reactor.remove(this.#fd);
    this.#watching = on;
  }
}
