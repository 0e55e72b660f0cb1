/**
 * Small helpers for log and report wording.
 *
 * @module
 */
/**
 * A count with its noun, singular or plural: `1 connection`, `3 connections`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { plural } from "./words.ts";
 * equal(plural(1, "byte"), "1 byte");
 * equal(plural(0, "byte"), "0 bytes");
 * ```
 */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

const decoder = new TextDecoder();

/**
 * Shows bytes as a quoted, escaped string, shortened to 60 bytes, for error
 * messages: control characters and broken UTF-8 cannot garble a terminal.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { quoteBytes } from "./words.ts";
 * equal(quoteBytes(new TextEncoder().encode("busy\n")), '"busy\\n"');
 * ```
 */
export function quoteBytes(bytes: Uint8Array): string {
  const text = JSON.stringify(decoder.decode(bytes.subarray(0, 60)));
  return bytes.length > 60 ? `${text.slice(0, -1)}…"` : text;
}

/**
 * A value as it reads in an error message: strings quoted, the rest as they print.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeValue } from "./words.ts";
 * equal(describeValue("abc"), '"abc"');
 * equal(describeValue(NaN), "NaN");
 * ```
 */
export function describeValue(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
