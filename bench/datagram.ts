/**
 * What a UDP bench datagram carries: the socket (flow) that sent it and its
 * sequence number, then pattern bytes that depend on both, so that a lost,
 * repeated, reordered, misdelivered or altered datagram is told apart.
 *
 * @module
 */
import { type Pattern, PERIOD } from "./pattern.ts";

/** Bytes of the header: flow (u32) and sequence number (u32), big-endian. */
export const DATAGRAM_HEADER = 8;
/** The largest UDP payload over IPv4 (65,535 − 8 − 20). */
export const DATAGRAM_MAX = 65_507;

/**
 * Where in the pattern the body of datagram `seq` of `flow` starts: spread
 * over the period, so that neighbours and flows differ.
 *
 * @example
 * ```ts
 * import { notEqual } from "node:assert/strict";
 * import { bodyOffset } from "./datagram.ts";
 * notEqual(bodyOffset(0, 1), bodyOffset(0, 2));
 * notEqual(bodyOffset(1, 1), bodyOffset(2, 1));
 * ```
 */
export function bodyOffset(flow: number, seq: number): number {
  // 1031 and 7919 are primes: the offsets spread over the whole period.
  return (seq % PERIOD * 1031 + flow % PERIOD * 7919) % PERIOD;
}

/**
 * Writes datagram `seq` of `flow` into `out` (its whole length is the
 * datagram, at least {@linkcode DATAGRAM_HEADER} bytes).
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { readHeader, writeDatagram } from "./datagram.ts";
 * import { Pattern } from "./pattern.ts";
 * const out = new Uint8Array(64);
 * writeDatagram(out, new Pattern(64), 3, 41);
 * deepEqual(readHeader(out), { flow: 3, seq: 41 });
 * ```
 */
export function writeDatagram(out: Uint8Array, pattern: Pattern, flow: number, seq: number): void {
  const view = new DataView(out.buffer, out.byteOffset, DATAGRAM_HEADER);
  view.setUint32(0, flow);
  view.setUint32(4, seq);
  const at = bodyOffset(flow, seq);
  out.set(pattern.bytes.subarray(at, at + out.length - DATAGRAM_HEADER), DATAGRAM_HEADER);
}

/**
 * The flow and sequence number a datagram claims, or null when it is too
 * short to carry them.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { readHeader } from "./datagram.ts";
 * equal(readHeader(new Uint8Array(3)), null);
 * ```
 */
export function readHeader(data: Uint8Array): { flow: number; seq: number } | null {
  if (data.length < DATAGRAM_HEADER) return null;
  const view = new DataView(data.buffer, data.byteOffset, DATAGRAM_HEADER);
  return { flow: view.getUint32(0), seq: view.getUint32(4) };
}

/**
 * How an echoed datagram compares with datagram `seq` of `flow` of `size`
 * bytes: `echoed` when it is the same, `short` when it is a true prefix
 * (truncated on the way), `corrupted` otherwise.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { checkBody, writeDatagram } from "./datagram.ts";
 * import { Pattern } from "./pattern.ts";
 * const pattern = new Pattern(100);
 * const sent = new Uint8Array(100);
 * writeDatagram(sent, pattern, 0, 7);
 * equal(checkBody(sent, pattern, 0, 7, 100), "echoed");
 * equal(checkBody(sent.subarray(0, 50), pattern, 0, 7, 100), "short");
 * sent[60] ^= 1;
 * equal(checkBody(sent, pattern, 0, 7, 100), "corrupted");
 * ```
 */
export function checkBody(
  data: Uint8Array,
  pattern: Pattern,
  flow: number,
  seq: number,
  size: number,
): "echoed" | "short" | "corrupted" {
  if (data.length > size) return "corrupted";
  const body = data.length - DATAGRAM_HEADER;
  const same = body <= 0 ||
    pattern.matches(data.subarray(DATAGRAM_HEADER), body, bodyOffset(flow, seq));
  if (!same) return "corrupted";
  return data.length === size ? "echoed" : "short";
}

/** Datagrams a UDP socket may keep in flight at most (`window`). */
export const WINDOW_MAX = 10_000;

/**
 * Checks the UDP options of a bench run, throwing a `RangeError` that names
 * the first one out of bounds.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkUdpOptions } from "./datagram.ts";
 * throws(() => checkUdpOptions({ udp: true, size: 4, mode: "pingpong" }), {
 *   message: "size must be an integer from 8 to 65507 with udp, got 4",
 * });
 * ```
 */
export function checkUdpOptions(
  o: { udp?: boolean; window?: number; size: number; mode: string },
): void {
  if (!o.udp) {
    if (o.window !== undefined) throw new RangeError("window applies to udp only");
    return;
  }
  if (o.mode !== "pingpong") throw new RangeError(`udp runs pingpong only, not ${o.mode}`);
  if (!Number.isInteger(o.size) || o.size < DATAGRAM_HEADER || o.size > DATAGRAM_MAX) {
    throw new RangeError(
      `size must be an integer from ${DATAGRAM_HEADER} to ${DATAGRAM_MAX} with udp, got ${o.size}`,
    );
  }
  const window = o.window ?? 1;
  if (!Number.isInteger(window) || window < 1 || window > WINDOW_MAX) {
    throw new RangeError(`window must be an integer from 1 to ${WINDOW_MAX}, got ${window}`);
  }
}
