/**
 * How shared_counts.ts lays its counters out in a SharedArrayBuffer, and how
 * a client key picks its slot: allocation, validation of a received buffer,
 * typed views over its parts, and the key hash.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";
import { REFUSAL_REASONS } from "./refusals.ts";

/** Largest value of an Int32 slot, and so the largest cap. */
export const INT32_MAX = 0x7fff_ffff;
/** Slots when none are asked for: 384 KiB of buffer. */
const DEFAULT_SLOTS = 1 << 15;
/** Most slots a buffer may have. */
const MAX_SLOTS = 1 << 20;
/** "ECH1": lets a receiver reject a buffer that was not laid out here. */
const MAGIC = 0x4543_4831;

// Int32 header words: magic, slot count, open total, cap.
const HEADER_MAGIC = 0;
const HEADER_SLOTS = 1;
/** Header word holding the open connections in total. */
export const HEADER_OPEN = 2;
/** Header word holding the cap on open connections. */
export const HEADER_CAP = 3;
const HEADER_WORDS = 4;

// Layout: Int32 header, BigInt64 refusal counters, BigInt64 bucket slots,
// Int32 count slots. The 64-bit parts come first so they stay 8-byte aligned
// whatever the slot count.
const REFUSALS_OFFSET = HEADER_WORDS * 4;
const BUCKETS_OFFSET = REFUSALS_OFFSET + REFUSAL_REASONS.length * 8;

/**
 * Typed views over the parts of one buffer.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { allocate, HEADER_CAP } from "./shared_layout.ts";
 * const views: SharedViews = allocate({ slots: 16, cap: 100 });
 * equal(views.header[HEADER_CAP], 100);
 * ```
 */
export interface SharedViews {
  /** The whole buffer, to post to other Workers. */
  readonly buffer: SharedArrayBuffer;
  /** Magic, slot count, open total, cap: see the `HEADER_*` indices. */
  readonly header: Int32Array;
  /** One counter per refusal reason, in `REFUSAL_REASONS` order. */
  readonly refusals: BigInt64Array;
  /** Per slot: time in µs at which the slot's token bucket is full again (see gcra.ts). */
  readonly buckets: BigInt64Array;
  /** Per slot: open connections. */
  readonly counts: Int32Array;
  /** Slot count minus one, to turn a hash into a slot with `&`. */
  readonly mask: number;
}

/**
 * Options for `SharedCounts.create`. Every field is optional.
 *
 * @example
 * ```ts no-assert
 * const options: SharedCountsOptions = { slots: 1 << 12, cap: 1_000 };
 * ```
 */
export interface SharedCountsOptions {
  /**
   * Hashed slots for per-key counts and for per-key token buckets (a power of
   * two, 1 to 2^20). The buffer takes 12 bytes per slot, so the default is
   * 384 KiB. Keys that hash to the same slot share a count and a bucket.
   * @default 32_768
   */
  slots?: number;
  /**
   * Initial cap on total open connections (positive integer below 2^31).
   * Each `Guard` attached to the counts lowers it to its `maxConns`.
   * @default 2_147_483_647
   */
  cap?: number;
}

function byteLengthFor(slots: number): number {
  return BUCKETS_OFFSET + slots * 8 + slots * 4;
}

/** A power of two from 1 to MAX_SLOTS. */
function validSlots(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1 && value <= MAX_SLOTS &&
    (value & (value - 1)) === 0;
}

/**
 * A new zeroed buffer laid out for `options`, with its cap set, and views
 * over it.
 *
 * @throws {RangeError} for an invalid option, naming it and its value.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { REFUSAL_REASONS } from "./refusals.ts";
 * import { allocate } from "./shared_layout.ts";
 * equal(
 *   allocate({ slots: 1 << 16 }).buffer.byteLength,
 *   16 + REFUSAL_REASONS.length * 8 + (1 << 16) * 12,
 * );
 * ```
 */
export function allocate(options: SharedCountsOptions): SharedViews {
  const slots = options.slots ?? DEFAULT_SLOTS;
  if (!validSlots(slots)) {
    throw new RangeError(
      `invalid slots ${describeValue(slots)}: must be a power of two from 1 to ${MAX_SLOTS}`,
    );
  }
  const cap = options.cap ?? INT32_MAX;
  if (!Number.isSafeInteger(cap) || cap <= 0 || cap > INT32_MAX) {
    throw new RangeError(
      `invalid cap ${describeValue(cap)}: must be a positive integer up to ${INT32_MAX}`,
    );
  }
  const buffer = new SharedArrayBuffer(byteLengthFor(slots));
  const header = new Int32Array(buffer, 0, HEADER_WORDS);
  header[HEADER_SLOTS] = slots;
  header[HEADER_CAP] = cap;
  // Written last: the buffer only becomes valid once the header is complete.
  Atomics.store(header, HEADER_MAGIC, MAGIC);
  return viewsOf(buffer);
}

/**
 * Views over a buffer made by {@link allocate}, typically received through
 * `postMessage`.
 *
 * @throws {TypeError} when `buffer` is not a SharedArrayBuffer laid out here.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { allocate, attach } from "./shared_layout.ts";
 * equal(attach(allocate({ slots: 16 }).buffer).mask, 15);
 * throws(() => attach(new SharedArrayBuffer(8)), TypeError);
 * ```
 */
export function attach(buffer: SharedArrayBuffer): SharedViews {
  const invalid = () =>
    new TypeError(`invalid buffer ${describeValue(buffer)}: must come from SharedCounts.create`);
  if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < BUCKETS_OFFSET) {
    throw invalid();
  }
  const header = new Int32Array(buffer, 0, HEADER_WORDS);
  const slots = Atomics.load(header, HEADER_SLOTS);
  if (
    Atomics.load(header, HEADER_MAGIC) !== MAGIC || !validSlots(slots) ||
    buffer.byteLength !== byteLengthFor(slots)
  ) {
    throw invalid();
  }
  return viewsOf(buffer);
}

function viewsOf(buffer: SharedArrayBuffer): SharedViews {
  const header = new Int32Array(buffer, 0, HEADER_WORDS);
  const slots = header[HEADER_SLOTS];
  return {
    buffer,
    header,
    refusals: new BigInt64Array(buffer, REFUSALS_OFFSET, REFUSAL_REASONS.length),
    buckets: new BigInt64Array(buffer, BUCKETS_OFFSET, slots),
    counts: new Int32Array(buffer, BUCKETS_OFFSET + slots * 8, slots),
    mask: slots - 1,
  };
}

/**
 * The slot of `key` among `mask + 1` slots. FNV-1a over the UTF-16 code
 * units, finished with murmur3's fmix32: FNV's low bits depend only on the
 * low bits of each step, and the slot is exactly the low bits, so they are
 * mixed with the high ones first.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { slotOf } from "./shared_layout.ts";
 * const slot = slotOf("10.0.0.1", 1023);
 * ok(slot >= 0 && slot < 1024);
 * ```
 */
export function slotOf(key: string, mask: number): number {
  let hash = 0x811c_9dc5;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ key.charCodeAt(i), 0x0100_0193);
  }
  hash = Math.imul(hash ^ (hash >>> 16), 0x85eb_ca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2_ae35);
  return ((hash ^ (hash >>> 16)) >>> 0) & mask;
}

/**
 * A cap as the header holds it: a whole number from 1 to 2^31 - 1.
 *
 * @throws {RangeError} when `limit` is NaN.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { capFor } from "./shared_layout.ts";
 * equal(capFor(0), 1);
 * equal(capFor(2.5), 2);
 * ```
 */
export function capFor(limit: number): number {
  if (Number.isNaN(limit)) throw new RangeError("invalid cap limit NaN");
  return Math.max(1, Math.min(INT32_MAX, Math.floor(limit)));
}
