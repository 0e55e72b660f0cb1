/**
 * Failures that come in bursts, such as accepts failing for want of file
 * descriptors, taken as episodes: the owner hears when one began and when it
 * ended, not once per failure. The accept loop's shortage handling and the
 * metrics endpoint both report their failures this way.
 *
 * @module
 */

/** How long without a failure before an episode may end (or the cap is lifted). */
export const QUIET_MS = 1000;

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
 * import { FailureEpisode } from "./episode.ts";
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
