/**
 * Admission control: who may connect, how many at once, how fast.
 *
 * A {@link Guard} decides on each accepted connection; by default it counts
 * on its own, and with {@link SharedCounts} several Guards in several Workers
 * enforce one set of limits.
 *
 * @example
 * ```ts
 * import { deepEqual, ok } from "node:assert/strict";
 * import { Guard, parseCidr } from "./mod.ts";
 * const guard = new Guard({ maxConnsPerIp: 1, deny: [parseCidr("192.0.2.0/24")] });
 * deepEqual(guard.admit("192.0.2.7"), { ok: false, reason: "denied" });
 * ok(guard.admit("10.0.0.1").ok);
 * deepEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per-ip" });
 * ```
 *
 * @module
 */
export { type Admission, type AdmitOptions, Guard, GUARD_DEFAULTS } from "./guard.ts";
export type { GuardOptions } from "./guard_options.ts";
export {
  checkRate,
  defaultBurst,
  LimitError,
  type LimitProblem,
  type RateLimit,
} from "./limits.ts";
export { addressKey, type Cidr, parseCidr } from "./cidr.ts";
export { SharedCounts } from "./shared_counts.ts";
export type { OpenResult } from "./counts.ts";
export type { SharedCountsOptions } from "./shared_layout.ts";
export { REFUSAL_REASONS, type RefusalReason } from "./refusals.ts";
export {
  DATAGRAM_DEFAULTS,
  DATAGRAM_DROPS,
  type DatagramDrop,
  DatagramPolicy,
  type DatagramPolicyOptions,
  isServicePort,
  SERVICE_PORTS,
} from "./datagrams.ts";
