/**
 * Lines logged for every connection, handed to LogTape as finished records.
 *
 * `logger.info(template, properties)` builds a record whose message and
 * properties are lazy getters, copies the properties and looks its context up
 * several times: about 1.9 KB of garbage a line with this program's sink,
 * against about 0.7 KB for a record made here and given to `logger.emit`. A
 * server logs a line as each connection opens and another as it closes, so a
 * burst of 10,000 connections made V8 grow its young generation for that
 * garbage alone, and the resident memory per idle connection with it. The
 * record still goes through LogTape's dispatch: its levels, filters, sinks, a
 * category prefix and a scoped configuration all apply. Where LogTape would
 * add more to the record (an implicit context from `withContext`, a source
 * location when a logger captures them), the line goes through
 * `logger.info` and its kin instead, and gets them.
 *
 * @module
 */
import {
  type Config,
  getConfig,
  type Logger,
  type LogLevel,
  type LogRecord,
} from "@logtape/logtape";
import { templateParts } from "./render.ts";

/** The configuration last looked at, and whether any of its loggers captures source locations. */
let seenConfig: Readonly<Config<string, string>> | null = null;
let capturesSource = false;

/** True when LogTape's own calls would add to a record what {@linkcode logLine}'s lacks. */
function addsToRecords(): boolean {
  const config = getConfig();
  if (config !== seenConfig) {
    seenConfig = config;
    capturesSource = config?.loggers.some((logger) => logger.captureSourceLocation === true) ??
      false;
  }
  return capturesSource || config?.contextLocalStorage?.getStore() !== undefined;
}

/**
 * Logs `template` filled from `properties` at `level` through `log`, as
 * `log.info(template, properties)` would for `info`, leaving less garbage.
 * Nothing is built when the level is off. A template other than plain
 * `{name}` placeholders goes through LogTape's own parsing. `properties` are
 * taken as they are: a `lazy()` value is not resolved.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
 * import { logLine } from "./line.ts";
 * const records: LogRecord[] = [];
 * await configure({
 *   sinks: { memory: (record) => records.push(record) },
 *   loggers: [{ category: ["doc"], sinks: ["memory"], lowestLevel: "info" }],
 * });
 * const log = getLogger(["doc"]);
 * logLine(log, "info", "#{id} opened from {peer}", { id: 7, peer: "127.0.0.1:5000" });
 * logLine(log, "debug", "#{id} got {bytes} bytes", { id: 7, bytes: 3 }); // below the level: dropped
 * equal(records.length, 1);
 * equal(records[0].message.join(""), "#7 opened from 127.0.0.1:5000");
 * await reset();
 * ```
 */
export function logLine(
  log: Logger,
  level: LogLevel,
  template: string,
  properties: Record<string, unknown>,
): void {
  if (!log.isEnabledFor(level)) return;
  const parts = templateParts(template);
  if (parts === null || addsToRecords()) return logParsed(log, level, template, properties);
  // The message LogTape would have parsed: text, value, text, … , text.
  const message: unknown[] = new Array(parts.length);
  for (let i = 0; i < parts.length; i++) {
    message[i] = i % 2 === 0 ? parts[i] : properties[parts[i]];
  }
  // With its category, the record goes to the sinks as it is (LogTape copies one without).
  const record: LogRecord = {
    category: log.category,
    level,
    timestamp: Date.now(),
    rawMessage: template,
    message,
    properties,
  };
  log.emit(record);
}

function logParsed(
  log: Logger,
  level: LogLevel,
  template: string,
  properties: Record<string, unknown>,
): void {
  switch (level) {
    case "trace":
      return log.trace(template, properties);
    case "debug":
      return log.debug(template, properties);
    case "info":
      return log.info(template, properties);
    case "warning":
      return log.warning(template, properties);
    case "error":
      return log.error(template, properties);
    case "fatal":
      return log.fatal(template, properties);
  }
}
