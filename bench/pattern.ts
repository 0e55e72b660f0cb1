/**
 * The bytes every connection sends, and how echoes are checked against them.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/**
 * The pattern's period, and the stream mode's write size: a prime just under
 * 64 KiB. A lost, repeated or reordered buffer, whose size is in practice a
 * power of two, shifts the pattern and is caught; only a multiple of PERIOD
 * bytes could slip through.
 */
export const PERIOD = 65521;

/**
 * A seeded pseudo-random byte sequence repeating every {@linkcode PERIOD}
 * bytes. Byte `i` of a message or stream is `bytes[start + i]`, the start
 * differing per message (pingpong, churn) or per connection (stream), so
 * corrupted, reordered, added or missing bytes all show as mismatches.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { Pattern } from "./pattern.ts";
 *
 * const pattern = new Pattern(16);
 * const echo = pattern.bytes.slice(100, 116);
 * ok(pattern.matches(echo, 16, 100));
 * echo[3] ^= 1;
 * ok(!pattern.matches(echo, 16, 100));
 * ```
 */
export class Pattern {
  /**
   * The sequence, PERIOD + `span` bytes long, so that `span` bytes from any
   * offset below PERIOD are one view.
   */
  readonly bytes: Uint8Array;
  // Buffer#compare is a native memcmp; a JS loop over the same bytes cost a
  // third of the client's time at 4 KiB messages.
  readonly #native: Buffer;

  /**
   * Builds the pattern for at most `span` bytes compared or sent from one offset.
   */
  constructor(span: number) {
    this.bytes = new Uint8Array(PERIOD + span);
    let x = 0x9e3779b9;
    for (let i = 0; i < PERIOD; i++) {
      // xorshift32: deterministic, so a failing run can be reproduced.
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.bytes[i] = x >>> 24;
    }
    for (let i = PERIOD; i < this.bytes.length; i++) this.bytes[i] = this.bytes[i - PERIOD];
    this.#native = Buffer.from(this.bytes.buffer, 0, this.bytes.length);
  }

  /** Whether `buf[0, n)` equals the pattern from `at` on, `at + n` ≤ PERIOD + span. */
  matches(buf: Uint8Array, n: number, at: number): boolean {
    return this.#native.compare(buf, 0, n, at, at + n) === 0;
  }
}
