/**
 * A pause that something else can cut short: the accept back-off ends early
 * on shutdown, the drain ends early once the last connection closes.
 *
 * @module
 */

/**
 * Waits `ms`, or less if `early` settles first; resolves true when the time ran out.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { sleepUnless } from "./wait.ts";
 * equal(await sleepUnless(10_000, Promise.resolve()), false);
 * equal(await sleepUnless(1, new Promise(() => {})), true);
 * ```
 */
export async function sleepUnless(ms: number, early: Promise<void>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([timeout, early.then(() => false)]);
  } finally {
    clearTimeout(timer);
  }
}
