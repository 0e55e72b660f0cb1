import { strictEqual } from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { categoryName, isoTime, renderMessage } from "../../log/render.ts";

function record(
  rawMessage: string,
  properties: Record<string, unknown>,
  message: unknown[],
): LogRecord {
  return {
    category: ["echo-server", "conn"],
    level: "info",
    rawMessage,
    message,
    properties,
    timestamp: 0,
  };
}

Deno.test("a plain template is filled from the properties, values bare", () => {
  const line = renderMessage(
    record(
      "#{id} closed: {reason}; {bytesIn} B in",
      { id: 3, reason: "client closed", bytesIn: 0 },
      [],
    ),
  );
  strictEqual(line, "#3 closed: client closed; 0 B in");
});

Deno.test("a missing property shows as undefined, as LogTape's own rendering does", () => {
  strictEqual(renderMessage(record("{a} and {b}", { a: 1 }, [])), "1 and undefined");
});

Deno.test("templates with escapes, paths or {*} go through LogTape's parsed message", () => {
  for (const raw of ["{{literal}} {a}", "{user.name}", "{*}", "{a b}"]) {
    strictEqual(renderMessage(record(raw, { a: 1 }, ["parsed ", 1, ""])), "parsed 1");
  }
});

Deno.test("a template without placeholders is itself", () => {
  strictEqual(renderMessage(record("listening", {}, ["listening"])), "listening");
});

Deno.test("the timestamp text changes with the millisecond", () => {
  strictEqual(isoTime(1_000), "1970-01-01T00:00:01.000Z");
  strictEqual(isoTime(1_000), "1970-01-01T00:00:01.000Z");
  strictEqual(isoTime(1_001), "1970-01-01T00:00:01.001Z");
});

Deno.test("a category is named without its first part", () => {
  strictEqual(categoryName(["echo-server", "conn"]), "conn");
  strictEqual(categoryName(["echo-server"]), "");
});

Deno.test("LogTape hands a sink marked immediate its own record, without copying it", async () => {
  const { configure, getLogger, reset } = await import("@logtape/logtape");
  const { markImmediate } = await import("../../log/log.ts");
  const seen: string[] = [];
  for (const marked of [false, true]) {
    const plain = (record: LogRecord) => {
      // LogTape's own record resolves its properties lazily, with a getter; a copy holds data.
      const copied =
        typeof Object.getOwnPropertyDescriptor(record, "properties")?.get !== "function";
      seen.push(copied ? "copy" : "own");
    };
    await configure({
      reset: true,
      sinks: { s: marked ? markImmediate(plain) : plain },
      loggers: [
        { category: ["mark-test"], sinks: ["s"], lowestLevel: "info" },
        { category: ["logtape", "meta"], sinks: [], lowestLevel: "error" },
      ],
    });
    getLogger(["mark-test"]).info("a {b}", { b: 1 });
  }
  await reset();
  strictEqual(seen.join(" "), "copy own");
});

Deno.test("a text line's start follows the record's time, level and category, even within one millisecond", async () => {
  const { textFormatter } = await import("../../log/render.ts");
  const format = textFormatter(undefined);
  const at = (level: LogRecord["level"], category: readonly string[], timestamp: number) =>
    format({ ...record("x", {}, ["x"]), level, category, timestamp });
  strictEqual(at("info", ["echo-server", "conn"], 5), "1970-01-01T00:00:00.005Z INFO  conn: x\n");
  strictEqual(at("info", ["echo-server", "conn"], 5), "1970-01-01T00:00:00.005Z INFO  conn: x\n");
  strictEqual(
    at("warning", ["echo-server", "conn"], 5),
    "1970-01-01T00:00:00.005Z WARN  conn: x\n",
  );
  strictEqual(
    at("warning", ["echo-server", "server"], 5),
    "1970-01-01T00:00:00.005Z WARN  server: x\n",
  );
  strictEqual(
    at("warning", ["echo-server", "server"], 6),
    "1970-01-01T00:00:00.006Z WARN  server: x\n",
  );
});
