/**
 * Small helpers for log and report wording.
 *
 * @module
 */
import type { ServerStats } from "./server.ts";

/**
 * A count with its noun, singular or plural: `1 connection`, `3 connections`.
 *
 * @example
 * ```ts
 * import { plural } from "./words.ts";
 * console.assert(plural(1, "byte") === "1 byte");
 * console.assert(plural(0, "byte") === "0 bytes");
 * ```
 */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * The one-line summary a server logs when it stops: what it served and,
 * when anything was refused or closed by a limit, how many by reason.
 *
 * @example
 * ```ts
 * import { summary } from "./words.ts";
 * const refusals = { cap: 0, "per-ip": 2, rate: 0, denied: 0, idle: 1, lifetime: 0 };
 * console.assert(
 *   summary({ open: 0, served: 3, bytesIn: 10, bytesOut: 10, refusals }) ===
 *     "served 3 connections, echoed 10 bytes; refused or closed by limits: per-ip 2, idle 1",
 * );
 * ```
 */
export function summary(stats: ServerStats): string {
  const limited = Object.entries(stats.refusals).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  return `served ${plural(stats.served, "connection")}, echoed ${plural(stats.bytesOut, "byte")}${
    limited.length > 0 ? `; refused or closed by limits: ${limited.join(", ")}` : ""
  }`;
}

const decoder = new TextDecoder();

/**
 * Shows bytes as a quoted, escaped string, shortened to 60 bytes, for error
 * messages: control characters and broken UTF-8 cannot garble a terminal.
 *
 * @example
 * ```ts
 * import { quoteBytes } from "./words.ts";
 * console.assert(quoteBytes(new TextEncoder().encode("busy\n")) === '"busy\\n"');
 * ```
 */
export function quoteBytes(bytes: Uint8Array): string {
  const text = JSON.stringify(decoder.decode(bytes.subarray(0, 60)));
  return bytes.length > 60 ? `${text.slice(0, -1)}…"` : text;
}
