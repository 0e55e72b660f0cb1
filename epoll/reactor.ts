/**
 * The epoll loop of one listener and its connections: polled from JavaScript
 * without blocking while there is work, and slept on, off the main thread,
 * when there is none. Each ready descriptor's handler is called
 * synchronously with the event bits, so the hot path of an echo is two libc
 * calls and no `Promise`.
 *
 * Every registration carries a generation in the high word of its
 * `epoll_data` (the descriptor is in the low word). Invariant: an event is
 * dispatched only when its generation is the descriptor's current one, so
 * an event collected for a descriptor that was closed since, and whose
 * number a new connection got, is dropped instead of reaching the new one
 * (the off-thread wait returns its batch while the main thread closes and
 * accepts).
 *
 * Deno's event loop still gets its turns: a busy loop yields with
 * `setImmediate` every {@linkcode TURN_MS}, and as soon as a handler settled a
 * promise. Measured in Deno 2.9.6, a loop busy 1 ms a turn let a 10 ms
 * interval run 197 times in 2 s when it yielded with `setImmediate`, 16 times
 * with a `MessageChannel` message (whose delivery keeps the event loop from
 * its timers and signals), and cost a 2 ms pause a turn with `setTimeout(0)`.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { C, E, errorFor, openLibc, type System } from "./libc.ts";

/** What the loop calls when a registered descriptor is ready. */
export interface Readiness {
  /**
   * Called with the epoll event bits of the handler's current registration
   * (never an earlier one's). Act on what the next call returns, not on the
   * bits: an event may be stale by the time it is handled. The exception is
   * `EPOLLHUP`, which never clears: a socket that reported it cannot have to
   * wait, whatever `errno` says.
   */
  ready(events: number): void;
  /** Called when `ready` threw, or the loop itself failed: ends only this descriptor's work. */
  fail(error: unknown): void;
}

/** The longest a busy loop runs before Deno's event loop gets a turn. */
export const TURN_MS = 1;
/**
 * Empty polls in a row before the loop sleeps. Each costs well under a
 * microsecond, and a peer's next message usually comes within them: sleeping
 * costs a hop through a thread and back, which is most of a round trip.
 */
const SPIN_POLLS = 128;
/** Events taken per poll: small enough that a turn can end on time between polls. */
const MAX_EVENTS = 128;
/** `struct epoll_event` is packed on x86_64 (12 bytes) and 8-aligned elsewhere (16). */
const EVENT_WORDS = Deno.build.arch === "x86_64" ? 3 : 4;
/**
 * Where the low 32 bits of `epoll_data` are (the descriptor), in words from
 * the start of an event; the high 32 bits (the generation) are in the next.
 */
const DATA_WORD = Deno.build.arch === "x86_64" ? 1 : 2;
const TAG_WORD = DATA_WORD + 1;
/** An eventfd's counter, as `write` adds it: 1, to wake the off-thread wait. */
const WAKE = new Uint8Array(new BigUint64Array([1n]).buffer);
/** The size of the buffer every echo reads into: one per loop, shared by all its connections. */
const SHARED_BUFFER_BYTES = 65536;

const log = logger("server");

/** One epoll instance and the loop that drives it; see the module's documentation. */
export class Reactor {
  /** libc, opened. */
  readonly sys: System;
  /**
   * Scratch space for reads that are written straight back: its contents
   * are only valid until the handler returns.
   */
  readonly buffer: Uint8Array = new Uint8Array(SHARED_BUFFER_BYTES);
  /** The buffer's length, as the BigInt that libc's `size_t` parameters take. */
  readonly bufferLength: bigint = BigInt(SHARED_BUFFER_BYTES);
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #handlers: (Readiness | undefined)[] = [];
  /** Each descriptor's current generation (0: not registered); grown as descriptors are. */
  #tags = new Uint32Array(1024);
  #lastTag = 0;
  readonly #ctl = new Uint8Array(EVENT_WORDS * 4);
  readonly #ctlWords = new Uint32Array(this.#ctl.buffer);
  readonly #events = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  readonly #eventBytes = new Uint8Array(this.#events.buffer);
  /** The off-thread wait writes here, so that nothing on the main thread shares its buffer. */
  readonly #sleepEvents = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  readonly #sleepEventBytes = new Uint8Array(this.#sleepEvents.buffer);
  readonly #stopped = Promise.withResolvers<void>();
  readonly #turnLater = () => {
    this.#scheduled = false;
    this.#turn();
  };
  #sleeping = false;
  #settled = false;
  #users = 0;
  #closing = false;
  #finished = false;
  #failed = false;
  #scheduled = false;

  /** Opens an epoll instance and starts its loop; it runs until its last user releases it. */
  constructor() {
    const sys = this.sys = openLibc();
    this.#epfd = sys.epollCreate(C.EPOLL_CLOEXEC);
    if (this.#epfd < 0) throw errorFor("epoll_create1", -this.#epfd);
    this.#wakeFd = sys.eventfd(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    if (this.#wakeFd < 0) {
      sys.close(this.#epfd);
      throw errorFor("eventfd", -this.#wakeFd);
    }
    const added = this.#tryControl(C.EPOLL_CTL_ADD, this.#wakeFd, C.EPOLLIN, this.#nextTag());
    if (added < 0) {
      sys.close(this.#wakeFd);
      sys.close(this.#epfd);
      throw errorFor("epoll_ctl", -added);
    }
    if (this.#wakeFd >= this.#tags.length) this.#growTags(this.#wakeFd);
    this.#tags[this.#wakeFd] = this.#lastTag;
    this.#schedule();
  }

  /** Counts one more user (a listener, a connection): the loop lives while any is left. */
  retain(): void {
    this.#users++;
  }

  /** Gives up one use; the last one stops the loop and closes the epoll instance. */
  release(): void {
    if (--this.#users > 0 || this.#closing) return;
    this.#closing = true;
    // Never finish here: this may run inside a turn, which must not find its epoll instance closed.
    if (!this.#sleeping) return this.#schedule();
    // Wake the off-thread wait; it sees #closing and finishes.
    this.#wake();
  }

  /**
   * Wakes the off-thread wait. A write that fails with `EAGAIN` found the
   * counter full, so the eventfd is readable already; any other failure
   * would leave the loop asleep for good, and the process unable to exit,
   * so it is said, and the eventfd is watched for writing instead, which an
   * eventfd is as long as its counter is not full: that wakes the wait too.
   */
  #wake(): void {
    let wrote: number;
    do wrote = this.sys.write(this.#wakeFd, WAKE, 8n); while (wrote === -E.EINTR);
    if (wrote === 8 || wrote === -E.EAGAIN) return;
    const rewatched = this.#tryControl(
      C.EPOLL_CTL_MOD,
      this.#wakeFd,
      C.EPOLLIN | C.EPOLLOUT,
      this.#tags[this.#wakeFd],
    );
    log.error("the epoll loop could not be woken to stop ({error}){fallback}", {
      error: describeError(errorFor("write", wrote < 0 ? -wrote : E.EINVAL)),
      fallback: rewatched < 0 ? ", and it will stop only when its wait returns" : "",
    });
  }

  /** Settles once the loop has stopped and its descriptors are closed. */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  /** True once the loop itself failed: nothing on it will be ready again. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Starts watching `fd` for `events` (`EPOLLIN`…); `handler` hears of it.
   * Each registration is a new generation: events of an earlier one are
   * dropped.
   */
  add(fd: number, events: number, handler: Readiness): void {
    const tag = this.#nextTag();
    this.#control(C.EPOLL_CTL_ADD, fd, events, tag);
    if (fd >= this.#tags.length) this.#growTags(fd);
    this.#tags[fd] = tag;
    this.#handlers[fd] = handler;
  }

  /** Changes the events `fd` is watched for; it stays the same generation. */
  modify(fd: number, events: number): void {
    this.#control(C.EPOLL_CTL_MOD, fd, events, this.#tags[fd]);
  }

  /** Stops watching `fd`, which stays open; events already collected for it are dropped. */
  remove(fd: number): void {
    this.#control(C.EPOLL_CTL_DEL, fd, 0, 0);
    this.#forget(fd);
  }

  /**
   * Registers `fd` for `events` (0: for none), given `interest`, what it is
   * registered for now (-1: not in the set); returns what it is registered
   * for then. A socket's readiness changes often: only a change is a call.
   */
  rewatch(fd: number, interest: number, events: number, handler: Readiness): number {
    if (events === interest || (events === 0 && interest === -1)) return interest;
    if (events === 0) this.remove(fd);
    else if (interest === -1) this.add(fd, events, handler);
    else this.modify(fd, events);
    return events === 0 ? -1 : events;
  }

  /**
   * Closes `fd`, watched or not: forgets it first (closing takes it out of
   * the epoll set, and events already collected for it are dropped), so
   * that its number, free again, can only ever reach its next owner.
   * Returns `close`'s result (0, or `-errno`; the descriptor is gone either
   * way).
   */
  close(fd: number): number {
    this.#forget(fd);
    return this.sys.close(fd);
  }

  #forget(fd: number): void {
    this.#handlers[fd] = undefined;
    if (fd < this.#tags.length) this.#tags[fd] = 0;
  }

  /** The next generation: never 0, which marks a descriptor that is not registered. */
  #nextTag(): number {
    this.#lastTag = (this.#lastTag + 1) >>> 0 || 1;
    return this.#lastTag;
  }

  #growTags(fd: number): void {
    let length = this.#tags.length;
    while (length <= fd) length *= 2;
    const tags = new Uint32Array(length);
    tags.set(this.#tags);
    this.#tags = tags;
  }

  /**
   * Tells the loop that a handler settled a promise: the loop then ends its
   * turn early, so that the code waiting on it runs before the next poll.
   */
  settled(): void {
    this.#settled = true;
  }

  #control(op: number, fd: number, events: number, tag: number): void {
    if (this.#finished) throw new Deno.errors.BadResource("the epoll loop has stopped");
    const r = this.#tryControl(op, fd, events, tag);
    if (r < 0) throw errorFor("epoll_ctl", -r);
  }

  /** `epoll_ctl` with the descriptor and its generation as the event's data: 0, or `-errno`. */
  #tryControl(op: number, fd: number, events: number, tag: number): number {
    this.#ctlWords[0] = events;
    this.#ctlWords[DATA_WORD] = fd;
    this.#ctlWords[TAG_WORD] = tag;
    return this.sys.epollCtl(this.#epfd, op, fd, this.#ctl);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#turnLater);
  }

  /** One turn: poll and dispatch until idle, a promise settled, or the time is up. */
  #turn(): void {
    if (this.#finished) return;
    if (this.#closing) return this.#finish();
    const sys = this.sys;
    const started = performance.now();
    let empty = 0;
    this.#settled = false;
    for (let round = 1;; round++) {
      const n = sys.epollWait(this.#epfd, this.#eventBytes, MAX_EVENTS, 0);
      if (n > 0) {
        empty = 0;
        this.#dispatch(this.#events, n);
        if (this.#settled || this.#closing || performance.now() - started >= TURN_MS) break;
        continue;
      }
      if (n < 0 && n !== -E.EINTR) return this.#fatal(errorFor("epoll_wait", -n));
      if (++empty >= SPIN_POLLS) return this.#sleep();
      if ((round & 7) === 0 && performance.now() - started >= TURN_MS) break;
    }
    this.#schedule();
  }

  /** Nothing is ready: wait in the kernel on another thread, leaving the event loop free. */
  #sleep(): void {
    this.#sleeping = true;
    this.sys.libc.epoll_wait_off_thread(this.#epfd, this.#sleepEventBytes, MAX_EVENTS, -1).then(
      (n) => {
        this.#sleeping = false;
        if (this.#closing) return this.#finish();
        this.#settled = false;
        // A failure here has no errno to read (it is the other thread's): the turn's own
        // wait, on this thread, finds out whether it was more than an interrupted wait.
        if (n > 0) this.#dispatch(this.#sleepEvents, n);
        // This runs as a promise reaction: what the events settled runs after it, so
        // when something did, let it run before polling on.
        if (this.#settled) this.#schedule();
        else this.#turn();
      },
      (error: unknown) => {
        this.#sleeping = false;
        this.#fatal(error);
      },
    );
  }

  #dispatch(events: Uint32Array, n: number): void {
    const end = n * EVENT_WORDS;
    const tags = this.#tags;
    for (let i = 0; i < end; i += EVENT_WORDS) {
      const fd = events[i + DATA_WORD];
      // A registration since closed, or replaced: its events are not the current owner's.
      if (events[i + TAG_WORD] !== tags[fd]) continue;
      const handler = this.#handlers[fd];
      if (handler === undefined) {
        if (fd === this.#wakeFd) this.#drainWake();
        continue;
      }
      try {
        handler.ready(events[i]);
      } catch (error) {
        failQuietly(handler, error);
      }
    }
  }

  /** Resets the eventfd's counter; `EAGAIN` (already reset) is as good. */
  #drainWake(): void {
    this.sys.read(this.#wakeFd, new Uint8Array(8), 8n);
  }

  /**
   * The loop itself failed (never expected): say so, end the work of every
   * descriptor on it (the listener's pending accept fails, so the server
   * stops), and stop polling rather than spin.
   */
  #fatal(error: unknown): void {
    log.error("the epoll loop failed: {error}", { error: describeError(error) });
    this.#closing = true;
    this.#failed = true;
    const handlers = this.#handlers.filter((handler) => handler !== undefined);
    this.#handlers.length = 0;
    this.#finish();
    for (const handler of handlers) failQuietly(handler, error);
  }

  #finish(): void {
    if (this.#sleeping || this.#finished) return;
    this.#finished = true;
    this.sys.close(this.#epfd);
    this.sys.close(this.#wakeFd);
    this.#stopped.resolve();
  }
}

/** Tells a handler that its work failed; a handler that fails at that too is only logged. */
function failQuietly(handler: Readiness, error: unknown): void {
  try {
    handler.fail(error);
  } catch (second) {
    log.error("a descriptor's failure could not be handled: {error}", {
      error: describeError(second),
    });
  }
}
