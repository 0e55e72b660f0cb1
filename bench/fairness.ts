/**
 * Keeps one bench process from starving some of its own connections.
 *
 * Deno's event loop, kept busy by connections whose echoes come back at once,
 * asks the kernel which other sockets are readable too seldom: at 2,000
 * pingpong connections against a C epoll server, a thousand of them got no
 * echo in 3 s (and 400 none in 8 s) while `ss` showed each one's echo waiting
 * unread in its socket. A loop that yields with `setImmediate` does not help;
 * a pause on a timer does, since an event loop with nothing left to run waits
 * in the kernel and hears of every readable socket.
 *
 * So each connection says when its message left and when the echo came. A
 * check every {@linkcode CHECK_MS} looks for one waiting longer than
 * {@linkcode STARVED_MS}; while one does, the loops pause on a timer once per
 * {@linkcode WORK_MS} of work. A connection still waiting after two pauses is
 * waiting for the server (a pause would have let this client read its echo),
 * so a server that queues a connection costs the others only a few pauses. A
 * run where every echo comes back in time never pauses, and its throughput and
 * latency are what they were.
 *
 * @module
 */

/** How often the waits are looked at. */
export const CHECK_MS = 50;
/** A connection waiting this long for its echo, while others are served, is starving. */
export const STARVED_MS = 100;
/** Work between pauses while a connection starves. */
export const WORK_MS = 10;
/** How long the pauses go on after the last starving connection was seen. */
const FAIR_FOR_MS = 4 * CHECK_MS;

/**
 * The waits of a run's connections, and the pauses that end a starvation.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { Fairness } from "./fairness.ts";
 * const fairness = new Fairness(2);
 * fairness.sent(0, 1_000);
 * fairness.sent(1, 1_000);
 * fairness.echoed(0);
 * equal(fairness.check(1_050), false); // connection 1 has waited 50 ms: not yet starving
 * equal(fairness.check(1_150), true); // 150 ms: starving, so the loops pause now and then
 * equal(fairness.pause(1_151), undefined); // work goes on for a while first
 * const pause = fairness.pause(1_162); // 11 ms of work later, a pause on a timer
 * equal(pause instanceof Promise, true);
 * await pause;
 * ```
 */
export class Fairness {
  /** When each connection's outstanding message left (`performance.now()`); 0 when none is. */
  readonly #waitingSince: Float64Array;
  /** How many pauses had been taken when each connection's message left. */
  readonly #pausesAtSend: Uint32Array;
  #pauses = 0;
  #fairUntil = 0;
  #workSince = 0;
  #pause: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Tracks `connections` connections, numbered from 0. */
  constructor(connections: number) {
    this.#waitingSince = new Float64Array(connections);
    this.#pausesAtSend = new Uint32Array(connections);
  }

  /** Starts checking every {@linkcode CHECK_MS}, until {@linkcode Fairness.stop}. */
  start(): void {
    this.#timer ??= setInterval(() => this.check(performance.now()), CHECK_MS);
  }

  /** Stops checking. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Connection `index` sent a message at `now`. */
  sent(index: number, now: number): void {
    this.#waitingSince[index] = now;
    this.#pausesAtSend[index] = this.#pauses;
  }

  /** Connection `index` has its echo, or stopped waiting for one. */
  echoed(index: number): void {
    this.#waitingSince[index] = 0;
  }

  /** Looks for a starving connection at `now`; true when one is (pauses follow). */
  check(now: number): boolean {
    const waits = this.#waitingSince;
    const pausesAtSend = this.#pausesAtSend;
    for (let i = 0; i < waits.length; i++) {
      if (waits[i] > 0 && now - waits[i] > STARVED_MS && this.#pauses - pausesAtSend[i] < 2) {
        this.#fairUntil = now + FAIR_FOR_MS;
        return true;
      }
    }
    return false;
  }

  /**
   * Called by a loop after an echo, at `now`: `undefined` to go on at once,
   * or a pause to await, shared by every loop, while a connection starves and
   * {@linkcode WORK_MS} of work have passed since the last pause.
   */
  pause(now: number): Promise<void> | undefined {
    if (now >= this.#fairUntil) {
      // The next starvation counts its work from its own start.
      this.#workSince = 0;
      return undefined;
    }
    if (this.#pause !== undefined) return this.#pause;
    if (this.#workSince === 0) this.#workSince = now;
    if (now - this.#workSince < WORK_MS) return undefined;
    this.#pause = new Promise((resolve) =>
      setTimeout(() => {
        this.#pauses++;
        this.#pause = undefined;
        this.#workSince = 0;
        resolve();
      }, 0)
    );
    return this.#pause;
  }
}
