/**
 * Socket addresses as libc takes and gives them (`sockaddr_in`,
 * `sockaddr_in6`), to and from the hostname and port the rest of the server
 * speaks in. Pure byte layout; the byte order of `sin_family` is the host's
 * (little-endian on every machine Deno runs on), ports are big-endian.
 *
 * @module
 */
import { formatIp, parseIp } from "../admission/cidr.ts";
import { C } from "./libc.ts";

/** Bytes enough for either kind of address (`sizeof(struct sockaddr_in6)`). */
export const SOCKADDR_BYTES = 28;

/** An IP address and port, as Deno names them. */
export interface IpPort {
  /** `127.0.0.1`, `::1`, `::ffff:10.0.0.7`. */
  readonly hostname: string;
  /** The port. */
  readonly port: number;
}

/**
 * Lays out `hostname` and `port` as a socket address; `undefined` when the
 * hostname is not an IP address (`localhost` is taken as 127.0.0.1, as the
 * resolver usually does).
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { encodeSockaddr } from "./sockaddr.ts";
 * deepEqual([...(encodeSockaddr("127.0.0.1", 8000) ?? []).slice(0, 8)], [2, 0, 31, 64, 127, 0, 0, 1]);
 * equal(encodeSockaddr("::", 80)?.length, 28);
 * equal(encodeSockaddr("example.com", 80), undefined);
 * ```
 */
export function encodeSockaddr(hostname: string, port: number): Uint8Array | undefined {
  const ip = parseIp(hostname === "localhost" ? "127.0.0.1" : hostname);
  if (ip === null) return undefined;
  const bytes = new Uint8Array(ip.v === 4 ? 16 : 28);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, ip.v === 4 ? C.AF_INET : C.AF_INET6, true);
  view.setUint16(2, port, false);
  bytes.set(ip.bytes, ip.v === 4 ? 4 : 8);
  return bytes;
}

/**
 * Reads a socket address that libc filled in (by `accept4` or
 * `getsockname`); `undefined` for a family other than IPv4 and IPv6.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { decodeSockaddr, encodeSockaddr } from "./sockaddr.ts";
 * const bytes = encodeSockaddr("::ffff:10.0.0.7", 52100) ?? new Uint8Array();
 * deepEqual(decodeSockaddr(bytes), { hostname: "::ffff:10.0.0.7", port: 52100 });
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): IpPort | undefined {
  const family = bytes[0] | (bytes[1] << 8);
  const port = (bytes[2] << 8) | bytes[3];
  if (family === C.AF_INET) return { hostname: ipv4Text(bytes), port };
  if (family === C.AF_INET6) {
    return { hostname: formatIp({ v: 6, bytes: bytes.slice(8, 24) }), port };
  }
  return undefined;
}

/** The text of the IPv4 address decoded last, kept for the next connection from the same client. */
let lastIpv4 = { value: -1, text: "" };

/**
 * The IPv4 address at bytes 4-7, as text. Clients usually come back from one
 * address: they then share one string, instead of each connection keeping
 * the pieces a template literal leaves (a string per number and per join).
 */
function ipv4Text(bytes: Uint8Array): string {
  const value = ((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0;
  if (value !== lastIpv4.value) {
    lastIpv4 = { value, text: [bytes[4], bytes[5], bytes[6], bytes[7]].join(".") };
  }
  return lastIpv4.text;
}
