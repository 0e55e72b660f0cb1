/**
 * One accepted socket of the epoll engine. It is a {@linkcode Connection}
 * like any other (promise-based `read` and `write`, for the PROXY header
 * and the refusal line), and it can also run the echo itself
 * ({@linkcode EpollConnection.echo}), driven by readiness: read into the
 * loop's shared buffer, write straight back, and only when the peer does not
 * take everything keep the rest and wait for `EPOLLOUT`, reading nothing
 * from that peer meanwhile. That keeps {@linkcode echoConnection}'s rules
 * (every byte back, in order; a peer that does not read stalls only itself)
 * without a `Promise` per read or per connection.
 *
 * @module
 */
import { type EchoCounters, type EchoDone, type EchoOptions, isPeerGone } from "../server/echo.ts";
import type { Connection } from "../server/listener.ts";
import { C, E, errorFor } from "./libc.ts";
import type { Reactor, Readiness } from "./reactor.ts";
import type { IpPort } from "./sockaddr.ts";

const READING = C.EPOLLIN | C.EPOLLRDHUP;
/** Counters for no echo: a connection that is not echoing counts nothing. */
const NO_COUNTERS: EchoCounters = { bytesIn: 0, bytesOut: 0 };
const SEND_FLAGS = C.MSG_NOSIGNAL;
/** `int` option values for `setsockopt`, made once: libc only reads them during the call. */
const ONE = new Uint8Array(new Int32Array([1]).buffer);
const ZERO = new Uint8Array(4);
/** The most one call moves: its count must fit the i32 that libc's result is read as. */
const MAX_IO = 1 << 30;

interface Parked<T> {
  readonly bytes: Uint8Array;
  readonly resolve: (value: T) => void;
  readonly reject: (error: unknown) => void;
}

/** An accepted, non-blocking TCP socket on a {@linkcode Reactor}. */
export class EpollConnection implements Connection, Readiness {
  readonly #reactor: Reactor;
  #fd: number;
  // The peer as two fields, not an address object: read once or twice, kept for the connection's life.
  readonly #hostname: string;
  readonly #port: number;
  /** The events the descriptor is registered for; -1 while it is not in the epoll set. */
  #interest = -1;
  #reader: Parked<number | null> | undefined;
  #writer: Parked<number> | undefined;
  // The echo's state lives here, not in an object of its own: an idle connection is this object.
  /** Who hears the end of the echo; set while it runs. */
  #echo: EchoDone | undefined;
  #counters: EchoCounters = NO_COUNTERS;
  #onChunk: ((bytes: number) => void) | undefined;
  /** Read but not yet written back (a copy: the shared buffer is reused at once). */
  #pending: Uint8Array | undefined;

  /** Takes ownership of `fd`; the connection closes it. */
  constructor(reactor: Reactor, fd: number, peer: IpPort) {
    this.#reactor = reactor;
    this.#fd = fd;
    this.#hostname = peer.hostname;
    this.#port = peer.port;
    reactor.retain();
  }

  /** The peer, as `accept4` gave it. */
  get remoteAddr(): Deno.NetAddr {
    return { transport: "tcp", hostname: this.#hostname, port: this.#port };
  }

  /** Turns Nagle's algorithm off (or on), so that small echoes leave at once. */
  setNoDelay(noDelay = true): void {
    const { libc, errno } = this.#reactor.sys;
    const fd = this.#open();
    if (libc.setsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, noDelay ? ONE : ZERO, 4) < 0) {
      throw errorFor("setsockopt", errno());
    }
  }

  /**
   * Echoes everything the peer sends until it shuts its side down (`eof`,
   * after every byte was written back) or goes away (`reset`); `done` hears
   * which, or the error. Closing the connection ends it with an error, as it
   * ends a pending read. `counters` are updated as bytes flow.
   */
  echo(options: EchoOptions, done: EchoDone): void {
    this.#open();
    if (this.#echo !== undefined || this.#reader !== undefined || this.#writer !== undefined) {
      throw new Deno.errors.Busy("the connection is already being read or written");
    }
    // Registered first: if that fails, nothing is left set for a later close to report again.
    this.#watch(READING);
    this.#echo = done;
    this.#counters = options.counters ?? { bytesIn: 0, bytesOut: 0 };
    this.#onChunk = options.onChunk;
  }

  /** Reads into `p`; resolves with the byte count, or `null` once the peer shut its side down. */
  read(p: Uint8Array): Promise<number | null> {
    try {
      this.#open();
      if (this.#reader !== undefined || this.#echo !== undefined) {
        throw new Deno.errors.Busy("the connection is already being read");
      }
      const n = this.#tryRecv(p);
      if (n !== undefined) return Promise.resolve(n);
    } catch (error) {
      return Promise.reject(error);
    }
    const { promise, resolve, reject } = Promise.withResolvers<number | null>();
    this.#reader = { bytes: p, resolve, reject };
    try {
      this.#rewatch();
    } catch (error) {
      this.#reader = undefined;
      return Promise.reject(error);
    }
    return promise;
  }

  /** Writes some prefix of `p`; resolves with how many bytes the kernel took. */
  write(p: Uint8Array): Promise<number> {
    try {
      this.#open();
      if (this.#writer !== undefined || this.#echo !== undefined) {
        throw new Deno.errors.Busy("the connection is already being written");
      }
      const n = this.#trySend(p);
      if (n !== undefined) return Promise.resolve(n);
    } catch (error) {
      return Promise.reject(error);
    }
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#writer = { bytes: p, resolve, reject };
    try {
      this.#rewatch();
    } catch (error) {
      this.#writer = undefined;
      return Promise.reject(error);
    }
    return promise;
  }

  /** Closes the socket; a pending read, write or echo then fails, as with Deno's own sockets. */
  close(): void {
    const fd = this.#open();
    this.#fd = -1;
    this.#reactor.forget(fd);
    const { libc } = this.#reactor.sys;
    // Closing with unread input sends a reset, which can destroy what was just written
    // (a refusal line) before the peer reads it: discard what has come, so a FIN goes
    // instead. One read's worth: past that a reset it is, rather than a slow close.
    libc.recv(fd, this.#reactor.buffer, this.#reactor.bufferLength, 0);
    libc.close(fd);
    const closed = () => new Deno.errors.BadResource("the connection was closed");
    const { reader, writer, echo } = {
      reader: this.#reader,
      writer: this.#writer,
      echo: this.#echo,
    };
    this.#reader = this.#writer = this.#echo = undefined;
    reader?.reject(closed());
    writer?.reject(closed());
    // Later, as a pending read of Deno's would fail: the closer may be iterating its own table.
    if (echo !== undefined) queueMicrotask(() => echo.echoEnded("error", closed()));
    this.#reactor.release();
  }

  /** See {@linkcode Readiness.ready}. */
  ready(events: number): void {
    if (this.#echo !== undefined) {
      return this.#pending === undefined ? this.#echoRead(events) : this.#echoFlush();
    }
    if (this.#reader !== undefined && this.#retry(this.#reader, (p) => this.#tryRecv(p))) {
      this.#reader = undefined;
    }
    if (this.#writer !== undefined && this.#retry(this.#writer, (p) => this.#trySend(p))) {
      this.#writer = undefined;
    }
    if (this.#fd >= 0) this.#rewatch();
  }

  /** See {@linkcode Readiness.fail}: ends whatever is in progress with `error`. */
  fail(error: unknown): void {
    const echo = this.#echo;
    this.#echo = undefined;
    this.#pending = undefined;
    this.#reactor.settled();
    if (echo !== undefined) return echo.echoEnded("error", error);
    this.#reader?.reject(error);
    this.#writer?.reject(error);
    this.#reader = this.#writer = undefined;
  }

  #echoRead(events: number): void {
    const { libc } = this.#reactor.sys;
    const buffer = this.#reactor.buffer;
    const fd = this.#fd;
    const counters = this.#counters;
    const n = libc.recv(fd, buffer, this.#reactor.bufferLength, 0);
    if (n > 0) {
      counters.bytesIn += n;
      const sent = libc.send(fd, buffer, BigInt(n), SEND_FLAGS);
      // After the send: what it runs may use the loop, and the shared buffer with it.
      this.#onChunk?.(n);
      if (sent === n) {
        counters.bytesOut += n;
        // The peer has shut its side: whatever it sent last is back, so look for the end now.
        if ((events & C.EPOLLRDHUP) !== 0 && n < buffer.length) this.#echoRead(0);
        return;
      }
      if (sent < 0 && !this.#wouldBlock()) return this.#echoEnd(errorFor("send", this.#errno()));
      const taken = Math.max(sent, 0);
      counters.bytesOut += taken;
      this.#pending = buffer.slice(taken, n);
      this.#watch(C.EPOLLOUT);
      return;
    }
    if (n === 0) return this.#echoEnd("eof");
    if (!this.#wouldBlock()) this.#echoEnd(errorFor("recv", this.#errno()));
  }

  #echoFlush(): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    const sent = this.#reactor.sys.libc.send(
      this.#fd,
      pending,
      BigInt(pending.length),
      SEND_FLAGS,
    );
    if (sent < 0) {
      if (!this.#wouldBlock()) this.#echoEnd(errorFor("send", this.#errno()));
      return;
    }
    this.#counters.bytesOut += sent;
    if (sent < pending.length) {
      this.#pending = pending.subarray(sent);
      return;
    }
    this.#pending = undefined;
    this.#watch(READING);
  }

  /** The echo is over: the owner hears why and closes the connection. */
  #echoEnd(end: "eof" | Error): void {
    const echo = this.#echo;
    if (echo === undefined) return;
    this.#echo = undefined;
    this.#pending = undefined;
    // The owner's accounting settles promises (a free slot, the end of a drain).
    this.#reactor.settled();
    if (end === "eof") return echo.echoEnded("eof");
    if (isPeerGone(end)) return echo.echoEnded("reset");
    echo.echoEnded("error", end);
  }

  #errno(): number {
    return this.#reactor.sys.errno();
  }

  /** Tries a parked read or write again; true when it settled (done or failed). */
  #retry<T>(parked: Parked<T>, attempt: (bytes: Uint8Array) => T | undefined): boolean {
    try {
      const result = attempt(parked.bytes);
      if (result === undefined) return false;
      parked.resolve(result);
    } catch (error) {
      parked.reject(error);
    }
    this.#reactor.settled();
    return true;
  }

  /** A read's result, or `undefined` when nothing has come yet. */
  #tryRecv(p: Uint8Array): number | null | undefined {
    if (p.length === 0) return 0;
    const n = this.#reactor.sys.libc.recv(this.#fd, p, BigInt(Math.min(p.length, MAX_IO)), 0);
    if (n > 0) return n;
    if (n === 0) return null;
    if (this.#wouldBlock()) return undefined;
    throw errorFor("recv", this.#reactor.sys.errno());
  }

  /** A write's result, or `undefined` when the kernel took nothing yet. */
  #trySend(p: Uint8Array): number | undefined {
    if (p.length === 0) return 0;
    const n = this.#reactor.sys.libc.send(
      this.#fd,
      p,
      BigInt(Math.min(p.length, MAX_IO)),
      SEND_FLAGS,
    );
    if (n >= 0) return n;
    if (this.#wouldBlock()) return undefined;
    throw errorFor("send", this.#reactor.sys.errno());
  }

  /** True when the last call failed only because it would have had to wait (or was interrupted). */
  #wouldBlock(): boolean {
    const errno = this.#reactor.sys.errno();
    return errno === E.EAGAIN || errno === E.EINTR;
  }

  /** Watches for what the parked read and write need; nothing at all once neither is left. */
  #rewatch(): void {
    this.#watch(
      (this.#reader !== undefined ? READING : 0) | (this.#writer !== undefined ? C.EPOLLOUT : 0),
    );
  }

  /**
   * Registers for `events`. With none, the descriptor leaves the epoll set:
   * errors and hang-ups are reported even to an empty mask, and an unwatched
   * one that hung up would wake the loop forever.
   */
  #watch(events: number): void {
    if (events === this.#interest || (events === 0 && this.#interest === -1)) return;
    if (events === 0) {
      this.#reactor.remove(this.#fd);
      this.#interest = -1;
    } else if (this.#interest === -1) {
      this.#reactor.add(this.#fd, events, this);
      this.#interest = events;
    } else {
      this.#reactor.modify(this.#fd, events);
      this.#interest = events;
    }
  }

  #open(): number {
    if (this.#fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    return this.#fd;
  }
}
