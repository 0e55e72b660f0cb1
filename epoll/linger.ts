/**
 * The connections that are closing gently (`Connection.closeGently`): each
 * waits for the peer to acknowledge what was sent to it, which no epoll
 * event announces (after `shutdown(SHUT_WR)` a socket reports `EPOLLOUT`
 * for good), so one timer for all of them asks each in turn.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { C, E } from "./libc.ts";
import type { Reactor } from "./reactor.ts";

const log = logger("server");

/** One gently closing connection, as the timer sees it. */
export interface Lingerer {
  /**
   * Looks at the connection's send queue and deadline, and closes it when
   * the peer has everything or the time is up; true once it is closed.
   */
  lingerCheck(now: number): boolean;
}

/**
 * How often a gently closing connection is asked. Each question is one
 * `ioctl`: 10,000 connections cut at once cost about 0.3 ms per check, so a
 * 20 ms period spends a couple of per cent of a core on them, during a grace
 * that lasts a second.
 */
export const LINGER_CHECK_MS = 20;

/** A set of {@linkcode Lingerer}s and the one timer that asks them, running only while any is left. */
export class Lingering {
  readonly #waiting = new Set<Lingerer>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Starts asking `lingerer` every {@linkcode LINGER_CHECK_MS} until it says it is closed. */
  add(lingerer: Lingerer): void {
    this.#waiting.add(lingerer);
    this.#timer ??= setInterval(() => this.#check(), LINGER_CHECK_MS);
  }

  /** Stops asking `lingerer` (it closed by another way); the timer stops with the last one. */
  delete(lingerer: Lingerer): void {
    this.#waiting.delete(lingerer);
    this.#stopIfDone();
  }

  /** How many are waiting. */
  get size(): number {
    return this.#waiting.size;
  }

  #check(): void {
    const now = performance.now();
    for (const lingerer of this.#waiting) {
      let closed: boolean;
      try {
        closed = lingerer.lingerCheck(now);
      } catch (error) {
        // Never expected; one that throws is not asked again, or it would keep the timer alive.
        log.error("a gently closing connection could not be checked: {error}", {
          error: describeError(error),
        });
        closed = true;
      }
      if (closed) this.#waiting.delete(lingerer);
    }
    this.#stopIfDone();
  }

  #stopIfDone(): void {
    if (this.#waiting.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Whether a gently closing socket `fd` may close now: the peer has
 * acknowledged everything, the FIN included (or the socket cannot say), or
 * `until` has passed.
 */
export function lingerOver(reactor: Reactor, fd: number, until: number, now: number): boolean {
  // 0 once everything, the FIN included, is acknowledged; negative if the socket cannot say.
  return reactor.sys.ioctlInt(fd, C.SIOCOUTQ) <= 0 || now >= until;
}

/**
 * Reads and drops what the peer of a gently closing socket still sends:
 * `more` while it may send on, `ended` at its FIN, `failed` when the socket
 * failed (a reset).
 */
export function discardInput(reactor: Reactor, fd: number): "more" | "ended" | "failed" {
  const { sys, buffer, bufferLength } = reactor;
  const n = sys.recv(fd, buffer, bufferLength, 0);
  if (n > 0 || n === -E.EAGAIN || n === -E.EINTR) return "more";
  return n === 0 ? "ended" : "failed";
}
