/**
 * `net.ipv4.tcp_migrate_req` for the tests that need it one way or the other
 * (an upgrade swap wants 1, a balancer's stop is tried at 0): set for the
 * length of one test where the test may (root), restored after, and held by
 * one test at a time, even when test files run in parallel.
 *
 * @module
 */
import { MIGRATE_REQ_PATH } from "../server/reuse_port.ts";

/** The lock that keeps two tests from setting the sysctl at once: a file both lock. */
const LOCK_PATH = `${Deno.env.get("TMPDIR") ?? "/tmp"}/echo-server-tests-tcp_migrate_req.lock`;

/** Whether this process may set the sysctl: root, on a kernel that has it, /proc/sys writable. */
export function migrateReqSettable(): boolean {
  try {
    Deno.openSync(MIGRATE_REQ_PATH, { write: true }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `fn` with the sysctl at `value` (when settable; as it is otherwise),
 * holding the lock throughout, and puts the old value back after.
 */
export async function withMigrateReq<T>(value: "0" | "1", fn: () => Promise<T>): Promise<T> {
  if (!migrateReqSettable()) return await fn();
  using lock = await Deno.open(LOCK_PATH, { create: true, write: true });
  await lock.lock(true);
  const before = Deno.readTextFileSync(MIGRATE_REQ_PATH).trim();
  Deno.writeTextFileSync(MIGRATE_REQ_PATH, value);
  try {
    return await fn();
  } finally {
    Deno.writeTextFileSync(MIGRATE_REQ_PATH, before);
    await lock.unlock();
  }
}
