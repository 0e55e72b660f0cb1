/**
 * Datagram faults: for each source a spec selects (once, when it is first
 * seen), its datagrams are dropped, duplicated, held back behind the next
 * one, delayed or corrupted before they are echoed.
 *
 * @module
 */
import type { DatagramShaper } from "../transport/udp.ts";
import type { FaultPlan, FaultTable } from "./select.ts";
import type { FaultSettings } from "./spec.ts";

/** Sources remembered at most; past it the memory starts afresh (and sources are drawn again). */
const MAX_SOURCES = 10_000;
/** How long a datagram held back for `reorder` waits for the next one before it goes anyway. */
const HOLD_MAX_MS = 1000;

/** A faulted source: its settings, and what it holds back. */
interface Source {
  readonly settings: Readonly<FaultSettings>;
  /** The time its last delayed datagram is due: later ones never go before it. */
  lastDue: number;
  /** A datagram held back behind the next one (`reorder`), and its timer. */
  held?: { data: Uint8Array; timer: ReturnType<typeof setTimeout> };
}

/**
 * The datagram side of the faults in force: which sources get them, and
 * what they do to each datagram. Sources without faults cost one lookup.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { FaultTable } from "./select.ts";
 * import { parseFaultSpec } from "./spec.ts";
 * import { DatagramFaults } from "./datagram.ts";
 * const sent: Uint8Array[] = [];
 * const faults = new DatagramFaults(
 *   new FaultTable([parseFaultSpec("duplicate=1")]),
 *   (data) => void sent.push(data),
 * );
 * const from = { transport: "udp", hostname: "127.0.0.1", port: 5000 } as const;
 * equal(faults.take(new Uint8Array([1]), from), true);
 * equal(sent.length, 2);
 * faults.stop();
 * ```
 */
export class DatagramFaults implements DatagramShaper {
  readonly #table: FaultTable;
  readonly #send: (data: Uint8Array, to: Deno.NetAddr) => Promise<void> | void;
  /** Each source seen, by `host port`: its faults, or null for none. */
  readonly #sources = new Map<string, Source | null>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** The specs the sources were drawn under: new specs draw them again. */
  #drawnUnder: unknown;

  /** Applies the datagram faults of `table`; `send` echoes one datagram. */
  constructor(
    table: FaultTable,
    send: (data: Uint8Array, to: Deno.NetAddr) => Promise<void> | void,
  ) {
    this.#table = table;
    this.#send = send;
    this.#drawnUnder = table.specs;
  }

  /**
   * Takes a datagram received from `from` when its source gets faults, and
   * echoes it (or not) as they say, copying what it keeps; false when the
   * source gets none, and the caller echoes it as usual.
   */
  take(data: Uint8Array, from: Deno.NetAddr): boolean {
    const source = this.#source(from);
    if (source === null) return false;
    const s = source.settings;
    const table = this.#table;
    if (s.drop !== undefined && table.random() < s.drop) {
      table.count("drop");
      return true;
    }
    const copy = data.slice();
    if (s.corrupt !== undefined && copy.length > 0 && table.random() < s.corrupt) {
      flipOneBit(copy, table.random);
      table.count("corrupt");
    }
    const times = s.duplicate !== undefined && table.random() < s.duplicate ? 2 : 1;
    if (times === 2) table.count("duplicate");
    const to = { ...from };
    if (s.reorder !== undefined && source.held === undefined && table.random() < s.reorder) {
      table.count("reorder");
      const timer = setTimeout(() => this.#release(source, to), HOLD_MAX_MS);
      source.held = { data: copy, timer };
      return true;
    }
    this.#later(source, () => {
      for (let i = 0; i < times; i++) void this.#send(copy, to);
      this.#release(source, to);
    });
    return true;
  }

  /** Drops what waits: the socket is closing. */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const source of this.#sources.values()) {
      if (source?.held !== undefined) clearTimeout(source.held.timer);
    }
    this.#sources.clear();
  }

  #source(from: Deno.NetAddr): Source | null {
    if (this.#drawnUnder !== this.#table.specs) {
      this.stop();
      this.#drawnUnder = this.#table.specs;
    }
    const key = `${from.hostname} ${from.port}`;
    let source = this.#sources.get(key);
    if (source !== undefined) return source;
    if (this.#sources.size >= MAX_SOURCES) this.stop();
    source = datagramSource(this.#table.pick(from.hostname, "datagram"));
    if (source !== null) this.#table.faulted++;
    this.#sources.set(key, source);
    return source;
  }

  /** Runs `send` once the source's delay (± jitter) has passed, never before an earlier one. */
  #later(source: Source, send: () => void): void {
    const { delay, jitter } = source.settings;
    if (delay === undefined && jitter === undefined) return send();
    const now = performance.now();
    const offset = (jitter ?? 0) * (2 * this.#table.random() - 1);
    source.lastDue = Math.max(source.lastDue, now + Math.max(0, (delay ?? 0) + offset));
    this.#table.count(delay !== undefined ? "delay" : "jitter");
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      send();
    }, source.lastDue - now);
    this.#timers.add(timer);
  }

  /** Sends the datagram `source` held back, if any. */
  #release(source: Source, to: Deno.NetAddr): void {
    const held = source.held;
    if (held === undefined) return;
    source.held = undefined;
    clearTimeout(held.timer);
    void this.#send(held.data, to);
  }
}

/** A source's state under `plan`, or null when none of its faults concerns datagrams. */
function datagramSource(plan: FaultPlan | undefined): Source | null {
  if (plan === undefined) return null;
  const s = plan.settings;
  const any = s.drop ?? s.duplicate ?? s.reorder ?? s.delay ?? s.jitter ?? s.corrupt;
  return any === undefined ? null : { settings: s, lastDue: 0 };
}

/** Flips one bit of `data`, at random. */
function flipOneBit(data: Uint8Array, random: () => number): void {
  const at = Math.floor(random() * data.length);
  data[at] ^= 1 << Math.floor(random() * 8);
}
