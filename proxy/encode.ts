/**
 * PROXY protocol headers, version 1 and 2, written the way HAProxy's
 * `send-proxy` and `send-proxy-v2` write them: for the load tester, which
 * speaks as a proxy, and for the tests.
 *
 * @module
 */
import { formatIp, type IpAddress, parseIp } from "../admission/cidr.ts";
import { type ProxyEndpoint, V2_FIXED_BYTES, V2_MAX_PAYLOAD, V2_SIGNATURE } from "./header.ts";

/** The two ends of the proxied connection: the client, and where it connected to. */
export interface ProxyAddresses {
  /** The client's address and port. */
  readonly source: ProxyEndpoint;
  /** The address and port the client connected to. */
  readonly destination: ProxyEndpoint;
}

/** Options for {@linkcode encodeProxyV2}. */
export interface ProxyV2Options {
  /** TLVs, already encoded, appended after the addresses. */
  readonly tlvs?: Uint8Array;
}

/** Both addresses of one IP version: IPv4 if both are IPv4, else IPv6 with IPv4 mapped. */
function endpoints(
  addresses: ProxyAddresses,
): { v: 4 | 6; source: IpAddress; destination: IpAddress } {
  const source = checkedIp(addresses.source);
  const destination = checkedIp(addresses.destination);
  if (source.v === destination.v) return { v: source.v, source, destination };
  return { v: 6, source: toV6(source), destination: toV6(destination) };
}

function checkedIp(endpoint: ProxyEndpoint): IpAddress {
  const ip = endpoint.address.includes("%") ? null : parseIp(endpoint.address);
  if (ip === null) {
    throw new RangeError(`invalid PROXY address ${JSON.stringify(endpoint.address)}`);
  }
  if (!Number.isInteger(endpoint.port) || endpoint.port < 0 || endpoint.port > 65535) {
    throw new RangeError(`invalid PROXY port ${endpoint.port}: expected 0 to 65535`);
  }
  return ip;
}

function toV6(ip: IpAddress): IpAddress {
  if (ip.v === 6) return ip;
  const bytes = new Uint8Array(16);
  bytes[10] = bytes[11] = 0xff;
  bytes.set(ip.bytes, 12);
  return { v: 6, bytes };
}

/**
 * A v1 header: `PROXY TCP4 SRC DST SPORT DPORT\r\n` (`TCP6` when either
 * address is IPv6, with IPv4 mapped), or `PROXY UNKNOWN\r\n` without addresses.
 *
 * @throws {RangeError} for an address that is not an IP address or a port out of range.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { encodeProxyV1 } from "./encode.ts";
 * const header = encodeProxyV1({
 *   source: { address: "203.0.113.7", port: 40000 },
 *   destination: { address: "127.0.0.1", port: 7 },
 * });
 * equal(new TextDecoder().decode(header), "PROXY TCP4 203.0.113.7 127.0.0.1 40000 7\r\n");
 * equal(new TextDecoder().decode(encodeProxyV1()), "PROXY UNKNOWN\r\n");
 * ```
 */
export function encodeProxyV1(addresses?: ProxyAddresses): Uint8Array {
  if (addresses === undefined) return new TextEncoder().encode("PROXY UNKNOWN\r\n");
  const { v, source, destination } = endpoints(addresses);
  return new TextEncoder().encode(
    `PROXY TCP${v} ${formatIp(source)} ${
      formatIp(destination)
    } ${addresses.source.port} ${addresses.destination.port}\r\n`,
  );
}

/**
 * A v2 header: the command PROXY over TCP with IPv4 addresses (or IPv6 when
 * either is IPv6, with IPv4 mapped), or, without addresses, the command LOCAL
 * that a proxy's health check sends.
 *
 * @throws {RangeError} for an address that is not an IP address, a port out
 *   of range, or TLVs that make the header longer than the parser accepts.
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { encodeProxyV2 } from "./encode.ts";
 * const header = encodeProxyV2({
 *   source: { address: "203.0.113.7", port: 40000 },
 *   destination: { address: "127.0.0.1", port: 7 },
 * });
 * equal(header.length, 16 + 12);
 * deepEqual([...header.subarray(12, 16)], [0x21, 0x11, 0, 12]);
 * deepEqual([...encodeProxyV2().subarray(12)], [0x20, 0x00, 0, 0]);
 * ```
 */
export function encodeProxyV2(
  addresses?: ProxyAddresses,
  options: ProxyV2Options = {},
): Uint8Array {
  const tlvs = options.tlvs ?? new Uint8Array(0);
  if (addresses === undefined) return v2(0x20, 0x00, new Uint8Array(0), tlvs);
  const { v, source, destination } = endpoints(addresses);
  const size = v === 4 ? 4 : 16;
  const block = new Uint8Array(2 * size + 4);
  block.set(source.bytes, 0);
  block.set(destination.bytes, size);
  const ports = new DataView(block.buffer, 2 * size);
  ports.setUint16(0, addresses.source.port);
  ports.setUint16(2, addresses.destination.port);
  // 0x11: AF_INET over STREAM; 0x21: AF_INET6 over STREAM.
  return v2(0x21, v === 4 ? 0x11 : 0x21, block, tlvs);
}

function v2(command: number, family: number, block: Uint8Array, tlvs: Uint8Array): Uint8Array {
  const length = block.length + tlvs.length;
  if (length > V2_MAX_PAYLOAD) {
    throw new RangeError(`PROXY v2 header too long: ${length} bytes after the fixed part`);
  }
  const header = new Uint8Array(V2_FIXED_BYTES + length);
  header.set(V2_SIGNATURE, 0);
  header[12] = command;
  header[13] = family;
  header[14] = length >> 8;
  header[15] = length & 0xff;
  header.set(block, V2_FIXED_BYTES);
  header.set(tlvs, V2_FIXED_BYTES + block.length);
  return header;
}

/**
 * A header of either version; see {@linkcode encodeProxyV1} and
 * {@linkcode encodeProxyV2}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { encodeProxyHeader } from "./encode.ts";
 * equal(encodeProxyHeader(1)[0], "P".charCodeAt(0));
 * equal(encodeProxyHeader(2)[12], 0x20);
 * ```
 */
export function encodeProxyHeader(version: 1 | 2, addresses?: ProxyAddresses): Uint8Array {
  return version === 1 ? encodeProxyV1(addresses) : encodeProxyV2(addresses);
}
