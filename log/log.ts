/**
 * Logging set-up: LogTape loggers under the `echo-server` category, written to
 * stderr as text or as JSON lines.
 *
 * @module
 */
import { configure, getLogger, type Logger, type LogRecord, reset } from "@logtape/logtape";
import { LogBuffer } from "./buffer.ts";
import { jsonFormatter, textFormatter } from "./render.ts";

/** The levels `--log-level` accepts, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** A level `--log-level` accepts. */
export type Level = typeof LOG_LEVELS[number];
/** The formats `--log-format` accepts. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A format `--log-format` accepts. */
export type LogFormat = typeof LOG_FORMATS[number];

/** What {@linkcode setupLogging} uses for the options left out; the command line shows and uses the same. */
export const LOGGING_DEFAULTS = {
  /** Connections opened and closed, and everything more severe. */
  level: "info",
  /** Lines for people. */
  format: "text",
} as const satisfies Required<Pick<LoggingOptions, "level" | "format">>;

/** Options for {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** The least severe level written. @default {LOGGING_DEFAULTS.level} */
  level?: Level;
  /** `text` for people, `json` for log shippers (one object a line). @default {LOGGING_DEFAULTS.format} */
  format?: LogFormat;
  /** The worker this isolate is, with `--workers`; every line then carries it. */
  worker?: number;
}

/** How long {@linkcode flushLogs} waits for a slow reader before giving up. */
export const FLUSH_TIMEOUT_MS = 2_000;

/** The formatter in use, also for the line that reports dropped lines. */
let format: (record: LogRecord) => string = textFormatter(undefined);
/** Where formatted lines go: this process's stderr buffer, or a worker's forwarder. */
let forward: ((text: string, lines: number) => void) | undefined;
let exitHooked = false;

const stderrBuffer = new LogBuffer({
  write: (bytes) => Deno.stderr.write(bytes),
  writeSync: (bytes) => Deno.stderr.writeSync(bytes),
  droppedLine: (count) =>
    format({
      category: ["echo-server", "log"],
      level: "warning",
      message: ["", count, " log lines dropped: stderr was not being read"],
      rawMessage: "{dropped} log lines dropped: stderr was not being read",
      timestamp: Date.now(),
      properties: { dropped: count },
    }),
});

/**
 * Writes out the lines logged so far and resolves once they are written, with
 * `true`; or after `timeoutMs` with `false` when stderr's reader is stuck, so
 * that an exit never hangs on it. Call it (and await it) before `Deno.exit`.
 * In a worker, whose lines are forwarded as they come, there is nothing to wait for.
 */
export async function flushLogs(timeoutMs: number = FLUSH_TIMEOUT_MS): Promise<boolean> {
  return await stderrBuffer.flush(timeoutMs);
}

/**
 * How many log lines this process has dropped since it started, because
 * stderr's reader did not keep up (the buffer was full) or was gone. With
 * `--workers`, the workers' lines are written, and counted, by the main thread.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { droppedLogLines } from "./log.ts";
 * equal(droppedLogLines(), 0);
 * ```
 */
export function droppedLogLines(): number {
  return stderrBuffer.dropped;
}

/**
 * Queues `text` (`lines` whole lines, already formatted) for stderr, as a
 * worker's forwarded lines arrive at the main thread; never blocks.
 */
export function writeLogLines(text: string, lines: number): void {
  stderrBuffer.push(text, lines);
}

function write(line: string): void {
  // A worker's lines cross to the main thread one by one, so that they keep their
  // order with the worker's other messages (its "listening" comes after its line).
  if (forward !== undefined) forward(line, 1);
  else stderrBuffer.push(line);
}

/** The process is about to die: no later turn will write, so write now, blocking. */
function flushAtExit(event: Event): void {
  // A listener that prevented the default keeps the process alive: then a blocking write must not come.
  if (!event.defaultPrevented) stderrBuffer.flushSync();
}

/**
 * Routes every `echo-server` logger to stderr at the given level and format.
 * Calling it again replaces the previous set-up. Lines are queued and written
 * without blocking the event loop; when stderr's reader stalls and the queue
 * is full, new lines are dropped and counted (see {@linkcode droppedLogLines}).
 * A worker passes `forwardTo`, which gets each line to post it to the main
 * thread, so that one writer keeps them whole and in order.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { logger, setupLogging } from "./log.ts";
 * await setupLogging({ level: "warning", format: "json" });
 * const log = logger("server");
 * equal(log.isEnabledFor("info"), false);
 * equal(log.isEnabledFor("warning"), true); // log.warning(…) writes one JSON line to stderr
 * ```
 */
export async function setupLogging(
  options: LoggingOptions = {},
  forwardTo?: (text: string, lines: number) => void,
): Promise<void> {
  format = options.format === "json"
    ? jsonFormatter(options.worker)
    : textFormatter(options.worker);
  forward = forwardTo;
  if (!exitHooked) {
    // Lines still queued when an uncaught error ends the process are written
    // out rather than lost.
    exitHooked = true;
    globalThis.addEventListener("error", flushAtExit);
    globalThis.addEventListener("unhandledrejection", flushAtExit);
  }
  await reset();
  const stderr = markImmediate((record: LogRecord) => write(format(record)));
  await configure({
    sinks: { stderr },
    loggers: [
      {
        category: ["echo-server"],
        sinks: ["stderr"],
        lowestLevel: options.level ?? LOGGING_DEFAULTS.level,
      },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
    ],
  });
}

/**
 * Marks `sink` as one that is done with each record when it returns (it
 * formats the line at once), so that LogTape does not copy every record's
 * properties for it, as it does for a sink that might keep records. The mark
 * is the symbol LogTape registers for its own such sinks; a LogTape that no
 * longer reads it copies again, which is slower but still correct (a test
 * notices).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { markImmediate } from "./log.ts";
 * const sink = markImmediate(() => {});
 * equal(typeof sink, "function");
 * ```
 */
export function markImmediate<S extends (record: LogRecord) => void>(sink: S): S {
  Object.defineProperty(sink, Symbol.for("LogTape.sinkSnapshotPolicy.immediate"), { value: true });
  return sink;
}

/**
 * The logger for one part of the program, under the `echo-server` category.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { logger } from "./log.ts";
 * const log = logger("client");
 * deepEqual(log.category, ["echo-server", "client"]);
 * log.info("connected to {address}", { address: "127.0.0.1:8000" });
 * ```
 */
export function logger(part: string): Logger {
  return getLogger(["echo-server", part]);
}
