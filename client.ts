/**
 * A client for echo servers: connect, send a message, get exactly that many
 * bytes back.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * import { serve } from "./server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * await using client = await connect({ port: server.addr.port });
 * const reply = await client.send("Hello, server");
 * console.assert(new TextDecoder().decode(reply) === "Hello, server");
 * ```
 *
 * @module
 */
import { quoteBytes } from "./text/words.ts";
import { describeError, formatAddress } from "./text/address.ts";
import { formatDuration } from "./text/duration.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** Host name or address of the server. @default {"127.0.0.1"} */
  host?: string;
  /** Port of the server. @default {8000} */
  port?: number;
  /** Aborts the connection attempt, e.g. `AbortSignal.timeout(5000)`. */
  signal?: AbortSignal;
}

/** Options for {@linkcode EchoClient.send}. */
export interface SendOptions {
  /** Gives up on the reply, e.g. `AbortSignal.timeout(5000)`; the connection is closed. */
  signal?: AbortSignal;
}

/** Something bytes can be read from, such as `Deno.stdin`. */
export interface Reader {
  /** Reads into `p`, resolving with the byte count, or `null` at the end. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Something bytes can be written to, such as `Deno.stdout`. */
export interface Writer {
  /** Writes some prefix of `p`, resolving with how many bytes were taken. */
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes all of `bytes`, however many calls `writer.write` takes.
 *
 * @example
 * ```ts
 * import { writeAll } from "./client.ts";
 * await writeAll(Deno.stdout, new TextEncoder().encode("hello\n"));
 * ```
 */
export async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await writer.write(bytes.subarray(off));
}

/** Options for {@linkcode EchoClient.pipe}. */
export interface PipeOptions {
  /** How long sent bytes may wait for their echo, in milliseconds. */
  timeoutMs: number;
}

/** Bytes sent but not yet echoed, beyond which `pipe` stops reading its input. */
const MAX_IN_FLIGHT = 1 << 20;

/** A connection or an exchange failed; the message is one sentence for people. */
export class ClientError extends Error {
  /** @param message the whole sentence, e.g. `cannot connect to 127.0.0.1:8000: connection refused` */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClientError";
  }
}

const encoder = new TextEncoder();

/** One connection to an echo server. Make one with {@linkcode connect}. */
export class EchoClient implements AsyncDisposable {
  readonly #conn: Deno.Conn;
  /** Where it is connected, as `host:port`. */
  readonly address: string;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** Wraps an open connection; {@linkcode connect} is the usual way in. */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.address = formatAddress(addr.hostname, addr.port);
  }

  /**
   * Sends `data` and resolves with the same number of bytes read back. Writing
   * and reading run together, so that messages larger than the sockets'
   * buffers do not deadlock. Calls made at once are sent one after another.
   */
  send(data: Uint8Array | string, options: SendOptions = {}): Promise<Uint8Array> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    const exchange = this.#queue.then(() => this.#exchange(bytes, options.signal));
    this.#queue = exchange.catch(() => {});
    return exchange;
  }

  async #exchange(bytes: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (this.#closed) throw new ClientError(`connection to ${this.address} is closed`);
    signal?.throwIfAborted();
    const abort = () => this.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const [, reply] = await Promise.all([
        writeAll(this.#conn, bytes),
        this.#readExactly(bytes.length),
      ]);
      return reply;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (error instanceof ClientError) throw error;
      this.close();
      throw new ClientError(`connection to ${this.address} failed: ${describeError(error)}`, {
        cause: error,
      });
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  async #readExactly(length: number): Promise<Uint8Array> {
    const reply = new Uint8Array(length);
    for (let got = 0; got < length;) {
      const n = await this.#conn.read(reply.subarray(got));
      if (n === null) {
        this.close();
        throw new ClientError(
          `${this.address} closed the connection after ${got} of ${length} bytes${
            got > 0 ? `; it sent back ${quoteBytes(reply.subarray(0, got))}` : ""
          }`,
        );
      }
      got += n;
    }
    return reply;
  }

  /**
   * Streams `input` through the server into `output`, like netcat, checking
   * every byte that comes back against what went out. Resolves once input
   * has ended and the server has echoed everything and closed; rejects with
   * a {@linkcode ClientError} as soon as the server closes early, answers
   * with other bytes, or leaves sent bytes unanswered for `timeoutMs`.
   * Reading and writing run at once, with at most 1 MiB in flight.
   */
  async pipe(input: Reader, output: Writer, options: PipeOptions): Promise<void> {
    await this.#queue;
    const inFlight: Uint8Array[] = [];
    let inFlightBytes = 0;
    let checkedBytes = 0;
    let inputDone = false;
    let lastProgress = performance.now();
    let roomForMore: (() => void) | undefined;
    const failed = Promise.withResolvers<never>();
    const fail = (error: ClientError) => {
      failed.reject(error);
      this.close();
    };
    const sending = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        while (inFlightBytes > MAX_IN_FLIGHT) await new Promise<void>((r) => roomForMore = r);
        const n = await input.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        if (inFlightBytes === 0) lastProgress = performance.now();
        inFlight.push(chunk);
        inFlightBytes += n;
        await writeAll(this.#conn, chunk);
      }
      inputDone = true;
      await this.#conn.closeWrite();
    })();
    const receiving = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      let headOffset = 0;
      while (true) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        for (let i = 0; i < n;) {
          const head = inFlight[0];
          if (head === undefined) {
            throw new ClientError(`${this.address} sent ${n - i} more bytes than were sent to it`);
          }
          const span = Math.min(n - i, head.length - headOffset);
          for (let k = 0; k < span; k++) {
            if (buffer[i + k] !== head[headOffset + k]) {
              throw new ClientError(
                `echo differs at byte ${checkedBytes + k}: got ${
                  quoteBytes(buffer.subarray(i, n))
                }`,
              );
            }
          }
          i += span;
          checkedBytes += span;
          headOffset += span;
          if (headOffset === head.length) {
            inFlight.shift();
            headOffset = 0;
          }
        }
        inFlightBytes -= n;
        lastProgress = performance.now();
        roomForMore?.();
        await writeAll(output, buffer.subarray(0, n));
      }
      if (!inputDone || inFlightBytes > 0) {
        throw new ClientError(
          `${this.address} closed the connection${
            inFlightBytes > 0 ? ` with ${inFlightBytes} bytes not echoed` : ""
          }`,
        );
      }
    })();
    const watchdog = setInterval(() => {
      if (inFlightBytes > 0 && performance.now() - lastProgress > options.timeoutMs) {
        fail(
          new ClientError(
            `no reply from ${this.address} within ${formatDuration(options.timeoutMs)}`,
          ),
        );
      }
    }, Math.max(10, Math.min(1000, options.timeoutMs / 4)));
    const asClientError = (error: unknown) =>
      error instanceof ClientError
        ? error
        : new ClientError(`connection to ${this.address} failed: ${describeError(error)}`, {
          cause: error,
        });
    receiving.catch((error) => fail(asClientError(error)));
    sending.catch((error) => fail(asClientError(error)));
    try {
      // The input may never end (a terminal left open): a failure must not wait for it.
      await Promise.race([Promise.all([sending, receiving]), failed.promise]);
    } finally {
      clearInterval(watchdog);
      this.close();
    }
  }

  /**
   * Half-closes the connection, so that the server writes back whatever is
   * left and closes, and resolves with any bytes that came back beyond the
   * echoes already received: empty for an exact echo server.
   */
  end(options: SendOptions = {}): Promise<Uint8Array> {
    return this.#readToClose(true, options.signal);
  }

  /**
   * Waits, without half-closing, for the server to close the connection, and
   * resolves with whatever it sent meanwhile. Useful to tell a server that
   * refused the connection (it closes on its own) from one that answered
   * wrongly; give it a signal, since an echo server never closes first.
   */
  untilClosed(options: SendOptions = {}): Promise<Uint8Array> {
    return this.#readToClose(false, options.signal);
  }

  async #readToClose(halfClose: boolean, signal: AbortSignal | undefined): Promise<Uint8Array> {
    await this.#queue;
    if (this.#closed) throw new ClientError(`connection to ${this.address} is closed`);
    const abort = () => this.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      if (halfClose) await this.#conn.closeWrite();
      const rest: number[] = [];
      const buffer = new Uint8Array(4096);
      for (let n; (n = await this.#conn.read(buffer)) !== null;) {
        rest.push(...buffer.subarray(0, n));
      }
      return new Uint8Array(rest);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new ClientError(`connection to ${this.address} failed: ${describeError(error)}`, {
        cause: error,
      });
    } finally {
      signal?.removeEventListener("abort", abort);
      this.close();
    }
  }

  /** Closes the connection; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer's reset: nothing left to release.
    }
  }

  /** Lets `await using` close the connection. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * Connects to an echo server. Rejects with a {@linkcode ClientError} such as
 * `cannot connect to 127.0.0.1:8000: connection refused`.
 */
export async function connect(options: ConnectOptions = {}): Promise<EchoClient> {
  const hostname = options.host ?? "127.0.0.1";
  const port = options.port ?? 8000;
  try {
    const conn = await Deno.connect({ hostname, port, signal: options.signal });
    try {
      conn.setNoDelay(true);
    } catch {
      // Only latency is at stake; a dead connection shows itself on the first send.
    }
    return new EchoClient(conn);
  } catch (error) {
    const why = options.signal?.aborted
      ? describeError(options.signal.reason)
      : describeError(error);
    throw new ClientError(`cannot connect to ${formatAddress(hostname, port)}: ${why}`, {
      cause: error,
    });
  }
}
