/**
 * The load tester speaking as a proxy: each connection first sends a PROXY
 * protocol header whose client address is taken in turn from a range, so
 * that a server's per-address limits can be loaded from one machine.
 *
 * @module
 */
import { type Cidr, formatIp, parseCidr } from "../admission/cidr.ts";
import { encodeProxyHeader, type ProxyAddresses } from "../proxy/encode.ts";
import type { ProxyEndpoint } from "../proxy/header.ts";

/** The options of a run that concern the PROXY protocol. */
export interface ProxyBenchOptions {
  /** Send a PROXY protocol header of this version first on every connection. */
  proxy?: 1 | 2;
  /**
   * The client addresses the headers carry, in turn, from this CIDR block
   * (IPv6: one address per /64 while the block is wider than a /64, since
   * servers count IPv6 clients per /64). Without it, each header carries the
   * connection's own address.
   */
  proxySources?: string;
}

/**
 * Checks the PROXY options of a run, throwing a `RangeError` that names the
 * wrong one.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkProxyOptions } from "./proxy.ts";
 * checkProxyOptions({ proxy: 2, proxySources: "10.1.0.0/24" });
 * throws(() => checkProxyOptions({ proxySources: "10.1.0.0/24" }), RangeError);
 * ```
 */
export function checkProxyOptions(o: ProxyBenchOptions): void {
  if (o.proxy !== undefined && o.proxy !== 1 && o.proxy !== 2) {
    throw new RangeError(`proxy must be 1 or 2, got ${String(o.proxy)}`);
  }
  if (o.proxySources === undefined) return;
  if (o.proxy === undefined) throw new RangeError("proxySources needs proxy");
  parseCidr(o.proxySources);
}

/**
 * The headers of one run, a source address after the other.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ProxyHeaders } from "./proxy.ts";
 * const headers = new ProxyHeaders(1, "10.1.0.254/31");
 * const server = { address: "127.0.0.1", port: 7 };
 * const line = (n: number) => new TextDecoder().decode(headers.next(n, server));
 * equal(line(5), "PROXY TCP4 10.1.0.254 127.0.0.1 5 7\r\n");
 * equal(line(6), "PROXY TCP4 10.1.0.255 127.0.0.1 6 7\r\n");
 * equal(line(7), "PROXY TCP4 10.1.0.254 127.0.0.1 7 7\r\n");
 * ```
 */
export class ProxyHeaders {
  readonly #version: 1 | 2;
  readonly #range: Cidr | undefined;
  /** Where in the address a step of one lands: the last byte, or (IPv6) the last of the /64. */
  readonly #lastByte: number;
  /** Distinct sources in turn; at most 2^32, so that the arithmetic stays exact. */
  readonly #count: number;
  #next = 0;

  /** Headers of `version` with sources from `sources`, or the connection's own address. */
  constructor(version: 1 | 2, sources?: string) {
    this.#version = version;
    this.#range = sources === undefined ? undefined : parseCidr(sources);
    const range = this.#range;
    if (range === undefined) {
      this.#lastByte = 0;
      this.#count = 1;
      return;
    }
    const perSlash64 = range.v === 6 && range.prefix <= 64;
    this.#lastByte = range.v === 4 ? 3 : perSlash64 ? 7 : 15;
    const bits = (perSlash64 ? 64 : range.v === 4 ? 32 : 128) - range.prefix;
    this.#count = 2 ** Math.min(bits, 32);
  }

  /**
   * The header for the next connection, from `sourcePort` (its real one, for
   * the logs) to `server`; without a range, from `own` when that is an IP
   * address, else a v1 `UNKNOWN` / v2 `LOCAL` header.
   */
  next(sourcePort: number, server: ProxyEndpoint | undefined, own?: ProxyEndpoint): Uint8Array {
    const source = this.#range === undefined ? own : {
      address: this.#sourceAt(this.#next++ % this.#count, this.#range),
      port: sourcePort,
    };
    if (source === undefined) return encodeProxyHeader(this.#version);
    const unspecified = source.address.includes(":") ? "::" : "0.0.0.0";
    const addresses: ProxyAddresses = {
      source,
      destination: server ?? { address: unspecified, port: 0 },
    };
    return encodeProxyHeader(this.#version, addresses);
  }

  /**
   * Writes the next header on `conn`, first thing. On failure the
   * connection is closed and the error passed on.
   */
  async send(conn: Deno.Conn): Promise<void> {
    const header = this.next(
      portOf(conn.localAddr),
      endpointOf(conn.remoteAddr),
      endpointOf(conn.localAddr),
    );
    try {
      // The mode's first message must not wait behind the header for an ACK.
      (conn as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
      for (let at = 0; at < header.length;) at += await conn.write(header.subarray(at));
    } catch (error) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
      throw error;
    }
  }

  #sourceAt(offset: number, range: Cidr): string {
    const bytes = range.bytes.slice();
    let carry = offset;
    for (let i = this.#lastByte; i >= 0 && carry > 0; i--) {
      const sum = bytes[i] + (carry % 256);
      bytes[i] = sum & 0xff;
      carry = Math.floor(carry / 256) + (sum >> 8);
    }
    return formatIp(range.v === 4 ? { v: 4, bytes } : { v: 6, bytes });
  }
}

/**
 * The run's headers, or undefined when it sends none.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { proxyHeaders } from "./proxy.ts";
 * equal(proxyHeaders({}), undefined);
 * ```
 */
export function proxyHeaders(o: ProxyBenchOptions): ProxyHeaders | undefined {
  return o.proxy === undefined ? undefined : new ProxyHeaders(o.proxy, o.proxySources);
}

function endpointOf(addr: Deno.Addr): ProxyEndpoint | undefined {
  return addr.transport === "tcp" ? { address: addr.hostname, port: addr.port } : undefined;
}

function portOf(addr: Deno.Addr): number {
  return addr.transport === "tcp" ? addr.port : 0;
}
