/**
 * Per-key log line throttling with bounded memory.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";

/**
 * Options for {@link LogThrottle}.
 *
 * @example
 * ```ts no-assert
 * import type { LogThrottleOptions } from "./throttle.ts";
 * const options: LogThrottleOptions = { intervalMs: 60_000, maxKeys: 1_000 };
 * ```
 */
export interface LogThrottleOptions {
  /**
   * At most one line per key is let through per this many milliseconds.
   * A finite number >= 0 (0 lets everything through).
   * @default 10_000
   */
  intervalMs?: number;
  /**
   * Monotonic clock in milliseconds.
   * @default performance.now
   */
  now?: () => number;
  /**
   * Most keys remembered at once (a positive integer); beyond it the key let
   * through longest ago is forgotten.
   * @default 10_000
   */
  maxKeys?: number;
}

interface Entry {
  /** When a line for this key was last let through. */
  last: number;
  /** Lines suppressed since then. */
  suppressed: number;
}

/**
 * Decides which log lines to emit so that a noisy key (typically a client
 * address) produces at most one line per interval, while still reporting how
 * many lines were dropped in between.
 *
 * Memory is bounded by `maxKeys`. Keys whose interval has passed and that
 * have nothing to report are swept at most once per interval (an O(size)
 * scan, so amortised O(1) per call). Keys with an unreported suppressed count
 * are kept so the count can be reported on the key's next line, unless
 * `maxKeys` forces them out, oldest first; their count is then lost.
 *
 * Note: throttling is per key, so a flood of distinct keys still logs one
 * line per key; throttle on a shared key as well if total volume matters.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { LogThrottle } from "./throttle.ts";
 * const throttle = new LogThrottle({ intervalMs: 10_000 });
 * const lines: string[] = [];
 * for (let i = 0; i < 3; i++) {
 *   const suppressed = throttle.hit("203.0.113.7");
 *   if (suppressed !== null) lines.push(`refused 203.0.113.7 (${suppressed} more since the last line)`);
 * }
 * equal(lines.length, 1);
 * ```
 */
export class LogThrottle {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  /** Insertion order is let-through order (re-inserted on each), so the first entry is the oldest. */
  readonly #entries = new Map<string, Entry>();
  #lastSweep: number;

  /**
   * Makes a throttle that remembers no key yet.
   *
   * @throws {RangeError} when `intervalMs` is not a finite number >= 0 or
   *   `maxKeys` is not a positive integer, naming the value.
   */
  constructor(options: LogThrottleOptions = {}) {
    const intervalMs = options.intervalMs ?? 10_000;
    if (typeof intervalMs !== "number" || !Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(
        `invalid intervalMs ${describeValue(intervalMs)}: must be a finite number >= 0`,
      );
    }
    const maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isSafeInteger(maxKeys) || maxKeys <= 0) {
      throw new RangeError(`invalid maxKeys ${describeValue(maxKeys)}: must be a positive integer`);
    }
    this.#intervalMs = intervalMs;
    this.#maxKeys = maxKeys;
    this.#now = options.now ?? (() => performance.now());
    this.#lastSweep = this.#now();
  }

  /**
   * Records a line for `key`.
   *
   * @returns null when the line must be suppressed; otherwise the number of
   *   lines suppressed for `key` since one was last let through (0 the first
   *   time).
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { LogThrottle } from "./throttle.ts";
   * let clock = 0;
   * const throttle = new LogThrottle({ now: () => clock });
   * equal(throttle.hit("a"), 0);
   * equal(throttle.hit("a"), null);
   * equal(throttle.hit("a"), null);
   * clock += 10_000;
   * equal(throttle.hit("a"), 2);
   * ```
   */
  hit(key: string): number | null {
    const now = this.#now();
    if (now - this.#lastSweep >= this.#intervalMs) this.#sweep(now);

    const entry = this.#entries.get(key);
    if (entry !== undefined && now - entry.last < this.#intervalMs) {
      entry.suppressed++;
      return null;
    }
    if (entry !== undefined) {
      this.#entries.delete(key);
    } else if (this.#entries.size >= this.#maxKeys) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { last: now, suppressed: 0 });
    return entry?.suppressed ?? 0;
  }

  /**
   * Number of keys currently remembered (never more than `maxKeys`).
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { LogThrottle } from "./throttle.ts";
   * const throttle = new LogThrottle();
   * throttle.hit("a");
   * equal(throttle.size, 1);
   * ```
   */
  get size(): number {
    return this.#entries.size;
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [key, entry] of this.#entries) {
      if (entry.suppressed === 0 && now - entry.last >= this.#intervalMs) {
        this.#entries.delete(key);
      }
    }
  }
}
