/**
 * How addresses, network errors and file errors are put into words for people.
 *
 * @module
 */

/**
 * Joins a host and a port, bracketing IPv6 hosts: `127.0.0.1:8000`, `[::1]:8000`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { formatAddress } from "./address.ts";
 * equal(formatAddress("::1", 80), "[::1]:80");
 * equal(formatAddress("127.0.0.1", 80), "127.0.0.1:80");
 * ```
 */
export function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * A host as written, without the brackets that `[::1]` wears where a port may
 * follow (Deno's listeners take it either way).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { unbracket } from "./address.ts";
 * equal(unbracket("[::1]"), "::1");
 * equal(unbracket("127.0.0.1"), "127.0.0.1");
 * ```
 */
export function unbracket(hostname: string): string {
  return hostname.replace(/^\[(.*)\]$/, "$1");
}

const PHRASES: ReadonlyArray<readonly [new (...args: never[]) => Error, string]> = [
  [Deno.errors.AddrInUse, "address already in use"],
  [Deno.errors.AddrNotAvailable, "address not available on this machine"],
  [Deno.errors.ConnectionRefused, "connection refused"],
  [Deno.errors.ConnectionReset, "connection reset by peer"],
  [Deno.errors.ConnectionAborted, "connection aborted"],
  [Deno.errors.BrokenPipe, "broken pipe"],
  [Deno.errors.TimedOut, "timed out"],
  [Deno.errors.PermissionDenied, "permission denied"],
  [Deno.errors.NotFound, "host not found"],
];

/**
 * Puts an operating-system or Deno error into a few lower-case words, without
 * the `(os error N)` suffix.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeError } from "./address.ts";
 * equal(describeError(new Deno.errors.ConnectionRefused("x")), "connection refused");
 * equal(describeError(new Error("Bad thing (os error 9)")), "bad thing");
 * ```
 */
export function describeError(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    // Deno names the permission it wants: --allow-read for a socket file, --allow-net for a port.
    const flag = /--allow-[a-z-]+/.exec(error.message)?.[0] ?? "--allow-net";
    return `permission denied (run with ${flag})`;
  }
  for (const [kind, phrase] of PHRASES) if (error instanceof kind) return phrase;
  if (error instanceof DOMException && error.name === "TimeoutError") return "timed out";
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\(os error \d+\)$/, "").replace(/^\w/, (c) => c.toLowerCase());
}

/**
 * Puts an error from reading a file into a few words: `no such file`,
 * `is a directory`, `permission denied`, `not a text file`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeFileError } from "./address.ts";
 * equal(describeFileError(new Deno.errors.NotFound("x")), "no such file");
 * equal(describeFileError(new Deno.errors.IsADirectory("x")), "is a directory");
 * ```
 */
export function describeFileError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof TypeError || error instanceof Deno.errors.InvalidData) {
    return "not a text file";
  }
  return describeError(error);
}
