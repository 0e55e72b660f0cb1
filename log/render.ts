/**
 * The parts of a log line that are the same from one record to the next,
 * worked out once: a template's split into text and property names, the
 * timestamp of the current millisecond, a category's dotted name. A server
 * logs two lines per connection; each piece of garbage a line leaves is paid
 * for in pauses and in the memory the heap grows to under a burst.
 *
 * @module
 */
import type { LogRecord } from "@logtape/logtape";

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
