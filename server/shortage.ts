/**
 * Failures that come in bursts, such as accepts failing for want of file
 * descriptors, taken as episodes: a log says when one began and when it
 * ended, not once per failure. {@linkcode DescriptorShortage} adds what the
 * accept loop does about it: the cap on open connections comes down to what
 * is open (the descriptors really in use), so that newcomers wait in the
 * backlog instead of failing accept after accept, and goes back up by
 * itself once no accept has failed for a quiet second; if accepts fail
 * again it comes down again, and the episode ends once the lifted cap has
 * held as long again.
 *
 * @module
 */
import type { Guard } from "../admission/guard.ts";
import { logger } from "../log/log.ts";
import { plural } from "../text/words.ts";
import { FailureEpisode } from "../log/episode.ts";

const log = logger("server");

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
