/**
 * The echo handler: reads from any duplex byte stream and writes every byte
 * back, in order, until the peer stops sending. TCP, TLS and Unix socket
 * connections all fit {@linkcode Duplex}.
 *
 * @module
 */

/** What the handler needs of a connection; `Deno.Conn` and `Deno.TlsConn` fit. */
export interface Duplex {
  /** Reads into `p`, resolving with the byte count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some prefix of `p`, resolving with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
  /** Closes both directions; pending reads and writes then reject. */
  close(): void;
}

/** Live byte counters of one connection, updated as the echo runs. */
export interface EchoCounters {
  /** Bytes read from the peer. */
  bytesIn: number;
  /** Bytes written back to the peer. */
  bytesOut: number;
}

/** Options for {@linkcode echoConnection}. */
export interface EchoOptions {
  /** Counters to update as bytes flow; read them while the echo runs. */
  counters?: EchoCounters;
  /**
   * Called after each chunk is read, before it is written back. Only pass it
   * when it is needed: it runs on the hot path.
   */
  onChunk?: (bytes: number) => void;
  /** Size of the first read buffer in bytes, and the size it returns to once reads stay small. @default {1024} */
  initialBufferSize?: number;
  /**
   * Largest read buffer in bytes; the buffer grows ×4 while reads fill it,
   * past {@linkcode UNPROVEN_BUFFER_BYTES} only once `bulkAfterBytes` have
   * been echoed. @default {65536}
   */
  maxBufferSize?: number;
  /**
   * Bytes to echo, every write taken in full, before the read buffer may
   * grow past {@linkcode UNPROVEN_BUFFER_BYTES}; a write that falls short
   * starts the count again. A write that cannot complete pins its buffer,
   * so this keeps what a peer that stops reading pins to 16 KiB until it has
   * shown that it reads: the default is twice the 4 MiB that Linux lets a
   * socket's send buffer grow to by default, which a peer that never reads
   * fills, stalling a write, before it is reached. 0 lets the buffer grow at
   * once. @default {8388608}
   */
  bulkAfterBytes?: number;
}

/**
 * The largest read buffer of a connection that has not echoed
 * `bulkAfterBytes` yet: the most echo data that such a connection, once its
 * peer stops reading, holds in the server's memory.
 */
export const UNPROVEN_BUFFER_BYTES = 16384;

/**
 * Why an echo ended: `eof` (the peer shut down its side and everything was
 * written back) or `reset` (the peer reset the connection or stopped reading
 * for good). When the owner of the stream closes it, the echo rejects with
 * the pending read's error instead: the owner knows why it closed it.
 */
export type EchoEnd = "eof" | "reset";

/**
 * Hears how an echo that a connection runs itself ended (see
 * `Connection.echo`). An object rather than a callback, so that a server can
 * pass the record it keeps of the connection anyway, instead of a closure per
 * connection.
 */
export interface EchoDone {
  /**
   * `eof` and `reset` as {@linkcode EchoEnd} says, or `error` with the error,
   * as {@linkcode echoConnection} would have thrown it.
   */
  echoEnded(end: EchoEnd | "error", error?: unknown): void;
}

/** Reads under a quarter of the buffer, in a row, after which it shrinks back. */
const SHORT_READS_BEFORE_SHRINK = 4;

const RESET_ERRORS = [
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.BrokenPipe,
  Deno.errors.NotConnected,
  Deno.errors.UnexpectedEof,
];

/**
 * Tells whether an I/O error means that the peer went away (an echo's
 * `reset`) rather than something the server should report.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isPeerGone } from "./echo.ts";
 * equal(isPeerGone(new Deno.errors.ConnectionReset("x")), true);
 * equal(isPeerGone(new Deno.errors.BadResource("x")), false);
 * ```
 */
export function isPeerGone(error: unknown): boolean {
  return RESET_ERRORS.some((kind) => error instanceof kind);
}

/**
 * Echoes `stream` until its peer stops sending, then resolves with why it
 * ended. A chunk is read only after the previous one has been written back in
 * full, so a peer that sends without reading stalls only itself. The caller
 * closes the stream afterwards; closing it earlier ends the echo, which then
 * rejects like any error other than a peer going away.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { echoConnection } from "./echo.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const server = await listener.accept();
 * const echo = echoConnection(server).finally(() => server.close());
 * await client.write(new TextEncoder().encode("ping"));
 * const reply = new Uint8Array(4);
 * await client.read(reply);
 * await client.closeWrite();
 * equal(await echo, "eof");
 * client.close();
 * listener.close();
 * ```
 */
export async function echoConnection(stream: Duplex, options: EchoOptions = {}): Promise<EchoEnd> {
  const counters = options.counters ?? { bytesIn: 0, bytesOut: 0 };
  const { onChunk } = options;
  const maxSize = Math.max(1, options.maxBufferSize ?? 65536);
  const minSize = Math.max(1, Math.min(options.initialBufferSize ?? 1024, maxSize));
  const unprovenSize = Math.max(minSize, Math.min(UNPROVEN_BUFFER_BYTES, maxSize));
  const bulkAfter = Math.max(0, options.bulkAfterBytes ?? 8 << 20);
  // Idle connections are the common case: start small, grow while reads fill
  // the buffer, and drop back once reads have stayed small for a while, so
  // that a connection that returns to small messages does not keep a large
  // buffer. One short read is not enough: segments of a bulk transfer often
  // arrive short, and shrinking on each would make the buffer see-saw.
  // A write that cannot complete pins the buffer it writes from: past
  // unprovenSize, the buffer grows only for a peer that has taken bulkAfter
  // bytes without a write falling short (see EchoOptions.bulkAfterBytes).
  let buffer = new Uint8Array(minSize);
  let shortReads = 0;
  let takenInFull = 0;
  try {
    while (true) {
      const n = await stream.read(buffer);
      if (n === null) return "eof";
      counters.bytesIn += n;
      onChunk?.(n);
      const filled = n === buffer.length;
      let chunk = filled ? buffer : buffer.subarray(0, n);
      let written = await stream.write(chunk);
      counters.bytesOut += written;
      if (written === n) {
        takenInFull += n;
      } else {
        // The peer is behind: it proves itself again before the buffer grows past unprovenSize.
        takenInFull = 0;
        while (written < chunk.length) {
          chunk = chunk.subarray(written);
          written = await stream.write(chunk);
          counters.bytesOut += written;
        }
        if (buffer.length > unprovenSize) {
          buffer = new Uint8Array(unprovenSize);
          continue;
        }
      }
      if (filled) {
        shortReads = 0;
        const limit = takenInFull >= bulkAfter ? maxSize : unprovenSize;
        if (buffer.length < limit) buffer = new Uint8Array(Math.min(buffer.length * 4, limit));
      } else if (n >= buffer.length >> 2) {
        shortReads = 0;
      } else if (buffer.length > minSize && ++shortReads >= SHORT_READS_BEFORE_SHRINK) {
        shortReads = 0;
        buffer = new Uint8Array(minSize);
      }
    }
  } catch (error) {
    if (isPeerGone(error)) return "reset";
    throw error;
  }
}
