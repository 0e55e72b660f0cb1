/**
 * The PROXY protocol header (HAProxy's specification, versions 1 and 2) as a
 * pure, incremental parser: give it the bytes received so far and it says
 * whether they are a whole header, the start of one, or not one at all.
 * No sockets and no timers here; `proxy/listener.ts` does the reading.
 *
 * @module
 */
import { formatIp, type IpAddress, parseIp } from "../admission/cidr.ts";

/** One end of the proxied connection, as the header carries it. */
export interface ProxyEndpoint {
  /** The IP address: dotted IPv4, or IPv6 as `2001:db8::1`. */
  readonly address: string;
  /** The TCP port, 0 to 65535. */
  readonly port: number;
}

/**
 * What {@linkcode parseProxyHeader} found.
 *
 * - `need-more`: the bytes are a valid start of a header; read more.
 * - `done`: a whole header of `consumed` bytes; any bytes after it are the
 *   client's. `source` and `destination` are there when the header carries
 *   TCP addresses; they are missing for v1 `UNKNOWN`, v2 `LOCAL` (a health
 *   check from the proxy itself), v2 `UNSPEC` and v2 Unix socket addresses,
 *   where the connection's own peer stands.
 * - `invalid`: not a header, or a malformed one; `reason` says what is wrong.
 */
export type ProxyParse =
  | { readonly kind: "need-more" }
  | {
    readonly kind: "done";
    readonly version: 1 | 2;
    readonly consumed: number;
    readonly source?: ProxyEndpoint;
    readonly destination?: ProxyEndpoint;
  }
  | { readonly kind: "invalid"; readonly reason: string };

/** A v1 header is one line of at most this many bytes, CRLF included. */
export const V1_MAX_BYTES = 107;

/**
 * The most address and TLV bytes a v2 header may announce. The format allows
 * 65,535; real proxies send a few dozen (AWS, Azure and GCP add one short
 * TLV), and a cap keeps a hostile sender from holding a large buffer.
 */
export const V2_MAX_PAYLOAD = 4096;

/** The 12 bytes every v2 header starts with: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE: Uint8Array = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);

/** v2's fixed part: the signature, version and command, family and protocol, length. */
export const V2_FIXED_BYTES = 16;

/** The most bytes a header can take, so that a reader knows how much to buffer. */
export const PROXY_HEADER_MAX_BYTES: number = V2_FIXED_BYTES + V2_MAX_PAYLOAD;

const V1_PREFIX = new TextEncoder().encode("PROXY ");
const CR = 0x0d;
const LF = 0x0a;
const NEED_MORE: ProxyParse = Object.freeze({ kind: "need-more" });

/** Address bytes each v2 family needs: UNSPEC, INET, INET6, UNIX. */
const V2_ADDRESS_BYTES = [0, 12, 36, 216] as const;

/**
 * Parses the PROXY header at the start of `bytes`, version 1 or 2, strictly:
 * v1 must be `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` with single spaces,
 * addresses of the named family, ports 0–65535 without leading zeros, within
 * 107 bytes (or `PROXY UNKNOWN…\r\n`); v2 must have the signature, version 2,
 * the command LOCAL or PROXY, a known family and protocol (TCP for IPv4 and
 * IPv6) and a length that holds the family's addresses and is at most
 * {@linkcode V2_MAX_PAYLOAD}. v2's TLVs are skipped. A prefix of a valid
 * header gives `need-more`; anything that can no longer become one gives
 * `invalid` as soon as the first wrong byte is seen.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { parseProxyHeader } from "./header.ts";
 * const bytes = new TextEncoder().encode("PROXY TCP4 203.0.113.7 10.0.0.1 40000 7\r\nhi");
 * deepEqual(parseProxyHeader(bytes), {
 *   kind: "done",
 *   version: 1,
 *   consumed: 41,
 *   source: { address: "203.0.113.7", port: 40000 },
 *   destination: { address: "10.0.0.1", port: 7 },
 * });
 * deepEqual(parseProxyHeader(bytes.subarray(0, 20)), { kind: "need-more" });
 * ```
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  if (bytes.length === 0) return NEED_MORE;
  if (bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  return invalid("not a PROXY protocol header");
}

function invalid(reason: string): ProxyParse {
  return { kind: "invalid", reason };
}

/** True when the bytes available agree with `expected` as far as both go. */
function startsLike(bytes: Uint8Array, expected: Uint8Array): boolean {
  const n = Math.min(bytes.length, expected.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== expected[i]) return false;
  return true;
}

function parseV1(bytes: Uint8Array): ProxyParse {
  if (!startsLike(bytes, V1_PREFIX)) return invalid("not a PROXY protocol header");
  // The CR may sit at most at index 105, so that CRLF ends within 107 bytes.
  const lastCr = V1_MAX_BYTES - 2;
  let end = -1;
  for (let i = V1_PREFIX.length; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === CR) {
      if (i + 1 === bytes.length) return NEED_MORE;
      if (bytes[i + 1] !== LF) return invalid("v1 header: carriage return without line feed");
      end = i;
      break;
    }
    if (b === LF) return invalid("v1 header: line feed without carriage return");
    if (b < 0x20 || b > 0x7e) return invalid("v1 header: a byte that is not printable text");
    if (i >= lastCr) return invalid(`v1 header: longer than ${V1_MAX_BYTES} bytes`);
  }
  if (end === -1) return NEED_MORE;
  const consumed = end + 2;
  // Only printable ASCII got this far, so a byte is a character.
  const fields = String.fromCharCode(...bytes.subarray(V1_PREFIX.length, end)).split(" ");
  const protocol = fields[0];
  // UNKNOWN: the proxy could not tell; the rest of the line is to be ignored.
  if (protocol === "UNKNOWN") return { kind: "done", version: 1, consumed };
  if (protocol !== "TCP4" && protocol !== "TCP6") {
    return invalid(`v1 header: unknown protocol ${JSON.stringify(protocol)}`);
  }
  if (fields.length !== 5 || fields.includes("")) {
    return invalid(
      "v1 header: expected PROTOCOL SOURCE DESTINATION SOURCE-PORT DESTINATION-PORT, one space apart",
    );
  }
  const v = protocol === "TCP4" ? 4 : 6;
  const source = v1Address(fields[1], v);
  const destination = v1Address(fields[2], v);
  if (source === null || destination === null) {
    const bad = source === null ? fields[1] : fields[2];
    return invalid(`v1 header: ${JSON.stringify(bad)} is not an IPv${v} address`);
  }
  const sourcePort = v1Port(fields[3]);
  const destinationPort = v1Port(fields[4]);
  if (sourcePort === null || destinationPort === null) {
    const bad = sourcePort === null ? fields[3] : fields[4];
    return invalid(`v1 header: ${JSON.stringify(bad)} is not a port from 0 to 65535`);
  }
  return {
    kind: "done",
    version: 1,
    consumed,
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
  };
}

/** The address in its usual spelling, or null when it is not one of IP version `v`. */
function v1Address(text: string, v: 4 | 6): string | null {
  // A zone id names an interface of the proxy's host, which means nothing here.
  if (text.includes("%")) return null;
  const ip = parseIp(text);
  return ip === null || ip.v !== v ? null : formatIp(ip);
}

function v1Port(text: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

function parseV2(bytes: Uint8Array): ProxyParse {
  if (!startsLike(bytes, V2_SIGNATURE)) return invalid("not a PROXY protocol header");
  if (bytes.length < V2_FIXED_BYTES - 3) return NEED_MORE;
  const versionCommand = bytes[12];
  if (versionCommand >> 4 !== 2) {
    return invalid(`v2 header: unsupported version ${versionCommand >> 4}`);
  }
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`v2 header: unknown command ${command}`);
  const local = command === 0;
  if (bytes.length < V2_FIXED_BYTES - 2) return NEED_MORE;
  const family = bytes[13] >> 4;
  const protocol = bytes[13] & 0x0f;
  // LOCAL: the receiver is to discard the address block whatever its family says.
  if (!local) {
    if (family > 3) return invalid(`v2 header: unknown address family ${family}`);
    if (protocol > 2) return invalid(`v2 header: unknown transport protocol ${protocol}`);
    if ((family === 1 || family === 2) && protocol !== 1) {
      return invalid("v2 header: an IP address family over a protocol other than TCP");
    }
  }
  if (bytes.length < V2_FIXED_BYTES) return NEED_MORE;
  const length = (bytes[14] << 8) | bytes[15];
  if (length > V2_MAX_PAYLOAD) {
    return invalid(`v2 header: ${length} bytes of addresses and TLVs, more than ${V2_MAX_PAYLOAD}`);
  }
  if (!local && length < V2_ADDRESS_BYTES[family]) {
    return invalid(`v2 header: length ${length} is too short for its addresses`);
  }
  const consumed = V2_FIXED_BYTES + length;
  if (bytes.length < consumed) return NEED_MORE;
  // UNSPEC and Unix socket addresses leave the connection's own peer standing.
  if (local || (family !== 1 && family !== 2)) return { kind: "done", version: 2, consumed };
  const size = family === 1 ? 4 : 16;
  const at = V2_FIXED_BYTES;
  const ports = at + 2 * size;
  return {
    kind: "done",
    version: 2,
    consumed,
    source: { address: v2Address(bytes, at, size), port: (bytes[ports] << 8) | bytes[ports + 1] },
    destination: {
      address: v2Address(bytes, at + size, size),
      port: (bytes[ports + 2] << 8) | bytes[ports + 3],
    },
  };
}

function v2Address(bytes: Uint8Array, at: number, size: 4 | 16): string {
  const ip: IpAddress = size === 4
    ? { v: 4, bytes: bytes.slice(at, at + 4) }
    : { v: 6, bytes: bytes.slice(at, at + 16) };
  return formatIp(ip);
}
