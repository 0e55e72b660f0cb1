/**
 * Why connections are refused or closed by a limit, and a zeroed count of each.
 *
 * @module
 */

/**
 * Why a connection was refused or closed. `idle` and `lifetime` are decided
 * outside the guard and only recorded through {@link Guard.count}.
 *
 * @example
 * ```ts
 * const reason: RefusalReason = "per-ip";
 * ```
 */
export type RefusalReason = "cap" | "per-ip" | "rate" | "denied" | "idle" | "lifetime";

/**
 * Every {@link RefusalReason}, in a stable order for metrics output.
 *
 * @example
 * ```ts
 * for (const reason of REFUSAL_REASONS) console.log(reason);
 * ```
 */
export const REFUSAL_REASONS: readonly RefusalReason[] = Object.freeze([
  "cap",
  "per-ip",
  "rate",
  "denied",
  "idle",
  "lifetime",
]);

/**
 * A fresh record of refusal counts, every reason at zero.
 *
 * @example
 * ```ts
 * import { noRefusals } from "./refusals.ts";
 * console.assert(noRefusals()["per-ip"] === 0);
 * ```
 */
export function noRefusals(): Record<RefusalReason, number> {
  return { cap: 0, "per-ip": 0, rate: 0, denied: 0, idle: 0, lifetime: 0 };
}
