/**
 * What the kernel does to a `--reuse-port` upgrade: when one listener of a
 * SO_REUSEPORT group closes, the connections still in its accept queue are
 * reset, unless Linux (5.14+) has `net.ipv4.tcp_migrate_req=1` (for IPv6 too),
 * which hands them to another listener of the group.
 *
 * @module
 */

/** The sysctl that makes a closing SO_REUSEPORT listener hand its queue on. */
export const MIGRATE_REQ_PATH = "/proc/sys/net/ipv4/tcp_migrate_req";

/**
 * Whether `net.ipv4.tcp_migrate_req` is on: true or false when it can tell,
 * undefined when it cannot (not Linux, a kernel before 5.14, or no
 * permission, which it never prompts for). Deno 2 reads files under `/proc`
 * only with `--allow-all`: `--allow-read`, even naming the file, is not enough.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { migrateReqOn } from "./reuse_port.ts";
 * ok([true, false, undefined].includes(migrateReqOn()));
 * ```
 */
export function migrateReqOn(path: string = MIGRATE_REQ_PATH): boolean | undefined {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return undefined;
  try {
    const value = Deno.readTextFileSync(path).trim();
    return value === "1" ? true : value === "0" ? false : undefined;
  } catch {
    return undefined;
  }
}
