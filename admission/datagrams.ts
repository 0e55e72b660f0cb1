/**
 * Which UDP datagrams an echo server may answer. UDP echo (RFC 862) is a
 * classic reflection vector: the source of a datagram is not proven, so an
 * attacker can make an echo server send its replies to a victim, or to
 * another UDP service that answers again, which is how two echo services
 * end up bouncing one datagram between them for ever. So a reply goes out
 * only to a source that is not a well-known service port, that the allow and
 * deny rules admit, and that has a token left in its reply bucket.
 *
 * Pure decisions: no sockets, no I/O.
 *
 * @module
 */
import { TokenBuckets } from "./buckets.ts";
import { addressKey } from "./cidr.ts";
import type { Guard } from "./guard.ts";
import { checkPositiveInteger, checkRate, type RateLimit } from "./limits.ts";

/**
 * Source ports that are never answered: UDP services that reply to what
 * they receive (an echo to them starts a loop) and the usual amplifiers of
 * reflection attacks, whose port a spoofed request carries. 0 is no valid
 * source at all.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { SERVICE_PORTS } from "./datagrams.ts";
 * ok(SERVICE_PORTS.includes(7) && SERVICE_PORTS.includes(53) && SERVICE_PORTS.includes(11211));
 * ```
 */
export const SERVICE_PORTS: readonly number[] = Object.freeze([
  0, // no valid source
  7, // echo: two echo services would answer each other for ever
  9, // discard
  11, // systat
  13, // daytime
  17, // qotd
  19, // chargen
  37, // time
  53, // DNS
  69, // TFTP
  111, // portmap / rpcbind
  123, // NTP
  137, // NetBIOS name service
  138, // NetBIOS datagram service
  161, // SNMP
  162, // SNMP trap
  389, // CLDAP
  427, // SLP
  520, // RIP
  1900, // SSDP
  3283, // Apple Remote Desktop
  3702, // WS-Discovery
  5353, // mDNS
  5683, // CoAP
  10001, // Ubiquiti discovery
  11211, // memcached
]);

const SERVICE_PORT_SET: ReadonlySet<number> = new Set(SERVICE_PORTS);

/**
 * Why a datagram got no reply: its source port is a service port (or the
 * server's own), the allow/deny rules refuse its address, or its address ran
 * out of reply tokens.
 *
 * @example
 * ```ts
 * const reason: DatagramDrop = "service-port";
 * ```
 */
export type DatagramDrop = "service-port" | "denied" | "rate";

/**
 * Every {@link DatagramDrop}, in the order they are checked.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { DATAGRAM_DROPS } from "./datagrams.ts";
 * equal(DATAGRAM_DROPS.join(), "service-port,denied,rate");
 * ```
 */
export const DATAGRAM_DROPS: readonly DatagramDrop[] = Object.freeze([
  "service-port",
  "denied",
  "rate",
]);

/**
 * What a {@link DatagramPolicy} uses for the options left out; the command
 * line shows and uses the same. A thousand replies a second per source
 * address is far more than any client checking a path needs, and far less
 * than a reflection flood.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { DATAGRAM_DEFAULTS } from "./datagrams.ts";
 * equal(DATAGRAM_DEFAULTS.rate, 1_000);
 * ```
 */
export const DATAGRAM_DEFAULTS = {
  /** Replies per second per source address. */
  rate: 1_000,
  /** Replies a source address may get back to back. */
  burst: 1_000,
  /** Source addresses with a reply bucket at most. */
  maxSources: 100_000,
} as const;

/** Options for a {@link DatagramPolicy}. Every field is optional. */
export interface DatagramPolicyOptions {
  /**
   * Replies per second per source address (IPv6: per /64), a positive
   * finite number. @default {1000}
   */
  rate?: number;
  /** Replies a source address may get back to back, a positive integer. @default {1000} */
  burst?: number;
  /**
   * Most source addresses with a reply bucket at once (a positive integer);
   * beyond it the one seen longest ago is forgotten. @default {100000}
   */
  maxSources?: number;
  /** Whose `--allow`/`--deny` rules apply (its counts are not touched). @default {no rules} */
  guard?: Guard;
  /** The server's own port: a datagram from it is never answered either. */
  ownPort?: number;
  /** Monotonic clock in milliseconds. @default {performance.now} */
  now?: () => number;
}

/**
 * Decides, datagram by datagram, whether the echo server may answer. The
 * checks run in the order of {@link DATAGRAM_DROPS}, and the first that
 * fails names the drop: a service port first (it costs nothing and is never
 * worth a token), then allow/deny, then the source's reply bucket, which only
 * datagrams that would be answered spend.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { DatagramPolicy } from "./datagrams.ts";
 * const policy = new DatagramPolicy({ rate: 1, burst: 2, now: () => 0 });
 * const from = (hostname: string, port: number) => policy.check(hostname, port);
 * deepEqual(
 *   [from("10.0.0.1", 40000), from("10.0.0.1", 40001), from("10.0.0.1", 40002), from("10.0.0.1", 53)],
 *   ["ok", "ok", "rate", "service-port"],
 * );
 * deepEqual(from("10.0.0.2", 40000), "ok"); // its own bucket
 * ```
 */
export class DatagramPolicy {
  /** The reply limit per source address. */
  readonly limit: RateLimit;
  readonly #buckets: TokenBuckets;
  readonly #guard: Guard | undefined;
  readonly #ownPort: number | undefined;
  readonly #now: () => number;

  /**
   * A policy with the given limits.
   *
   * @throws {LimitError} (a RangeError) naming `rate`, `burst` or `maxSources`
   *   and the value, e.g. `invalid rate 0: must be a positive finite number`.
   *
   * @example
   * ```ts
   * import { throws } from "node:assert/strict";
   * import { DatagramPolicy } from "./datagrams.ts";
   * throws(() => new DatagramPolicy({ rate: -1 }), {
   *   message: "invalid rate -1: must be a positive finite number",
   * });
   * ```
   */
  constructor(options: DatagramPolicyOptions = {}) {
    const limit = checkRate(
      options.rate ?? DATAGRAM_DEFAULTS.rate,
      options.burst ?? (options.rate === undefined ? DATAGRAM_DEFAULTS.burst : undefined),
    );
    // checkRate returns undefined only for an undefined rate, which the default rules out.
    this.limit = limit ?? { rate: DATAGRAM_DEFAULTS.rate, burst: DATAGRAM_DEFAULTS.burst };
    const maxSources = checkPositiveInteger(
      "maxSources",
      options.maxSources,
      DATAGRAM_DEFAULTS.maxSources,
    );
    this.#buckets = new TokenBuckets(maxSources);
    this.#guard = options.guard;
    this.#ownPort = options.ownPort;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Whether a datagram from `hostname`:`port` may be answered: `ok`, or why
   * not. An `ok` spends one of the source's reply tokens.
   *
   * @example
   * ```ts
   * import { equal } from "node:assert/strict";
   * import { DatagramPolicy } from "./datagrams.ts";
   * import { Guard } from "./guard.ts";
   * import { parseCidr } from "./cidr.ts";
   * const policy = new DatagramPolicy({ guard: new Guard({ deny: [parseCidr("192.0.2.0/24")] }) });
   * equal(policy.check("192.0.2.9", 40000), "denied");
   * equal(policy.check("198.51.100.1", 40000), "ok");
   * ```
   */
  check(hostname: string, port: number): DatagramDrop | "ok" {
    if (isServicePort(port) || port === this.#ownPort) return "service-port";
    if (this.#guard?.denies(hostname)) return "denied";
    if (!this.#buckets.take(addressKey(hostname), this.limit, this.#now())) return "rate";
    return "ok";
  }
}

/**
 * True for a source port that is never answered: see {@link SERVICE_PORTS}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isServicePort } from "./datagrams.ts";
 * equal(isServicePort(123), true);
 * equal(isServicePort(40000), false);
 * ```
 */
export function isServicePort(port: number): boolean {
  return SERVICE_PORT_SET.has(port);
}
