/**
 * A fault spec, `NAME=VALUE[,NAME=VALUE…]`, read into the settings it
 * applies together to the connections (or datagram sources) it selects:
 * pure text to data, with one line naming the bad part when it does not read.
 *
 * @module
 */
import { type Cidr, parseCidr } from "../admission/cidr.ts";
import { DurationError, parseDuration } from "../text/duration.ts";
import { didYouMean } from "../text/nearest.ts";

/** After how much: a number of bytes echoed, or a time since the connection opened. */
export type Amount = { readonly bytes: number } | { readonly ms: number };

/** What one spec sets; an absent setting is not applied. */
export interface FaultSettings {
  /** Each echoed chunk (or datagram) leaves this long after it came. */
  delay?: number;
  /** Up to this much more or less than `delay`, drawn per chunk; order is kept. */
  jitter?: number;
  /** The echo's bandwidth, bytes per second. */
  rate?: number;
  /** How fast the server reads, bytes per second. */
  "read-rate"?: number;
  /** Echoes written in pieces of at most this many bytes, each its own write. */
  slice?: number;
  /** A pause between two pieces of a slice. */
  "slice-delay"?: number;
  /** Close with a FIN after this. */
  "close-after"?: Amount;
  /** Reset (`SO_LINGER` 0) after this. */
  "reset-after"?: Amount;
  /** Stop reading and echoing after this; the connection stays open. */
  "stall-after"?: Amount;
  /** After the client closes, wait this long before closing. */
  "slow-close"?: number;
  /** Probability of one bit flipped in an echoed chunk (or datagram). */
  corrupt?: number;
  /** Probability that a new connection is reset at once. */
  refuse?: number;
  /** Probability that a datagram is not echoed. */
  drop?: number;
  /** Probability that a datagram is echoed twice. */
  duplicate?: number;
  /** Probability that a datagram is held back behind the next one. */
  reorder?: number;
  /** Probability that a new connection or datagram source is selected. */
  share?: number;
  /** Only clients in these blocks are selected. */
  from?: readonly Cidr[];
}

/** A fault's name, as specs write it. */
export type FaultName = Exclude<keyof FaultSettings, "share" | "from">;

/** One parsed spec: its settings and the text it came from. */
export interface FaultSpec {
  /** The spec as given, trimmed: how the API and the logs show it. */
  readonly text: string;
  /** The settings it applies. */
  readonly settings: Readonly<FaultSettings>;
}

type Kind = "duration" | "size" | "rate" | "probability" | "amount" | "cidrs";

/** Every name a spec takes, with its kind of value. */
const KINDS: Readonly<Record<keyof FaultSettings, Kind>> = {
  delay: "duration",
  jitter: "duration",
  rate: "rate",
  "read-rate": "rate",
  slice: "size",
  "slice-delay": "duration",
  "close-after": "amount",
  "reset-after": "amount",
  "stall-after": "amount",
  "slow-close": "duration",
  corrupt: "probability",
  refuse: "probability",
  drop: "probability",
  duplicate: "probability",
  reorder: "probability",
  share: "probability",
  from: "cidrs",
};

/** The faults a stream connection can get. */
export const STREAM_FAULTS: readonly FaultName[] = [
  "delay",
  "jitter",
  "rate",
  "read-rate",
  "slice",
  "slice-delay",
  "close-after",
  "reset-after",
  "stall-after",
  "slow-close",
  "corrupt",
  "refuse",
];

/** The faults a datagram source can get. */
export const DATAGRAM_FAULTS: readonly FaultName[] = [
  "drop",
  "duplicate",
  "reorder",
  "delay",
  "jitter",
  "corrupt",
];

/** Every fault's name, for metrics: in a stable order. */
export const FAULT_NAMES: readonly FaultName[] = [
  ...STREAM_FAULTS,
  ...DATAGRAM_FAULTS.filter((name) => !STREAM_FAULTS.includes(name)),
];

/** A spec that does not read; the message names the bad part, on one line. */
export class FaultSpecError extends RangeError {
  /** Makes the error from the reason, e.g. `delay "abc": expected a duration such as 200ms`. */
  constructor(message: string) {
    super(message);
    this.name = "FaultSpecError";
  }
}

const SIZE = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|kB|KB|MB|GB)?$/;
const SIZE_UNIT: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  kB: 1000,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};
const SIZE_HINT = "expected a size such as 4096, 64KiB or 1MiB";

/**
 * Reads a size: `4096`, `64KiB`, `1MiB`, `1.5MB` (binary and decimal units);
 * a whole number of bytes, above 0.
 *
 * @throws {FaultSpecError} `expected a size …` for anything else.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseSize } from "./spec.ts";
 * equal(parseSize("64KiB"), 65536);
 * equal(parseSize("4096"), 4096);
 * ```
 */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  const bytes = match === null ? NaN : Math.round(Number(match[1]) * SIZE_UNIT[match[2] ?? "B"]);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new FaultSpecError(SIZE_HINT);
  return bytes;
}

function parseValue(kind: Kind, text: string): FaultSettings[keyof FaultSettings] {
  switch (kind) {
    case "duration":
      return duration(text);
    case "size":
      return parseSize(text);
    case "rate": {
      const size = text.endsWith("/s") ? text.slice(0, -2) : text;
      try {
        return parseSize(size);
      } catch {
        throw new FaultSpecError("expected a rate such as 64KiB/s or 1MiB/s");
      }
    }
    case "probability": {
      const p = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
      if (!(p >= 0 && p <= 1)) throw new FaultSpecError("expected a probability from 0 to 1");
      return p;
    }
    case "amount":
      // A bare number is a size: bytes are what these are most often counted in.
      if (SIZE.test(text)) return { bytes: parseSize(text) };
      try {
        return { ms: parseDuration(text) };
      } catch {
        throw new FaultSpecError("expected a size such as 1MiB or a duration such as 5s");
      }
    case "cidrs":
      return text.split(";").map((block) => {
        try {
          return parseCidr(block);
        } catch (error) {
          throw new FaultSpecError(error instanceof Error ? error.message : String(error));
        }
      });
  }
}

function duration(text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof DurationError && error.kind === "too-long") {
      throw new FaultSpecError("too long");
    }
    throw new FaultSpecError("expected a duration such as 200ms, 5s or 2m");
  }
}

/**
 * Reads one spec. Each error names the spec and the bad part: an unknown
 * name (with the nearest known one), a value that does not read, a name
 * given twice, `slice-delay` without `slice`, or a spec with no fault in it.
 *
 * @throws {FaultSpecError} saying what is wrong, e.g.
 *   `fault "delay=abc": delay "abc": expected a duration such as 200ms, 5s or 2m`.
 *
 * @example
 * ```ts
 * import { deepEqual, throws } from "node:assert/strict";
 * import { parseFaultSpec } from "./spec.ts";
 * deepEqual(parseFaultSpec("delay=200ms, jitter=50ms").settings, { delay: 200, jitter: 50 });
 * throws(() => parseFaultSpec("dely=1s"), {
 *   message: 'fault "dely=1s": unknown name "dely" (did you mean delay?)',
 * });
 * ```
 */
export function parseFaultSpec(text: string): FaultSpec {
  const spec = text.trim();
  const fail = (reason: string) => new FaultSpecError(`fault ${JSON.stringify(spec)}: ${reason}`);
  if (spec === "") throw new FaultSpecError("empty fault spec: expected NAME=VALUE[,NAME=VALUE…]");
  const settings: Record<string, unknown> = {};
  for (const part of spec.split(",")) {
    const item = part.trim();
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw fail(
        item === "" ? "an empty setting between commas" : `"${item}" is not NAME=VALUE`,
      );
    }
    // Names in any letter case, as the command line's other words.
    const name = item.slice(0, eq).trim().toLowerCase();
    const value = item.slice(eq + 1).trim();
    if (!Object.hasOwn(KINDS, name)) {
      throw fail(`unknown name "${name}"${didYouMean(name, Object.keys(KINDS))}`);
    }
    if (Object.hasOwn(settings, name)) throw fail(`${name} is given twice`);
    try {
      settings[name] = parseValue(KINDS[name as keyof FaultSettings], value);
    } catch (error) {
      if (!(error instanceof FaultSpecError)) throw error;
      throw fail(`${name} "${value}": ${error.message}`);
    }
  }
  if (settings["slice-delay"] !== undefined && settings.slice === undefined) {
    throw fail("slice-delay needs slice");
  }
  if (!FAULT_NAMES.some((name) => settings[name] !== undefined)) {
    throw fail(`no fault in it, only a selection: add one of ${FAULT_NAMES.join(", ")}`);
  }
  return { text: spec, settings: settings as FaultSettings };
}

/**
 * Reads a list of specs, all or nothing.
 *
 * @throws {FaultSpecError} for the first spec that does not read.
 */
export function parseFaultSpecs(texts: readonly string[]): FaultSpec[] {
  return texts.map(parseFaultSpec);
}
