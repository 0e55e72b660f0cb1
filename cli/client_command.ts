/**
 * The `client` command: one message, a periodic series like the tutorial's
 * test script, or netcat-style piping of stdin through the server.
 *
 * @module
 */
import { plural } from "../text/words.ts";
import {
  ClientError,
  type ClientTlsOptions,
  connect,
  CONNECT_DEFAULTS,
  type EchoClient,
  noReply,
  writeAll,
} from "../client.ts";
import { describeError } from "../text/address.ts";
import { formatDuration } from "../text/duration.ts";
import { runCommand } from "./command.ts";
import { runUdpClient } from "./client_udp.ts";
import {
  durationFlag,
  HELP_FLAG,
  hostFlag,
  intFlag,
  portFlag,
  switchFlag,
  textFlag,
  UsageError,
} from "./flags.ts";
import { formatFlags } from "./parse.ts";
import {
  CLIENT_TRANSPORT_FLAGS,
  type ClientTransport,
  clientTransport,
} from "./transport_flags.ts";

/** The flags of `client`, with the defaults of {@linkcode connect}. */
export const CLIENT_FLAGS = {
  host: hostFlag({ default: CONNECT_DEFAULTS.host, help: "server to connect to" }),
  port: portFlag({ min: 1, default: CONNECT_DEFAULTS.port, help: "server port" }),
  ...CLIENT_TRANSPORT_FLAGS,
  message: textFlag({ short: "m", value: "TEXT", help: "send TEXT and print the reply" }),
  count: intFlag({
    short: "n",
    value: "N",
    min: 1,
    help: 'send N messages, "Hello, server N" down to 1',
  }),
  interval: durationFlag({
    short: "i",
    value: "DURATION",
    default: 1000,
    help: "pause between messages",
  }),
  timeout: durationFlag({
    short: "t",
    value: "DURATION",
    default: 10_000,
    positive: true,
    help: "limit for connecting and for each reply",
  }),
  udp: switchFlag({ help: "send UDP datagrams (stdin: one per line) instead of a TCP stream" }),
  help: HELP_FLAG,
};

const CLIENT_USAGE = `Usage: echo-server client [FLAGS]

With --message or --count, sends messages and prints each reply. Without them,
works like netcat: stdin goes to the server and what comes back to stdout.
Exits 1 when the server cannot be reached or an echo differs.

Flags:
${formatFlags(CLIENT_FLAGS)}
`;

/** Runs `client` with `args` and resolves with its exit code. */
export function clientCommand(args: readonly string[]): Promise<number> {
  return runCommand({
    name: "client",
    usage: CLIENT_USAGE,
    flags: CLIENT_FLAGS,
    run: async (flags) => {
      let transport: ClientTransport;
      try {
        transport = clientTransport(flags);
      } catch (error) {
        if (error instanceof UsageError) throw error;
        return fail(error);
      }
      return await (flags.udp ? runUdpClient : runClient)({
        host: flags.host,
        port: flags.port,
        ...transport,
        message: flags.message,
        count: flags.count,
        intervalMs: flags.interval,
        timeoutMs: flags.timeout,
      });
    },
  }, args);
}

/** Options for {@linkcode runClient}. */
interface ClientCommandOptions {
  /** Server host. */
  host: string;
  /** Server port. */
  port: number;
  /** Speak TLS. */
  tls?: ClientTlsOptions;
  /** Connect to this Unix socket instead of host and port. */
  path?: string;
  /** Send this text; without it and without `count`, stdin is piped through the server. */
  message?: string;
  /** Send this many messages (`Hello, server N` … `Hello, server 1` unless `message` is given). */
  count?: number;
  /** Pause between messages, in milliseconds. */
  intervalMs: number;
  /** Limit for connecting and for each reply, in milliseconds. */
  timeoutMs: number;
}

/**
 * The longest wait for the server's close once every echo came back: it only
 * tells whether bytes beyond the echoes follow, and a server that stopped
 * reading never closes.
 */
const CLOSE_WAIT_MS = 1000;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Runs the `client` command and resolves with its exit code. Replies go to
 * stdout; an unreachable server or an echo that differs is one line on stderr
 * and exit code 1.
 */
async function runClient(options: ClientCommandOptions): Promise<number> {
  const within = formatDuration(options.timeoutMs);
  let client: EchoClient;
  try {
    client = await connect({
      host: options.host,
      port: options.port,
      tls: options.tls,
      path: options.path,
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (error) {
    // Say how long it waited: "timed out" alone does not tell whether -t was too short.
    if (error instanceof ClientError && error.kind === "timeout") {
      return fail(new ClientError("timeout", `${error.message} after ${within}`));
    }
    return fail(error);
  }
  try {
    if (options.message === undefined && options.count === undefined) {
      return await pipeStdin(client, options.timeoutMs);
    }
    const count = options.count ?? 1;
    for (let i = count; i >= 1; i--) {
      const text = options.message ?? `Hello, server ${i}`;
      const reply = await client.send(text, {
        signal: AbortSignal.timeout(options.timeoutMs),
        verify: true,
      });
      await writeAll(Deno.stdout, encoder.encode(decoder.decode(reply) + "\n"));
      if (i > 1) await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
    return await expectNothingMore(client, Math.min(options.timeoutMs, CLOSE_WAIT_MS));
  } catch (error) {
    if (error instanceof ClientError && error.progress !== undefined) {
      // It did connect (a connect timeout is reported above): say so, and
      // what came, since something on the way may have accepted the
      // connection for the server, or the server may have stalled midway.
      return fail(
        new ClientError("timeout", noReply(client.address, error.progress, `within ${within}`)),
      );
    }
    return fail(error);
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
  const closeWaitMs = Math.min(timeoutMs, CLOSE_WAIT_MS);
  // A read from a terminal does not end on Ctrl-C by itself: end the input
  // here, as netcat does, and let the echoes still in flight come back.
  const interrupted = Promise.withResolvers<null>();
  const onInterrupt = () => interrupted.resolve(null);
  Deno.addSignalListener("SIGINT", onInterrupt);
  const stdin = {
    read: (p: Uint8Array) => Promise.race([Deno.stdin.read(p), interrupted.promise]),
  };
  try {
    const { closed } = await client.pipe(stdin, Deno.stdout, { timeoutMs, closeWaitMs });
    if (!closed) leftOpen(client.address, closeWaitMs);
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/**
 * Half-closes and checks that the server sends nothing beyond the echoes
 * before it closes; resolves with the exit code. A server that does not
 * close within `closeWaitMs` (one that stopped reading) still echoed
 * everything: a note, and success.
 */
async function expectNothingMore(client: EchoClient, closeWaitMs: number): Promise<number> {
  let extra: Uint8Array;
  try {
    extra = await client.end({ signal: AbortSignal.timeout(closeWaitMs) });
  } catch (error) {
    if (!(error instanceof ClientError && error.kind === "timeout")) throw error;
    leftOpen(client.address, closeWaitMs);
    return 0;
  }
  if (extra.length > 0) {
    throw new ClientError(
      "mismatch",
      `echo differs: ${plural(extra.length, "more byte")} came back than were sent`,
    );
  }
  return 0;
}

/** Notes on stderr that the server echoed everything but left the connection open. */
function leftOpen(address: string, closeWaitMs: number): void {
  const within = `within ${formatDuration(closeWaitMs)}`;
  console.error(
    `echo-server client: ${
      noReply(address, { received: 0, expected: 0 }, within)
    }; not waiting longer`,
  );
}

function fail(error: unknown): number {
  const line = error instanceof ClientError ? error.message : describeError(error);
  console.error(`echo-server client: ${line}`);
  return 1;
}
