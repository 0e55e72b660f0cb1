/**
 * Deno's permissions that the flags of a command line need, checked before
 * anything is opened, so that every missing one is named in one line
 * (`--unix needs --allow-read --allow-write`) instead of one failure at a
 * time, each after a restart.
 *
 * @module
 */
import { formatAddress, unbracket } from "../text/address.ts";

/** What needs permissions, and which. */
export interface PermissionNeed {
  /** What needs them, in the command line's words: `--unix`, `--cert`, `serving on 0.0.0.0:8000`. */
  readonly what: string;
  /** The permissions, as `Deno.permissions.querySync` takes them. */
  readonly permissions: readonly Deno.PermissionDescriptor[];
}

/**
 * The flag that grants `descriptor`: `--allow-read` for `{ name: "read" }`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { allowFlag } from "./permissions.ts";
 * equal(allowFlag({ name: "write", path: "/tmp/x" }), "--allow-write");
 * ```
 */
export function allowFlag(descriptor: Deno.PermissionDescriptor): string {
  return `--allow-${descriptor.name}`;
}

/**
 * The net permission for listening on or connecting to `host` and `port`
 * (any port when 0 asks for a free one).
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { netTo } from "./permissions.ts";
 * deepEqual(netTo("[::1]", 8000), { name: "net", host: "[::1]:8000" });
 * deepEqual(netTo("0.0.0.0", 0), { name: "net", host: "0.0.0.0" });
 * ```
 */
export function netTo(host: string, port: number): Deno.NetPermissionDescriptor {
  const bare = unbracket(host);
  return { name: "net", host: port === 0 ? bare : formatAddress(bare, port) };
}

/**
 * Says in one line which of `needs` lack a permission, grouped by the flags
 * that would grant them (`--cert and --key need --allow-read`), and the
 * flags to run Deno with; undefined when every one is granted. Only
 * permissions granted outright count: one Deno would prompt for is missing
 * too, so that nothing prompts halfway through a start.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeMissing } from "./permissions.ts";
 * const granted = () => false;
 * equal(
 *   describeMissing([
 *     { what: "--unix", permissions: [{ name: "read" }, { name: "write" }] },
 *     { what: "--cert", permissions: [{ name: "read" }] },
 *     { what: "--key", permissions: [{ name: "read" }] },
 *   ], granted),
 *   "--unix needs --allow-read --allow-write, --cert and --key need --allow-read: run deno with --allow-read --allow-write",
 * );
 * equal(describeMissing([{ what: "--cert", permissions: [{ name: "read" }] }], () => true), undefined);
 * ```
 */
export function describeMissing(
  needs: readonly PermissionNeed[],
  isGranted: (descriptor: Deno.PermissionDescriptor) => boolean = granted,
): string | undefined {
  /** The things that miss the same flags, by those flags. */
  const groups = new Map<string, string[]>();
  const all = new Set<string>();
  for (const need of needs) {
    const missing = [
      ...new Set(need.permissions.filter((p) => !isGranted(p)).map(allowFlag)),
    ];
    if (missing.length === 0) continue;
    for (const flag of missing) all.add(flag);
    const key = missing.join(" ");
    const whats = groups.get(key) ?? [];
    if (!whats.includes(need.what)) whats.push(need.what);
    groups.set(key, whats);
  }
  if (groups.size === 0) return undefined;
  const parts = [...groups].map(([flags, whats]) =>
    `${and(whats)} ${whats.length === 1 ? "needs" : "need"} ${flags}`
  );
  const ffi = all.has("--allow-ffi")
    ? " (--allow-ffi unscoped: a grant for a path does not cover libc.so.6; or use --io deno)"
    : "";
  return `${parts.join(", ")}: run deno with ${[...all].join(" ")}${ffi}`;
}

/** Whether Deno grants `descriptor` now, without prompting. */
function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/** `a`, `a and b`, `a, b and c`. */
function and(words: readonly string[]): string {
  return words.length <= 1
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

/** The read permission for a file a flag names. */
export function readOf(path: string): Deno.ReadPermissionDescriptor {
  return { name: "read", path };
}

/**
 * What a Unix socket at `path` needs, in the server and in a client alike:
 * Deno asks for read and write to create or to connect to a socket file, and
 * for the net too (access to `unix:PATH`).
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { unixNeed } from "./permissions.ts";
 * deepEqual(unixNeed("/run/e.sock").permissions.map((p) => p.name), ["read", "write", "net"]);
 * ```
 */
export function unixNeed(path: string): PermissionNeed {
  return {
    what: "--unix",
    permissions: [readOf(path), { name: "write", path }, { name: "net", host: `unix:${path}` }],
  };
}

/** Fails, naming every missing permission at once, when any of `needs` lacks one. */
export function throwIfMissing(needs: PermissionNeed[]): void {
  const missing = describeMissing(needs);
  if (missing !== undefined) throw new Error(missing);
}
