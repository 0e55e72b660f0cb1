/**
 * One accepted socket of the epoll engine. It is a {@linkcode Connection}
 * like any other (promise-based `read` and `write`, for the PROXY header
 * and the refusal line), and it can also run the echo itself
 * ({@linkcode EpollConnection.echo}), driven by readiness. That keeps
 * {@linkcode echoConnection}'s rules (every byte back, in order; a peer that
 * does not read stalls only itself) without a `Promise` per read or per
 * connection.
 *
 * The echo takes from the kernel no more than the peer takes back, so that
 * a peer that stops reading pins kernel buffers, not the server's memory:
 *
 * - Small messages (the hot path): one `recv` of at most
 *   {@linkcode FIRST_READ_BYTES} into the loop's shared buffer, one `send`
 *   straight back. Only when the send is short is the rest kept (a copy, at
 *   most that size), and nothing more is read from that peer until
 *   `EPOLLOUT` says the rest went out.
 * - Once a read fills those bytes, or a send fell short: the echo works in
 *   place. `recv(MSG_PEEK)` copies up to the whole shared buffer, `send`
 *   writes it back, and `recv(MSG_TRUNC)` drops from the socket exactly the
 *   bytes that were sent (Linux TCP discards without copying); the rest
 *   stays in the kernel until the peer reads. Back to the hot path once a
 *   read is small again.
 *
 * @module
 */
import type { EchoCounters, EchoDone, EchoOptions } from "../transport/echo.ts";
import { isPeerGone } from "../transport/echo.ts";
import type { Connection } from "../transport/contract.ts";
import { C } from "./libc.ts";
import { discardInput, type Lingerer, Lingering, lingerOver } from "./linger.ts";
import { abortOnClose, failureOf, SEND_FLAGS, setNoDelayOn } from "./socket_calls.ts";
import { type Linger, unsentAtClose } from "./socket_calls.ts";
import { ParkedIo, READING } from "./parked_io.ts";
import type { Reactor, Readiness } from "./reactor.ts";
import type { IpPort } from "./sockaddr.ts";

/** A connection that is not echoing counts nothing. */
const NO_COUNTERS: EchoCounters = { bytesIn: 0, bytesOut: 0 };
/**
 * The most a hot-path read takes from the kernel: a message up to this size is one `recv` and one
 * `send`, and a peer that stops reading leaves at most this much of its echo in the server's
 * memory. 8 KiB: twice the 4 KiB pingpong, half the 16 KiB per connection that the issue allowed.
 */
export const FIRST_READ_BYTES = 8192;
const FIRST_READ = BigInt(FIRST_READ_BYTES);
/** Every gently closing connection of this isolate, asked in turn by one timer. */
const lingering = new Lingering();

/** An accepted, non-blocking TCP socket on a {@linkcode Reactor}. */
export class EpollConnection implements Connection, Readiness, Lingerer {
  readonly #reactor: Reactor;
  #fd: number;
  // The peer as two fields, not an address object: read once or twice, kept for the connection's life.
  readonly #hostname: string;
  readonly #port: number;
  /** The events the descriptor is registered for; -1 while it is not in the epoll set. */
  #interest = -1;
  /** The promise-based reads and writes, made when first used (not by the echo). */
  #io: ParkedIo | undefined;
  // The echo's state lives here, not in an object of its own: an idle connection is this object.
  /** Who hears the end of the echo; set while it runs. */
  #echo: EchoDone | undefined;
  #counters: EchoCounters = NO_COUNTERS;
  #onChunk: ((bytes: number) => void) | undefined;
  /** Read but not yet written back (a copy of at most FIRST_READ_BYTES: the shared buffer is reused at once). */
  #pending: Uint8Array | undefined;
  /** Whether the echo works in place (peek, send, drop what was sent); see the module's documentation. */
  #inPlace = false;
  /** Set once the connection is closing gently. */
  #linger: Linger | undefined;

  /** Takes ownership of `fd`; the connection closes it. */
  constructor(reactor: Reactor, fd: number, peer: IpPort) {
    this.#reactor = reactor;
    this.#fd = fd;
    this.#hostname = peer.hostname;
    this.#port = peer.port;
    reactor.retain();
  }

  /** The peer, as `accept4` gave it. */
  get remoteAddr(): Deno.Addr {
    return { transport: "tcp", hostname: this.#hostname, port: this.#port };
  }

  /** Turns Nagle's algorithm off (or on), so that small echoes leave at once. */
  setNoDelay(noDelay = true): void {
    setNoDelayOn(this.#reactor.sys, this.#open(), noDelay);
  }

  /**
   * Echoes everything the peer sends until it shuts its side down (`eof`,
   * after every byte was written back) or goes away (`reset`); `done` hears
   * which, or the error. Closing the connection ends it with an error, as it
   * ends a pending read. `counters` are updated as bytes flow: `bytesIn`
   * counts the bytes taken from the socket to be echoed, `bytesOut` those
   * the socket took back.
   */
  echo(options: EchoOptions, done: EchoDone): void {
    this.#open();
    if (
      this.#echo !== undefined || this.#io?.waiting === true ||
      this.#linger !== undefined
    ) {
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
      return this.#parkedIo().read(p);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Writes some prefix of `p`; resolves with how many bytes the kernel took. */
  write(p: Uint8Array): Promise<number> {
    try {
      return this.#parkedIo().write(p);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Closes the socket; a pending read, write or echo then fails, as with
   * Deno's own sockets. A running echo's `bytesOut` first loses the bytes
   * that the close throws away unsent (see {@linkcode EpollConnection.closeGently}).
   */
  close(): void {
    const fd = this.#open();
    const { sys, buffer, bufferLength } = this.#reactor;
    // Closing with unread input sends a reset, which can destroy what was just written
    // (a refusal line) before the peer reads it: discard what has come, so a FIN goes
    // instead. One read's worth: past that a reset it is, rather than a slow close.
    sys.recv(fd, buffer, bufferLength, 0);
    if (this.#echo !== undefined) {
      const counters = this.#counters;
      counters.bytesOut = Math.max(0, counters.bytesOut - unsentAtClose(sys, fd, this.#linger));
    }
    this.#fd = -1;
    // Closed by its check, by the peer's reset or by the owner: the timer has no more to ask.
    if (this.#linger !== undefined) lingering.delete(this);
    this.#linger = undefined;
    this.#pending = undefined;
    this.#reactor.close(fd);
    const closed = () => new Deno.errors.BadResource("the connection was closed");
    const echo = this.#echo;
    this.#echo = undefined;
    this.#io?.fail(closed);
    this.#io = undefined;
    // Later, as a pending read of Deno's would fail: the closer may be iterating its own table.
    if (echo !== undefined) queueMicrotask(() => echo.echoEnded("error", closed()));
    this.#reactor.release();
  }

  /** Closes with a reset (`SO_LINGER` 0) instead of a FIN (see `Connection.reset`). */
  reset(): void {
    abortOnClose(this.#reactor.sys, this.#open());
    this.close();
  }
  /**
   * Ends the connection without destroying what was already sent (see
   * `Connection.closeGently`): stops echoing (bytes read and not yet sent
   * back are dropped, never counted out), shuts writing down so that a FIN
   * follows what is queued, and from then on only reads, to discard, so that
   * no unread input turns the final close into a reset. The connection
   * closes once the peer has acknowledged everything (`SIOCOUTQ` is 0), or
   * has reset, or `graceMs` has passed; then whatever is still untransmitted
   * is cut off with a reset, and the echo's `bytesOut` loses it: the
   * `closed` line counts the bytes that left. (One in flight when the reset
   * goes, transmitted and not yet acknowledged, counts as out: over loopback
   * it is in the peer's receive queue already; over a network that loses it,
   * the count is ahead of the peer by at most what was in flight.)
   */
  closeGently(graceMs: number): void {
    const fd = this.#open();
    if (this.#linger !== undefined) return;
    this.#pending = undefined;
    this.#inPlace = false;
    const shut = this.#reactor.sys.shutdown(fd, C.SHUT_WR);
    this.#linger = { until: performance.now() + Math.max(0, graceMs), fin: shut === 0 };
    // Already reset (ENOTCONN): nothing more can reach the peer.
    if (shut < 0) return this.close();
    try {
      this.#watch(READING);
    } catch {
      // The loop has stopped: the timer's check closes it.
    }
    lingering.add(this);
  }

  /** See {@linkcode Lingerer.lingerCheck}. */
  lingerCheck(now: number): boolean {
    const linger = this.#linger;
    if (linger === undefined || this.#fd < 0) return true;
    if (!lingerOver(this.#reactor, this.#fd, linger.until, now)) return false;
    this.close();
    return true;
  }

  /** See {@linkcode Readiness.ready}. */
  ready(events: number): void {
    if (this.#linger !== undefined) return this.#discard();
    if (this.#echo !== undefined) {
      return this.#pending === undefined ? this.#echoRead(events) : this.#echoFlush(events);
    }
    // Nothing waits: out of the epoll set, or a socket that hung up would wake the loop for good.
    if (this.#io !== undefined) this.#io.ready();
    else this.#watch(0);
  }

  /** See {@linkcode Readiness.fail}: ends whatever is in progress with `error`. */
  fail(error: unknown): void {
    const echo = this.#echo;
    this.#echo = undefined;
    this.#pending = undefined;
    this.#reactor.settled();
    if (echo !== undefined) return echo.echoEnded("error", error);
    this.#io?.fail(() => error);
  }

  /** The hot path: one read of at most FIRST_READ_BYTES, written straight back. */
  #echoRead(events: number): void {
    if (this.#inPlace) return this.#echoInPlace(events);
    const { sys, buffer } = this.#reactor;
    const fd = this.#fd;
    const n = sys.recv(fd, buffer, FIRST_READ, 0);
    if (n <= 0) return this.#echoReadFailed(n, events);
    const counters = this.#counters;
    counters.bytesIn += n;
    const sent = sys.send(fd, buffer, BigInt(n), SEND_FLAGS);
    if (sent === n) {
      counters.bytesOut += n;
      // After the send, and after errno and the buffer were read: what it runs may use the loop.
      this.#onChunk?.(n);
      if (this.#echo === undefined) return;
      // A full read: more is likely waiting, and is taken in place.
      if (n === FIRST_READ_BYTES) {
        this.#inPlace = true;
        return this.#echoInPlace(events);
      }
      // The peer has shut its side: whatever it sent last is back, so look for the end now.
      if ((events & C.EPOLLRDHUP) !== 0) this.#echoRead(0);
      return;
    }
    const error = sent < 0
      ? failureOf(this.#reactor.sys, this.#fd, "send", -sent, events)
      : undefined;
    if (error === undefined) {
      const taken = Math.max(sent, 0);
      counters.bytesOut += taken;
      this.#pending = buffer.slice(taken, n);
      // The peer is slow: from now on, what it has not taken stays in the kernel.
      this.#inPlace = true;
    }
    this.#onChunk?.(n);
    if (this.#echo === undefined) return;
    if (error !== undefined) return this.#echoEnd(error);
    this.#watch(C.EPOLLOUT);
  }

  /**
   * Echoes in place: peeks at up to the whole shared buffer, sends it, and
   * drops from the socket exactly what was sent; the rest waits in the
   * kernel for `EPOLLOUT`.
   */
  #echoInPlace(events: number): void {
    const { sys, buffer, bufferLength } = this.#reactor;
    const fd = this.#fd;
    const n = sys.recv(fd, buffer, bufferLength, C.MSG_PEEK);
    if (n <= 0) return this.#echoReadFailed(n, events);
    const sent = sys.send(fd, buffer, BigInt(n), SEND_FLAGS);
    if (sent > 0) {
      // Invariant: nothing reads this socket between the peek and this call, so the
      // first `sent` bytes in its queue are those just sent, and they are all there.
      const dropped = sys.recv(fd, buffer, BigInt(sent), C.MSG_TRUNC);
      if (dropped !== sent) {
        throw new Error(`recv(MSG_TRUNC) dropped ${dropped} of the ${sent} bytes echoed in place`);
      }
      this.#counters.bytesIn += sent;
      this.#counters.bytesOut += sent;
    }
    if (sent === n) {
      // Small again: back to the hot path.
      if (n < FIRST_READ_BYTES) this.#inPlace = false;
      if (this.#interest !== READING) this.#watch(READING);
      this.#onChunk?.(n);
      if (this.#echo === undefined) return;
      if ((events & C.EPOLLRDHUP) !== 0 && n < buffer.length) this.#echoRead(0);
      return;
    }
    const error = sent < 0
      ? failureOf(this.#reactor.sys, this.#fd, "send", -sent, events)
      : undefined;
    if (sent > 0) this.#onChunk?.(sent);
    if (this.#echo === undefined) return;
    if (error !== undefined) return this.#echoEnd(error);
    this.#watch(C.EPOLLOUT);
  }

  /** A read that got no bytes: the end of the stream (0), an error, or nothing yet. */
  #echoReadFailed(n: number, events: number): void {
    if (n === 0) return this.#echoEnd("eof");
    const error = failureOf(this.#reactor.sys, this.#fd, "recv", -n, events);
    if (error !== undefined) this.#echoEnd(error);
  }

  #echoFlush(events: number): void {
    const pending = this.#pending;
    if (pending === undefined) return;
    const sent = this.#reactor.sys.send(this.#fd, pending, BigInt(pending.length), SEND_FLAGS);
    if (sent < 0) {
      const error = failureOf(this.#reactor.sys, this.#fd, "send", -sent, events);
      if (error !== undefined) this.#echoEnd(error);
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

  /**
   * Closing gently: reads, and drops, what the peer still sends. Its end of
   * the stream takes the socket out of the epoll set (it would be readable
   * for good); a reset means nothing more can reach it, so it closes now.
   */
  #discard(): void {
    const got = discardInput(this.#reactor, this.#fd);
    if (got === "ended") this.#watch(0);
    else if (got === "failed") this.close();
  }

  /**
   * Registers for `events`. With none, the descriptor leaves the epoll set:
   * errors and hang-ups are reported even to an empty mask, and an unwatched
   * one that hung up would wake the loop forever.
   */
  #watch(events: number): void {
    this.#interest = this.#reactor.rewatch(this.#fd, this.#interest, events, this);
  }

  /** The promise-based reads and writes; not while the echo runs or the connection closes. */
  #parkedIo(): ParkedIo {
    const fd = this.#open();
    if (this.#echo !== undefined || this.#linger !== undefined) {
      throw new Deno.errors.Busy("the connection is already being echoed or closed");
    }
    return this.#io ??= new ParkedIo(
      this.#reactor.sys,
      fd,
      (events) => this.#watch(events),
      () => this.#reactor.settled(),
    );
  }

  #open(): number {
    if (this.#fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    return this.#fd;
  }
}
