/**
 * Which faults a new connection or datagram source gets: the specs in force
 * (replaced whole at run time), each selecting by `from` and `share`, and
 * what the selected ones add up to.
 *
 * @module
 */
import { cidrContainsIp, parseIp } from "../admission/cidr.ts";
import {
  DATAGRAM_FAULTS,
  FAULT_NAMES,
  type FaultName,
  type FaultSettings,
  type FaultSpec,
  STREAM_FAULTS,
} from "./spec.ts";

/** The faults one connection or datagram source got: the settings of every spec that selected it. */
export interface FaultPlan {
  /** The settings, a later spec's winning where two set the same. */
  readonly settings: Readonly<FaultSettings>;
  /** The texts of the specs that selected it, for the `opened` line. */
  readonly specs: readonly string[];
}

/** Counts of faults injected, by name; plain data, so that workers can post it. */
export type FaultCounts = Record<FaultName, number>;

/**
 * Zeroed fault counts.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noFaults } from "./select.ts";
 * equal(noFaults().delay, 0);
 * ```
 */
export function noFaults(): FaultCounts {
  return Object.fromEntries(FAULT_NAMES.map((name) => [name, 0])) as FaultCounts;
}

/** Adds `more` to `sum`, for a total over workers. */
export function addFaults(sum: FaultCounts, more: Readonly<FaultCounts>): FaultCounts {
  const added = { ...sum };
  for (const name of FAULT_NAMES) added[name] += more[name] ?? 0;
  return added;
}

/**
 * The specs in force and the counts of what they did. Selection runs once
 * per connection (or datagram source), never per chunk.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseFaultSpec } from "./spec.ts";
 * import { FaultTable } from "./select.ts";
 * const table = new FaultTable([parseFaultSpec("delay=1s,from=10.0.0.0/8")]);
 * equal(table.pick("10.1.2.3")?.settings.delay, 1000);
 * equal(table.pick("192.0.2.1"), undefined);
 * ```
 */
export class FaultTable {
  #specs: readonly FaultSpec[];
  /** Faults injected, by name. */
  readonly counts: FaultCounts = noFaults();
  /** Connections that got at least one fault. */
  faulted = 0;

  /** Starts with `specs` in force; `random` draws the `share`s (tests pass their own). */
  constructor(specs: readonly FaultSpec[], readonly random: () => number = Math.random) {
    this.#specs = specs;
  }

  /** The specs in force. */
  get specs(): readonly FaultSpec[] {
    return this.#specs;
  }

  /** Puts `specs` in force for the connections and sources selected from now on. */
  replace(specs: readonly FaultSpec[]): void {
    this.#specs = specs;
  }

  /**
   * The faults for a new connection (`stream`) or datagram source from
   * `host` (an IP address, or a socket path, which no `from` matches), or
   * undefined for none. A spec with none of the faults of that kind (only
   * `drop`, say, for a connection) selects nothing.
   */
  pick(host: string, kind: "stream" | "datagram" = "stream"): FaultPlan | undefined {
    let plan: { settings: FaultSettings; specs: string[] } | undefined;
    let ip: ReturnType<typeof parseIp> | undefined;
    const faults = kind === "stream" ? STREAM_FAULTS : DATAGRAM_FAULTS;
    for (const spec of this.#specs) {
      const { from, share } = spec.settings;
      if (!faults.some((name) => spec.settings[name] !== undefined)) continue;
      if (from !== undefined) {
        const peer = ip ??= parseIp(host);
        if (peer === null || !from.some((cidr) => cidrContainsIp(cidr, peer))) continue;
      }
      if (share !== undefined && share < 1 && !(this.random() < share)) continue;
      plan ??= { settings: {}, specs: [] };
      Object.assign(plan.settings, spec.settings);
      plan.specs.push(spec.text);
    }
    return plan;
  }

  /** Counts one injection of `name`. */
  count(name: FaultName): void {
    this.counts[name]++;
  }
}
