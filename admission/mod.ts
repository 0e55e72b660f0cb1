/**
 * Admission control: who may connect, how many at once, how fast.
 *
 * @module
 */
export { Guard, GUARD_DEFAULTS, type GuardOptions } from "./guard.ts";
export { type Cidr, parseCidr } from "./cidr.ts";
export { REFUSAL_REASONS, type RefusalReason } from "./refusals.ts";
