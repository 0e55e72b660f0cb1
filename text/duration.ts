/**
 * Parsing and printing of human durations such as `500ms`, `10s` or `2m`.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
/**
 * The longest duration, in milliseconds: timers take at most a signed 32-bit
 * count of milliseconds (about 596 hours), and fire at once beyond it.
 */
export const LONGEST_MS = 2 ** 31 - 1;

/** Why a text is not a duration: it does not parse, or it is longer than timers can wait. */
export type DurationErrorKind = "syntax" | "too-long";

/** A text that {@linkcode parseDuration} cannot read; `kind` says why. */
export class DurationError extends RangeError {
  /** `syntax` for text that is not a duration, `too-long` for one beyond the longest timer. */
  readonly kind: DurationErrorKind;
  /** The text that was given. */
  readonly text: string;

  /** Makes the error for `text`, with a message that quotes it. */
  constructor(kind: DurationErrorKind, text: string) {
    super(
      kind === "too-long"
        ? `invalid duration "${text}": too long`
        : `invalid duration "${text}": use a number with an optional unit, such as 500ms, 10s, 2m or 1h`,
    );
    this.name = "DurationError";
    this.kind = kind;
    this.text = text;
  }
}

/**
 * Parses a duration into milliseconds. Accepts `500ms`, `10s`, `2m`, `1h`, or a
 * plain number of seconds (`1.5`). Throws a {@linkcode DurationError} naming
 * the text when it does not parse, is negative, or is longer than about 596h.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { DurationError, parseDuration } from "./duration.ts";
 * equal(parseDuration("500ms"), 500);
 * equal(parseDuration("2m"), 120_000);
 * equal(parseDuration("1.5"), 1500);
 * throws(() => parseDuration("1000h"), (e) => e instanceof DurationError && e.kind === "too-long");
 * ```
 */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  if (match === null) throw new DurationError("syntax", text);
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? "s"];
  if (!Number.isFinite(ms) || ms > LONGEST_MS) throw new DurationError("too-long", text);
  return Math.round(ms);
}

/**
 * Prints milliseconds the way people read them: `850ms`, `12.3s`, `4m05s`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatDuration } from "./duration.ts";
 * equal(formatDuration(850), "850ms");
 * equal(formatDuration(12_345), "12.3s");
 * equal(formatDuration(245_000), "4m05s");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds % 60;
  if (minutes < 60) return `${minutes}m${String(seconds).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * Prints whole milliseconds as the shortest text {@linkcode parseDuration}
 * reads back to the same value, in the largest unit that divides it: for
 * defaults in usage texts, where `5m` reads better than `300000ms`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatExactDuration } from "./duration.ts";
 * equal(formatExactDuration(300_000), "5m");
 * equal(formatExactDuration(10_000), "10s");
 * equal(formatExactDuration(1500), "1500ms");
 * equal(formatExactDuration(0), "0");
 * ```
 */
export function formatExactDuration(ms: number): string {
  if (ms === 0) return "0";
  for (const unit of ["h", "m", "s"] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
