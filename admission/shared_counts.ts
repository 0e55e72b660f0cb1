/**
 * Admission counts kept in a SharedArrayBuffer, so that several Workers, each
 * with its own listener and `Guard`, enforce one set of global limits:
 * total open connections and its cap, open connections per client key, token
 * buckets per client key, and refusal counters.
 *
 * Every operation is a handful of `Atomics` calls on the buffer: no locks, no
 * messages between threads on the accept path.
 *
 * @module
 */
import { describeValue } from "../text/words.ts";

import { noRefusals, REFUSAL_REASONS, type RefusalReason } from "./refusals.ts";

/**
 * Options for {@link SharedCounts.create}. Every field is optional.
 *
 * @example
 * ```ts
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

/**
 * Result of {@link SharedCounts.tryOpen}: `ok`, or the limit that refused.
 *
 * @example
 * ```ts
 * const result: OpenResult = "per-ip";
 * ```
 */
export type OpenResult = "ok" | "per-ip" | "cap";

const INT32_MAX = 0x7fff_ffff;
const DEFAULT_SLOTS = 1 << 15;
const MAX_SLOTS = 1 << 20;
/** "ECH1": lets the constructor reject a buffer that was not made by create(). */
const MAGIC = 0x4543_4831;

// Layout: Int32 header, BigInt64 refusal counters, BigInt64 bucket slots,
// Int32 count slots. The 64-bit parts come first so they stay 8-byte aligned
// whatever the slot count.
const HEADER_MAGIC = 0;
const HEADER_SLOTS = 1;
const HEADER_OPEN = 2;
const HEADER_CAP = 3;
const HEADER_WORDS = 4;
const REFUSALS_OFFSET = HEADER_WORDS * 4;
const BUCKETS_OFFSET = REFUSALS_OFFSET + REFUSAL_REASONS.length * 8;

function byteLengthFor(slots: number): number {
  return BUCKETS_OFFSET + slots * 8 + slots * 4;
}

function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1 && value <= MAX_SLOTS &&
    (value & (value - 1)) === 0;
}

/**
 * FNV-1a over the UTF-16 code units, finished with murmur3's fmix32: FNV's
 * low bits depend only on the low bits of each step, and the slot index is
 * exactly the low bits, so they are mixed with the high ones first.
 */
function hashKey(key: string): number {
  let hash = 0x811c_9dc5;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ key.charCodeAt(i), 0x0100_0193);
  }
  hash = Math.imul(hash ^ (hash >>> 16), 0x85eb_ca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2_ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/**
 * Limits and counters shared by every thread holding the same buffer. Create
 * it once with {@link SharedCounts.create}, post {@link SharedCounts.buffer}
 * to each Worker, and attach there with `new SharedCounts(buffer)`.
 *
 * Keys (normally `addressKey` results from cidr.ts) are hashed into a fixed
 * number of slots, so memory never grows with the number of clients. Two keys
 * in one slot share their open count and their token bucket: each is limited
 * at least as strictly as configured, never less, which is the safe side for
 * admission control.
 *
 * Atomicity: the total and each per-key count only move through
 * compare-and-swap loops that re-check the limit on every attempt, so no
 * interleaving of threads admits beyond `cap` or `maxPerKey`. A per-key
 * increment is rolled back when the total then turns out to be full; in that
 * short window a concurrent attempt for the same slot may be refused
 * `per-ip` although it would have fit, which errs on the strict side.
 *
 * @example
 * ```ts
 * const counts = SharedCounts.create({ cap: 100 });
 * // Post counts.buffer to each Worker; there: const counts = SharedCounts.from(event.data);
 * const sameCounts = SharedCounts.from(counts.buffer);
 * if (sameCounts.tryOpen("10.0.0.1", 8) === "ok") counts.close("10.0.0.1");
 * console.assert(counts.open === 0);
 * ```
 */
export class SharedCounts {
  readonly #buffer: SharedArrayBuffer;
  readonly #header: Int32Array;
  readonly #refusals: BigInt64Array;
  /** Per slot: time in microseconds at which the token bucket is full again (GCRA). */
  readonly #buckets: BigInt64Array;
  /** Per slot: open connections. */
  readonly #counts: Int32Array;
  readonly #mask: number;
  /** Shared by this instance's waiters: one wake-up resolves them all. */
  #notFull: PromiseWithResolvers<void> | null = null;

  /**
   * Allocates and initialises a new buffer.
   *
   * @throws {RangeError} for an invalid option, naming it and its value.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create({ slots: 1 << 16 });
   * counts.buffer.byteLength; // 786_496
   * ```
   */
  static create(options: SharedCountsOptions = {}): SharedCounts {
    const slots = options.slots ?? DEFAULT_SLOTS;
    if (!isPowerOfTwo(slots)) {
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
    return new SharedCounts(buffer);
  }

  /**
   * Same as `new SharedCounts(buffer)`, for symmetry with
   * {@link SharedCounts.create}.
   *
   * @throws {TypeError} when `buffer` is not a SharedArrayBuffer laid out by `create`.
   *
   * @example
   * ```ts
   * const buffer = SharedCounts.create().buffer; // in a Worker: the buffer posted to it
   * const counts = SharedCounts.from(buffer);
   * ```
   */
  static from(buffer: SharedArrayBuffer): SharedCounts {
    return new SharedCounts(buffer);
  }

  /**
   * Attaches to a buffer made by {@link SharedCounts.create}, typically one
   * received through `postMessage` in a Worker.
   *
   * @throws {TypeError} when `buffer` is not a SharedArrayBuffer laid out by `create`.
   *
   * @example
   * ```ts
   * const buffer = SharedCounts.create().buffer; // in a Worker: the buffer posted to it
   * const counts = new SharedCounts(buffer);
   * ```
   */
  constructor(buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < BUCKETS_OFFSET) {
      throw new TypeError(
        `invalid buffer ${describeValue(buffer)}: must come from SharedCounts.create`,
      );
    }
    const header = new Int32Array(buffer, 0, HEADER_WORDS);
    const slots = Atomics.load(header, HEADER_SLOTS);
    if (
      Atomics.load(header, HEADER_MAGIC) !== MAGIC || !isPowerOfTwo(slots) ||
      buffer.byteLength !== byteLengthFor(slots)
    ) {
      throw new TypeError(
        `invalid buffer ${describeValue(buffer)}: must come from SharedCounts.create`,
      );
    }
    this.#buffer = buffer;
    this.#header = header;
    this.#refusals = new BigInt64Array(buffer, REFUSALS_OFFSET, REFUSAL_REASONS.length);
    this.#buckets = new BigInt64Array(buffer, BUCKETS_OFFSET, slots);
    this.#counts = new Int32Array(buffer, BUCKETS_OFFSET + slots * 8, slots);
    this.#mask = slots - 1;
  }

  /**
   * The underlying buffer, to post to other Workers.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create();
   * const twin = new SharedCounts(counts.buffer); // same counts
   * ```
   */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /**
   * Number of hashed slots for per-key counts and buckets.
   *
   * @example
   * ```ts
   * SharedCounts.create({ slots: 256 }).slots; // 256
   * ```
   */
  get slots(): number {
    return this.#mask + 1;
  }

  /**
   * Open connections, summed over every thread.
   *
   * @example
   * ```ts
   * SharedCounts.create().open; // 0
   * ```
   */
  get open(): number {
    return Atomics.load(this.#header, HEADER_OPEN);
  }

  /**
   * The cap on total open connections now in force.
   *
   * @example
   * ```ts
   * SharedCounts.create({ cap: 50 }).cap; // 50
   * ```
   */
  get cap(): number {
    return Atomics.load(this.#header, HEADER_CAP);
  }

  /**
   * True when `open >= cap`.
   *
   * @example
   * ```ts
   * SharedCounts.create({ cap: 1 }).full; // false
   * ```
   */
  get full(): boolean {
    return Atomics.load(this.#header, HEADER_OPEN) >= Atomics.load(this.#header, HEADER_CAP);
  }

  /**
   * Lowers the cap to `limit` for every thread (never raises it, never below
   * 1) and returns the cap now in force.
   *
   * @throws {RangeError} when `limit` is NaN.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create({ cap: 100 });
   * counts.lowerCap(40); // 40
   * counts.lowerCap(60); // 40
   * ```
   */
  lowerCap(limit: number): number {
    if (Number.isNaN(limit)) throw new RangeError("invalid cap limit NaN");
    const target = Math.max(1, Math.min(INT32_MAX, Math.floor(limit)));
    for (;;) {
      const cap = Atomics.load(this.#header, HEADER_CAP);
      if (cap <= target) return cap;
      if (Atomics.compareExchange(this.#header, HEADER_CAP, cap, target) === cap) return target;
    }
  }

  /**
   * Counts a new connection for `key` if its slot stays within `maxPerKey`
   * and the total within {@link SharedCounts.cap}; otherwise changes nothing
   * and names the limit (`per-ip` is checked first). Refusals are not
   * counted here; see {@link SharedCounts.count}.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create({ cap: 10 });
   * counts.tryOpen("10.0.0.1", 1); // "ok"
   * counts.tryOpen("10.0.0.1", 1); // "per-ip"
   * ```
   */
  tryOpen(key: string, maxPerKey: number): OpenResult {
    const slot = hashKey(key) & this.#mask;
    if (!this.#incrementBelow(slot, maxPerKey)) return "per-ip";
    for (;;) {
      const open = Atomics.load(this.#header, HEADER_OPEN);
      if (open >= Atomics.load(this.#header, HEADER_CAP)) {
        Atomics.sub(this.#counts, slot, 1);
        return "cap";
      }
      if (Atomics.compareExchange(this.#header, HEADER_OPEN, open, open + 1) === open) {
        return "ok";
      }
    }
  }

  /**
   * Uncounts a connection admitted by {@link SharedCounts.tryOpen} with the
   * same key (call it exactly once per admission), and wakes
   * {@link SharedCounts.whenNotFull} waiters in every thread.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create();
   * if (counts.tryOpen("10.0.0.1", 4) === "ok") counts.close("10.0.0.1");
   * counts.open; // 0
   * ```
   */
  close(key: string): void {
    Atomics.sub(this.#counts, hashKey(key) & this.#mask, 1);
    const before = Atomics.sub(this.#header, HEADER_OPEN, 1);
    const cap = Atomics.load(this.#header, HEADER_CAP);
    // A waiter only sleeps on a value it saw at or above the cap, and the cap
    // never rises, so the first close after it sleeps starts from >= cap:
    // notifying just then loses no wake-up and costs nothing below the cap.
    if (before >= cap) Atomics.notify(this.#header, HEADER_OPEN);
    // The notify reaches this thread's own waitAsync only through the event
    // loop; resolve local waiters now, as the in-process Guard does.
    if (before - 1 < cap) this.#wake();
  }

  /**
   * Open connections counted in `key`'s slot (so including any key that
   * shares the slot).
   *
   * @example
   * ```ts
   * SharedCounts.create().openFor("10.0.0.1"); // 0
   * ```
   */
  openFor(key: string): number {
    return Atomics.load(this.#counts, hashKey(key) & this.#mask);
  }

  /**
   * Spends a token from `key`'s bucket, which refills at `rate` per second up
   * to `burst` (the algorithm of token_bucket.ts: the slot holds the time at
   * which the bucket is full again, in microseconds; 0, an empty slot, means
   * full). `nowMs` must come from a clock that every thread shares, such as
   * `performance.timeOrigin + performance.now()`: each Worker's own
   * `performance.now()` starts at 0. The refill interval is rounded up to a
   * whole microsecond, so rounding never admits faster than `rate`.
   *
   * @throws {RangeError} when `rate` is not a positive finite number, `burst`
   *   not a finite number >= 1, or `nowMs` not finite.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create();
   * counts.takeToken("10.0.0.1", 1, 2, 0); // true
   * counts.takeToken("10.0.0.1", 1, 2, 0); // true
   * counts.takeToken("10.0.0.1", 1, 2, 0); // false
   * counts.takeToken("10.0.0.1", 1, 2, 1000); // true
   * ```
   */
  takeToken(key: string, rate: number, burst: number, nowMs: number): boolean {
    if (!Number.isFinite(rate) || rate <= 0) {
      throw new RangeError(`invalid rate ${describeValue(rate)}: must be a positive finite number`);
    }
    if (!Number.isFinite(burst) || burst < 1) {
      throw new RangeError(`invalid burst ${describeValue(burst)}: must be a finite number >= 1`);
    }
    if (!Number.isFinite(nowMs)) {
      throw new RangeError(`invalid nowMs ${describeValue(nowMs)}: must be a finite number`);
    }
    const slot = hashKey(key) & this.#mask;
    const intervalUs = Math.ceil(1e6 / rate);
    const interval = BigInt(intervalUs);
    const tolerance = BigInt(Math.floor((burst - 1) * intervalUs));
    const now = BigInt(Math.floor(nowMs * 1000));
    for (;;) {
      const stored = Atomics.load(this.#buckets, slot);
      // max() also makes a clock that steps backwards (or differs a little
      // between threads) harmless.
      const fullAt = stored > now ? stored : now;
      if (fullAt - now > tolerance) return false;
      if (Atomics.compareExchange(this.#buckets, slot, stored, fullAt + interval) === stored) {
        return true;
      }
    }
  }

  /**
   * Adds one to the counter for `reason`.
   *
   * @throws {RangeError} for a reason not in {@link REFUSAL_REASONS}.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create();
   * counts.count("idle");
   * counts.refusals.idle; // 1
   * ```
   */
  count(reason: RefusalReason): void {
    const index = REFUSAL_REASONS.indexOf(reason);
    if (index === -1) throw new RangeError(`invalid refusal reason ${describeValue(reason)}`);
    Atomics.add(this.#refusals, index, 1n);
  }

  /**
   * Snapshot of the refusal counters of every thread, one per
   * {@link RefusalReason}.
   *
   * @example
   * ```ts
   * SharedCounts.create().refusals; // { cap: 0, "per-ip": 0, rate: 0, denied: 0, idle: 0, lifetime: 0 }
   * ```
   */
  get refusals(): Readonly<Record<RefusalReason, number>> {
    const result = noRefusals();
    REFUSAL_REASONS.forEach((reason, index) => {
      result[reason] = Number(Atomics.load(this.#refusals, index));
    });
    return result;
  }

  /**
   * Slots in use: `perKey` with open connections, `buckets` with a token
   * bucket that is not full at `nowMs`. Scans every slot, so it is meant for
   * metrics, not for the accept path.
   *
   * @example
   * ```ts
   * SharedCounts.create().tracked(0); // { perKey: 0, buckets: 0 }
   * ```
   */
  tracked(nowMs: number): { readonly perKey: number; readonly buckets: number } {
    const now = BigInt(Math.floor(nowMs * 1000));
    let perKey = 0;
    let buckets = 0;
    for (let slot = 0; slot <= this.#mask; slot++) {
      if (Atomics.load(this.#counts, slot) !== 0) perKey++;
      if (Atomics.load(this.#buckets, slot) > now) buckets++;
    }
    return { perKey, buckets };
  }

  /**
   * Resolves immediately when not full, otherwise once `open` drops below
   * `cap` after a {@link SharedCounts.close} in any thread. All waiters wake
   * together and must still go through {@link SharedCounts.tryOpen}.
   *
   * Cross-thread wake-ups use `Atomics.waitAsync`, whose result Deno delivers
   * through the event loop but which does not keep the loop alive by itself:
   * something else must (in a server, the listener or a connection; in a
   * Worker, the Worker itself). A wait that is abandoned costs nothing: it
   * holds no timer or resource and ends with the next close at the cap.
   *
   * @example
   * ```ts
   * const counts = SharedCounts.create({ cap: 1 });
   * counts.tryOpen("10.0.0.1", 1);
   * const room = counts.whenNotFull();
   * counts.close("10.0.0.1"); // possibly in another Worker
   * await room;
   * ```
   */
  whenNotFull(): Promise<void> {
    if (!this.full) return Promise.resolve();
    let waiters = this.#notFull;
    if (waiters === null) {
      waiters = Promise.withResolvers<void>();
      this.#notFull = waiters;
      // #watch may find room at once (another thread closed since `full`
      // was read) and settle `waiters` before returning: keep our own
      // reference rather than reading this.#notFull again.
      void this.#watch(waiters);
    }
    return waiters.promise;
  }

  /** Sleeps on the total until not full, unless a local close wakes `waiters` first. */
  async #watch(waiters: PromiseWithResolvers<void>): Promise<void> {
    while (this.#notFull === waiters) {
      const open = Atomics.load(this.#header, HEADER_OPEN);
      if (open < Atomics.load(this.#header, HEADER_CAP)) {
        this.#wake();
        return;
      }
      // No timeout: the wait is neither a timer nor a resource, so an
      // abandoned one trips no sanitizer and holds no process open; and a
      // close after `open` was read either changes the value first (the
      // wait returns "not-equal" at once) or notifies it.
      const wait = Atomics.waitAsync(this.#header, HEADER_OPEN, open);
      if (wait.async) await wait.value;
    }
  }

  #wake(): void {
    const waiters = this.#notFull;
    if (waiters === null) return;
    this.#notFull = null;
    waiters.resolve();
  }

  #incrementBelow(slot: number, limit: number): boolean {
    for (;;) {
      const count = Atomics.load(this.#counts, slot);
      if (count >= limit) return false;
      if (Atomics.compareExchange(this.#counts, slot, count, count + 1) === count) return true;
    }
  }
}
