/**
 * What a UDP run adds to the report: datagrams sent, echoed, lost,
 * duplicated and reordered, as data and as the report's lines.
 *
 * @module
 */
import { DATAGRAM_DEFAULTS } from "../admission/datagrams.ts";
import { fixed, int, rate } from "./numbers.ts";

/**
 * The UDP figures of a run (`BenchReport.udp`).
 *
 * @example
 * ```ts no-assert
 * import type { UdpFigures } from "./udp_report.ts";
 *
 * const u: UdpFigures = {
 *   sockets: 10, window: 1, sent: 1_000, echoed: 998, lost: 2, late: 0, duplicated: 0,
 *   reordered: 0, lossWaitMs: 1_000,
 * };
 * ```
 */
export interface UdpFigures {
  /** Sockets the datagrams were sent from, each its own source port. */
  sockets: number;
  /** Closed loop: datagrams each socket kept in flight at most. */
  window: number;
  /** Datagrams sent. */
  sent: number;
  /** Datagrams echoed exactly, each counted once (the report's `messages`). */
  echoed: number;
  /** Datagrams sent whose echo never came (within `lossWaitMs` after the run). */
  lost: number;
  /** Of `echoed`, those that came back after `lossWaitMs`, when the window had given up on them. */
  late: number;
  /** Echoes of a datagram that had already come back. */
  duplicated: number;
  /** Echoes that came back after the echo of a datagram the same socket sent later. */
  reordered: number;
  /** How long a datagram may take before it is given up on (its window slot freed). */
  lossWaitMs: number;
  /**
   * Set when nothing listened on the server's UDP port on this machine (the
   * kernel refuses such datagrams): the run stopped at once.
   */
  refused?: boolean;
}

/**
 * The report's heading words for a UDP run: `udp pingpong, 10 sockets × 64 B, window 1`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { udpWhat } from "./udp_report.ts";
 * equal(udpWhat(10, "64 B", 1, false), "udp pingpong, 10 sockets × 64 B, window 1");
 * equal(udpWhat(1, "64 B", 1, true), "udp pingpong, 1 socket × 64 B");
 * ```
 */
export function udpWhat(sockets: number, size: string, window: number, open: boolean): string {
  return `udp pingpong, ${int(sockets)} socket${sockets === 1 ? "" : "s"} × ${size}${
    open ? "" : `, window ${int(window)}`
  }`;
}

/**
 * The report's lines about datagrams, in place of the TCP connection line.
 * Lost datagrams get a line that says what usually loses them on one
 * machine: the server's reply limit per source address; unless the port
 * refused them (nothing listened there), which the line says instead.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { udpLines } from "./udp_report.ts";
 * const lines = udpLines({
 *   sockets: 2, window: 1, sent: 10, echoed: 10, lost: 0, late: 0, duplicated: 0, reordered: 0,
 *   lossWaitMs: 1_000,
 * });
 * equal(lines[0], "  datagrams    10 sent, 10 echoed, from 2 sockets");
 * equal(lines[1], "  lost         0  (0 duplicated, 0 reordered)");
 * ```
 */
export function udpLines(u: UdpFigures): string[] {
  const lines = [
    `  datagrams    ${int(u.sent)} sent, ${int(u.echoed)} echoed${
      u.late > 0 ? ` (${int(u.late)} late)` : ""
    }, from ${int(u.sockets)} socket${u.sockets === 1 ? "" : "s"}`,
    `  lost         ${int(u.lost)}${
      u.lost > 0 && u.sent > 0 ? ` (${fixed(100 * u.lost / u.sent, 2)} %)` : ""
    }  (${int(u.duplicated)} duplicated, ${int(u.reordered)} reordered)`,
  ];
  if (u.refused) {
    lines.push("               refused: nothing listens on that UDP port of this machine");
  } else if (u.lost > 0) {
    lines.push(
      `               no echo within ${fixed(u.lossWaitMs / 1000, 1)} s: a server drops what ` +
        `exceeds its reply limit per source address (serve --udp-rate, ${
          rate(DATAGRAM_DEFAULTS.rate)
        }/s by default), and a socket buffer what overflows it`,
    );
  }
  return lines;
}
