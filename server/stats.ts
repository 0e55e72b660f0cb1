/**
 * A server's counters, the one line that sums them up, and their total over
 * workers.
 *
 * @module
 */
import { noRefusals, REFUSAL_REASONS, type RefusalReason } from "../admission/refusals.ts";
import { grouped, plural } from "../text/words.ts";
import { addDatagrams, type DatagramStats, datagramSummary } from "../transport/udp.ts";
import { addFaults, type FaultCounts } from "../fault/select.ts";
import {
  addDurations,
  CLOSE_REASONS,
  type CloseReason,
  type DurationHistogram,
  noCloses,
} from "./closes.ts";

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
  /** Connections closed since start, by why they ended (for metrics). */
  closed?: Readonly<Record<CloseReason, number>>;
  /** How long the closed connections lasted (for metrics). */
  durations?: DurationHistogram;
  /** Accepts that failed (e.g. out of file descriptors), each retried (for metrics). */
  acceptErrors?: number;
  /** With faults asked for (`--fault`): connections that got any, since start. */
  faulted?: number;
  /** With faults asked for: how often each was injected (for metrics). */
  faults?: FaultCounts;
}

/**
 * The one-line summary a server logs when it stops: what it served, how many
 * connections the drain timeout cut, and, when anything was refused or
 * closed by a limit, how many by reason; counts grouped by thousands.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noRefusals } from "../admission/refusals.ts";
 * import { noCloses } from "./closes.ts";
 * import { summary } from "./stats.ts";
 * const refusals = { ...noRefusals(), "per-ip": 2, idle: 1 };
 * equal(
 *   summary({ open: 0, served: 3, bytesIn: 10, bytesOut: 10, refusals }),
 *   "served 3 connections, echoed 10 bytes; refused or closed by limits: per-ip 2, idle 1",
 * );
 * const closed = { ...noCloses(), shutdown: 2 };
 * equal(
 *   summary({ open: 0, served: 1500, bytesIn: 2e6, bytesOut: 2e6, refusals: noRefusals(), closed }),
 *   "served 1,500 connections, echoed 2,000,000 bytes, 2 cut at the drain timeout",
 * );
 * ```
 */
export function summary(stats: ServerStats): string {
  const limited = Object.entries(stats.refusals).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${grouped(n)}`);
  const cut = stats.closed?.shutdown ?? 0;
  const faulted = stats.faulted ?? 0;
  return `served ${plural(stats.served, "connection", grouped)}, echoed ${
    plural(stats.bytesOut, "byte", grouped)
  }${cut > 0 ? `, ${grouped(cut)} cut at the drain timeout` : ""}${
    faulted > 0 ? `, ${grouped(faulted)} faulted on purpose` : ""
  }${limited.length > 0 ? `; refused or closed by limits: ${limited.join(", ")}` : ""}${
    stats.datagrams === undefined ? "" : `; ${datagramSummary(stats.datagrams)}`
  }`;
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
    addMetricCounts(sum, stats);
  }
  return sum;
}

/** Adds the counts only metrics need (closes, durations, accept errors) of `more` to `sum`. */
function addMetricCounts(sum: ServerStats, more: ServerStats): void {
  if (more.closed !== undefined) {
    const closed = { ...(sum.closed ?? noCloses()) };
    for (const reason of CLOSE_REASONS) closed[reason] += more.closed[reason];
    sum.closed = closed;
  }
  if (more.durations !== undefined) {
    sum.durations = sum.durations === undefined
      ? more.durations
      : addDurations(sum.durations, more.durations);
  }
  if (more.acceptErrors !== undefined) {
    sum.acceptErrors = (sum.acceptErrors ?? 0) + more.acceptErrors;
  }
  if (more.faulted !== undefined) sum.faulted = (sum.faulted ?? 0) + more.faulted;
  if (more.faults !== undefined) {
    sum.faults = sum.faults === undefined ? { ...more.faults } : addFaults(sum.faults, more.faults);
  }
}
