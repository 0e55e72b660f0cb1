/**
 * The check behind the client's netcat mode: the bytes sent and not yet
 * echoed, in order, and the comparison of what comes back against them.
 *
 * @module
 */
import { quoteBytes } from "../text/words.ts";
import { ClientError } from "./errors.ts";

/**
 * Bytes in flight to an echo server, checked as they come back.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { EchoCheck } from "./echo_check.ts";
 * const check = new EchoCheck("127.0.0.1:8000");
 * check.sent(new TextEncoder().encode("hello"));
 * equal(check.received(new TextEncoder().encode("hel")), undefined);
 * equal(check.pending, 2);
 * equal(check.received(new TextEncoder().encode("LO"))?.message, 'echo differs at byte 3: got "LO"');
 * ```
 */
export class EchoCheck {
  readonly #address: string;
  readonly #inFlight: Uint8Array[] = [];
  #headOffset = 0;
  #pending = 0;
  #checked = 0;

  /** Starts with nothing in flight; `address` names the server in errors. */
  constructor(address: string) {
    this.#address = address;
  }

  /** Bytes sent and not yet echoed. */
  get pending(): number {
    return this.#pending;
  }

  /** Bytes echoed back correctly so far. */
  get echoed(): number {
    return this.#checked;
  }

  /** Records `chunk` as sent; it is kept, so the caller must not reuse it. */
  sent(chunk: Uint8Array): void {
    this.#inFlight.push(chunk);
    this.#pending += chunk.length;
  }

  /**
   * Checks `bytes` that came back against the oldest bytes in flight: returns
   * `undefined` when they are the echo, or a `mismatch` {@linkcode ClientError}
   * when they differ or are more than were sent. After a mismatch the check
   * is spent.
   */
  received(bytes: Uint8Array): ClientError | undefined {
    for (let i = 0; i < bytes.length;) {
      const head = this.#inFlight[0];
      if (head === undefined) {
        return new ClientError(
          "mismatch",
          `${this.#address} sent ${bytes.length - i} more bytes than were sent to it`,
        );
      }
      const span = Math.min(bytes.length - i, head.length - this.#headOffset);
      for (let k = 0; k < span; k++) {
        if (bytes[i + k] !== head[this.#headOffset + k]) {
          return new ClientError(
            "mismatch",
            `echo differs at byte ${this.#checked + k}: got ${quoteBytes(bytes.subarray(i))}`,
          );
        }
      }
      i += span;
      this.#checked += span;
      this.#headOffset += span;
      if (this.#headOffset === head.length) {
        this.#inFlight.shift();
        this.#headOffset = 0;
      }
    }
    this.#pending -= bytes.length;
    return undefined;
  }
}
