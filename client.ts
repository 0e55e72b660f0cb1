/**
 * A client for echo servers: connect, send a message, get exactly that many
 * bytes back.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { connect } from "./client.ts";
 * import { serve } from "./server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * await using client = await connect({ port: server.addr.port });
 * const reply = await client.send("Hello, server", { verify: true });
 * equal(new TextDecoder().decode(reply), "Hello, server");
 * ```
 *
 * @module
 */
import { quoteBytes } from "./text/words.ts";
import { describeError, formatAddress } from "./text/address.ts";
import { formatDuration } from "./text/duration.ts";
import {
  aborted,
  broken,
  ClientError,
  closedEarly,
  isReset,
  noReply,
  refused,
} from "./client/errors.ts";
import { EchoCheck } from "./client/echo_check.ts";
import { describeEndpoint, dial, endpointOf } from "./client/dial.ts";
import {
  CONNECT_DEFAULTS,
  type ConnectOptions,
  type PipeOptions,
  type PipeResult,
  type ReadOptions,
  type SendOptions,
} from "./client/options.ts";
import { type Reader, sameBytes, writeAll, type Writer } from "./client/streams.ts";

export { ClientError, type ClientErrorKind, type EchoProgress, noReply } from "./client/errors.ts";
export type { ClientTlsOptions } from "./client/dial.ts";
export { connectUdp, MAX_UDP_MESSAGE, UdpEchoClient } from "./client/udp.ts";
export type { UdpConnectOptions, UdpSendOptions, UdpTarget } from "./client/udp.ts";
export { type Reader, writeAll, type Writer } from "./client/streams.ts";
export {
  CONNECT_DEFAULTS,
  type ConnectOptions,
  type PipeOptions,
  type PipeResult,
  type ReadOptions,
  type SendOptions,
} from "./client/options.ts";

/** Bytes sent but not yet echoed, beyond which `pipe` stops reading its input. */
const MAX_IN_FLIGHT = 1 << 20;
/** How long bytes that are not the echo may take to be followed by the server's close (a refusal). */
const REFUSAL_WAIT_MS = 500;

const encoder = new TextEncoder();

/** One connection to an echo server. Make one with {@linkcode connect}. */
export class EchoClient implements AsyncDisposable {
  readonly #conn: Deno.Conn;
  /** Where it is connected, as `host:port`. */
  readonly address: string;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Messages whose whole echo came back on this connection. */
  #echoes = 0;
  /** Whether the server's end was a reset rather than a FIN, for the words of a short echo. */
  #resetBy = false;

  /** Wraps an open connection, named `address` in messages; {@linkcode connect} is the usual way in. */
  constructor(conn: Deno.Conn, address?: string) {
    this.#conn = conn;
    const addr = conn.remoteAddr;
    this.address = address ??
      ("path" in addr
        ? addr.path
        : formatAddress((addr as Deno.NetAddr).hostname, (addr as Deno.NetAddr).port));
  }

  /**
   * Sends `data` and resolves with the same number of bytes read back. Writing
   * and reading run together, so that messages larger than the sockets'
   * buffers do not deadlock. Calls made at once are sent one after another.
   * With `verify`, a reply that is not the echo rejects instead.
   */
  send(data: Uint8Array | string, options: SendOptions = {}): Promise<Uint8Array> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    const verify = options.verify === true;
    const exchange = this.#queue.then(async () => {
      const reply = await this.#exchange(bytes, verify, options.signal);
      if (verify && !sameBytes(bytes, reply)) {
        throw await this.#refusalOr(
          reply,
          new ClientError(
            "mismatch",
            `echo differs: sent ${quoteBytes(bytes)}, got ${quoteBytes(reply)}`,
          ),
        );
      }
      return reply;
    });
    this.#queue = exchange.catch(() => {});
    return exchange;
  }

  async #exchange(
    bytes: Uint8Array,
    verify: boolean,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    if (this.#closed) throw new ClientError("closed", `connection to ${this.address} is closed`);
    signal?.throwIfAborted();
    const abort = () => this.close();
    signal?.addEventListener("abort", abort, { once: true });
    const progress = { received: 0, expected: bytes.length };
    try {
      const [, reply] = await Promise.all([
        writeAll(this.#conn, bytes),
        this.#readExactly(bytes, verify, progress),
      ]);
      return reply;
    } catch (error) {
      if (signal?.aborted) throw aborted(this.address, signal.reason, progress);
      if (error instanceof ClientError) throw error;
      this.close();
      // A reset before anything came back reads as the close it is, whether
      // the write or the read ran into it first.
      if (isReset(error) && progress.received === 0 && this.#echoes === 0) {
        throw closedEarly(this.address, 0, bytes.length);
      }
      throw broken(this.address, error);
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  async #readExactly(
    sent: Uint8Array,
    verify: boolean,
    progress: { received: number },
  ): Promise<Uint8Array> {
    const reply = new Uint8Array(sent.length);
    for (let got = 0; got < sent.length; progress.received = got) {
      const n = await this.#read(reply.subarray(got), verify);
      if (n === null) {
        this.close();
        const received = reply.subarray(0, got);
        if (verify) {
          if (!sameBytes(received, sent.subarray(0, got))) throw refused(this.address, received);
          throw closedEarly(this.address, got, sent.length, this.#echoes, this.#resetBy);
        }
        throw new ClientError(
          "closed",
          `${this.address} closed the connection after ${got} of ${sent.length} bytes${
            got > 0 ? `; it sent back ${quoteBytes(received)}` : ""
          }`,
        );
      }
      got += n;
    }
    this.#echoes++;
    return reply;
  }

  /**
   * Tells a refusal from a wrong echo, once `received` came back where an echo
   * was due: a server refusing a connection closes right after its message.
   * Closes the connection either way.
   */
  async #refusalOr(received: Uint8Array, otherwise: ClientError): Promise<ClientError> {
    const rest = await this.#readRest(false, AbortSignal.timeout(REFUSAL_WAIT_MS), true)
      .catch(() => null);
    this.close();
    return rest === null
      ? otherwise
      : refused(this.address, new Uint8Array([...received, ...rest]));
  }

  /**
   * Streams `input` through the server into `output`, like netcat, checking
   * every byte that comes back against what went out. Resolves once input
   * has ended and the server has echoed everything and closed; rejects with
   * a {@linkcode ClientError} as soon as the server closes early, refuses
   * the connection, answers with other bytes, or leaves sent bytes unanswered
   * for `timeoutMs`. A server that echoes everything but does not close
   * within `closeWaitMs` after the input ended ends it too, with `closed`
   * false. Reading and writing run at once, with at most 1 MiB in flight.
   */
  async pipe(input: Reader, output: Writer, options: PipeOptions): Promise<PipeResult> {
    await this.#queue;
    const check = new EchoCheck(this.address);
    let inputDone = false;
    let lastProgress = performance.now();
    let roomForMore: (() => void) | undefined;
    // While odd bytes are being explained, other failures (a write into the
    // closing connection, the watchdog) would only hide the explanation.
    let explaining: Promise<unknown> | undefined;
    const failed = Promise.withResolvers<never>();
    const leftOpen = Promise.withResolvers<PipeResult>();
    const fail = (error: ClientError) => {
      failed.reject(error);
      this.close();
    };
    const sending = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        while (check.pending > MAX_IN_FLIGHT) await new Promise<void>((r) => roomForMore = r);
        const n = await input.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        if (check.pending === 0) lastProgress = performance.now();
        check.sent(chunk);
        await writeAll(this.#conn, chunk);
      }
      inputDone = true;
      if (check.pending === 0) lastProgress = performance.now();
      await this.#conn.closeWrite();
    })();
    const receiving = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      while (true) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        lastProgress = performance.now();
        const chunk = buffer.subarray(0, n);
        const wrong = check.received(chunk);
        if (wrong !== undefined) {
          explaining = this.#refusalOr(chunk.slice(), wrong);
          throw await explaining;
        }
        roomForMore?.();
        await writeAll(output, chunk);
      }
      if (check.pending > 0) {
        throw closedEarly(this.address, check.echoed, check.echoed + check.pending);
      }
      if (!inputDone) throw new ClientError("closed", `${this.address} closed the connection`);
    })();
    const closeWaitMs = options.closeWaitMs ?? options.timeoutMs;
    const watchdog = setInterval(() => {
      if (explaining !== undefined) return;
      const quiet = performance.now() - lastProgress;
      if (check.pending > 0 && quiet > options.timeoutMs) {
        const progress = { received: check.echoed, expected: check.echoed + check.pending };
        const within = `within ${formatDuration(options.timeoutMs)}`;
        fail(new ClientError("timeout", noReply(this.address, progress, within), { progress }));
      } else if (inputDone && check.pending === 0 && quiet > closeWaitMs) {
        leftOpen.resolve({ closed: false });
      }
    }, Math.max(10, Math.min(1000, Math.min(options.timeoutMs, closeWaitMs) / 4)));
    const asClientError = (error: unknown) => {
      if (error instanceof ClientError) return error;
      // Reset before anything came back: the refusal a close before any echo is.
      if (isReset(error) && check.echoed === 0) {
        return closedEarly(this.address, 0, check.pending);
      }
      return broken(this.address, error);
    };
    receiving.catch((error) => fail(asClientError(error)));
    sending.catch(async (error) => {
      await explaining;
      fail(asClientError(error));
    });
    try {
      // The input may never end (a terminal left open): a failure must not wait for it.
      return await Promise.race([
        Promise.all([sending, receiving]).then(() => ({ closed: true })),
        leftOpen.promise,
        failed.promise,
      ]);
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
  end(options: ReadOptions = {}): Promise<Uint8Array> {
    return this.#readToClose(true, options.signal);
  }

  async #readToClose(halfClose: boolean, signal: AbortSignal | undefined): Promise<Uint8Array> {
    await this.#queue;
    if (this.#closed) throw new ClientError("closed", `connection to ${this.address} is closed`);
    try {
      return await this.#readRest(halfClose, signal);
    } finally {
      this.close();
    }
  }

  /**
   * Reads into `buffer`; with `resetEnds`, a reset reads as the end of the
   * stream. A server that closes the connection while bytes we sent are
   * still unread (a refusal right after the accept, before it read
   * anything) makes its kernel reset the connection instead of ending it,
   * after the bytes it wrote: the same close, to whoever tells a refusal
   * from an echo. Which of the two comes depends only on timing.
   */
  async #read(buffer: Uint8Array, resetEnds: boolean): Promise<number | null> {
    try {
      return await this.#conn.read(buffer);
    } catch (error) {
      if (resetEnds && error instanceof Deno.errors.ConnectionReset) {
        this.#resetBy = true;
        return null;
      }
      throw error;
    }
  }

  /** Reads until the server closes, not waiting for queued sends (callers in the queue use it). */
  async #readRest(
    halfClose: boolean,
    signal: AbortSignal | undefined,
    resetEnds = false,
  ): Promise<Uint8Array> {
    const abort = () => this.close();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      if (halfClose) await this.#conn.closeWrite();
      const rest: number[] = [];
      const buffer = new Uint8Array(4096);
      for (let n; (n = await this.#read(buffer, resetEnds)) !== null;) {
        rest.push(...buffer.subarray(0, n));
      }
      return new Uint8Array(rest);
    } catch (error) {
      // Every echo had come back: only the close was awaited.
      if (signal?.aborted) throw aborted(this.address, signal.reason, { received: 0, expected: 0 });
      throw broken(this.address, error);
    } finally {
      signal?.removeEventListener("abort", abort);
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
 * Connects to an echo server. Rejects with a {@linkcode ClientError} of kind
 * `connect`, such as `cannot connect to 127.0.0.1:8000: connection refused`,
 * of kind `timeout` when a timeout signal ends the attempt, or of kind
 * `closed` when the server reset the connection as soon as it accepted it.
 */
export async function connect(options: ConnectOptions = {}): Promise<EchoClient> {
  const endpoint = endpointOf({
    ...options,
    host: options.host ?? CONNECT_DEFAULTS.host,
    port: options.port ?? CONNECT_DEFAULTS.port,
  });
  try {
    return new EchoClient(await dial(endpoint, options.signal), describeEndpoint(endpoint));
  } catch (error) {
    // The kernel accepted the connection and the server reset it at once:
    // the same refusal whichever step of the client noticed it.
    if (isReset(error)) throw closedEarly(describeEndpoint(endpoint), 0, 0);
    const reason = options.signal?.aborted ? options.signal.reason : error;
    const timedOut = reason instanceof DOMException && reason.name === "TimeoutError";
    throw new ClientError(
      timedOut ? "timeout" : "connect",
      `cannot connect to ${describeEndpoint(endpoint)}: ${describeError(reason)}`,
      { cause: error },
    );
  }
}
