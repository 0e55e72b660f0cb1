import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Config,
  configure,
  getLogger,
  type LogRecord,
  reset,
  withContext,
} from "@logtape/logtape";
import { logLine } from "../../log/line.ts";
import { markImmediate } from "../../log/log.ts";

/**
 * Runs `body` with LogTape sending `["test"]` records at `lowestLevel` and up
 * to an array, through a sink marked immediate as the program's own is (so
 * LogTape hands it the records as they are, uncopied).
 */
async function withRecords(
  lowestLevel: "debug" | "info",
  body: () => void,
  more: Partial<Config<string, string>> = {},
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  // An immediate sink must not keep the record: keep a copy of what it shows.
  const memory = markImmediate((record: LogRecord) =>
    records.push({
      ...record,
      message: [...record.message],
      properties: { ...record.properties },
    })
  );
  await configure({
    sinks: { memory },
    loggers: [
      { category: ["test"], sinks: ["memory"], lowestLevel },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    ...more,
  });
  try {
    body();
  } finally {
    await reset();
  }
  return records;
}

/** What a sink can see of a record, the timestamp left out. */
function seen(record: LogRecord) {
  return {
    category: record.category,
    level: record.level,
    rawMessage: record.rawMessage,
    message: [...record.message],
    properties: { ...record.properties },
  };
}

Deno.test("logLine makes the record LogTape's own template call makes", async () => {
  const templates = [
    "#{id} opened from {peer}",
    "#{id} closed: {reason}; {bytesIn} B in, {bytesOut} B out, {duration}",
    "listening",
    "{a}{b}",
  ];
  const properties = {
    id: 7,
    peer: "[::1]:5000",
    reason: "reset by peer",
    bytesIn: 0,
    bytesOut: 12,
    duration: "1.2 s",
    a: 1,
    b: undefined,
  };
  for (const template of templates) {
    const log = getLogger(["test"]);
    const [ours, theirs] = await withRecords("info", () => {
      logLine(log, "info", template, properties);
      log.info(template, properties);
    });
    deepStrictEqual(seen(ours), seen(theirs), template);
  }
});

Deno.test("a template that is not plain goes through LogTape's parsing", async () => {
  const log = getLogger(["test"]);
  const records = await withRecords("info", () => {
    logLine(log, "warning", "{{braces}} and {user.name}", { user: { name: "ann" } });
  });
  strictEqual(records.length, 1);
  strictEqual(records[0].level, "warning");
  strictEqual(records[0].message.join(""), "{braces} and ann");
});

Deno.test("a line below the level is dropped, and one at it is kept", async () => {
  const log = getLogger(["test"]);
  const records = await withRecords("info", () => {
    logLine(log, "debug", "#{id} got {bytes} bytes", { id: 1, bytes: 3 });
    logLine(log, "error", "#{id} failed", { id: 1 });
  });
  deepStrictEqual(records.map((record) => record.message.join("")), ["#1 failed"]);
});

Deno.test("an implicit context is added to the line, as LogTape adds it to its own", async () => {
  const log = getLogger(["test"]);
  const records = await withRecords(
    "info",
    () =>
      withContext({ tenant: "a" }, () => {
        logLine(log, "info", "#{id} opened from {peer}", { id: 1, peer: "127.0.0.1:5000" });
        log.info("#{id} opened from {peer}", { id: 1, peer: "127.0.0.1:5000" });
      }),
    { contextLocalStorage: new AsyncLocalStorage() },
  );
  strictEqual(records.length, 2);
  deepStrictEqual(seen(records[0]), seen(records[1]));
  strictEqual(records[0].properties.tenant, "a");
});

Deno.test("a source location is captured for the line when a logger asks for it", async () => {
  const log = getLogger(["test"]);
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["test"], sinks: ["memory"], lowestLevel: "info", captureSourceLocation: true },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  try {
    logLine(log, "info", "#{id} opened", { id: 1 });
  } finally {
    await reset();
  }
  strictEqual(records.length, 1);
  strictEqual(records[0].message.join(""), "#1 opened");
  strictEqual(typeof records[0].sourceLocation, "object");
});
