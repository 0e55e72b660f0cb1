/**
 * Logging set-up: LogTape loggers under the `echo-server` category, written to
 * stderr as text or as JSON lines.
 *
 * @module
 */
import {
  configure,
  getLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";

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
  /** The least severe level written. @default {"info"} */
  level?: Level;
  /** `text` for people, `json` for log shippers (one object a line). @default {"text"} */
  format?: LogFormat;
  /** The worker this isolate is, with `--workers`; every line then carries it. */
  worker?: number;
}

const LEVEL_TEXT: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

const encoder = new TextEncoder();
let pending = "";
let flushQueued = false;
let exitHooked = false;

/**
 * Writes the lines buffered in this turn of the event loop to stderr. Lines are
 * batched so that a burst of connections costs one write, not one per line; call
 * this before `Deno.exit` so that nothing is lost.
 */
export function flushLogs(): void {
  flushQueued = false;
  if (pending === "") return;
  const bytes = encoder.encode(pending);
  pending = "";
  try {
    for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
  } catch {
    // stderr is gone (closed pipe): there is nowhere left to report to.
  }
}

function write(line: string): void {
  pending += line;
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flushLogs);
  }
}

function renderMessage(record: LogRecord): string {
  // LogTape interleaves the template's text with its values; values are shown bare.
  let text = "";
  for (let i = 0; i < record.message.length; i++) text += String(record.message[i]);
  return text;
}

function textFormatter(worker: number | undefined): (record: LogRecord) => string {
  const tag = worker === undefined ? "" : `w${worker} `;
  return (record) => {
    const time = new Date(record.timestamp).toISOString();
    return `${time} ${LEVEL_TEXT[record.level]} ${tag}${record.category.slice(1).join(".")}: ${
      renderMessage(record)
    }\n`;
  };
}

function jsonFormatter(worker: number | undefined): (record: LogRecord) => string {
  return (record) =>
    JSON.stringify({
      time: new Date(record.timestamp).toISOString(),
      level: record.level,
      logger: record.category.join("."),
      ...(worker === undefined ? {} : { worker }),
      message: renderMessage(record),
      ...record.properties,
    }) + "\n";
}

/**
 * Routes every `echo-server` logger to stderr at the given level and format.
 * Calling it again replaces the previous set-up.
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
export async function setupLogging(options: LoggingOptions = {}): Promise<void> {
  const format = options.format === "json"
    ? jsonFormatter(options.worker)
    : textFormatter(options.worker);
  if (!exitHooked) {
    // Lines still buffered when the process ends (an uncaught error, or the
    // end of the program) are written out rather than lost.
    exitHooked = true;
    globalThis.addEventListener("error", flushLogs);
    globalThis.addEventListener("unhandledrejection", flushLogs);
    globalThis.addEventListener("unload", flushLogs);
  }
  await reset();
  await configure({
    sinks: { stderr: (record: LogRecord) => write(format(record)) },
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
