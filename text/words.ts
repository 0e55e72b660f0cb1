/**
 * Small helpers for log and report wording.
 *
 * @module
 */
/**
 * A count with its noun, singular or plural: `1 connection`, `3 connections`;
 * `format` writes the count (`1,000 connections`).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { plural } from "./words.ts";
 * equal(plural(1, "byte"), "1 byte");
 * equal(plural(0, "byte"), "0 bytes");
 * equal(plural(1000, "byte", (n) => n.toLocaleString("en-US")), "1,000 bytes");
 * ```
 */
export function plural(
  count: number,
  noun: string,
  format: (count: number) => string = String,
): string {
  return `${format(count)} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * A whole number with its thousands grouped, as people read large counts:
 * `1,234,567`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { grouped } from "./words.ts";
 * equal(grouped(1234567), "1,234,567");
 * equal(grouped(12), "12");
 * ```
 */
export function grouped(count: number): string {
  return count.toLocaleString("en-US", { maximumFractionDigits: 0 });
}

/** Bytes shown at the most by {@linkcode quoteBytes}. */
const QUOTED_MAX = 60;

/**
 * Characters that JSON.stringify leaves alone but that can garble a terminal
 * or hide text: DEL and the C1 controls, invisible and bidirectional format
 * characters, line and paragraph separators.
 */
const UNPRINTABLE =
  /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * Shows bytes as a double-quoted string safe to print on a terminal, for
 * error messages, cut after 60 bytes (`…` after the closing quote says so):
 * valid UTF-8 keeps its printable characters, control and format characters
 * become `\uXXXX`, and bytes that are not UTF-8 become `\xNN`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { quoteBytes } from "./words.ts";
 * equal(quoteBytes(new TextEncoder().encode("busy\n")), '"busy\\n"');
 * equal(quoteBytes(new Uint8Array([0xff, 0x41])), '"\\xffA"');
 * equal(quoteBytes(new Uint8Array(61).fill(0x78)), `"${"x".repeat(60)}"…`);
 * ```
 */
export function quoteBytes(bytes: Uint8Array): string {
  const head = bytes.subarray(0, QUOTED_MAX);
  const more = bytes.length > QUOTED_MAX ? "…" : "";
  let text: string;
  try {
    // A multi-byte character cut at the last byte shown is not invalid text.
    text = new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
  } catch {
    let escaped = "";
    for (const b of head) {
      const c = String.fromCharCode(b);
      escaped += b === 0x22 || b === 0x5c
        ? `\\${c}`
        : b >= 0x20 && b < 0x7f
        ? c
        : `\\x${b.toString(16).padStart(2, "0")}`;
    }
    return `"${escaped}"${more}`;
  }
  const quoted = JSON.stringify(text).replace(
    UNPRINTABLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return quoted + more;
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
