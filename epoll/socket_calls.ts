/**
 * The libc calls an epoll connection makes away from its echo's hot path,
 * each with its result put into the words the connection acts on: a
 * promise-based read or write that could not finish yet, what a failed
 * call really failed with, and how much of the echo a close throws away.
 *
 * @module
 */
import { C, E, errorFor, type System } from "./libc.ts";

/** Send flags: a peer gone never raises SIGPIPE, the call fails instead. */
export const SEND_FLAGS = C.MSG_NOSIGNAL;
/** The most one call moves: its count must fit the i32 that libc's result is read as. */
const MAX_IO = 1 << 30;
/** `struct linger { l_onoff = 1, l_linger = 0 }`: `close` then resets, dropping what is unsent. */
const ABORT_ON_CLOSE = new Uint8Array(new Int32Array([1, 0]).buffer);
/** Hang-up and error bits: a socket that reports them has nothing to wait for. */
const BROKEN = C.EPOLLERR | C.EPOLLHUP;

/** A read or write that had to wait for the socket, and who hears of its end. */
export interface Parked<T> {
  /** The bytes to read into or write from. */
  readonly bytes: Uint8Array;
  /** Hears the result. */
  readonly resolve: (value: T) => void;
  /** Hears the failure. */
  readonly reject: (error: unknown) => void;
}

/** A connection that is closing gently (`Connection.closeGently`). */
export interface Linger {
  /** When to give up on the peer, as `performance.now()`. */
  readonly until: number;
  /** Whether `shutdown` queued a FIN, which takes one place in the send queue. */
  readonly fin: boolean;
}

/**
 * Tries a parked read or write again; true when it settled (done or
 * failed), false when it must go on waiting.
 */
export function settle<T>(
  parked: Parked<T>,
  attempt: (bytes: Uint8Array) => T | undefined,
): boolean {
  try {
    const result = attempt(parked.bytes);
    if (result === undefined) return false;
    parked.resolve(result);
  } catch (error) {
    parked.reject(error);
  }
  return true;
}

/** A read's result: bytes, `null` at the peer's end, or `undefined` when nothing has come yet. */
export function tryRecv(sys: System, fd: number, p: Uint8Array): number | null | undefined {
  if (p.length === 0) return 0;
  const n = sys.recv(fd, p, BigInt(Math.min(p.length, MAX_IO)), 0);
  if (n > 0) return n;
  if (n === 0) return null;
  if (n === -E.EAGAIN || n === -E.EINTR) return undefined;
  throw errorFor("recv", -n);
}

/** A write's result: bytes taken, or `undefined` when the kernel took nothing yet. */
export function trySend(sys: System, fd: number, p: Uint8Array): number | undefined {
  if (p.length === 0) return 0;
  const n = sys.send(fd, p, BigInt(Math.min(p.length, MAX_IO)), SEND_FLAGS);
  if (n >= 0) return n;
  if (n === -E.EAGAIN || n === -E.EINTR) return undefined;
  throw errorFor("send", -n);
}

/**
 * What a failed call (`errno` = `code`) on `fd` ends an echo with, or
 * `undefined` when it only has to wait. A socket whose event reported a
 * hang-up or an error cannot have to wait: an `EAGAIN` there is not the
 * call's own, so the socket's pending error (`SO_ERROR`, which no `errno`
 * can overwrite) is what it failed with, or, when the call consumed it, a
 * reset, which is the one way a socket whose writing the echo never shut
 * down hangs up.
 */
export function failureOf(
  sys: System,
  fd: number,
  call: string,
  code: number,
  events: number,
): Error | undefined {
  if (code !== E.EAGAIN && code !== E.EINTR) return errorFor(call, code);
  if ((events & BROKEN) === 0) return undefined;
  const pending = sys.getsockoptInt(fd, C.SOL_SOCKET, C.SO_ERROR);
  if (pending > 0) return errorFor(call, pending);
  return (events & C.EPOLLHUP) !== 0 ? errorFor(call, E.ECONNRESET) : undefined;
}

/**
 * How many bytes of an echo the close of `fd` about to happen throws away
 * untransmitted (`SIOCOUTQNSD`; a FIN still queued counts one), to be taken
 * off its `bytesOut`. When closing gently (`linger`), that is whatever the
 * grace left unsent, and it is cut off with a reset here, so that it cannot
 * arrive after it was uncounted; otherwise only when input is left unread,
 * which makes the close send a reset. What was transmitted and is not yet
 * acknowledged stays counted: it has left, and over loopback it is in the
 * peer's receive queue already.
 */
export function unsentAtClose(sys: System, fd: number, linger: Linger | undefined): number {
  const untransmitted = sys.ioctlInt(fd, C.SIOCOUTQNSD);
  if (untransmitted <= 0) return 0;
  if (linger === undefined) return sys.ioctlInt(fd, C.SIOCINQ) > 0 ? untransmitted : 0;
  // The FIN is queued behind the data: while any data is unsent, so is it.
  const unsent = linger.fin ? untransmitted - 1 : untransmitted;
  if (unsent > 0) sys.setsockopt(fd, C.SOL_SOCKET, C.SO_LINGER, ABORT_ON_CLOSE);
  return Math.max(0, unsent);
}

/** Makes the coming close of `fd` a reset (`SO_LINGER` 0): what a fault asks for on purpose. */
export function abortOnClose(sys: System, fd: number): void {
  sys.setsockopt(fd, C.SOL_SOCKET, C.SO_LINGER, ABORT_ON_CLOSE);
}

/** `int` option values for `setsockopt`, made once: libc only reads them during the call. */
const ONE = new Uint8Array(new Int32Array([1]).buffer);
const ZERO = new Uint8Array(4);

/**
 * Turns Nagle's algorithm off (or on) for `fd`.
 *
 * @throws {Error} the `setsockopt` failure, as `errorFor` words it.
 */
export function setNoDelayOn(sys: System, fd: number, noDelay: boolean): void {
  const r = sys.setsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, noDelay ? ONE : ZERO);
  if (r < 0) throw errorFor("setsockopt", -r);
}
