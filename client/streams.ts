/**
 * What the client reads from and writes to besides its connection
 * (`Deno.stdin`, `Deno.stdout`, any such stream), and the small byte
 * operations it needs on them.
 *
 * @module
 */

/** Something bytes can be read from, such as `Deno.stdin`. */
export interface Reader {
  /** Reads into `p`, resolving with the byte count, or `null` at the end. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Something bytes can be written to, such as `Deno.stdout`. */
export interface Writer {
  /** Writes some prefix of `p`, resolving with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes all of `bytes`, however many calls `writer.write` takes.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { writeAll } from "./streams.ts";
 * const taken: number[] = [];
 * // A writer that takes at most two bytes a call, as a full pipe may.
 * const writer = {
 *   write(p: Uint8Array) {
 *     const n = Math.min(2, p.length);
 *     taken.push(...p.subarray(0, n));
 *     return Promise.resolve(n);
 *   },
 * };
 * await writeAll(writer, new Uint8Array([1, 2, 3, 4, 5]));
 * deepEqual(taken, [1, 2, 3, 4, 5]);
 * ```
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await writer.write(bytes.subarray(off));
}

/**
 * Whether two byte arrays hold the same bytes.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { sameBytes } from "./streams.ts";
 * equal(sameBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
 * ```
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
