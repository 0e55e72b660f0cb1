/**
 * Why connections are refused or closed by a limit, and a zeroed count of each.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";

/**
 * Why a connection was refused or closed. `idle` and `lifetime` are decided
 * outside the guard and only recorded through `Guard.count`, as are
 * `proxy-untrusted` (a peer not trusted to send a PROXY protocol header) and
 * `proxy-header` (a missing, late, truncated or malformed PROXY header).
 *
 * @example
 * ```ts no-assert
 * const reason: RefusalReason = "per-ip";
 * ```
 */
export type RefusalReason =
  | "cap"
  | "per-ip"
  | "rate"
  | "denied"
  | "idle"
  | "lifetime"
  | "proxy-untrusted"
  | "proxy-header";

/**
 * Every {@link RefusalReason}, in a stable order for metrics output.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * equal(REFUSAL_REASONS.length, 8);
 * equal(REFUSAL_REASONS[0], "cap");
 * ```
 */
export const REFUSAL_REASONS: readonly RefusalReason[] = Object.freeze([
  "cap",
  "per-ip",
  "rate",
  "denied",
  "idle",
  "lifetime",
  "proxy-untrusted",
  "proxy-header",
]);

/**
 * A fresh record of refusal counts, every reason at zero.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noRefusals } from "./refusals.ts";
 * equal(noRefusals()["per-ip"], 0);
 * ```
 */
export function noRefusals(): Record<RefusalReason, number> {
  return {
    cap: 0,
    "per-ip": 0,
    rate: 0,
    denied: 0,
    idle: 0,
    lifetime: 0,
    "proxy-untrusted": 0,
    "proxy-header": 0,
  };
}

/**
 * The position of `reason` in {@link REFUSAL_REASONS}, which is also where
 * the shared counters keep it; checks a reason that came from untyped code.
 *
 * @throws {RangeError} for a reason not in {@link REFUSAL_REASONS}.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { refusalIndex } from "./refusals.ts";
 * equal(refusalIndex("per-ip"), 1);
 * throws(() => refusalIndex("bogus" as never), { message: 'invalid refusal reason "bogus"' });
 * ```
 */
export function refusalIndex(reason: RefusalReason): number {
  const index = REFUSAL_REASONS.indexOf(reason);
  if (index === -1) throw new RangeError(`invalid refusal reason ${describeValue(reason)}`);
  return index;
}
