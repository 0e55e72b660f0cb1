/**
 * When sleeping connections wake: one timer for all of them.
 *
 * @module
 */

/** A `setTimeout`/`setInterval` handle. */
export type Timer = ReturnType<typeof setTimeout>;

/**
 * Deno's timers fire 0.1–1.4 ms late, so sleeps are cut short by this much:
 * a message sent early is timed from its actual send, one sent late from its
 * schedule, so erring early keeps the timer's lateness out of the latency.
 */
export const TIMER_SLACK_MS = 2;

/**
 * Wakes sleeping connections from one timer, a binary heap of wake-up times
 * in front of it. A timer per message costs more than the message itself at
 * tens of thousands of messages a second, and Deno's timers run about a
 * millisecond late anyway, so everything due within TIMER_SLACK_MS goes at
 * once.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Wakeups } from "./schedule.ts";
 *
 * const wakeups = new Wakeups();
 * const order: number[] = [];
 * const now = performance.now();
 * const later = wakeups.at(now + 20).then(() => order.push(2));
 * const sooner = wakeups.at(now + 5).then(() => order.push(1));
 * await Promise.all([later, sooner]);
 * ok(order[0] === 1 && order[1] === 2);
 * ```
 */
export class Wakeups {
  readonly #times: number[] = [];
  readonly #wakes: (() => void)[] = [];
  #timer: Timer | undefined;
  #timerFor = Infinity;

  /** Resolves about at `time` (performance.now() clock), or on {@linkcode Wakeups.wakeAll}. */
  at(time: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.call(time, resolve);
    return promise;
  }

  /**
   * Calls `wake` about at `time`, or on {@linkcode Wakeups.wakeAll}: the
   * epoll engine's connections sleep this way, with no `Promise` per message.
   */
  call(time: number, wake: () => void): void {
    this.#push(time, wake);
    if (time < this.#timerFor) this.#arm(time);
  }

  /** Wakes every sleeper now and clears the timer. */
  wakeAll(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerFor = Infinity;
    const wakes = this.#wakes.splice(0);
    this.#times.length = 0;
    for (const wake of wakes) wake();
  }

  #arm(time: number): void {
    clearTimeout(this.#timer);
    this.#timerFor = time;
    this.#timer = setTimeout(this.#fire, Math.max(0, time - performance.now() - TIMER_SLACK_MS));
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#timerFor = Infinity;
    const horizon = performance.now() + TIMER_SLACK_MS;
    while (this.#times.length > 0 && this.#times[0] <= horizon) this.#pop()();
    if (this.#times.length > 0) this.#arm(this.#times[0]);
  };

  #push(time: number, wake: () => void): void {
    const times = this.#times;
    const wakes = this.#wakes;
    let i = times.length;
    times.push(time);
    wakes.push(wake);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (times[parent] <= time) break;
      times[i] = times[parent];
      wakes[i] = wakes[parent];
      i = parent;
    }
    times[i] = time;
    wakes[i] = wake;
  }

  #pop(): () => void {
    const times = this.#times;
    const wakes = this.#wakes;
    const top = wakes[0];
    const lastTime = times[times.length - 1];
    const lastWake = wakes[wakes.length - 1];
    times.pop();
    wakes.pop();
    const n = times.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && times[child + 1] < times[child]) child++;
      if (times[child] >= lastTime) break;
      times[i] = times[child];
      wakes[i] = wakes[child];
      i = child;
    }
    times[i] = lastTime;
    wakes[i] = lastWake;
    return top;
  }
}
