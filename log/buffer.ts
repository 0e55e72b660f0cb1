/**
 * A bounded, non-blocking buffer in front of a slow writer such as stderr.
 *
 * A blocking `writeSync` to a pipe whose reader stalled (a hung log shipper, a
 * full journald socket) stops the whole event loop, and with it every
 * connection. Here lines are queued, written by one asynchronous write at a
 * time (Deno runs it off the event loop), and once the queue holds its bound
 * new lines are dropped and counted; when writing works again, one line says
 * how many were lost, at the place where they are missing.
 *
 * @module
 */

/** What {@linkcode LogBuffer} uses for the options left out. */
export const LOG_BUFFER_DEFAULTS = {
  /** Characters queued at most (about bytes, for ASCII lines): a few thousand lines. */
  maxChars: 1024 * 1024,
  /** Characters handed to one write at most. */
  chunkChars: 64 * 1024,
} as const satisfies Required<Pick<LogBufferOptions, "maxChars" | "chunkChars">>;

/** Options for {@linkcode LogBuffer}. */
export interface LogBufferOptions {
  /**
   * Writes some of `bytes` and resolves with how many; rejects when the
   * destination is gone, after which the buffer drops everything. `bytes` is
   * the buffer's own, reused once the promise has settled.
   */
  write: (bytes: Uint8Array) => Promise<number>;
  /**
   * Writes some of `bytes` at once, blocking; only used by
   * {@linkcode LogBuffer.flushSync} when the process is about to die.
   */
  writeSync?: (bytes: Uint8Array) => number;
  /** The line (with its newline) that reports `count` lost lines. @default {a plain text line} */
  droppedLine?: (count: number) => string;
  /** Characters queued at most; a single longer line is still taken into an empty buffer. @default {1048576} */
  maxChars?: number;
  /** Characters handed to one write at most. @default {65536} */
  chunkChars?: number;
}

const encoder = new TextEncoder();

/** A write pending this long means the reader has stalled. */
const STALLED_MS = 100;
/** How long lines gather before a write, so that a busy server writes few, larger chunks. */
const COALESCE_MS = 2;

/**
 * Lines waiting for a writer that may be slow or stuck, with at most one write
 * in flight; never blocks its caller.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { LogBuffer } from "./buffer.ts";
 * let written = "";
 * const buffer = new LogBuffer({
 *   maxChars: 10,
 *   write: (bytes) => {
 *     written += new TextDecoder().decode(bytes);
 *     return Promise.resolve(bytes.length);
 *   },
 * });
 * buffer.push("one\n");
 * buffer.push("two\n");
 * equal(await buffer.flush(1000), true);
 * equal(written, "one\ntwo\n");
 * equal(buffer.dropped, 0);
 * ```
 */
export class LogBuffer {
  readonly #write: (bytes: Uint8Array) => Promise<number>;
  readonly #writeSync: ((bytes: Uint8Array) => number) | undefined;
  readonly #droppedLine: (count: number) => string;
  readonly #maxChars: number;
  readonly #chunkChars: number;
  /**
   * The bytes of the write in flight, reused from one write to the next (there
   * is one at a time): a fresh array a write left 64 KiB chunks for the
   * garbage collector to find during a burst of lines.
   */
  #scratch: Uint8Array | undefined;
  /** Queued texts (each one line or more) and how many lines each holds. */
  #texts: string[] = [];
  #lines: number[] = [];
  #chars = 0;
  /** A write is in flight, or one is about to start. */
  #writing = false;
  /** When the write in flight began (`performance.now()`). */
  #writeStartedAt = 0;
  /** The destination failed: nothing more can be written. */
  #broken = false;
  #dropped = 0;
  #unreported = 0;
  #idle: Array<() => void> = [];

  /**
   * Makes an empty buffer in front of `options.write`.
   *
   * @throws {RangeError} when a bound is not a positive integer.
   */
  constructor(options: LogBufferOptions) {
    this.#write = options.write;
    this.#writeSync = options.writeSync;
    this.#droppedLine = options.droppedLine ??
      ((count) => `${count} log lines dropped: the log output was not being read\n`);
    this.#maxChars = options.maxChars ?? LOG_BUFFER_DEFAULTS.maxChars;
    this.#chunkChars = options.chunkChars ?? LOG_BUFFER_DEFAULTS.chunkChars;
    for (const [name, value] of [["maxChars", this.#maxChars], ["chunkChars", this.#chunkChars]]) {
      if (!Number.isSafeInteger(value) || (value as number) <= 0) {
        throw new RangeError(`invalid ${name} ${value}: must be a positive integer`);
      }
    }
  }

  /** Lines dropped so far because the buffer was full or the destination gone. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Characters waiting to be written (the one write in flight not included). */
  get queued(): number {
    return this.#chars;
  }

  /**
   * Queues `text` (`lines` lines, each ending in a newline) to be written, or
   * drops it and counts its lines when the buffer is full. Never blocks.
   *
   * @returns whether it was queued.
   */
  push(text: string, lines = 1): boolean {
    if (this.#broken) {
      this.#dropped += lines;
      return false;
    }
    // The report of a gap goes in before anything after the gap, or nothing does.
    const report = this.#unreported > 0 ? this.#droppedLine(this.#unreported) : "";
    if (this.#chars > 0 && this.#chars + report.length + text.length > this.#maxChars) {
      this.#dropped += lines;
      this.#unreported += lines;
      return false;
    }
    if (report !== "") this.#enqueue(report, 1);
    this.#enqueue(text, lines);
    return true;
  }

  /**
   * Resolves once everything queued is written, with `true`; or with `false`
   * after `timeoutMs` if the writer is stuck (a stalled reader), so that an
   * exit never waits for ever.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (!this.#writing && this.#chars === 0) return true;
    const done = Promise.withResolvers<boolean>();
    const wake = () => done.resolve(true);
    this.#idle.push(wake);
    const timer = setTimeout(() => done.resolve(false), timeoutMs);
    try {
      return await done.promise;
    } finally {
      clearTimeout(timer);
      this.#idle = this.#idle.filter((waiter) => waiter !== wake);
    }
  }

  /**
   * Writes what is queued at once, blocking, for the moment the process is
   * about to die (an uncaught error) and no later turn of the event loop will
   * come. Best effort: without `writeSync`, or with the destination gone, it
   * does nothing; nor while an asynchronous write has been pending for a
   * while, since the reader is then stalled and a blocking write would hang
   * the dying process instead of letting it exit.
   */
  flushSync(): void {
    if (this.#writeSync === undefined || this.#broken || this.#chars === 0) return;
    if (this.#writing && performance.now() - this.#writeStartedAt > STALLED_MS) return;
    const bytes = encoder.encode(this.#texts.join(""));
    this.#texts = [];
    this.#lines = [];
    this.#chars = 0;
    try {
      for (let off = 0; off < bytes.length;) off += this.#writeSync(bytes.subarray(off));
    } catch {
      this.#broken = true;
    }
  }

  #enqueue(text: string, lines: number): void {
    if (text === "") return;
    this.#texts.push(text);
    this.#lines.push(lines);
    this.#chars += text.length;
    this.#unreported = 0;
    if (!this.#writing) {
      this.#writing = true;
      this.#writeStartedAt = performance.now();
      // Lines logged within the next few milliseconds go out in one write:
      // an asynchronous write per turn of the event loop cost churn (two
      // lines a connection) 9 % of its connections a second.
      setTimeout(() => void this.#pump(), COALESCE_MS);
    }
  }

  /** `text` as UTF-8, in the reused scratch array when it fits (any chunk of `chunkChars` does). */
  #encode(text: string): Uint8Array {
    // Only a single line longer than a chunk is taken whole, into an array of its own.
    if (text.length > this.#chunkChars) return encoder.encode(text);
    // A UTF-16 code unit takes three bytes at most.
    this.#scratch ??= new Uint8Array(this.#chunkChars * 3);
    return this.#scratch.subarray(0, encoder.encodeInto(text, this.#scratch).written);
  }

  /** Takes up to one chunk's worth of queued texts (at least one), and counts their lines. */
  #take(): { text: string; lines: number } {
    let chars = 0;
    let count = 0;
    while (count < this.#texts.length) {
      const length = this.#texts[count].length;
      if (count > 0 && chars + length > this.#chunkChars) break;
      chars += length;
      count++;
    }
    const text = this.#texts.splice(0, count).join("");
    const lines = this.#lines.splice(0, count).reduce((sum, n) => sum + n, 0);
    this.#chars -= chars;
    return { text, lines };
  }

  async #pump(): Promise<void> {
    let inFlight = 0;
    try {
      while (this.#chars > 0) {
        const chunk = this.#take();
        inFlight = chunk.lines;
        const bytes = this.#encode(chunk.text);
        for (let off = 0; off < bytes.length;) off += await this.#write(bytes.subarray(off));
        inFlight = 0;
        // Writing works again: say how many lines were lost while it did not.
        if (this.#unreported > 0) this.push("", 0);
      }
    } catch {
      // The reader is gone (a closed pipe): nothing queued can ever be written.
      this.#broken = true;
      this.#dropped += inFlight + this.#lines.reduce((sum, lines) => sum + lines, 0);
      this.#texts = [];
      this.#lines = [];
      this.#chars = 0;
    } finally {
      this.#writing = false;
      for (const wake of this.#idle.splice(0)) wake();
    }
  }
}
