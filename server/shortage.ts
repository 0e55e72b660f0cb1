/**
 * Failures that come in bursts, such as accepts failing for want of file
 * descriptors, taken as episodes: a log says when one began and when it
 * ended, not once per failure. {@linkcode DescriptorShortage} adds what the
 * accept loop does about it: the cap on open connections comes down to what
 * is open (the descriptors really in use), so that newcomers wait in the
 * backlog instead of failing accept after accept, and goes back up by
 * itself once no accept has failed for {@linkcode QUIET_MS}; if accepts fail
 * again it comes down again, and the episode ends once the lifted cap has
 * held as long again.
 *
 * @module
 */
import type { Guard } from "../admission/guard.ts";
import { logger } from "../log/log.ts";
import { plural } from "../text/words.ts";

/** How long without a failure before an episode may end (or the cap is lifted). */
export const QUIET_MS = 1000;

const log = logger("server");

/**
 * Tells whether `error` is the system saying that the process (`EMFILE`) or
 * the whole system (`ENFILE`) is out of file descriptors.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isOutOfDescriptors } from "./shortage.ts";
 * equal(isOutOfDescriptors(Object.assign(new Error("x"), { code: "EMFILE" })), true);
 * equal(isOutOfDescriptors(new Deno.errors.ConnectionReset("x")), false);
 * ```
 */
export function isOutOfDescriptors(error: unknown): boolean {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  return code === "EMFILE" || code === "ENFILE";
}

/** What a {@linkcode FailureEpisode} reports, and what it asks before it ends. */
export interface EpisodeHooks {
  /** The first failure of an episode. */
  began(error: unknown): void;
  /**
   * Asked once no failure has come for {@linkcode QUIET_MS}: true ends the
   * episode, false waits as long again (after a change that the next
   * failures will judge, such as a lifted cap). @default {always true}
   */
  mayEnd?(): boolean;
  /** The episode is over: how many failures, over how many seconds. */
  ended(failures: number, seconds: number): void;
}

/**
 * Failures of one kind as episodes; see the module's documentation. Nothing
 * runs before the first failure; a timer runs during an episode.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { FailureEpisode } from "./shortage.ts";
 * let clock = 0;
 * const said: string[] = [];
 * const episode = new FailureEpisode({
 *   began: () => said.push("began"),
 *   ended: (failures) => said.push(`ended after ${failures}`),
 * }, () => clock);
 * episode.failed("EMFILE");
 * episode.failed("EMFILE");
 * clock = 1000;
 * episode.check();
 * deepEqual(said, ["began", "ended after 2"]);
 * ```
 */
export class FailureEpisode {
  readonly #hooks: EpisodeHooks;
  readonly #now: () => number;
  #since: number | undefined;
  #quietSince = 0;
  #failures = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Reports through `hooks`; `now` is the clock (tests give their own, and call `check`). */
  constructor(hooks: EpisodeHooks, now: () => number = () => performance.now()) {
    this.#hooks = hooks;
    this.#now = now;
  }

  /** True from the first failure of an episode until it ends. */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /** One more failure: the first of an episode is reported, and starts its timer. */
  failed(error: unknown): void {
    this.#quietSince = this.#now();
    this.#failures++;
    if (this.#since !== undefined) return;
    this.#since = this.#quietSince;
    this.#hooks.began(error);
    this.#timer = setInterval(() => this.check(), QUIET_MS / 4);
  }

  /** Ends the episode if it has been quiet long enough and may end; the timer calls it. */
  check(): void {
    if (this.#since === undefined) return;
    const now = this.#now();
    if (now - this.#quietSince < QUIET_MS) return;
    if (this.#hooks.mayEnd !== undefined && !this.#hooks.mayEnd()) {
      this.#quietSince = now;
      return;
    }
    this.#hooks.ended(this.#failures, (now - this.#since) / 1000);
    this.stop();
  }

  /** Ends the episode without a word (its owner stops). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#since = undefined;
    this.#failures = 0;
  }
}

/** One accept loop's view of descriptor shortages: see the module's documentation. */
export class DescriptorShortage {
  readonly #guard: Guard;
  readonly #episode: FailureEpisode;
  #lowered = false;

  /** Watches on behalf of the accept loop whose admissions `guard` counts. */
  constructor(guard: Guard, now?: () => number) {
    this.#guard = guard;
    this.#episode = new FailureEpisode({
      began: () => {
        const open = guard.open;
        if (open === 0) {
          // The descriptors are held elsewhere: only the accept loop's pause helps.
          log.warning("out of file descriptors with no connection open: retrying with backoff");
          return;
        }
        log.warning(
          "out of file descriptors with {connections} open: accepting at most {cap} until descriptors come back",
          { connections: plural(open, "connection"), open, cap: guard.maxConns },
        );
      },
      mayEnd: () => {
        if (!this.#lowered) return true;
        // Perhaps descriptors came back; the next accepts tell.
        this.#guard.restoreCap();
        this.#lowered = false;
        return false;
      },
      ended: (failures, seconds) =>
        log.info(
          "file descriptors available again after {seconds} s ({accepts}): accepting up to {cap} connections",
          {
            seconds: Math.round(seconds * 10) / 10,
            accepts: plural(failures, "failed accept"),
            failures,
            cap: guard.maxConns,
          },
        ),
    }, now);
  }

  /** True from the first failed accept of an episode until it ends. */
  get active(): boolean {
    return this.#episode.active;
  }

  /**
   * An accept failed for want of descriptors: the cap comes down to the
   * connections open now (unless none is).
   */
  failed(error: unknown): void {
    const open = this.#guard.open;
    if (open > 0) {
      this.#guard.lowerCap(open);
      this.#lowered = true;
    }
    this.#episode.failed(error);
  }

  /** Lifts the cap or ends the episode when it is time; the episode's timer calls it. */
  check(): void {
    this.#episode.check();
  }

  /** Ends the episode's timer (the accept loop has stopped). */
  stop(): void {
    this.#episode.stop();
  }
}
