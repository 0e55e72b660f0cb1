/**
 * The `bench` command: runs the load tester with a live progress line and
 * prints the report as text or JSON.
 *
 * @module
 */
import {
  BENCH_LIMITS,
  BENCH_MODES,
  type BenchOptions,
  formatProgress,
  formatReport,
} from "../bench/mod.ts";
import { compareFiles } from "../bench/compare.ts";
import { measure } from "../bench/engine.ts";
import { checkOutputs, writeOutputs } from "../bench/outputs.ts";
import { measureOnWorkers, workersUnavailable } from "../bench/workers.ts";
import { epollUnavailable } from "../epoll/libc.ts";
import { epollTlsUnavailable } from "../bench/epoll_tls.ts";
import { parseCidr } from "../admission/cidr.ts";
import { DATAGRAM_HEADER, DATAGRAM_MAX, WINDOW_MAX } from "../bench/datagram.ts";
import { int } from "../bench/numbers.ts";
import { CONNECT_DEFAULTS } from "../client.ts";
import { describeError } from "../text/address.ts";
import { runCommand } from "./command.ts";
import {
  choiceFlag,
  durationFlag,
  type Flag,
  HELP_FLAG,
  hostFlag,
  intFlag,
  numberFlag,
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

/** The message size when `--size` is not given. */
const DEFAULT_SIZE = 64;

/** The flags of `bench`, with the bounds of {@linkcode runBench}. */
export const BENCH_FLAGS = {
  host: hostFlag({ default: CONNECT_DEFAULTS.host, help: "server to load" }),
  port: portFlag({ min: 1, default: CONNECT_DEFAULTS.port, help: "server port" }),
  ...CLIENT_TRANSPORT_FLAGS,
  connections: intFlag({
    short: "c",
    value: "N",
    min: 1,
    max: BENCH_LIMITS.maxConnections,
    default: 100,
    help: "concurrent connections (churn: concurrent connect-echo-close slots)",
  }),
  duration: durationFlag({
    short: "d",
    value: "DURATION",
    default: 10_000,
    positive: true,
    help: "how long to load",
  }),
  // No default in the table: stream mode refuses a size, so it must tell one given from none.
  size: {
    ...intFlag({
      short: "s",
      value: "BYTES",
      min: 1,
      max: BENCH_LIMITS.maxSize,
      help: "message size (pingpong, churn)",
    }),
    shownDefault: String(DEFAULT_SIZE),
  },
  mode: choiceFlag({
    short: "m",
    value: "MODE",
    choices: BENCH_MODES,
    default: "pingpong",
    help:
      "pingpong (send, await the echo), stream (write and read flat out), churn (connect, echo, close)",
  }),
  rate: numberFlag({
    short: "r",
    value: "N",
    help:
      "open loop: N messages per second in total, latency from the scheduled send (default: closed loop)",
  }),
  proxy: choiceFlag({
    value: "v1|v2",
    choices: ["v1", "v2"],
    help: "send a PROXY protocol header first on every connection, as a proxy would",
  }),
  sources: sourcesFlag(),
  udp: switchFlag({
    help:
      `send UDP datagrams (pingpong, ${DATAGRAM_HEADER}-${DATAGRAM_MAX} bytes), one socket per connection; count lost, duplicated, reordered`,
  }),
  window: intFlag({
    short: "w",
    value: "N",
    min: 1,
    max: WINDOW_MAX,
    help: "with --udp, closed loop: datagrams in flight per socket (default: 1)",
  }),
  io: choiceFlag({
    choices: ["deno", "epoll"],
    default: "deno",
    help:
      "TCP engine: deno, or epoll (Linux, --allow-ffi, TCP or --tls via OpenSSL 3: no Promise per message, no starved connection)",
  }),
  workers: textFlag({
    value: "N|auto",
    help: "split the load over N isolates (auto: one per core), one merged report",
  }),
  warmup: durationFlag({
    value: "DURATION",
    help: "load this long first, measured but left out of the report",
  }),
  ramp: durationFlag({
    value: "DURATION",
    help: "open the connections gradually over this long, from the start of the run",
  }),
  report: textFlag({
    value: "FILE",
    help: "also write a self-contained HTML page: throughput and latency per second, distribution",
  }),
  hgrm: textFlag({
    value: "FILE",
    help: "also write the latency distribution in HdrHistogram's percentile format (ms)",
  }),
  "no-resume": switchFlag({
    help:
      "with --io epoll --tls: a full handshake on every connection (default: each resumes the last session)",
  }),
  json: switchFlag({ help: "print the report as one JSON object, with its per-second series" }),
  help: HELP_FLAG,
};

/** `--workers N|auto`: a count from 1 to 256, `auto` for the cores there are. */
function workersOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (text.toLowerCase() === "auto") return navigator.hardwareConcurrency;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new UsageError(`invalid --workers "${text}": expected a count from 1 to 256, or auto`);
  }
  return n;
}

/** `--sources CIDR`: checked as a CIDR block, passed on as written. */
function sourcesFlag(): Flag<string | undefined> {
  const text = textFlag({
    value: "CIDR",
    help: "with --proxy: client addresses for the headers, in turn (default: the real one)",
  });
  return {
    ...text,
    read: (given, name) => {
      const value = text.read(given, name);
      if (value === undefined) return undefined;
      try {
        parseCidr(value);
      } catch (error) {
        throw new UsageError(`--${name}: ${error instanceof Error ? error.message : error}`);
      }
      return value;
    },
  };
}

/** What --udp and --window allow, said as the command line's errors. */
function checkUdpFlags(
  flags: { udp: boolean; window?: number; mode: string; size: number; proxy?: string },
): void {
  if (!flags.udp) {
    if (flags.window !== undefined) throw new UsageError("--window needs --udp");
    return;
  }
  if (flags.mode !== "pingpong") {
    throw new UsageError(`--udp runs pingpong only, not --mode ${flags.mode}`);
  }
  if (flags.proxy !== undefined) throw new UsageError("--proxy applies to TCP, not to --udp");
  if (flags.size < DATAGRAM_HEADER || flags.size > DATAGRAM_MAX) {
    throw new UsageError(
      `invalid --size "${flags.size}": a datagram of --udp holds ${DATAGRAM_HEADER} to ${DATAGRAM_MAX} bytes`,
    );
  }
}

const BENCH_USAGE = `Usage: echo-server bench [FLAGS]
       echo-server bench compare A.json B.json

Loads an echo server from many connections, verifies every byte that comes
back, and reports throughput and a latency histogram. Shows a progress line
each second; Ctrl-C ends the run early with a report. Exits 1 if any echo was
corrupted or short, or a connection failed. \`bench compare\` prints two runs'
--json reports side by side, with the ratio B/A of each figure.

Flags:
${formatFlags(BENCH_FLAGS)}
`;

/** Runs `bench` with `args` and resolves with its exit code. */
export function benchCommand(args: readonly string[]): Promise<number> {
  if (args[0] === "compare") return compareCommand(args.slice(1));
  return runCommand({
    name: "bench",
    usage: BENCH_USAGE,
    flags: BENCH_FLAGS,
    run: (flags) => {
      if (flags.mode === "stream" && flags.rate !== undefined) {
        throw new UsageError("--rate applies to pingpong and churn, not to stream");
      }
      if (flags.mode === "stream" && flags.size !== undefined) {
        throw new UsageError(
          "--size applies to pingpong and churn, not to stream (it writes flat out, about 64 KiB at a time)",
        );
      }
      const size = flags.size ?? DEFAULT_SIZE;
      if (flags.sources !== undefined && flags.proxy === undefined) {
        throw new UsageError("--sources needs --proxy");
      }
      checkUdpFlags({ ...flags, size });
      const workers = workersOf(flags.workers);
      checkEngineFlags({ ...flags, workers });
      let transport: ClientTransport;
      try {
        transport = clientTransport(flags, "bench");
        const why = (flags.io === "epoll" ? epollUnavailable() : undefined) ??
          (flags.io === "epoll" && flags.tls ? epollTlsUnavailable() : undefined) ??
          (workers === undefined ? undefined : workersUnavailable());
        if (why !== undefined) throw new Error(why);
        checkOutputs(flags.report, flags.hgrm);
      } catch (error) {
        if (error instanceof UsageError) throw error;
        return Promise.resolve(failEarly(error, flags.json));
      }
      return runBenchCommand({
        host: flags.host,
        port: flags.port,
        ...transport,
        connections: flags.connections,
        durationMs: flags.duration,
        size,
        mode: flags.mode,
        rate: flags.rate,
        proxy: flags.proxy === undefined ? undefined : flags.proxy === "v1" ? 1 : 2,
        proxySources: flags.sources,
        udp: flags.udp || undefined,
        window: flags.window,
        io: flags.io === "epoll" ? "epoll" : undefined,
        warmupMs: flags.warmup,
        rampMs: flags.ramp,
        tlsResume: flags["no-resume"] ? false : undefined,
      }, { json: flags.json, workers, html: flags.report, hgrm: flags.hgrm });
    },
  }, args);
}

const encoder = new TextEncoder();

/**
 * `bench compare A.json B.json`: 0 with the table on stdout, 2 for a wrong
 * command line, 1 for a file that cannot be read or is not a report.
 */
async function compareCommand(args: readonly string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(BENCH_USAGE);
    return 0;
  }
  if (args.length !== 2 || args.some((a) => a.startsWith("-"))) {
    throw new UsageError("compare takes two report files: bench compare A.json B.json", "bench");
  }
  try {
    console.log(await compareFiles(args[0], args[1]));
    return 0;
  } catch (error) {
    console.error(`echo-server bench compare: ${describeError(error)}`);
    return 1;
  }
}

/** A failure before the run (a `--ca` file that cannot be read): one line, and with `json` one object. */
function failEarly(error: unknown, json: boolean): number {
  if (json) console.log(JSON.stringify({ ok: false, error: describeError(error) }));
  console.error(`echo-server bench: ${describeError(error)}`);
  return 1;
}

/** What the command does with a run beyond loading: its outputs and its workers. */
interface Outputs {
  json: boolean;
  workers?: number;
  html?: string;
  hgrm?: string;
}

/** The flags of the engine and the outputs, in the combinations that work. */
function checkEngineFlags(
  flags: {
    io: string;
    udp: boolean;
    tls: boolean;
    "no-resume": boolean;
    unix?: string;
    workers?: number;
    warmup?: number;
    ramp?: number;
    duration: number;
    report?: string;
    hgrm?: string;
  },
): void {
  if (flags["no-resume"] && (flags.io !== "epoll" || !flags.tls)) {
    throw new UsageError("--no-resume applies to --io epoll --tls");
  }
  if (flags.io === "epoll") {
    const other = flags.unix !== undefined ? "--unix" : flags.udp ? "--udp" : undefined;
    if (other !== undefined) {
      throw new UsageError(`--io epoll drives TCP connections: not with ${other}`);
    }
  }
  if (flags.udp) {
    for (const name of ["workers", "warmup", "ramp", "report", "hgrm"] as const) {
      if (flags[name] !== undefined) {
        throw new UsageError(`--${name} applies to TCP runs, not to --udp`);
      }
    }
  }
  if ((flags.ramp ?? 0) > (flags.warmup ?? 0) + flags.duration) {
    throw new UsageError("--ramp must fit in the run: at most --warmup plus --duration");
  }
}

/**
 * Runs a benchmark and resolves with the exit code: 0 when every echo was
 * verified, 1 when any was corrupted, short or timed out, a connection failed,
 * or the server could not be reached (with `json`, stdout then gets
 * `{"ok":false,"error":"..."}`). SIGINT ends the run early with a report.
 */
async function runBenchCommand(
  options: Omit<BenchOptions, "signal" | "onProgress">,
  outputs: Outputs,
): Promise<number> {
  const json = outputs.json;
  const interrupted = new AbortController();
  const onInterrupt = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  // On a terminal the progress line is redrawn in place; elsewhere (a pipe,
  // a CI log) each second gets a plain line of its own.
  const tty = Deno.stderr.isTerminal();
  let drawn = false;
  try {
    const run: BenchOptions = {
      ...options,
      signal: interrupted.signal,
      onProgress: (progress) => {
        const line = formatProgress(progress);
        Deno.stderr.writeSync(encoder.encode(tty ? `\r\x1b[2K${line}` : `${line}\n`));
        drawn = tty;
      },
    };
    const measured = outputs.workers === undefined
      ? await measure(run)
      : await measureOnWorkers(run, outputs.workers);
    const report = measured.report;
    if (drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    await writeOutputs(measured, outputs.html, outputs.hgrm);
    console.log(json ? JSON.stringify(report) : formatReport(report));
    if (!report.ok) {
      const timedOut = report.timedOut > 0 ? `, ${int(report.timedOut)} timed out` : "";
      console.error(
        `echo-server bench: ${int(report.mismatches)} mismatches, ${
          int(report.errors)
        } errors${timedOut}${report.firstError ? ` (first: ${report.firstError})` : ""}`,
      );
    }
    return report.ok ? 0 : 1;
  } catch (error) {
    if (drawn) Deno.stderr.writeSync(encoder.encode("\n"));
    // With --json, stdout still gets one JSON object, so a pipeline can parse it.
    if (json) console.log(JSON.stringify({ ok: false, error: describeError(error) }));
    console.error(`echo-server bench: ${describeError(error)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
