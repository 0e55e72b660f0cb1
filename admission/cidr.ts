/**
 * IPv4/IPv6 address and CIDR parsing, matching and per-client grouping keys.
 *
 * Pure functions only: no sockets, no I/O. Addresses are expected in the form
 * Deno puts in `Deno.NetAddr.hostname` (`127.0.0.1`, `::1`,
 * `::ffff:127.0.0.1`).
 *
 * @module
 */

/**
 * A parsed IP address in network byte order: 4 bytes for IPv4, 16 for IPv6.
 *
 * @example
 * ```ts no-assert
 * const ip: IpAddress = { v: 4, bytes: new Uint8Array([127, 0, 0, 1]) };
 * ```
 */
export type IpAddress =
  | { readonly v: 4; readonly bytes: Uint8Array }
  | { readonly v: 6; readonly bytes: Uint8Array };

/**
 * A parsed CIDR block. `bytes` is the network address with the host bits
 * already cleared, so matching only has to compare the first `prefix` bits.
 * Treat `bytes` as read-only.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * const lan: Cidr = parseCidr("192.168.0.0/16");
 * equal(lan.v, 4);
 * equal(lan.prefix, 16);
 * ```
 */
export interface Cidr {
  /** IP version of the block. */
  readonly v: 4 | 6;
  /** Network address (4 or 16 bytes), host bits zero. */
  readonly bytes: Uint8Array;
  /** Prefix length: 0-32 for IPv4, 0-128 for IPv6. */
  readonly prefix: number;
}

const DOT = 46;
const DIGIT_0 = 48;
const DIGIT_9 = 57;

/**
 * Parses dotted-quad IPv4 text in `text[start, end)` into `out[offset..offset+3]`.
 * Hand-rolled instead of a regex because it sits on the per-connection path.
 */
function parseIpv4Into(
  text: string,
  start: number,
  end: number,
  out: Uint8Array,
  offset: number,
): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    // Treat the end of input as a final dot so the last octet is stored by the same branch.
    const c = i === end ? DOT : text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || part > 3) return false;
      out[offset + part] = value;
      part++;
      value = 0;
      digits = 0;
    } else if (c >= DIGIT_0 && c <= DIGIT_9) {
      // Leading zeros are rejected: some parsers read them as octal, so "010" is ambiguous.
      if (digits > 0 && value === 0) return false;
      value = value * 10 + (c - DIGIT_0);
      if (value > 255) return false;
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

/** Parses one IPv6 group (1-4 hex digits); returns -1 when invalid. */
function parseHexGroup(group: string): number {
  if (group.length === 0 || group.length > 4) return -1;
  let value = 0;
  for (let i = 0; i < group.length; i++) {
    const c = group.charCodeAt(i);
    let digit: number;
    if (c >= DIGIT_0 && c <= DIGIT_9) digit = c - DIGIT_0;
    else if (c >= 97 && c <= 102) digit = c - 87; // a-f
    else if (c >= 65 && c <= 70) digit = c - 55; // A-F
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** Parses IPv6 text (no zone id) into 16 bytes, or null. */
function parseIpv6(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const lastColon = text.lastIndexOf(":");
  if (lastColon === -1) return null;

  let body = text;
  let groupCount = 8;
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) fills the last 32 bits, leaving 6 hex groups.
  if (text.indexOf(".", lastColon) !== -1) {
    if (!parseIpv4Into(text, lastColon + 1, text.length, out, 12)) return null;
    // Keep a `::` right before the IPv4 tail; drop a plain single separator colon.
    body = text.endsWith("::", lastColon + 1)
      ? text.slice(0, lastColon + 1)
      : text.slice(0, lastColon);
    groupCount = 6;
  }

  const halves = body.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  if (halves.length === 1) {
    if (head.length !== groupCount) return null;
  } else if (head.length + tail.length > groupCount - 1) {
    // `::` must stand for at least one zero group.
    return null;
  }

  for (let i = 0; i < head.length; i++) {
    if (!writeGroup(out, i, head[i])) return null;
  }
  // Groups after `::` are right-aligned; the gap between stays zero.
  const tailStart = groupCount - tail.length;
  for (let i = 0; i < tail.length; i++) {
    if (!writeGroup(out, tailStart + i, tail[i])) return null;
  }
  return out;
}

function writeGroup(out: Uint8Array, index: number, group: string): boolean {
  const value = parseHexGroup(group);
  if (value < 0) return false;
  out[index * 2] = value >> 8;
  out[index * 2 + 1] = value & 0xff;
  return true;
}

/**
 * Parses an IPv4 or IPv6 address. A trailing IPv6 zone id (`fe80::1%eth0`) is
 * ignored, since link-local peers can arrive with one. Returns null for
 * anything that is not an address (including IPv4 octets with leading zeros).
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * deepEqual(parseIp("10.0.0.1"), { v: 4, bytes: new Uint8Array([10, 0, 0, 1]) });
 * equal(parseIp("::1")?.bytes[15], 1);
 * equal(parseIp("nope"), null);
 * ```
 */
export function parseIp(address: string): IpAddress | null {
  if (address.indexOf(":") === -1) {
    const bytes = new Uint8Array(4);
    return parseIpv4Into(address, 0, address.length, bytes, 0) ? { v: 4, bytes } : null;
  }
  const zone = address.indexOf("%");
  if (zone === address.length - 1) return null;
  const bytes = parseIpv6(zone === -1 ? address : address.slice(0, zone));
  return bytes === null ? null : { v: 6, bytes };
}

/** True when the first `prefix` bits of `net` equal those of `bytes` starting at `offset`. */
function prefixMatches(
  net: Uint8Array,
  bytes: Uint8Array,
  offset: number,
  prefix: number,
): boolean {
  const whole = prefix >>> 3;
  for (let i = 0; i < whole; i++) {
    if (net[i] !== bytes[offset + i]) return false;
  }
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[offset + whole] & mask) === net[whole];
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) {
    if (bytes[i] !== 0) return false;
  }
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * True when `ip` lies inside `cidr`. IPv4-mapped IPv6 addresses
 * (`::ffff:10.0.0.1`) match IPv4 blocks, and plain IPv4 addresses match IPv6
 * blocks covering `::ffff:0:0/96`. Takes a parsed address so that a caller
 * checking several rules parses it once.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * const ip = parseIp("::ffff:10.1.2.3");
 * ok(ip !== null && cidrContainsIp(parseCidr("10.0.0.0/8"), ip));
 * ok(ip !== null && !cidrContainsIp(parseCidr("2001:db8::/32"), ip));
 * ```
 */
export function cidrContainsIp(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.v === ip.v) return prefixMatches(cidr.bytes, ip.bytes, 0, cidr.prefix);
  if (cidr.v === 4) {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; they must still hit IPv4 rules.
    return isV4Mapped(ip.bytes) && prefixMatches(cidr.bytes, ip.bytes, 12, cidr.prefix);
  }
  // Symmetric case: a plain IPv4 peer against an IPv6 rule such as ::ffff:0:0/96.
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(ip.bytes, 12);
  return prefixMatches(cidr.bytes, mapped, 0, cidr.prefix);
}

function invalidCidr(text: string, reason: string): RangeError {
  return new RangeError(`invalid CIDR ${JSON.stringify(text)}: ${reason}`);
}

/**
 * Parses `a.b.c.d/n` or an IPv6 block such as `2001:db8::/32`. A bare address
 * is a single-host block (/32 or /128). Surrounding whitespace is ignored so
 * comma-separated lists can be split naively. Host bits set below the prefix
 * (`10.0.0.1/8`) are cleared rather than rejected, as most firewalls do.
 *
 * @throws {RangeError} naming the input, e.g.
 *   `invalid CIDR "10.0.0.0/33": prefix length must be 0-32`.
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * deepEqual(parseCidr("10.1.2.3/8"), { v: 4, bytes: new Uint8Array([10, 0, 0, 0]), prefix: 8 });
 * equal(parseCidr("::1").prefix, 128);
 * ```
 */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  if (addressText === "") throw invalidCidr(text, "address is missing");
  if (addressText.includes("%")) {
    throw invalidCidr(text, "zone identifiers are not allowed");
  }
  const ip = parseIp(addressText);
  if (ip === null) {
    const kind = addressText.includes(":") ? "IPv6" : "IPv4";
    throw invalidCidr(text, `${JSON.stringify(addressText)} is not a valid ${kind} address`);
  }

  const maxPrefix = ip.v === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (slash !== -1) {
    const prefixText = trimmed.slice(slash + 1);
    prefix = /^(0|[1-9][0-9]{0,2})$/.test(prefixText) ? Number(prefixText) : -1;
    if (prefix < 0 || prefix > maxPrefix) {
      throw invalidCidr(text, `prefix length must be 0-${maxPrefix}`);
    }
  }

  const bytes = ip.bytes;
  for (let bit = prefix; bit < maxPrefix; bit++) {
    bytes[bit >>> 3] &= ~(0x80 >>> (bit & 7));
  }
  return { v: ip.v, bytes, prefix };
}

function formatIpv4(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * RFC 5952 text: lowercase, longest run (>= 2) of zero groups compressed,
 * leftmost on ties, so that every spelling of one /64 gives one key.
 */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups.slice(from, to).map((g) => g.toString(16)).join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * Writes a parsed address as text: dotted IPv4, RFC 5952 IPv6, and
 * IPv4-mapped IPv6 as `::ffff:a.b.c.d`, so that it reads as it is usually written.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * equal(formatIp({ v: 4, bytes: new Uint8Array([10, 0, 0, 1]) }), "10.0.0.1");
 * const mapped = parseIp("::ffff:10.0.0.1");
 * equal(mapped === null ? "" : formatIp(mapped), "::ffff:10.0.0.1");
 * ```
 */
export function formatIp(ip: IpAddress): string {
  if (ip.v === 4) return formatIpv4(ip.bytes, 0);
  return isV4Mapped(ip.bytes) ? `::ffff:${formatIpv4(ip.bytes, 12)}` : formatIpv6(ip.bytes);
}

/**
 * The key under which per-client limits are counted. IPv4 addresses are
 * their own key; IPv4-mapped IPv6 collapses to the plain IPv4 so dual-stack
 * and IPv4-only listeners agree; other IPv6 addresses are grouped by /64,
 * because one host usually owns a whole /64 and can rotate through it.
 * Input that does not parse is returned unchanged (still a stable key).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * equal(addressKey("10.0.0.1"), "10.0.0.1");
 * equal(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
 * equal(addressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
 * ```
 */
export function addressKey(address: string): string {
  // Fast path for the common case: Deno only reports well-formed IPv4 without a colon.
  if (address.indexOf(":") === -1) return address;
  const ip = parseIp(address);
  if (ip === null) return address;
  if (isV4Mapped(ip.bytes)) return formatIpv4(ip.bytes, 12);
  ip.bytes.fill(0, 8);
  return `${formatIpv6(ip.bytes)}/64`;
}
