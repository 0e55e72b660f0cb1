/**
 * echo-server: a TCP echo server, its client and its load tester, in one
 * program. `main()` parses the command line and wires the modules together.
 *
 * @module
 */
import denoJson from "./deno.json" with { type: "json" };
import { parseCidr } from "./admission/cidr.ts";
import { BENCH_LIMITS, type BenchMode } from "./bench/mod.ts";
import { runBenchCommand } from "./cli/bench_command.ts";
import { runClient } from "./cli/client_command.ts";
import {
  choiceFlag,
  durationFlag,
  type FlagTable,
  type FlagValues,
  formatFlags,
  hostFlag,
  intFlag,
  numberFlag,
  parseFlags,
  UsageError,
} from "./cli/flags.ts";
import { Guard } from "./admission/guard.ts";
import { flushLogs, LOG_FORMATS, LOG_LEVELS, logger, setupLogging } from "./log/log.ts";
import { ListenError, serve, type WhenFull } from "./server.ts";
import { inWorker, MAX_WORKERS, startWorkers, workerMain } from "./server/workers.ts";

const VERSION = denoJson.version;
const PORT_MAX = 65535;
const MANY = Number.MAX_SAFE_INTEGER;
/** Signals this close to the first are the same keypress delivered twice, not a second request. */
const SAME_SIGNAL_MS = 300;

const SERVE_FLAGS: FlagTable = {
  host: {
    type: "string",
    short: "H",
    value: "HOST",
    default: "0.0.0.0",
    help: "address to listen on (:: for IPv6)",
  },
  port: {
    type: "string",
    short: "p",
    value: "PORT",
    default: "8000",
    help: "port to listen on; 0 picks a free one",
  },
  "drain-timeout": {
    type: "string",
    value: "DURATION",
    default: "10s",
    help: "on SIGINT/SIGTERM, how long open connections may finish",
  },
  "max-conns": {
    type: "string",
    value: "N",
    default: "10000",
    help: "open connections at most, server-wide",
  },
  "when-full": {
    type: "string",
    value: "wait|refuse",
    default: "wait",
    help: "at --max-conns: queue newcomers in the backlog, or close them",
  },
  "max-conns-per-ip": {
    type: "string",
    value: "N",
    default: "256",
    help: "open connections at most per client address (IPv6: per /64)",
  },
  rate: {
    type: "string",
    value: "N",
    help: "new connections per second per client address (default: off)",
  },
  burst: {
    type: "string",
    value: "N",
    help: "connections a client address may open at once under --rate (default: the rate)",
  },
  "idle-timeout": {
    type: "string",
    value: "DURATION",
    default: "5m",
    help: "close a connection that sends nothing for this long; 0 = never",
  },
  "max-lifetime": {
    type: "string",
    value: "DURATION",
    default: "0",
    help: "close any connection open this long; 0 = never",
  },
  allow: {
    type: "string",
    multiple: true,
    value: "CIDR",
    help: "admit only these addresses (repeatable)",
  },
  deny: {
    type: "string",
    multiple: true,
    value: "CIDR",
    help: "refuse these addresses; wins over --allow (repeatable)",
  },
  "reject-message": {
    type: "string",
    value: "TEXT",
    help: "a line written to refused connections before closing them",
  },
  workers: {
    type: "string",
    value: "N|auto",
    default: "1",
    help: "isolates serving the same port (auto: one per CPU); limits stay global",
  },
  "log-level": {
    type: "string",
    value: "LEVEL",
    default: "info",
    help: `one of ${LOG_LEVELS.join(", ")}`,
  },
  "log-format": {
    type: "string",
    value: "FORMAT",
    default: "text",
    help: "text, or json for one JSON object per line",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
};

const CLIENT_FLAGS: FlagTable = {
  host: {
    type: "string",
    short: "H",
    value: "HOST",
    default: "127.0.0.1",
    help: "server to connect to",
  },
  port: { type: "string", short: "p", value: "PORT", default: "8000", help: "server port" },
  message: { type: "string", short: "m", value: "TEXT", help: "send TEXT and print the reply" },
  count: {
    type: "string",
    short: "n",
    value: "N",
    help: 'send N messages, "Hello, server N" down to 1',
  },
  interval: {
    type: "string",
    short: "i",
    value: "DURATION",
    default: "1s",
    help: "pause between messages",
  },
  timeout: {
    type: "string",
    short: "t",
    value: "DURATION",
    default: "10s",
    help: "limit for connecting and for each reply",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
};

const BENCH_MODES: readonly BenchMode[] = ["pingpong", "stream", "churn"];

const BENCH_FLAGS: FlagTable = {
  host: { type: "string", short: "H", value: "HOST", default: "127.0.0.1", help: "server to load" },
  port: { type: "string", short: "p", value: "PORT", default: "8000", help: "server port" },
  connections: {
    type: "string",
    short: "c",
    value: "N",
    default: "100",
    help: "concurrent connections (churn: concurrent connect-echo-close slots)",
  },
  duration: {
    type: "string",
    short: "d",
    value: "DURATION",
    default: "10s",
    help: "how long to load",
  },
  size: {
    type: "string",
    short: "s",
    value: "BYTES",
    default: "64",
    help: "message size (pingpong, churn)",
  },
  mode: {
    type: "string",
    short: "m",
    value: "MODE",
    default: "pingpong",
    help:
      "pingpong (send, await the echo), stream (write and read flat out), churn (connect, echo, close)",
  },
  rate: {
    type: "string",
    short: "r",
    value: "N",
    help:
      "open loop: N messages per second in total, latency from the scheduled send (default: closed loop)",
  },
  json: { type: "boolean", help: "print the report as one JSON object" },
  help: { type: "boolean", short: "h", help: "show this help" },
};

const USAGE = `echo-server ${VERSION}: a TCP echo server, its client and its load tester

Usage:
  echo-server [serve] [FLAGS]     run the server (the default command)
  echo-server client [FLAGS]      talk to a server
  echo-server bench [FLAGS]       load a server and verify every byte
  echo-server --version           print the version

Run "echo-server COMMAND --help" for a command's flags.

Examples:
  echo-server --port 7000
  echo-server client -m "Hello, server"
  echo-server client --count 5 --interval 500ms
  printf 'one\\ntwo\\n' | echo-server client
`;

const SERVE_USAGE = `Usage: echo-server [serve] [FLAGS]

Echoes every byte each client sends, until the client closes. SIGINT or
SIGTERM stops accepting and lets open connections finish for --drain-timeout;
a second signal (after the first 300 ms) exits at once. Durations: 500ms, 10s, 2m, 1h or plain seconds.

Flags:
${formatFlags(SERVE_FLAGS)}
`;

const CLIENT_USAGE = `Usage: echo-server client [FLAGS]

With --message or --count, sends messages and prints each reply. Without them,
works like netcat: stdin goes to the server and what comes back to stdout.
Exits 1 when the server cannot be reached or an echo differs.

Flags:
${formatFlags(CLIENT_FLAGS)}
`;

const BENCH_USAGE = `Usage: echo-server bench [FLAGS]

Loads an echo server from many connections, verifies every byte that comes
back, and reports throughput and a latency histogram. Shows a progress line
each second; Ctrl-C ends the run early with a report. Exits 1 if any echo was
corrupted or short, or a connection failed.

Flags:
${formatFlags(BENCH_FLAGS)}
`;

async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === "--version" || first === "-V") {
    console.log(`echo-server ${VERSION}`);
    return 0;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(USAGE);
    return 0;
  }
  if (first === "client") return await clientCommand(rest);
  if (first === "bench") return await benchCommand(rest);
  if (first === "serve") return await serveCommand(rest);
  if (first !== undefined && !first.startsWith("-")) {
    throw new UsageError(`unknown command "${first}"`);
  }
  return await serveCommand(args);
}

async function serveCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, SERVE_FLAGS);
  if (flags.help) {
    console.log(SERVE_USAGE);
    return 0;
  }
  const rate = flags.rate === undefined ? undefined : numberFlag("rate", str(flags, "rate"));
  if (flags.burst !== undefined && rate === undefined) {
    throw new UsageError("--burst needs --rate");
  }
  const limits = {
    maxConns: intFlag("max-conns", str(flags, "max-conns"), 1, MANY),
    maxConnsPerIp: intFlag("max-conns-per-ip", str(flags, "max-conns-per-ip"), 1, MANY),
    rate,
    burst: flags.burst === undefined ? undefined : intFlag("burst", str(flags, "burst"), 1, MANY),
    allow: list(flags, "allow").map((text) => cidrFlag("allow", text)),
    deny: list(flags, "deny").map((text) => cidrFlag("deny", text)),
  };
  const options = {
    hostname: hostFlag("host", str(flags, "host")),
    port: intFlag("port", str(flags, "port"), 0, PORT_MAX),
    drainTimeoutMs: durationFlag("drain-timeout", str(flags, "drain-timeout")),
    whenFull: choiceFlag<WhenFull>("when-full", str(flags, "when-full"), ["wait", "refuse"]),
    idleTimeoutMs: durationFlag("idle-timeout", str(flags, "idle-timeout")),
    maxLifetimeMs: durationFlag("max-lifetime", str(flags, "max-lifetime")),
    rejectMessage: flags["reject-message"] === undefined ? undefined : str(flags, "reject-message"),
  };
  const workers = flags.workers === "auto"
    ? navigator.hardwareConcurrency
    : intFlag("workers", str(flags, "workers"), 1, MAX_WORKERS);
  if (workers > 1 && !canLoadWorkers()) {
    throw new UsageError(
      "--workers needs --allow-read, so that each worker can load the program (deno run --allow-net --allow-read …)",
    );
  }
  const logging = {
    level: choiceFlag("log-level", str(flags, "log-level"), LOG_LEVELS),
    format: choiceFlag("log-format", str(flags, "log-format"), LOG_FORMATS),
  };
  await setupLogging(logging);
  const log = logger("server");
  const server = workers > 1
    ? await startWorkers({
      entry: import.meta.url,
      count: workers,
      config: { serve: options, guard: limits, logging },
    })
    : serve({ ...options, guard: new Guard(limits) });
  let firstSignalAt: number | undefined;
  const onSignal = (signal: Deno.Signal) => () => {
    if (firstSignalAt !== undefined) {
      // One Ctrl-C can arrive twice: from the terminal, and forwarded by a
      // parent such as `deno task` or npx in the same process group.
      if (performance.now() - firstSignalAt < SAME_SIGNAL_MS) return;
      log.warning("second {signal}: exiting now", { signal });
      flushLogs();
      Deno.exit(signal === "SIGINT" ? 130 : 143);
    }
    firstSignalAt = performance.now();
    log.info("{signal}: shutting down", { signal });
    server.shutdown().catch(() => {}); // a failure surfaces through server.finished
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = onSignal(signal);
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  try {
    await server.finished;
    return 0;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

async function clientCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, CLIENT_FLAGS);
  if (flags.help) {
    console.log(CLIENT_USAGE);
    return 0;
  }
  return await runClient({
    host: hostFlag("host", str(flags, "host")),
    port: intFlag("port", str(flags, "port"), 1, PORT_MAX),
    message: flags.message === undefined ? undefined : str(flags, "message"),
    count: flags.count === undefined ? undefined : intFlag("count", str(flags, "count"), 1, MANY),
    intervalMs: durationFlag("interval", str(flags, "interval")),
    timeoutMs: positiveDuration("timeout", str(flags, "timeout")),
  });
}

async function benchCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, BENCH_FLAGS);
  if (flags.help) {
    console.log(BENCH_USAGE);
    return 0;
  }
  const mode = choiceFlag("mode", str(flags, "mode"), BENCH_MODES);
  if (mode === "stream" && flags.rate !== undefined) {
    throw new UsageError("--rate applies to pingpong and churn, not to stream");
  }
  return await runBenchCommand({
    host: hostFlag("host", str(flags, "host")),
    port: intFlag("port", str(flags, "port"), 1, PORT_MAX),
    connections: intFlag("connections", str(flags, "connections"), 1, BENCH_LIMITS.maxConnections),
    durationMs: positiveDuration("duration", str(flags, "duration")),
    size: intFlag("size", str(flags, "size"), 1, BENCH_LIMITS.maxSize),
    mode,
    rate: flags.rate === undefined ? undefined : numberFlag("rate", str(flags, "rate")),
  }, flags.json === true);
}

/** Workers load this very module; from a file that takes read permission. */
function canLoadWorkers(): boolean {
  const url = new URL(import.meta.url);
  if (url.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: url }).state === "granted";
}

function str(flags: FlagValues, name: string): string {
  const value = flags[name];
  if (typeof value !== "string") throw new UsageError(`--${name} needs a value`);
  return value;
}

function list(flags: FlagValues, name: string): string[] {
  const value = flags[name];
  return Array.isArray(value) ? value.filter((v) => typeof v === "string") : [];
}

function cidrFlag(name: string, text: string) {
  try {
    return parseCidr(text);
  } catch (error) {
    throw new UsageError(`--${name}: ${error instanceof Error ? error.message : error}`);
  }
}

function positiveDuration(name: string, text: string): number {
  const ms = durationFlag(name, text);
  if (ms === 0) throw new UsageError(`invalid --${name} "${text}": must be above 0`);
  return ms;
}

if (import.meta.main && inWorker()) {
  workerMain();
} else if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    if (error instanceof UsageError) {
      const command = ["serve", "client", "bench"].includes(Deno.args[0]) ? ` ${Deno.args[0]}` : "";
      console.error(`echo-server: ${error.message}\nTry "echo-server${command} --help" for usage.`);
      code = 2;
    } else if (error instanceof ListenError) {
      logger("server").error("{message}", { message: error.message });
      code = 1;
    } else {
      logger("server").error("{message}", {
        message: error instanceof Error ? error.message : String(error),
      });
      code = 1;
    }
  }
  flushLogs();
  Deno.exit(code);
}
