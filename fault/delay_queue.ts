/**
 * Latency with jitter for a byte stream, order kept: a reader that goes on
 * reading from the socket while what it read waits, each chunk handed on
 * its delay (± jitter) after it came, never before the chunk before it.
 *
 * @module
 */
import { sleepUnless } from "../transport/wait.ts";

/** Read ahead of the echo at most this much: a peer that sends fast backs up in the kernel. */
const MAX_AHEAD_BYTES = 1 << 20;
const READ_BYTES = 16384;

interface Chunk {
  bytes: Uint8Array;
  /** When it may go on, as `performance.now()`. */
  readonly due: number;
}

/**
 * The delayed side of a stream: {@linkcode DelayQueue.read} returns what
 * `source` gave, each chunk no sooner than `delayMs` ± up to `jitterMs`
 * after it came, in order.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { DelayQueue } from "./delay_queue.ts";
 * let given = false;
 * const source = (p: Uint8Array) => Promise.resolve(given ? null : (given = true, p[0] = 7, 1));
 * const queue = new DelayQueue(source, 30, 0, Math.random, new Promise(() => {}));
 * const start = performance.now();
 * const n = await queue.read(new Uint8Array(4));
 * ok(n === 1 && performance.now() - start >= 29);
 * ```
 */
export class DelayQueue {
  readonly #source: (p: Uint8Array) => Promise<number | null>;
  readonly #delayMs: number;
  readonly #jitterMs: number;
  readonly #random: () => number;
  readonly #closing: Promise<void>;
  readonly #chunks: Chunk[] = [];
  #queued = 0;
  #lastDue = 0;
  #end: { error: unknown } | "eof" | undefined;
  #pumping = false;
  #stopped = false;
  /** Wakes the reader (a chunk came) or the pump (room was made). */
  #wake: PromiseWithResolvers<void> = Promise.withResolvers();

  /** Reads from `source` once first asked; `closing` settles when the connection closes. */
  constructor(
    source: (p: Uint8Array) => Promise<number | null>,
    delayMs: number,
    jitterMs: number,
    random: () => number,
    closing: Promise<void>,
  ) {
    this.#source = source;
    this.#delayMs = delayMs;
    this.#jitterMs = jitterMs;
    this.#random = random;
    this.#closing = closing;
  }

  /** Stops reading from the source after the read under way (a stall). */
  stop(): void {
    this.#stopped = true;
  }

  /** The next bytes, once due; `null` at the end of the stream; rejects as the source did. */
  async read(p: Uint8Array): Promise<number | null> {
    if (!this.#pumping) {
      this.#pumping = true;
      void this.#pump();
    }
    while (this.#chunks.length === 0) {
      const end = this.#end;
      if (end === "eof") return null;
      if (end !== undefined) throw end.error;
      await this.#waitForWake();
    }
    const head = this.#chunks[0];
    const wait = head.due - performance.now();
    if (wait > 0 && !(await sleepUnless(wait, this.#closing))) {
      throw new Deno.errors.BadResource("the connection was closed");
    }
    const n = Math.min(p.length, head.bytes.length);
    p.set(head.bytes.subarray(0, n));
    if (n === head.bytes.length) this.#chunks.shift();
    else head.bytes = head.bytes.subarray(n);
    this.#queued -= n;
    this.#notify();
    return n;
  }

  async #pump(): Promise<void> {
    try {
      while (!this.#stopped) {
        if (this.#queued >= MAX_AHEAD_BYTES) {
          await this.#waitForWake();
          continue;
        }
        const buffer = new Uint8Array(READ_BYTES);
        const n = await this.#source(buffer);
        if (n === null) {
          this.#end = "eof";
          break;
        }
        const now = performance.now();
        const offset = this.#jitterMs * (2 * this.#random() - 1);
        this.#lastDue = Math.max(this.#lastDue, now + Math.max(0, this.#delayMs + offset));
        this.#chunks.push({ bytes: buffer.subarray(0, n), due: this.#lastDue });
        this.#queued += n;
        this.#notify();
      }
    } catch (error) {
      this.#end = { error };
    }
    this.#notify();
  }

  #notify(): void {
    this.#wake.resolve();
    this.#wake = Promise.withResolvers();
  }

  async #waitForWake(): Promise<void> {
    const woken = await Promise.race([
      this.#wake.promise.then(() => true),
      this.#closing.then(() => false),
    ]);
    if (!woken) throw new Deno.errors.BadResource("the connection was closed");
  }
}
