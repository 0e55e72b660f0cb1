/**
 * UDP echo, the other half of RFC 862: one socket, one loop that receives a
 * datagram, asks the {@linkcode DatagramPolicy} whether it may be answered,
 * and sends it back unchanged. Datagrams are not streams, so they do not go
 * through the acceptor and the echo handler; they share the server's
 * allow/deny rules instead, and have a reply rate limit of their own.
 *
 * One loop on purpose: two receives pending on one socket may complete out of
 * order, and an echo server should not reorder what one source sends.
 *
 * @module
 */
import {
  DATAGRAM_DROPS,
  type DatagramDrop,
  DatagramPolicy,
  type DatagramPolicyOptions,
} from "../admission/datagrams.ts";
import { addressKey } from "../admission/cidr.ts";
import { logger } from "../log/log.ts";
import { LogThrottle } from "../log/throttle.ts";
import { describeError, formatAddress } from "../text/address.ts";
import { grouped, plural } from "../text/words.ts";
import { hasUnstableNet, UNSTABLE_NET_OFF } from "../text/unstable.ts";
import type { Guard } from "../admission/guard.ts";
import { describeAddr, ListenError } from "./contract.ts";
import { sleepUnless } from "./wait.ts";

/** The largest UDP payload over IPv4 (65,535 − 8 − 20); IPv6 allows 20 bytes more. */
export const MAX_DATAGRAM = 65_507;
/** Room for the largest datagram either IP version carries without jumbograms. */
const RECEIVE_BUFFER = 65_536;
/** Back-off after a failed receive, doubling up to the maximum, so a broken socket never spins. */
const BACKOFF_MIN_MS = 5;
const BACKOFF_MAX_MS = 1_000;

/**
 * How a server echoes UDP datagrams: the reply limit per source address.
 * Plain data, so that it can be posted to a worker.
 */
export type UdpOptions = Pick<DatagramPolicyOptions, "rate" | "burst" | "maxSources">;

/** A server's datagram counters. */
export interface DatagramStats {
  /** Datagrams received. */
  received: number;
  /** Datagrams sent back. */
  echoed: number;
  /** Payload bytes sent back. */
  bytesEchoed: number;
  /** Datagrams not answered, by reason. */
  dropped: Readonly<Record<DatagramDrop, number>>;
  /** Replies the system refused to send (e.g. no route back). */
  failed: number;
}

/**
 * Zeroed datagram counters.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noDatagrams } from "./udp.ts";
 * equal(noDatagrams().dropped.rate, 0);
 * ```
 */
export function noDatagrams(): DatagramStats {
  return {
    received: 0,
    echoed: 0,
    bytesEchoed: 0,
    dropped: { "service-port": 0, denied: 0, rate: 0 },
    failed: 0,
  };
}

/**
 * The datagram part of a server's summary line: `datagrams: 5 echoed (320
 * bytes), 2 dropped (service-port 1, rate 1)`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { datagramSummary, noDatagrams } from "./udp.ts";
 * const stats = { ...noDatagrams(), received: 3, echoed: 2, bytesEchoed: 64 };
 * equal(
 *   datagramSummary({ ...stats, dropped: { ...stats.dropped, rate: 1 } }),
 *   "datagrams: 2 echoed (64 bytes), 1 dropped (rate 1)",
 * );
 * ```
 */
export function datagramSummary(stats: DatagramStats): string {
  const reasons = DATAGRAM_DROPS.filter((reason) => stats.dropped[reason] > 0)
    .map((reason) => `${reason} ${grouped(stats.dropped[reason])}`);
  const dropped = DATAGRAM_DROPS.reduce((sum, reason) => sum + stats.dropped[reason], 0);
  return `datagrams: ${grouped(stats.echoed)} echoed (${
    plural(stats.bytesEchoed, "byte", grouped)
  }), ${grouped(dropped)} dropped${reasons.length > 0 ? ` (${reasons.join(", ")})` : ""}${
    stats.failed > 0 ? `, ${grouped(stats.failed)} failed to send` : ""
  }`;
}

/**
 * Adds `more` to `sum`, for a total over workers.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { addDatagrams, noDatagrams } from "./udp.ts";
 * const sum = addDatagrams(noDatagrams(), { ...noDatagrams(), echoed: 2 });
 * equal(sum.echoed, 2);
 * ```
 */
export function addDatagrams(sum: DatagramStats, more: DatagramStats): DatagramStats {
  const dropped = { ...sum.dropped };
  for (const reason of DATAGRAM_DROPS) dropped[reason] += more.dropped[reason];
  return {
    received: sum.received + more.received,
    echoed: sum.echoed + more.echoed,
    bytesEchoed: sum.bytesEchoed + more.bytesEchoed,
    dropped,
    failed: sum.failed + more.failed,
  };
}

/**
 * Opens the UDP socket of a server on `hostname`:`port`.
 *
 * @throws {ListenError} when the port cannot be had, saying where and why.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { listenUdp } from "./udp.ts";
 * const socket = listenUdp("127.0.0.1", 0);
 * equal(socket.addr.transport, "udp");
 * socket.close();
 * ```
 */
export function listenUdp(hostname: string, port: number): Deno.DatagramConn {
  if (!hasUnstableNet()) {
    throw new ListenError(
      `cannot listen for UDP on ${formatAddress(hostname, port)}: ${UNSTABLE_NET_OFF}`,
    );
  }
  try {
    return Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (error) {
    throw new ListenError(
      `cannot listen for UDP on ${formatAddress(hostname, port)}: ${describeError(error)}`,
      { cause: error },
    );
  }
}

/**
 * Starts echoing datagrams on the UDP port of the same number and address as
 * `at`, a TCP listener's address, under `options` and `guard`'s allow/deny
 * rules.
 *
 * @throws {LimitError} (a RangeError) for a bad rate, burst or maxSources.
 * @throws {ListenError} when `at` has no port (a Unix socket), or the UDP
 *   port cannot be had.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { startUdp } from "./udp.ts";
 * const echo = startUdp({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, { rate: 10 });
 * equal(echo.addr.transport, "udp");
 * await echo.close();
 * ```
 */
export function startUdp(
  at: Deno.Addr,
  options: UdpOptions = {},
  guard?: Guard,
  shaper?: MakeShaper,
): UdpEcho {
  if (at.transport !== "tcp" && at.transport !== "udp") {
    throw new ListenError(`cannot echo UDP beside ${describeAddr(at)}: it has no port`);
  }
  const socket = listenUdp(at.hostname, at.port);
  let policy: DatagramPolicy;
  try {
    policy = new DatagramPolicy({ ...options, guard, ownPort: (socket.addr as Deno.NetAddr).port });
  } catch (error) {
    socket.close();
    throw error;
  }
  return new UdpEcho(socket, policy, shaper);
}

/**
 * Something that shapes the echo of some datagrams (the faults asked for
 * on purpose): it takes a datagram and echoes it, later or never, itself.
 */
export interface DatagramShaper {
  /** Takes `data` from `from` (true), or leaves it to be echoed as usual (false). */
  take(data: Uint8Array, from: Deno.NetAddr): boolean;
  /** Drops what it still holds. */
  stop(): void;
}

/** Makes a {@linkcode DatagramShaper} that echoes through `send`. */
export type MakeShaper = (
  send: (data: Uint8Array, to: Deno.NetAddr) => Promise<void> | void,
) => DatagramShaper;

const log = logger("server");

/**
 * Echoes the datagrams that arrive on `socket`, within the policy, until
 * {@linkcode UdpEcho.close}. A failure on one datagram is counted and the
 * loop goes on.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { DatagramPolicy } from "../admission/datagrams.ts";
 * import { listenUdp, UdpEcho } from "./udp.ts";
 * const echo = new UdpEcho(listenUdp("127.0.0.1", 0), new DatagramPolicy());
 * const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * await client.send(new TextEncoder().encode("hi"), echo.addr);
 * const [reply] = await client.receive();
 * equal(new TextDecoder().decode(reply), "hi");
 * client.close();
 * await echo.close();
 * equal(echo.stats().echoed, 1);
 * ```
 */
export class UdpEcho {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  readonly #socket: Deno.DatagramConn;
  readonly #policy: DatagramPolicy;
  readonly #throttle = new LogThrottle();
  readonly #closing = Promise.withResolvers<void>();
  readonly #stats = { received: 0, echoed: 0, bytesEchoed: 0, failed: 0 };
  readonly #dropped: Record<DatagramDrop, number> = { "service-port": 0, denied: 0, rate: 0 };
  readonly #running: Promise<void>;
  /** With `--fault`: the sources that get datagram faults are echoed through it. */
  readonly #faults: DatagramShaper | undefined;
  #closed = false;

  /**
   * Starts echoing on `socket` (which it then owns and closes) under
   * `policy`, through what `shaper` makes where it takes a datagram.
   */
  constructor(socket: Deno.DatagramConn, policy: DatagramPolicy, shaper?: MakeShaper) {
    this.#socket = socket;
    this.#policy = policy;
    this.#faults = shaper?.((data, to) => this.#reply(data, to));
    this.addr = socket.addr as Deno.NetAddr;
    log.info("echoing UDP datagrams on {address}", {
      address: formatAddress(this.addr.hostname, this.addr.port),
      rate: policy.limit.rate,
      burst: policy.limit.burst,
    });
    this.#running = this.#loop();
  }

  /** The counters as they are now. */
  stats(): DatagramStats {
    return { ...this.#stats, dropped: { ...this.#dropped } };
  }

  /** Closes the socket and resolves once the loop has ended; calling it again does the same. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#faults?.stop();
      this.#closing.resolve();
      try {
        this.#socket.close();
      } catch {
        // Already closed: the aim is reached.
      }
    }
    await this.#running;
  }

  async #loop(): Promise<void> {
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    // Checked once, so that a disabled debug line costs nothing per datagram.
    const debug = log.isEnabledFor("debug");
    let backoff = BACKOFF_MIN_MS;
    while (!this.#closed) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await this.#socket.receive(buffer);
        backoff = BACKOFF_MIN_MS;
      } catch (error) {
        if (this.#closed) return;
        log.error("receiving a datagram failed: {error}", { error: describeError(error) });
        await sleepUnless(backoff, this.#closing.promise);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        continue;
      }
      this.#stats.received++;
      if (from.transport !== "udp") continue;
      const verdict = this.#policy.check(from.hostname, from.port);
      if (verdict !== "ok") {
        this.#drop(verdict, from);
        continue;
      }
      // The faulted sources' datagrams are copied and sent (or not) by the faults.
      if (this.#faults?.take(data, from) === true) continue;
      // Awaited before the next receive: the buffer is the one being sent.
      await this.#reply(data, from, debug);
    }
  }

  /** Sends `data` back to `to`, counting it, or counting and logging why it failed. */
  async #reply(data: Uint8Array, to: Deno.NetAddr, debug = false): Promise<void> {
    try {
      await this.#socket.send(data, to);
      this.#stats.echoed++;
      this.#stats.bytesEchoed += data.length;
      if (debug) {
        log.debug("echoed {bytes} bytes to {peer}", {
          bytes: data.length,
          peer: formatAddress(to.hostname, to.port),
        });
      }
    } catch (error) {
      if (this.#closed) return;
      this.#stats.failed++;
      this.#warn("reply to {peer} failed: {reason}", describeError(error), to);
    }
  }

  #drop(reason: DatagramDrop, from: Deno.NetAddr): void {
    this.#dropped[reason]++;
    this.#warn("dropped datagram from {peer}: {reason}", reason, from);
  }

  /** One warning per reason and address every 10 s, as the TCP refusals are logged. */
  #warn(message: string, reason: string, from: Deno.NetAddr): void {
    const suppressed = this.#throttle.hit(`${reason} ${addressKey(from.hostname)}`);
    if (suppressed === null) return;
    log.warning(message + (suppressed > 0 ? " ({suppressed} more since the last line)" : ""), {
      peer: formatAddress(from.hostname, from.port),
      reason,
      suppressed,
      transport: "udp",
    });
  }
}
