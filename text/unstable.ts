/**
 * Deno's unstable net API (`Deno.listen({ reusePort })`, `Deno.listenDatagram`)
 * exists only when Deno runs with `--unstable-net` or a deno.json that asks
 * for it. Without it, `reusePort` ends the process with Deno's own message
 * (exit 70) and `Deno.listenDatagram` is missing; whatever needs them checks
 * first and says so in one sentence. A copied bundle or a compiled binary has
 * no deno.json near it, so there it is the command line that must carry it.
 *
 * @module
 */

/**
 * Tells whether Deno's unstable net API is on in this process.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { hasUnstableNet } from "./unstable.ts";
 * // The project's deno.json asks for it: `"unstable": ["net"]`.
 * equal(typeof hasUnstableNet(), "boolean");
 * ```
 */
export function hasUnstableNet(): boolean {
  // Both APIs come with the same switch; this one can be looked at without side effects.
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

/** Why a use of the unstable net API cannot work here, and the fix, as one clause. */
export const UNSTABLE_NET_OFF = "the unstable net API of Deno is off: run deno with --unstable-net";

/**
 * The sentence for the flags `flags` (e.g. `["--workers"]`) when the unstable
 * net API is off, with a complete command line to copy.
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { needsUnstableNet } from "./unstable.ts";
 * match(needsUnstableNet(["--workers", "--udp"]), /^--workers and --udp need Deno's unstable net API/);
 * ```
 */
export function needsUnstableNet(flags: readonly string[]): string {
  const what = flags.length > 1
    ? `${flags.slice(0, -1).join(", ")} and ${flags.at(-1)} need`
    : `${flags[0]} needs`;
  return `${what} Deno's unstable net API, which is off: run deno with --unstable-net (deno run --unstable-net --allow-net --allow-read echo-server.js …)`;
}
