/**
 * A server's counters, the one line that sums them up, and their total over
 * workers.
 *
 * @module
 */
import { noRefusals, REFUSAL_REASONS, type RefusalReason } from "../admission/refusals.ts";
import { plural } from "../text/words.ts";
import { addDatagrams, type DatagramStats, datagramSummary } from "./udp.ts";

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
  /** Connections this server refused or closed by the limits, by reason. */
  refusals: Readonly<Record<RefusalReason, number>>;
  /** UDP datagrams echoed and dropped, when the server echoes UDP too (`udp` option). */
  datagrams?: DatagramStats;
}

/**
 * The one-line summary a server logs when it stops: what it served and,
 * when anything was refused or closed by a limit, how many by reason.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noRefusals } from "../admission/refusals.ts";
 * import { summary } from "./stats.ts";
 * const refusals = { ...noRefusals(), "per-ip": 2, idle: 1 };
 * equal(
 *   summary({ open: 0, served: 3, bytesIn: 10, bytesOut: 10, refusals }),
 *   "served 3 connections, echoed 10 bytes; refused or closed by limits: per-ip 2, idle 1",
 * );
 * ```
 */
export function summary(stats: ServerStats): string {
  const limited = Object.entries(stats.refusals).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  return `served ${plural(stats.served, "connection")}, echoed ${plural(stats.bytesOut, "byte")}${
    limited.length > 0 ? `; refused or closed by limits: ${limited.join(", ")}` : ""
  }${stats.datagrams === undefined ? "" : `; ${datagramSummary(stats.datagrams)}`}`;
}

/**
 * Adds up the counters of several servers, such as the workers of one.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { noRefusals } from "../admission/refusals.ts";
 * import { total } from "./stats.ts";
 * const none = noRefusals();
 * const one = { open: 1, served: 2, bytesIn: 3, bytesOut: 3, refusals: { ...none, rate: 1 } };
 * deepEqual(total([one, one]), {
 *   open: 2,
 *   served: 4,
 *   bytesIn: 6,
 *   bytesOut: 6,
 *   refusals: { ...none, rate: 2 },
 * });
 * ```
 */
export function total(all: readonly ServerStats[]): ServerStats {
  const sum: ServerStats & { refusals: Record<RefusalReason, number> } = {
    open: 0,
    served: 0,
    bytesIn: 0,
    bytesOut: 0,
    refusals: noRefusals(),
  };
  for (const stats of all) {
    sum.open += stats.open;
    sum.served += stats.served;
    sum.bytesIn += stats.bytesIn;
    sum.bytesOut += stats.bytesOut;
    for (const reason of REFUSAL_REASONS) sum.refusals[reason] += stats.refusals[reason];
    if (stats.datagrams !== undefined) {
      sum.datagrams = sum.datagrams === undefined
        ? stats.datagrams
        : addDatagrams(sum.datagrams, stats.datagrams);
    }
  }
  return sum;
}
