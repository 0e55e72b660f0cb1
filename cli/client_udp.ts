/**
 * `client --udp`: the client command over UDP. One datagram per message, or
 * in netcat mode one per line of stdin; each reply is checked and printed.
 *
 * @module
 */
import {
  ClientError,
  connectUdp,
  MAX_UDP_MESSAGE,
  type UdpEchoClient,
  writeAll,
} from "../client.ts";
import { udpPortUnbound, udpRefused } from "../client/udp.ts";
import { describeError } from "../text/address.ts";
import { formatDuration } from "../text/duration.ts";

/** What `client --udp` is asked to do. */
export interface UdpClientOptions {
  /** Server host. */
  host: string;
  /** Server port. */
  port: number;
  /** Send this text; without it and without `count`, stdin is sent line by line. */
  message?: string;
  /** Send this many messages (`Hello, server N` … `Hello, server 1` unless `message` is given). */
  count?: number;
  /** Pause between messages, in milliseconds. */
  intervalMs: number;
  /** How long each reply may take, in milliseconds. */
  timeoutMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 10;

/**
 * How long a datagram goes unanswered before the client asks whether
 * anything listens on the server's port: far longer than a reply from this
 * machine takes, short enough to read as at once.
 */
export const REFUSED_GRACE_MS = 200;

/**
 * Runs `client --udp` and resolves with its exit code: replies on stdout; no
 * reply in time, or a reply that differs, is one line on stderr and exit
 * code 1.
 */
export async function runUdpClient(options: UdpClientOptions): Promise<number> {
  let client: UdpEchoClient;
  try {
    client = await connectUdp({ host: options.host, port: options.port });
  } catch (error) {
    return fail(error);
  }
  try {
    if (options.message === undefined && options.count === undefined) {
      return await pipeLines(client, options.timeoutMs);
    }
    const count = options.count ?? 1;
    for (let i = count; i >= 1; i--) {
      const text = options.message ?? `Hello, server ${i}`;
      const reply = await exchange(client, encoder.encode(text), options.timeoutMs);
      await writeAll(Deno.stdout, encoder.encode(decoder.decode(reply) + "\n"));
      if (i > 1) await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
    return 0;
  } catch (error) {
    return fail(error);
  } finally {
    client.close();
  }
}

/** Sends one datagram and awaits its verified echo, saying clearly when none comes. */
async function exchange(
  client: UdpEchoClient,
  bytes: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  if (bytes.length > MAX_UDP_MESSAGE) {
    throw new ClientError(
      "failed",
      `a message of ${bytes.length} bytes does not fit in a datagram (${MAX_UDP_MESSAGE} at most)`,
    );
  }
  // A reply from this machine comes within the grace, or the kernel can tell
  // that nothing listens on the port: then say so at once, not at the timeout.
  const refusal = new AbortController();
  const grace = setTimeout(() => {
    if (udpPortUnbound(client.target) === true) {
      refusal.abort(new ClientError("connect", udpRefused(client.address)));
    }
  }, Math.min(REFUSED_GRACE_MS, timeoutMs));
  try {
    return await client.send(bytes, {
      signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), refusal.signal]),
      verify: true,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "TimeoutError") {
      // Past the refusal checked above, every reason for silence looks the same from here.
      throw new ClientError(
        "timeout",
        `no reply from ${client.address} within ${
          formatDuration(timeoutMs)
        } (over UDP nothing says why: is the server started with --udp, does it allow this address, is its rate limit reached?)`,
      );
    }
    throw error;
  } finally {
    clearTimeout(grace);
  }
}

/**
 * Netcat mode: each line of stdin (with its newline; a longer line in
 * datagram-sized pieces, and the last line even without one) goes out as a
 * datagram, and its echo to stdout. Ctrl-C ends the input, as in TCP mode.
 */
async function pipeLines(client: UdpEchoClient, timeoutMs: number): Promise<number> {
  const interrupted = Promise.withResolvers<null>();
  const onInterrupt = () => interrupted.resolve(null);
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    const buffer = new Uint8Array(64 * 1024);
    let pending: Uint8Array = new Uint8Array(0);
    while (true) {
      const n = await Promise.race([Deno.stdin.read(buffer), interrupted.promise]);
      if (n === null) break;
      pending = concat(pending, buffer.subarray(0, n));
      let start = 0;
      for (let i = 0; i < pending.length; i++) {
        if (pending[i] === NEWLINE || i + 1 - start === MAX_UDP_MESSAGE) {
          await echoOut(client, pending.subarray(start, i + 1), timeoutMs);
          start = i + 1;
        }
      }
      pending = pending.slice(start);
    }
    if (pending.length > 0) await echoOut(client, pending, timeoutMs);
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

async function echoOut(client: UdpEchoClient, datagram: Uint8Array, timeoutMs: number) {
  await writeAll(Deno.stdout, await exchange(client, datagram.slice(), timeoutMs));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function fail(error: unknown): number {
  const line = error instanceof ClientError ? error.message : describeError(error);
  console.error(`echo-server client: ${line}`);
  return 1;
}
