/**
 * How the client fails: one error class with a kind for code to act on, and
 * one sentence per kind of event for people.
 *
 * @module
 */
import { isTlsAlert } from "../text/tls.ts";
import { describeError } from "../text/address.ts";
import { quoteBytes } from "../text/words.ts";

/**
 * What went wrong, for code to act on (the message is for people):
 * - `connect`: no connection (refused, unknown host, no route);
 * - `timeout`: no connection, or no echo, within the time allowed;
 * - `closed`: the connection closed before every byte sent was echoed;
 * - `refused`: the server sent bytes that are not the echo and closed, as a
 *   server refusing the connection with a message does;
 * - `mismatch`: bytes came back that differ from those sent, or more of them;
 * - `failed`: the connection broke (reset, broken pipe).
 */
export type ClientErrorKind = "connect" | "timeout" | "closed" | "refused" | "mismatch" | "failed";

/**
 * A connection or an exchange failed; `kind` says how, the message says it in
 * one sentence.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ClientError } from "./errors.ts";
 * const error = new ClientError("timeout", "no reply from 127.0.0.1:8000 within 10.0s");
 * equal(error.kind, "timeout");
 * equal(error.name, "ClientError");
 * ```
 */
export class ClientError extends Error {
  /** How it failed. */
  readonly kind: ClientErrorKind;
  /** For a `timeout` once connected: how much of the awaited echo came back. */
  readonly progress?: EchoProgress;

  /**
   * Makes an error of `kind` with `message`, the whole sentence, e.g.
   * `cannot connect to 127.0.0.1:8000: connection refused`.
   */
  constructor(
    kind: ClientErrorKind,
    message: string,
    options?: ErrorOptions & { progress?: EchoProgress },
  ) {
    super(message, options);
    this.name = "ClientError";
    this.kind = kind;
    if (options?.progress !== undefined) this.progress = options.progress;
  }
}

/** How much of an echo came back: `received` of the `expected` bytes (0 when all came). */
export interface EchoProgress {
  /** Bytes of the echo that came back. */
  readonly received: number;
  /** Bytes sent whose echo was awaited. */
  readonly expected: number;
}

/**
 * The sentence for an echo that stopped coming within `within` (`3.0s`, or
 * `in time`), counting what came: with nothing, "no reply"; with all of it,
 * (`expected` 0 when only the close was awaited), the server's close is
 * what did not come.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noReply } from "./errors.ts";
 * equal(noReply("h:1", { received: 0, expected: 5 }, "within 1.0s"), "connected to h:1, but no reply came within 1.0s");
 * equal(noReply("h:1", { received: 5, expected: 15 }, "within 1.0s"), "connected to h:1, but only 5 of 15 bytes came back within 1.0s");
 * equal(noReply("h:1", { received: 5, expected: 5 }, "within 1.0s"), "the echo came back whole, but h:1 did not close the connection within 1.0s");
 * ```
 */
export function noReply(address: string, progress: EchoProgress, within: string): string {
  const { received, expected } = progress;
  if (received >= expected) {
    return `the echo came back whole, but ${address} did not close the connection ${within}`;
  }
  if (received === 0) return `connected to ${address}, but no reply came ${within}`;
  return `connected to ${address}, but only ${received} of ${expected} bytes came back ${within}`;
}

/**
 * Whether `error` is the connection reset by the peer, or a write into a
 * connection it reset (broken pipe): on a connection where nothing came
 * back yet, the same refusal as a close, whichever operation noticed it.
 */
export function isReset(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe;
}

/**
 * The one sentence for a server that refused a connection by sending `bytes`
 * and closing, whichever way the client noticed.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { refused } from "./errors.ts";
 * const error = refused("127.0.0.1:8000", new TextEncoder().encode("go away\n"));
 * equal(
 *   error.message,
 *   '127.0.0.1:8000 sent "go away\\n" instead of an echo and closed the connection (refused?)',
 * );
 * equal(error.kind, "refused");
 * ```
 */
export function refused(address: string, bytes: Uint8Array): ClientError {
  // A TLS alert record (type 21, version 3.x): the server wanted a TLS handshake.
  if (isTlsAlert(bytes)) {
    return new ClientError("refused", `${address} answered with a TLS alert: it speaks TLS`);
  }
  return new ClientError(
    "refused",
    `${address} sent ${quoteBytes(bytes)} instead of an echo and closed the connection (refused?)`,
  );
}

/**
 * The server closed the connection before the whole echo came back: one
 * sentence in every mode, with the hint that nothing echoed at all is how a
 * refusal without a message looks. `earlier` counts the messages of the same
 * connection whose echoes did come back: a server that closes after some
 * (an idle timeout, a lifetime, a shutdown) did not refuse. `reset` says
 * that the end was a reset rather than a FIN, worded so for an echo cut
 * partway (a server with `reset-after`); between echoes or before any, a
 * reset is as often a close with unread input, and the words stay "closed".
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { closedEarly } from "./errors.ts";
 * equal(
 *   closedEarly("h:1", 0, 5).message,
 *   "h:1 closed the connection before echoing anything (refused?)",
 * );
 * equal(closedEarly("h:1", 2, 5).message, "h:1 closed the connection after echoing 2 of 5 bytes");
 * equal(closedEarly("h:1", 2, 5, 0, true).message, "h:1 reset the connection after echoing 2 of 5 bytes");
 * equal(
 *   closedEarly("h:1", 0, 5, 3).message,
 *   "h:1 closed the connection after 3 echoes, before echoing the next message",
 * );
 * ```
 */
export function closedEarly(
  address: string,
  echoed: number,
  expected: number,
  earlier = 0,
  reset = false,
): ClientError {
  let message: string;
  if (echoed > 0) {
    const ended = reset ? "reset" : "closed";
    message = `${address} ${ended} the connection after echoing ${echoed} of ${expected} bytes`;
  } else if (earlier > 0) {
    const echoes = earlier === 1 ? "echo" : "echoes";
    message =
      `${address} closed the connection after ${earlier} ${echoes}, before echoing the next message`;
  } else message = `${address} closed the connection before echoing anything (refused?)`;
  return new ClientError("closed", message);
}

/**
 * The sentence for a connection that broke under an operation, keeping the
 * system's error as the cause.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { broken } from "./errors.ts";
 * const error = broken("127.0.0.1:8000", new Deno.errors.ConnectionReset("reset"));
 * equal(error.message, "connection to 127.0.0.1:8000 failed: connection reset by peer");
 * ```
 */
export function broken(address: string, error: unknown): ClientError {
  return new ClientError("failed", `connection to ${address} failed: ${describeError(error)}`, {
    cause: error,
  });
}

/**
 * What a send or read cut short by its `signal` rejects with: a timeout
 * becomes a {@linkcode ClientError} of kind `timeout` counting what of the
 * echo came (`progress`); any other abort keeps its reason.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { aborted, ClientError } from "./errors.ts";
 * const error = aborted("127.0.0.1:8000", new DOMException("late", "TimeoutError"));
 * equal(error instanceof ClientError && error.kind, "timeout");
 * ```
 */
export function aborted(
  address: string,
  reason: unknown,
  progress: EchoProgress = { received: 0, expected: 1 },
): unknown {
  if (!(reason instanceof DOMException && reason.name === "TimeoutError")) return reason;
  return new ClientError("timeout", noReply(address, progress, "in time"), {
    cause: reason,
    progress,
  });
}
