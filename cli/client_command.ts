/**
 * The `client` command: one message, a periodic series like the tutorial's
 * test script, or netcat-style piping of stdin through the server.
 *
 * @module
 */
import { ClientError, connect, type EchoClient, writeAll } from "../client.ts";
import { quoteBytes } from "../text/words.ts";
import { describeError } from "../text/address.ts";
import { formatDuration } from "../text/duration.ts";

/** Options for {@linkcode runClient}. */
export interface ClientCommandOptions {
  /** Server host. */
  host: string;
  /** Server port. */
  port: number;
  /** Send this text; without it and without `count`, stdin is piped through the server. */
  message?: string;
  /** Send this many messages (`Hello, server N` … `Hello, server 1` unless `message` is given). */
  count?: number;
  /** Pause between messages, in milliseconds. */
  intervalMs: number;
  /** Limit for connecting and for each reply, in milliseconds. */
  timeoutMs: number;
}

const decoder = new TextDecoder();
/** How long a reply that is not an echo may take to be followed by the server's close. */
const REFUSAL_WAIT_MS = 500;

const encoder = new TextEncoder();

/**
 * Runs the `client` command and resolves with its exit code. Replies go to
 * stdout; an unreachable server or an echo that differs is one line on stderr
 * and exit code 1.
 */
export async function runClient(options: ClientCommandOptions): Promise<number> {
  let client: EchoClient;
  try {
    client = await connect({
      host: options.host,
      port: options.port,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    // Say how long it waited: "timed out" alone does not tell whether -t was too short.
    if (error instanceof ClientError && error.message.endsWith(": timed out")) {
      return fail(new ClientError(`${error.message} after ${formatDuration(options.timeoutMs)}`));
    }
    return fail(error);
  }
  const timedOut = (error: unknown) =>
    error instanceof DOMException && error.name === "TimeoutError"
      ? new ClientError(
        `no reply from ${client.address} within ${formatDuration(options.timeoutMs)}`,
      )
      : error;
  try {
    if (options.message === undefined && options.count === undefined) {
      return await pipeStdin(client, options.timeoutMs);
    }
    const count = options.count ?? 1;
    for (let i = count; i >= 1; i--) {
      const text = options.message ?? `Hello, server ${i}`;
      const sent = encoder.encode(text);
      const reply = await client.send(sent, { signal: AbortSignal.timeout(options.timeoutMs) });
      if (!sameBytes(sent, reply)) throw await differs(client, sent, reply);
      await writeAll(Deno.stdout, encoder.encode(decoder.decode(reply) + "\n"));
      if (i > 1) await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
    await expectNothingMore(client, options.timeoutMs);
    return 0;
  } catch (error) {
    return fail(timedOut(error));
  } finally {
    client.close();
  }
}

/**
 * Pipes stdin through the server to stdout, checking that what comes back is
 * what went out. A message is written back as soon as it is echoed, so typed
 * lines are answered at once.
 */
async function pipeStdin(client: EchoClient, timeoutMs: number): Promise<number> {
  // A read from a terminal does not end on Ctrl-C by itself: end the input
  // here, as netcat does, and let the echoes still in flight come back.
  const interrupted = Promise.withResolvers<null>();
  const onInterrupt = () => interrupted.resolve(null);
  Deno.addSignalListener("SIGINT", onInterrupt);
  const stdin = {
    read: (p: Uint8Array) => Promise.race([Deno.stdin.read(p), interrupted.promise]),
  };
  try {
    await client.pipe(stdin, Deno.stdout, { timeoutMs });
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/**
 * Explains a reply that is not the echo. A server that refuses a connection
 * (with --reject-message) sends a line and closes: when the connection ends
 * right after the odd reply, say so instead of calling it a corrupted echo.
 */
async function differs(client: EchoClient, sent: Uint8Array, reply: Uint8Array) {
  const rest = await client.untilClosed({ signal: AbortSignal.timeout(REFUSAL_WAIT_MS) })
    .catch(() => null);
  if (rest !== null) {
    const all = new Uint8Array([...reply, ...rest]);
    return new ClientError(
      `${client.address} sent ${
        quoteBytes(all)
      } instead of an echo and closed the connection (refused?)`,
    );
  }
  return new ClientError(`echo differs: sent ${quoteBytes(sent)}, got ${quoteBytes(reply)}`);
}

/** Half-closes and checks that the server sends nothing beyond the echoes. */
async function expectNothingMore(client: EchoClient, timeoutMs: number): Promise<void> {
  const extra = await client.end({ signal: AbortSignal.timeout(timeoutMs) });
  if (extra.length > 0) {
    throw new ClientError(`echo differs: ${extra.length} more bytes came back than were sent`);
  }
}

function fail(error: unknown): number {
  const line = error instanceof ClientError ? error.message : describeError(error);
  console.error(`echo-server client: ${line}`);
  return 1;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
