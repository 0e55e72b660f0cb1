/**
 * What a connection whose echo cannot be written pins, on Deno's engine
 * (`echoConnection`): its read buffer stops at 16 KiB until the peer has
 * taken `bulkAfterBytes` with every write in full, and drops back there when
 * a write falls short. Over a scripted stream, so that the read sizes can be
 * checked one by one; the bytes are checked too.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type Duplex, echoConnection, UNPROVEN_BUFFER_BYTES } from "../transport/echo.ts";
import { pattern, sameBytes } from "./helpers.ts";

/** Fills every read it is given (up to `total` bytes), takes writes as `takes` says, records it all. */
class Firehose implements Duplex {
  readonly readSizes: number[] = [];
  readonly written: Uint8Array;
  #read = 0;
  #written = 0;
  readonly #source: Uint8Array;
  readonly #takes: (writeIndex: number, length: number) => number;
  #writes = 0;

  constructor(source: Uint8Array, takes: (writeIndex: number, length: number) => number) {
    this.#source = source;
    this.written = new Uint8Array(source.length);
    this.#takes = takes;
  }

  read(p: Uint8Array): Promise<number | null> {
    this.readSizes.push(p.length);
    if (this.#read === this.#source.length) return Promise.resolve(null);
    const n = Math.min(p.length, this.#source.length - this.#read);
    p.set(this.#source.subarray(this.#read, this.#read + n));
    this.#read += n;
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    const n = Math.max(1, Math.min(p.length, this.#takes(this.#writes++, p.length)));
    this.written.set(p.subarray(0, n), this.#written);
    this.#written += n;
    return Promise.resolve(n);
  }

  close(): void {}
}

Deno.test("echo: the read buffer stops at 16 KiB until the peer has taken bulkAfterBytes in full, then grows to the maximum", async () => {
  const source = pattern(3 << 20, 1);
  const stream = new Firehose(source, (_, length) => length);
  const bulkAfterBytes = 1 << 20;
  strictEqual(await echoConnection(stream, { bulkAfterBytes }), "eof");
  ok(sameBytes(stream.written, source), "the echo differs");
  const sizes = stream.readSizes;
  deepStrictEqual(sizes.slice(0, 3), [1024, 4096, UNPROVEN_BUFFER_BYTES]);
  // 1 KiB + 4 KiB + n × 16 KiB reach 1 MiB at the 64th read of 16 KiB; the next read grows.
  const unproven = sizes.filter((size) => size === UNPROVEN_BUFFER_BYTES).length;
  strictEqual(unproven, 64);
  ok(sizes.slice(2 + unproven).every((size) => size === 65536), `sizes: ${sizes.slice(60, 70)}`);
});

Deno.test("echo: a write that falls short drops the buffer back to 16 KiB and starts the proof again, every byte still in order", async () => {
  const source = pattern(6 << 20, 2);
  // The peer takes everything, except that the 100th write takes 100 bytes.
  const stream = new Firehose(source, (i, length) => i === 100 ? 100 : length);
  const bulkAfterBytes = 1 << 20;
  const counters = { bytesIn: 0, bytesOut: 0 };
  strictEqual(await echoConnection(stream, { bulkAfterBytes, counters }), "eof");
  ok(sameBytes(stream.written, source), "the echo differs");
  deepStrictEqual(counters, { bytesIn: source.length, bytesOut: source.length });
  const sizes = stream.readSizes;
  // Reads 0 and 1 grow, 2-65 are 16 KiB, then 64 KiB; write 100 is read 100's, one write a read.
  deepStrictEqual(sizes.slice(98, 102), [65536, 65536, 65536, UNPROVEN_BUFFER_BYTES]);
  // Then 1 MiB more at 16 KiB (reads 101-164) before it grows again.
  deepStrictEqual(sizes.slice(101, 165), new Array(64).fill(UNPROVEN_BUFFER_BYTES));
  strictEqual(sizes[165], 65536);
});

Deno.test("echo: a maximum below 16 KiB is the limit from the start; bulkAfterBytes 0 grows at once", async () => {
  const small = new Firehose(pattern(100_000, 3), (_, length) => length);
  await echoConnection(small, { maxBufferSize: 8192 });
  strictEqual(Math.max(...small.readSizes), 8192);
  const eager = new Firehose(pattern(200_000, 4), (_, length) => length);
  await echoConnection(eager, { bulkAfterBytes: 0 });
  deepStrictEqual(eager.readSizes.slice(0, 4), [1024, 4096, 16384, 65536]);
});
