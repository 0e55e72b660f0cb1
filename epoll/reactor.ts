/**
 * The epoll loop: one epoll instance per isolate's listener, polled from
 * JavaScript without blocking while there is work, and slept on, off the
 * main thread, when there is none. Each ready descriptor's handler is called
 * synchronously with the event bits, so the hot path of an echo is two libc
 * calls and no `Promise`.
 *
 * Deno's event loop still gets its turn: a busy loop yields through a
 * `MessageChannel` (a macrotask that, unlike a nested `setTimeout`, is not
 * clamped) every {@linkcode TURN_MS} and whenever a handler settled a
 * promise, so timers, signals, logging and the metrics endpoint run on time
 * under full load.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { C, E, errorFor, openLibc, type System } from "./libc.ts";

/** What the loop calls when a registered descriptor is ready. */
export interface Readiness {
  /**
   * Called with the epoll event bits. Act on what the next call returns,
   * not on the bits: an event may be stale by the time it is handled.
   */
  ready(events: number): void;
  /** Called when `ready` threw: the handler's own bug, which must end only its descriptor. */
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
const MAX_EVENTS = 512;
/** `struct epoll_event` is packed on x86_64 (12 bytes) and 8-aligned elsewhere (16). */
const EVENT_WORDS = Deno.build.arch === "x86_64" ? 3 : 4;
/** Where the low 32 bits of `epoll_data` are, in words from the start of an event. */
const DATA_WORD = Deno.build.arch === "x86_64" ? 1 : 2;
/** The size of the buffer every echo reads into: one per loop, shared by all its connections. */
export const SHARED_BUFFER_BYTES = 65536;

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
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #handlers: (Readiness | undefined)[] = [];
  readonly #ctl = new Uint8Array(EVENT_WORDS * 4);
  readonly #ctlWords = new Uint32Array(this.#ctl.buffer);
  readonly #events = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  readonly #eventBytes = new Uint8Array(this.#events.buffer);
  /** The off-thread wait writes here, so that nothing on the main thread shares its buffer. */
  readonly #sleepEvents = new Uint32Array(MAX_EVENTS * EVENT_WORDS);
  readonly #sleepEventBytes = new Uint8Array(this.#sleepEvents.buffer);
  readonly #channel = new MessageChannel();
  readonly #stopped = Promise.withResolvers<void>();
  #sleeping: Promise<number> | undefined;
  #settled = false;
  #users = 0;
  #closing = false;
  #finished = false;

  /** Opens an epoll instance and starts its loop; it runs until its last user releases it. */
  constructor() {
    this.sys = openLibc();
    const { libc } = this.sys;
    this.#epfd = libc.epoll_create1(C.EPOLL_CLOEXEC);
    if (this.#epfd < 0) throw errorFor("epoll_create1", this.sys.errno());
    this.#wakeFd = libc.eventfd(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    if (this.#wakeFd < 0) {
      const errno = this.sys.errno();
      libc.close(this.#epfd);
      throw errorFor("eventfd", errno);
    }
    this.#control(C.EPOLL_CTL_ADD, this.#wakeFd, C.EPOLLIN);
    this.#channel.port1.onmessage = () => this.#turn();
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
    if (this.#sleeping === undefined) return this.#schedule();
    // Wake the off-thread wait; it sees #closing and finishes.
    const one = new BigUint64Array([1n]);
    this.sys.libc.write(this.#wakeFd, new Uint8Array(one.buffer), 8);
  }

  /** Settles once the loop has stopped and its descriptors are closed. */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  /** Starts watching `fd` for `events` (`EPOLLIN`…); `handler` hears of it. */
  add(fd: number, events: number, handler: Readiness): void {
    this.#control(C.EPOLL_CTL_ADD, fd, events);
    this.#handlers[fd] = handler;
  }

  /** Changes the events `fd` is watched for. */
  modify(fd: number, events: number): void {
    this.#control(C.EPOLL_CTL_MOD, fd, events);
  }

  /** Stops watching `fd`, which stays open. */
  remove(fd: number): void {
    this.#control(C.EPOLL_CTL_DEL, fd, 0);
    this.#handlers[fd] = undefined;
  }

  /** Forgets `fd` before it is closed (closing it takes it out of the epoll set). */
  forget(fd: number): void {
    this.#handlers[fd] = undefined;
  }

  /**
   * Tells the loop that a handler settled a promise: the loop then ends its
   * turn early, so that the code waiting on it runs before the next poll.
   */
  settled(): void {
    this.#settled = true;
  }

  #control(op: number, fd: number, events: number): void {
    this.#ctlWords[0] = events;
    this.#ctlWords[DATA_WORD] = fd;
    if (this.sys.libc.epoll_ctl(this.#epfd, op, fd, this.#ctl) < 0) {
      throw errorFor("epoll_ctl", this.sys.errno());
    }
  }

  #schedule(): void {
    this.#channel.port2.postMessage(null);
  }

  /** One turn: poll and dispatch until idle, a promise settled, or the time is up. */
  #turn(): void {
    if (this.#closing) return this.#finish();
    const { libc } = this.sys;
    const started = performance.now();
    let empty = 0;
    this.#settled = false;
    for (let round = 1;; round++) {
      const n = libc.epoll_wait(this.#epfd, this.#eventBytes, MAX_EVENTS, 0);
      if (n > 0) {
        empty = 0;
        this.#dispatch(this.#events, n);
        if (this.#settled || this.#closing) break;
      } else if (n < 0 && this.sys.errno() !== E.EINTR) {
        return this.#fatal(errorFor("epoll_wait", this.sys.errno()));
      } else if (++empty >= SPIN_POLLS) {
        return this.#sleep();
      }
      if ((round & 7) === 0 && performance.now() - started >= TURN_MS) break;
    }
    this.#schedule();
  }

  /** Nothing is ready: wait in the kernel on another thread, leaving the event loop free. */
  #sleep(): void {
    const sleeping = this.sys.libc.epoll_wait_off_thread(
      this.#epfd,
      this.#sleepEventBytes,
      MAX_EVENTS,
      -1,
    );
    this.#sleeping = sleeping;
    sleeping.then((n) => {
      this.#sleeping = undefined;
      if (this.#closing) return this.#finish();
      if (n > 0) this.#dispatch(this.#sleepEvents, n);
      this.#turn();
    }, (error: unknown) => this.#fatal(error));
  }

  #dispatch(events: Uint32Array, n: number): void {
    const end = n * EVENT_WORDS;
    for (let i = 0; i < end; i += EVENT_WORDS) {
      const fd = events[i + DATA_WORD];
      const handler = this.#handlers[fd];
      if (handler === undefined) {
        if (fd === this.#wakeFd) this.#drainWake();
        continue;
      }
      try {
        handler.ready(events[i]);
      } catch (error) {
        handler.fail(error);
      }
    }
  }

  #drainWake(): void {
    const eight = new Uint8Array(8);
    this.sys.libc.read(this.#wakeFd, eight, 8);
  }

  /** The loop itself failed (never expected): say so and stop polling, rather than spin. */
  #fatal(error: unknown): void {
    log.error("the epoll loop failed: {error}", { error: describeError(error) });
    this.#closing = true;
    this.#finish();
  }

  #finish(): void {
    if (this.#sleeping !== undefined || this.#finished) return;
    this.#finished = true;
    const { libc } = this.sys;
    this.#channel.port1.close();
    this.#channel.port2.close();
    libc.close(this.#epfd);
    libc.close(this.#wakeFd);
    this.#stopped.resolve();
  }
}
