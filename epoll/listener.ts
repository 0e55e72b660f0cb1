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
import { describeError, formatAddress } from "../text/address.ts";
import {
  type Connection,
  type Listener,
  ListenError,
  type TcpAddr,
  type TcpListenOptions,
} from "../server/listener.ts";
import { EpollConnection } from "./connection.ts";
import { C, E, errorFor, OsError, type System } from "./libc.ts";
import { Reactor, type Readiness } from "./reactor.ts";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_BYTES } from "./sockaddr.ts";

/** What a peer of an unexpected address family is named (never seen on a TCP socket). */
const NO_PEER = { hostname: "", port: 0 };

/** As many connections as the kernel will queue (it caps this at `net.core.somaxconn`). */
const BACKLOG = 4096;

/** An epoll listener; its `stopped` settles once its loop and every connection are closed. */
export interface EpollListener extends Listener<TcpAddr> {
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
  const where = formatAddress(options.hostname, options.port);
  const address = encodeSockaddr(options.hostname, options.port);
  if (address === undefined) {
    throw new ListenError(
      `cannot listen on ${where}: --io epoll takes an IP address (such as 0.0.0.0, ::, 127.0.0.1), not a name`,
    );
  }
  const reactor = new Reactor();
  try {
    const fd = bindSocket(reactor.sys, address);
    return new TcpEpollListener(reactor, fd);
  } catch (error) {
    reactor.retain();
    reactor.release();
    throw new ListenError(`cannot listen on ${where}: ${describeError(error)}`, { cause: error });
  }
  function bindSocket(sys: System, bytes: Uint8Array): number {
    const { libc } = sys;
    const family = bytes[0];
    const fd = libc.socket(family, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0);
    if (fd < 0) throw errorFor("socket", sys.errno());
    const one = new Uint8Array(new Int32Array([1]).buffer);
    const fail = (call: string): never => {
      const error = errorFor(call, sys.errno());
      libc.close(fd);
      throw error;
    };
    // As Deno's listener does: a restarted server may bind while old connections sit in TIME_WAIT.
    if (libc.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEADDR, one, 4) < 0) fail("setsockopt");
    if (options.reusePort && libc.setsockopt(fd, C.SOL_SOCKET, C.SO_REUSEPORT, one, 4) < 0) {
      fail("setsockopt");
    }
    if (libc.bind(fd, bytes, bytes.length) < 0) fail("bind");
    if (libc.listen(fd, BACKLOG) < 0) fail("listen");
    return fd;
  }
}

class TcpEpollListener implements EpollListener, Readiness {
  readonly addr: TcpAddr;
  readonly #reactor: Reactor;
  readonly #fd: number;
  readonly #peer = new Uint8Array(SOCKADDR_BYTES);
  readonly #peerLength = new Uint32Array(1);
  readonly #peerLengthBytes = new Uint8Array(this.#peerLength.buffer);
  #waiter: PromiseWithResolvers<IteratorResult<Connection>> | undefined;
  #watching = false;
  #closed = false;

  constructor(reactor: Reactor, fd: number) {
    this.#reactor = reactor;
    this.#fd = fd;
    reactor.retain();
    const { libc, errno } = reactor.sys;
    this.#peerLength[0] = SOCKADDR_BYTES;
    if (libc.getsockname(fd, this.#peer, this.#peerLengthBytes) < 0) {
      throw errorFor("getsockname", errno());
    }
    const local = decodeSockaddr(this.#peer);
    if (local === undefined) throw new OsError("getsockname", 97);
    this.addr = { transport: "tcp", hostname: local.hostname, port: local.port };
  }

  get stopped(): Promise<void> {
    return this.#reactor.stopped;
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("the listener is closed");
    this.#closed = true;
    this.#reactor.forget(this.#fd);
    this.#reactor.sys.libc.close(this.#fd);
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

  fail(error: unknown): void {
    this.#waiter?.reject(error);
    this.#waiter = undefined;
  }

  #next(): Promise<IteratorResult<Connection>> {
    if (this.#closed) return Promise.resolve({ done: true, value: undefined });
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
  #accept(): EpollConnection | undefined {
    const { libc, errno } = this.#reactor.sys;
    while (true) {
      this.#peerLength[0] = SOCKADDR_BYTES;
      const fd = libc.accept4(
        this.#fd,
        this.#peer,
        this.#peerLengthBytes,
        C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
      );
      if (fd >= 0) {
        return new EpollConnection(this.#reactor, fd, decodeSockaddr(this.#peer) ?? NO_PEER);
      }
      const code = errno();
      if (code === E.EAGAIN) return undefined;
      // The connection died in the backlog, or a signal came: neither is the listener's problem.
      if (code === E.EINTR || code === E.ECONNABORTED || code === E.EPROTO) continue;
      throw new OsError("accept4", code);
    }
  }

  #watch(on: boolean): void {
    if (on === this.#watching || this.#closed) return;
    this.#watching = on;
    if (on) this.#reactor.add(this.#fd, C.EPOLLIN, this);
    else this.#reactor.remove(this.#fd);
  }
}
