/**
 * How a message or a connection ended, when it did not end well, and how that
 * is counted and put into words: a corrupted echo, a short one, a refusal, a
 * reset or a timeout.
 *
 * The rules: an echo that came back full length but differs is corrupted,
 * always. A connection the server closes before any echo completed (after
 * sending nothing, or a short non-echo line such as "busy") is refused, not a
 * mismatch; one it closes between two echoes is reset, one it closes partway
 * through an echo is short and reset. When the drain time runs out, a message
 * with no byte back timed out and one partly back is short.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { hex, int } from "./numbers.ts";
import type { Run } from "./run.ts";

/**
 * How one pingpong or churn message ended:
 *
 * - `echoed`: the echo came back intact;
 * - `corrupted`: it came back full length but different, or with bytes added;
 * - `cut`: the drain time ran out first and we closed the connection;
 * - `reset`: the server closed the connection, or it failed, after serving;
 * - `refused`: the server closed it before any echo had completed.
 *
 * Every outcome but `echoed` is already counted when it is returned.
 */
export type Outcome = "echoed" | "corrupted" | "cut" | "reset" | "refused";

/**
 * Whether the whole echo came back, intact or not: the connection can carry
 * the next message.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { answered } from "./failures.ts";
 * ok(answered("corrupted") && !answered("cut"));
 * ```
 */
export function answered(outcome: Outcome): boolean {
  return outcome === "echoed" || outcome === "corrupted";
}

/**
 * Whether the connection ended in an error of the server's making (a reset
 * or a refusal), rather than by the run closing it.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { failedBy } from "./failures.ts";
 * ok(failedBy("refused") && !failedBy("cut"));
 * ```
 */
export function failedBy(outcome: Outcome): boolean {
  return outcome === "reset" || outcome === "refused";
}

/** Why a message with no byte back when the drain time ran out failed. */
export const NO_REPLY = "no reply within the run";

/**
 * Which line of the report gives the first problem's words: the first of
 * errors, mismatches and timed out that counts any, so that a reason never
 * stands on a line that counts none; a timeout's own words are its line's
 * already. A run with none of them (no echo at all) says why in its result.
 */
export function firstOn(
  r: { firstError: string | null; errors: number; mismatches: number; timedOut: number },
): "errors" | "mismatches" | "timedOut" | "result" | null {
  if (r.firstError === null) return null;
  if (r.firstError === NO_REPLY && r.timedOut > 0) return null;
  if (r.errors > 0) return "errors";
  if (r.mismatches > 0) return "mismatches";
  if (r.timedOut > 0) return "timedOut";
  return "result";
}

/** The end of a connection the server closed: a read returned end of file. */
export const EOF: unique symbol = Symbol("closed by the server");

/**
 * Most bytes a server may send on a connection, none of them a correct echo,
 * and then close it for that to count as a refusal (with a refusal line)
 * rather than as corrupted echoes.
 */
export const BANNER_MAX = 4096;

/** What one pingpong or churn connection has done so far, to tell a refusal from a failure. */
export class Link {
  /** Echoes completed on this connection, intact or corrupted. */
  echoes = 0;
  /** The start of what the server sent first, when that was not the echo. */
  banner: string | null = null;

  /** Starts over for a new connection. */
  clear(): void {
    this.echoes = 0;
    this.banner = null;
  }
}

/**
 * Accounts for a message whose echo ended before it was complete, `got` of
 * its bytes back (`intact` while they matched) and `sent` written, `err`
 * having ended it (EOF: the server closed the connection).
 */
export function lost(
  run: Run,
  link: Link,
  err: unknown,
  sent: number,
  got: number,
  intact: boolean,
): Outcome {
  const why = err === EOF ? "" : `: ${describeError(err)}`;
  if (run.closing) {
    if (got === 0) {
      run.timedOut++;
      run.noteError(NO_REPLY);
      return "cut";
    }
    run.short++;
    run.noteError(
      `an echo was still incomplete when the drain time (${run.drainMs / 1000} s) ran out (${
        int(got)
      } of ${int(run.size)} bytes back, ${int(sent)} sent)`,
    );
    return "cut";
  }
  if (link.echoes === 0 && (got === 0 || !intact) && got <= BANNER_MAX) {
    run.refused++;
    run.noteError(refusal(err, link.banner));
    return "refused";
  }
  run.resets++;
  if (got === 0) {
    // "echo" takes "es": plural() would write "echos".
    run.noteError(
      `the server closed the connection between echoes, after ${int(link.echoes)} echo${
        link.echoes === 1 ? "" : "es"
      }${why}`,
    );
  } else {
    run.short++;
    run.noteError(
      `the server closed the connection mid-echo (${int(got)} of ${
        int(run.size)
      } bytes back)${why}`,
    );
  }
  return "reset";
}

/**
 * Why a connection was counted as refused: `err` ended it, after `banner` if any.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { EOF, refusal } from "./failures.ts";
 * equal(
 *   refusal(EOF, '"busy\\n"'),
 *   'the server closed the connection before echoing (refused?); it sent "busy\\n"',
 * );
 * ```
 */
export function refusal(err: unknown, banner: string | null): string {
  const what = "the server closed the connection before echoing (refused?)";
  if (banner !== null) return `${what}; it sent ${banner}`;
  return err === EOF ? what : `${what}: ${describeError(err)}`;
}

/**
 * Where `buf[0, n)`, echoed at byte `got` of a message starting at pattern
 * offset `at`, first differs from what was sent, for an error message.
 */
export function mismatch(run: Run, buf: Uint8Array, n: number, at: number, got: number): string {
  const size = run.size;
  const bytes = run.pattern.bytes;
  const m = Math.min(n, size - got);
  for (let i = 0; i < m; i++) {
    if (buf[i] !== bytes[at + got + i]) {
      return `a corrupted echo: byte ${int(got + i)} of ${int(size)} was ${hex(buf[i])}, expected ${
        hex(bytes[at + got + i])
      }`;
    }
  }
  return `a corrupted echo: more bytes came back than the ${int(size)} sent`;
}
