/**
 * The default admission limits and the one set of rules for checking them, so
 * that the `Guard`, the shared counts and the command line agree on what a
 * valid limit is and say so in the same words.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";

/**
 * The limits a `Guard` applies when its options leave them out; the command
 * line shows and uses the same values. There is no default per-address cap:
 * a load tester, and every balancer without the PROXY protocol, shows the
 * server one address for all of its clients.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { GUARD_DEFAULTS } from "./limits.ts";
 * equal(GUARD_DEFAULTS.maxConns, 10_000);
 * equal("maxConnsPerIp" in GUARD_DEFAULTS, false); // no per-address cap unless asked for
 * ```
 */
export const GUARD_DEFAULTS = {
  /** Open connections at most, server-wide. */
  maxConns: 10_000,
  /** Client keys with a token bucket at most. */
  maxRateKeys: 100_000,
} as const;

/**
 * A checked connection rate limit: `rate` new connections per second per
 * client key, `burst` of them back to back. Make one with {@link checkRate}.
 *
 * @example
 * ```ts no-assert
 * const limit: RateLimit = { rate: 0.5, burst: 1 };
 * ```
 */
export interface RateLimit {
  /** Tokens added per second: a positive finite number, fractions allowed. */
  readonly rate: number;
  /** Bucket capacity: a positive integer. */
  readonly burst: number;
}

/**
 * What was wrong with a limit: not a positive integer, not a positive finite
 * number, or a `burst` given without a `rate`.
 *
 * @example
 * ```ts no-assert
 * const problem: LimitProblem = "needs-rate";
 * ```
 */
export type LimitProblem = "positive-integer" | "positive-number" | "needs-rate";

const RULES: Record<LimitProblem, string> = {
  "positive-integer": "must be a positive integer",
  "positive-number": "must be a positive finite number",
  "needs-rate": "requires rate to be set",
};

/**
 * An invalid limit option. It is a `RangeError` (and keeps that name), so code
 * that catches range errors still does; code that needs to know which option
 * was wrong, such as the command line mapping it back to its flag, reads
 * {@link LimitError.option} and {@link LimitError.problem} instead of the
 * message.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkRate, LimitError } from "./limits.ts";
 * throws(() => checkRate(undefined, 5), LimitError);
 * throws(() => checkRate(undefined, 5), {
 *   name: "RangeError",
 *   option: "burst",
 *   problem: "needs-rate",
 *   message: "invalid burst 5: requires rate to be set",
 * });
 * ```
 */
export class LimitError extends RangeError {
  /** The option's name as the library spells it, e.g. `maxConnsPerIp`. */
  readonly option: string;
  /** The value that was refused. */
  readonly value: unknown;
  /** Which rule the value broke. */
  readonly problem: LimitProblem;

  /**
   * Builds the error and its message, `invalid <option> <value>: <rule>`.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { LimitError } from "./limits.ts";
   * const error = new LimitError("maxConns", 0, "positive-integer");
   * equal(error.message, "invalid maxConns 0: must be a positive integer");
   * ```
   */
  constructor(option: string, value: unknown, problem: LimitProblem) {
    super(`invalid ${option} ${describeValue(value)}: ${RULES[problem]}`);
    this.option = option;
    this.value = value;
    this.problem = problem;
  }
}

/**
 * `value` when it is a positive safe integer, `fallback` when it is undefined
 * (undefined again when there is no fallback: a limit that is off).
 *
 * @throws {LimitError} naming `option`, for anything else.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { checkPositiveInteger } from "./limits.ts";
 * equal(checkPositiveInteger("maxConns", undefined, 10), 10);
 * equal(checkPositiveInteger("maxConns", 3, 10), 3);
 * equal(checkPositiveInteger("maxConnsPerIp", undefined), undefined);
 * throws(() => checkPositiveInteger("maxConns", 1.5, 10), RangeError);
 * ```
 */
export function checkPositiveInteger(
  option: string,
  value: number | undefined,
  fallback: number,
): number;
/** As above, for a limit that may be off: undefined stays undefined. */
export function checkPositiveInteger(
  option: string,
  value: number | undefined,
): number | undefined;
export function checkPositiveInteger(
  option: string,
  value: number | undefined,
  fallback?: number,
): number | undefined {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new LimitError(option, value, "positive-integer");
  }
  return value;
}

/**
 * The burst used when only a rate is given: one second's worth of tokens,
 * and at least one.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { defaultBurst } from "./limits.ts";
 * equal(defaultBurst(2.5), 3);
 * equal(defaultBurst(0.1), 1);
 * ```
 */
export function defaultBurst(rate: number): number {
  return Math.max(1, Math.ceil(rate));
}

/**
 * Checks a rate and burst as one option pair: `rate` a positive finite
 * number, `burst` a positive integer that defaults to {@link defaultBurst}
 * and needs a rate. Undefined `rate` (and `burst`) means no rate limit.
 *
 * @throws {LimitError} naming `rate` or `burst`.
 *
 * @example
 * ```ts
 * import { deepEqual, equal, throws } from "node:assert/strict";
 * import { checkRate } from "./limits.ts";
 * deepEqual(checkRate(2.5), { rate: 2.5, burst: 3 });
 * deepEqual(checkRate(1, 10), { rate: 1, burst: 10 });
 * equal(checkRate(undefined), undefined);
 * throws(() => checkRate(0), { message: "invalid rate 0: must be a positive finite number" });
 * throws(() => checkRate(1, 0.5), { message: "invalid burst 0.5: must be a positive integer" });
 * ```
 */
export function checkRate(rate: number | undefined, burst?: number): RateLimit | undefined {
  if (rate === undefined) {
    if (burst !== undefined) throw new LimitError("burst", burst, "needs-rate");
    return undefined;
  }
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0) {
    throw new LimitError("rate", rate, "positive-number");
  }
  return { rate, burst: checkPositiveInteger("burst", burst, defaultBurst(rate)) };
}
