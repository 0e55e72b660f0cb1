/**
 * How a record becomes a line of text or of JSON, with the parts that are the
 * same from one record to the next worked out once: a template's split into
 * text and property names, the timestamp of the current millisecond, a
 * category's dotted name, the start of a text line. A server
 * logs two lines per connection; each piece of garbage a line leaves is paid
 * for in pauses and in the memory the heap grows to under a burst.
 *
 * @module
 */
import type { LogLevel, LogRecord } from "@logtape/logtape";

/** Templates seen so far: text and property names, alternating; `null` where the template is not plain. */
const templates = new Map<string, readonly string[] | null>();
/** A bound on the cache: templates are the program's own literals, a few dozen. */
const MAX_TEMPLATES = 256;
/** Plain templates: `{name}` placeholders only, no `{{` escapes, paths or `{*}`. */
const PLAIN = /^(?:[^{}]|\{\w+\})*$/;

/**
 * A plain template (`{name}` placeholders only) split into its text and its
 * property names, alternating and starting with text; `null` for any other
 * template. Worked out once per template.
 *
 * @example
 * ```ts
 * import { deepEqual, equal } from "node:assert/strict";
 * import { templateParts } from "./render.ts";
 * deepEqual(templateParts("#{id} opened from {peer}"), ["#", "id", " opened from ", "peer", ""]);
 * equal(templateParts("{a.b}"), null);
 * ```
 */
export function templateParts(template: string): readonly string[] | null {
  let parts = templates.get(template);
  if (parts !== undefined) return parts;
  parts = PLAIN.test(template) ? template.split(/\{(\w+)\}/) : null;
  if (templates.size < MAX_TEMPLATES) templates.set(template, parts);
  return parts;
}

/**
 * The record's message as text, values shown bare. A plain template is
 * filled from the record's properties directly; anything else goes through
 * LogTape's own parsing (`record.message`), which costs more.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { renderMessage } from "./render.ts";
 * const record = {
 *   category: ["echo-server", "conn"],
 *   level: "info",
 *   rawMessage: "#{id} opened from {peer}",
 *   message: ["#", 7, " opened from ", "127.0.0.1:5000", ""],
 *   properties: { id: 7, peer: "127.0.0.1:5000" },
 *   timestamp: 0,
 * } as const;
 * equal(renderMessage(record), "#7 opened from 127.0.0.1:5000");
 * ```
 */
export function renderMessage(record: LogRecord): string {
  const parts = typeof record.rawMessage === "string" ? templateParts(record.rawMessage) : null;
  let text = "";
  if (parts === null) {
    for (const part of record.message) text += String(part);
    return text;
  }
  const properties = record.properties;
  for (let i = 0; i < parts.length; i++) {
    text += i % 2 === 0 ? parts[i] : String(properties[parts[i]]);
  }
  return text;
}

let lastTimestamp = Number.NaN;
let lastIso = "";

/**
 * `timestamp` (milliseconds since the epoch) in ISO 8601, made once per
 * millisecond however many lines share it.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isoTime } from "./render.ts";
 * equal(isoTime(0), "1970-01-01T00:00:00.000Z");
 * ```
 */
export function isoTime(timestamp: number): string {
  if (timestamp !== lastTimestamp) {
    lastTimestamp = timestamp;
    lastIso = new Date(timestamp).toISOString();
  }
  return lastIso;
}

/** Each logger's category array is one object for the logger's life: its name is kept with it. */
const categoryNames = new WeakMap<readonly string[], string>();

/**
 * A category's name without its first part, dotted: `conn` for
 * `["echo-server", "conn"]`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { categoryName } from "./render.ts";
 * equal(categoryName(["echo-server", "server", "tls"]), "server.tls");
 * ```
 */
export function categoryName(category: readonly string[]): string {
  let name = categoryNames.get(category);
  if (name === undefined) {
    name = category.slice(1).join(".");
    categoryNames.set(category, name);
  }
  return name;
}

const LEVEL_TEXT: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

/**
 * Formats records as text lines: time, level, the worker's tag (with
 * `--workers`), category and message, ending in a newline.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { textFormatter } from "./render.ts";
 * const format = textFormatter(2);
 * const line = format({
 *   category: ["echo-server", "conn"],
 *   level: "info",
 *   rawMessage: "#{id} opened from {peer}",
 *   message: ["#", 7, " opened from ", "127.0.0.1:5000", ""],
 *   properties: { id: 7, peer: "127.0.0.1:5000" },
 *   timestamp: 0,
 * });
 * equal(line, "1970-01-01T00:00:00.000Z INFO  w2 conn: #7 opened from 127.0.0.1:5000\n");
 * ```
 */
export function textFormatter(worker: number | undefined): (record: LogRecord) => string {
  const tag = worker === undefined ? "" : `w${worker} `;
  // Lines logged in the same millisecond at the same level and category share
  // everything before the message: that part is made once for all of them. A
  // queued line is then three pieces (that shared start, the message, the
  // newline), joined into one string when the queue is written.
  let timestamp = Number.NaN;
  let level: LogLevel | undefined;
  let category: readonly string[] | undefined;
  let prefix = "";
  return (record) => {
    if (
      record.timestamp !== timestamp || record.level !== level || record.category !== category
    ) {
      timestamp = record.timestamp;
      level = record.level;
      category = record.category;
      prefix = `${isoTime(timestamp)} ${LEVEL_TEXT[level]} ${tag}${categoryName(category)}: `;
    }
    return prefix + renderMessage(record) + "\n";
  };
}

/**
 * Formats records as JSON lines: `time`, `level`, `logger`, `worker` (with
 * `--workers`), `message` and the record's properties.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { jsonFormatter } from "./render.ts";
 * const line = jsonFormatter(undefined)({
 *   category: ["echo-server", "server"],
 *   level: "warning",
 *   rawMessage: "refused {peer}",
 *   message: ["refused ", "[::1]:5000", ""],
 *   properties: { peer: "[::1]:5000" },
 *   timestamp: 0,
 * });
 * deepEqual(JSON.parse(line), {
 *   time: "1970-01-01T00:00:00.000Z",
 *   level: "warning",
 *   logger: "echo-server.server",
 *   message: "refused [::1]:5000",
 *   peer: "[::1]:5000",
 * });
 * ```
 */
export function jsonFormatter(worker: number | undefined): (record: LogRecord) => string {
  return (record) =>
    JSON.stringify({
      time: isoTime(record.timestamp),
      level: record.level,
      logger: record.category.join("."),
      ...(worker === undefined ? {} : { worker }),
      message: renderMessage(record),
      ...record.properties,
    }) + "\n";
}
