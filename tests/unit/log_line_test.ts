import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
import { logLine } from "../../log/line.ts";

/** Runs `body` with LogTape sending `["test"]` records at `lowestLevel` and up to an array. */
async function withRecords(
  lowestLevel: "debug" | "info",
  body: () => void,
): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["test"], sinks: ["memory"], lowestLevel },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
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
