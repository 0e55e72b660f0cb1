/**
 * Parsing and printing of human durations such as `500ms`, `10s` or `2m`.
 *
 * @module
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/**
 * Parses a duration into milliseconds. Accepts `500ms`, `10s`, `2m`, `1h`, or a
 * plain number of seconds (`1.5`). Throws a `RangeError` naming the text when it
 * does not parse or is negative.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * console.assert(parseDuration("500ms") === 500);
 * console.assert(parseDuration("2m") === 120_000);
 * console.assert(parseDuration("1.5") === 1500);
 * ```
 */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  if (match === null) {
    throw new RangeError(
      `invalid duration "${text}": use a number with an optional unit, such as 500ms, 10s, 2m or 1h`,
    );
  }
  const ms = Number(match[1]) * UNIT_MS[match[2] ?? "s"];
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1) {
    throw new RangeError(`invalid duration "${text}": too long`);
  }
  return Math.round(ms);
}

/**
 * Prints milliseconds the way people read them: `850ms`, `12.3s`, `4m05s`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * console.assert(formatDuration(850) === "850ms");
 * console.assert(formatDuration(12_345) === "12.3s");
 * console.assert(formatDuration(245_000) === "4m05s");
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
