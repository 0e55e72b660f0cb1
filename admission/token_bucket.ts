/**
 * A token bucket rate limiter driven by an injectable millisecond clock.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";

/**
 * Options for {@link TokenBucket}.
 *
 * @example
 * ```ts
 * const options: TokenBucketOptions = { rate: 5, burst: 10 };
 * ```
 */
export interface TokenBucketOptions {
  /** Tokens added per second. Any positive finite number; fractions such as 0.5 are allowed. */
  rate: number;
  /**
   * Capacity: how many takes may happen back to back. A finite number >= 1.
   * @default Math.max(1, Math.ceil(rate))
   */
  burst?: number;
  /**
   * Monotonic clock in milliseconds.
   * @default performance.now
   */
  now?: () => number;
}

/**
 * Token bucket that starts full. Each successful {@link TokenBucket.take}
 * spends one token; tokens come back at `rate` per second up to `burst`.
 *
 * Implemented as GCRA (a "theoretical arrival time" instead of a token
 * count): one number of state, refill needs no per-call float accumulation,
 * and "full" is an exact comparison, which keeps boundary behaviour
 * deterministic under a fake clock.
 *
 * @example
 * ```ts
 * let t = 0;
 * const bucket = new TokenBucket({ rate: 1, burst: 2, now: () => t });
 * bucket.take(); // true
 * bucket.take(); // true
 * bucket.take(); // false: empty
 * t = 1000;
 * bucket.take(); // true: one token refilled
 * ```
 */
export class TokenBucket {
  /** Tokens added per second. */
  readonly rate: number;
  /** Capacity in tokens. */
  readonly burst: number;
  readonly #now: () => number;
  /** Milliseconds to earn one token. */
  readonly #interval: number;
  /** How far ahead of now the theoretical arrival time may run and still admit. */
  readonly #tolerance: number;
  /** Time at which the bucket will be full again; <= now means full. */
  #fullAt: number;

  /**
   * @throws {RangeError} when `rate` is not a positive finite number or
   *   `burst` is not a finite number >= 1, naming the value.
   */
  constructor(options: TokenBucketOptions) {
    const { rate } = options;
    if (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0) {
      throw new RangeError(`invalid rate ${describeValue(rate)}: must be a positive finite number`);
    }
    const burst = options.burst ?? Math.max(1, Math.ceil(rate));
    if (typeof burst !== "number" || !Number.isFinite(burst) || burst < 1) {
      throw new RangeError(`invalid burst ${describeValue(burst)}: must be a finite number >= 1`);
    }
    this.rate = rate;
    this.burst = burst;
    this.#now = options.now ?? (() => performance.now());
    this.#interval = 1000 / rate;
    this.#tolerance = (burst - 1) * this.#interval;
    this.#fullAt = this.#now();
  }

  /**
   * Spends one token if one is available.
   *
   * @returns true when a token was taken, false when the bucket is empty
   *   (a refused take costs nothing).
   *
   * @example
   * ```ts
   * const bucket = new TokenBucket({ rate: 10 });
   * if (!bucket.take()) {
   *   // over the limit
   * }
   * ```
   */
  take(): boolean {
    const now = this.#now();
    // max() also makes a clock that steps backwards harmless.
    const fullAt = Math.max(this.#fullAt, now);
    if (fullAt - now > this.#tolerance) return false;
    this.#fullAt = fullAt + this.#interval;
    return true;
  }

  /**
   * Tokens currently available (fractional while refilling), 0 to `burst`.
   *
   * @example
   * ```ts
   * new TokenBucket({ rate: 1, burst: 3 }).tokens; // 3
   * ```
   */
  get tokens(): number {
    const owed = Math.max(0, this.#fullAt - this.#now());
    return Math.max(0, this.burst - owed / this.#interval);
  }

  /**
   * True when the bucket holds `burst` tokens, i.e. it is indistinguishable
   * from a fresh one and an owner keeping many buckets may drop it.
   *
   * @example
   * ```ts
   * const bucket = new TokenBucket({ rate: 1 });
   * bucket.full; // true
   * bucket.take();
   * bucket.full; // false until a second has passed
   * ```
   */
  get full(): boolean {
    return this.#fullAt <= this.#now();
  }
}
