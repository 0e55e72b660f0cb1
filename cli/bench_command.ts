/**
 * The `bench` command: runs the load tester with a live progress line and
 * prints the report as text or JSON.
 *
 * @module
 */
import {
  BENCH_LIMITS,
  type BenchMode,
  type BenchOptions,
  formatProgress,
  formatReport,
  runBench,
} from "../bench/mod.ts";
import { CONNECT_DEFAULTS } from "../client.ts";
import { describeError } from "../text/address.ts";
import { runCommand } from "./command.ts";
import {
  choiceFlag,
  durationFlag,
  HELP_FLAG,
  hostFlag,
  intFlag,
  numberFlag,
  portFlag,
  switchFlag,
  UsageError,
} from "./flags.ts";
import { formatFlags } from "./parse.ts";

const BENCH_MODES = ["pingpong", "stream", "churn"] as const satisfies readonly BenchMode[];

/** The flags of `bench`, with the bounds of {@linkcode runBench}. */
export const BENCH_FLAGS = {
  host: hostFlag({ default: CONNECT_DEFAULTS.host, help: "server to load" }),
  port: portFlag({ min: 1, default: CONNECT_DEFAULTS.port, help: "server port" }),
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
  size: intFlag({
    short: "s",
    value: "BYTES",
    min: 1,
    max: BENCH_LIMITS.maxSize,
    default: 64,
    help: "message size (pingpong, churn)",
  }),
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
  json: switchFlag({ help: "print the report as one JSON object" }),
  help: HELP_FLAG,
};

const BENCH_USAGE = `Usage: echo-server bench [FLAGS]

Loads an echo server from many connections, verifies every byte that comes
back, and reports throughput and a latency histogram. Shows a progress line
each second; Ctrl-C ends the run early with a report. Exits 1 if any echo was
corrupted or short, or a connection failed.

Flags:
${formatFlags(BENCH_FLAGS)}
`;

/** Runs `bench` with `args` and resolves with its exit code. */
export function benchCommand(args: readonly string[]): Promise<number> {
  return runCommand({
    name: "bench",
    usage: BENCH_USAGE,
    flags: BENCH_FLAGS,
    run: (flags) => {
      if (flags.mode === "stream" && flags.rate !== undefined) {
        throw new UsageError("--rate applies to pingpong and churn, not to stream");
      }
      return runBenchCommand({
        host: flags.host,
        port: flags.port,
        connections: flags.connections,
        durationMs: flags.duration,
        size: flags.size,
        mode: flags.mode,
        rate: flags.rate,
      }, flags.json);
    },
  }, args);
}

const encoder = new TextEncoder();

/**
 * Runs a benchmark and resolves with the exit code: 0 when every echo was
 * verified, 1 when any was corrupted, short or timed out, a connection failed,
 * or the server could not be reached (with `json`, stdout then gets
 * `{"ok":false,"error":"..."}`). SIGINT ends the run early with a report.
 */
async function runBenchCommand(
  options: Omit<BenchOptions, "signal" | "onProgress">,
  json: boolean,
): Promise<number> {
  const interrupted = new AbortController();
  const onInterrupt = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  // On a terminal the progress line is redrawn in place; elsewhere (a pipe,
  // a CI log) each second gets a plain line of its own.
  const tty = Deno.stderr.isTerminal();
  let drawn = false;
  try {
    const report = await runBench({
      ...options,
      signal: interrupted.signal,
      onProgress: (progress) => {
        const line = formatProgress(progress);
        Deno.stderr.writeSync(encoder.encode(tty ? `\r\x1b[2K${line}` : `${line}\n`));
        drawn = tty;
      },
    });
    if (drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    console.log(json ? JSON.stringify(report) : formatReport(report));
    if (!report.ok) {
      const timedOut = report.timedOut > 0 ? `, ${report.timedOut} timed out` : "";
      console.error(
        `echo-server bench: ${report.mismatches} mismatches, ${report.errors} errors${timedOut}${
          report.firstError ? ` (first: ${report.firstError})` : ""
        }`,
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
