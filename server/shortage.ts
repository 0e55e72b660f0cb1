/**
 * Running out of file descriptors, as the accept loop lives through it: an
 * episode begins at the first accept that fails for want of descriptors, and
 * the cap on open connections comes down to what is open then (the
 * descriptors really in use), so that newcomers wait in the backlog instead
 * of failing accept after accept. The cap goes back up by itself: once no
 * accept has failed for {@linkcode SHORTAGE_PROBE_MS}, it is lifted to the
 * configured limit; an accept that fails again lowers it again, and one that
 * does not for as long again ends the episode. One line says it began and one
 * that it ended, however many accepts failed between.
 *
 * @module
 */
import type { Guard } from "../admission/guard.ts";
import { logger } from "../log/log.ts";
import { plural } from "../text/words.ts";

/** How long after the last failed accept the cap is lifted again, and then the episode ends. */
export const SHORTAGE_PROBE_MS = 1000;

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

/**
 * Failures of one kind as episodes, so that a log says when they began and
 * when they ended rather than once per failure: the first failure calls
 * `began`, and `ended` is called once none has come for
 * {@linkcode SHORTAGE_PROBE_MS}.
 */
export class FailureEpisode {
  readonly #began: (error: unknown) => void;
  readonly #ended: (failures: number, seconds: number) => void;
  #since: number | undefined;
  #lastAt = 0;
  #failures = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Reports through `began` and `ended`; nothing runs before the first failure. */
  constructor(
    began: (error: unknown) => void,
    ended: (failures: number, seconds: number) => void,
  ) {
    this.#began = began;
    this.#ended = ended;
  }

  /** One more failure: the first of an episode is reported. */
  failed(error: unknown): void {
    this.#lastAt = performance.now();
    this.#failures++;
    if (this.#since !== undefined) return;
    this.#since = this.#lastAt;
    this.#began(error);
    this.#timer = setInterval(() => {
      const now = performance.now();
      if (this.#since === undefined || now - this.#lastAt < SHORTAGE_PROBE_MS) return;
      this.#ended(this.#failures, (now - this.#since) / 1000);
      this.stop();
    }, SHORTAGE_PROBE_MS / 4);
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
  readonly #now: () => number;
  #since: number | undefined;
  #lastFailureAt = 0;
  #failures = 0;
  #lowered = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Watches on behalf of the accept loop whose admissions `guard` counts. */
  constructor(guard: Guard, now: () => number = () => performance.now()) {
    this.#guard = guard;
    this.#now = now;
  }

  /** True from the first failed accept of an episode until it ends. */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /**
   * An accept failed for want of descriptors: the cap comes down to the
   * connections open now (unless none is: then the descriptors are held
   * elsewhere, and only the accept loop's pause helps).
   */
  failed(): void {
    this.#lastFailureAt = this.#now();
    this.#failures++;
    const open = this.#guard.open;
    if (open > 0) {
      this.#guard.lowerCap(open);
      this.#lowered = true;
    }
    if (this.#since !== undefined) return;
    this.#since = this.#lastFailureAt;
    log.warning(
      "out of file descriptors with {connections} open: accepting at most {open} until descriptors come back",
      { connections: plural(open, "connection"), open: this.#guard.maxConns, failures: 1 },
    );
    this.#timer = setInterval(() => this.check(), SHORTAGE_PROBE_MS / 4);
  }

  /**
   * Lifts the cap, or ends the episode, when no accept has failed for long
   * enough; called by its own timer, and by tests with their own clock.
   */
  check(): void {
    if (this.#since === undefined) return;
    const quietMs = this.#now() - this.#lastFailureAt;
    if (quietMs < SHORTAGE_PROBE_MS) return;
    if (this.#lowered) {
      // Perhaps descriptors came back; the next accept tells.
      this.#guard.restoreCap();
      this.#lowered = false;
      this.#lastFailureAt = this.#now();
      return;
    }
    const seconds = (this.#now() - this.#since) / 1000;
    log.info(
      "file descriptors available again after {seconds} s ({accepts}): accepting up to {cap} connections",
      {
        seconds: Math.round(seconds * 10) / 10,
        accepts: plural(this.#failures, "failed accept"),
        failures: this.#failures,
        cap: this.#guard.maxConns,
      },
    );
    this.stop();
  }

  /** Ends the episode's timer (the accept loop has stopped). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#since = undefined;
    this.#failures = 0;
  }
}
