/**
 * A server's counters and the one line that sums them up.
 *
 * @module
 */
import type { RefusalReason } from "../admission/refusals.ts";
import { plural } from "../text/words.ts";

/** Counters of a server, for summaries and tests. */
export interface ServerStats {
  /** Connections open now. */
  open: number;
  /** Connections admitted since start. */
  served: number;
  /** Bytes read from clients. */
  bytesIn: number;
  /** Bytes written back to clients. */
  bytesOut: number;
  /** Connections refused or closed by the limits, by reason. */
  refusals: Readonly<Record<RefusalReason, number>>;
}

/**
 * The one-line summary a server logs when it stops: what it served and,
 * when anything was refused or closed by a limit, how many by reason.
 *
 * @example
 * ```ts
 * import { summary } from "./stats.ts";
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
