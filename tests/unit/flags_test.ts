import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { runCommand } from "../../cli/command.ts";
import {
  choiceFlag,
  durationFlag,
  hostFlag,
  intFlag,
  listFlag,
  numberFlag,
  portFlag,
  switchFlag,
  UsageError,
} from "../../cli/flags.ts";
import type { FlagTable, FlagValues } from "../../cli/flags.ts";
import { formatFlags, readFlags, scanFlags } from "../../cli/parse.ts";

/** The command's own path: scan, then read every value. */
function parseFlags<S extends FlagTable>(args: readonly string[], table: S): FlagValues<S> {
  return readFlags(scanFlags(args, table), table);
}

const TABLE = {
  port: portFlag({ min: 0, default: 8000, help: "port" }),
  allow: listFlag({ value: "CIDR", help: "allow" }, (text) => text),
  json: switchFlag({ help: "json" }),
};

Deno.test("parseFlags fills defaults, aliases and repeated flags", () => {
  deepStrictEqual(parseFlags([], TABLE), { port: 8000, allow: [], json: false });
  deepStrictEqual(parseFlags(["-p", "1", "--allow", "a", "--allow=b", "--json"], TABLE), {
    port: 1,
    allow: ["a", "b"],
    json: true,
  });
  strictEqual(parseFlags(["-p", "1", "--port", "2"], TABLE).port, 2, "the last one wins");
});

Deno.test("parseFlags names unknown flags, missing values and stray arguments", () => {
  throws(() => parseFlags(["--bogus"], TABLE), {
    name: "UsageError",
    message: "unknown flag --bogus",
  });
  throws(() => parseFlags(["--port"], TABLE), { message: "--port needs a value" });
  throws(() => parseFlags(["--json=yes"], TABLE), { message: "--json takes no value" });
  throws(() => parseFlags(["--port", "--json"], TABLE), {
    message: '--port needs a value (write --port=VALUE for a value that starts with "-")',
  });
  throws(() => parseFlags(["--port=-1"], TABLE), {
    message: 'invalid --port "-1": expected a whole number from 0 to 65535',
  });
  throws(() => parseFlags(["extra"], TABLE), { message: 'unexpected argument "extra"' });
});

Deno.test("value readers name the flag and the bad value", () => {
  const read =
    <T>(flag: { read(given: readonly string[], name: string): T }, name: string) =>
    (text: string) => flag.read([text], name);
  const port = read(portFlag({ min: 0, help: "port" }), "port");
  strictEqual(port("0"), 0);
  for (const bad of ["abc", "-1", "65536", "1.5", ""]) {
    throws(() => port(bad), (e: unknown) => {
      return e instanceof UsageError && e.message.startsWith(`invalid --port "${bad}"`);
    });
  }
  const rate = read(numberFlag({ help: "rate" }), "rate");
  strictEqual(rate("0.5"), 0.5);
  throws(() => rate("0"), /invalid --rate "0"/);
  const idle = read(durationFlag({ help: "idle" }), "idle-timeout");
  strictEqual(idle("5m"), 300_000);
  throws(() => idle("soon"), /invalid --idle-timeout "soon"/);
  throws(() => idle("1000h"), /"1000h": longer than the longest/);
  const timeout = read(durationFlag({ positive: true, help: "t" }), "timeout");
  throws(() => timeout("0"), { message: 'invalid --timeout "0": must be above 0' });
  const host = read(hostFlag({ help: "host" }), "host");
  strictEqual(host("::"), "::");
  throws(() => host(""), /invalid --host "": expected a host name/);
  throws(() => host("bad host!"), /invalid --host "bad host!"/);
  const mode = read(choiceFlag({ choices: ["a", "b"], help: "mode" }), "mode");
  strictEqual(mode("b"), "b");
  throws(() => mode("c"), /expected one of a, b/);
  const list = listFlag({ help: "n" }, (text) => {
    if (text !== "ok") throw new Error(`not ok: "${text}"`);
    return text;
  });
  throws(() => list.read(["ok", "no"], "allow"), { message: '--allow: not ok: "no"' });
});

Deno.test("a value that looks like a negative number belongs to a numeric flag", () => {
  const table = {
    count: intFlag({ short: "n", min: 1, help: "count" }),
    rate: numberFlag({ help: "rate" }),
    wait: durationFlag({ help: "wait" }),
    text: choiceFlag({ short: "t", choices: ["a"], help: "text" }),
  };
  throws(() => parseFlags(["-n", "-3"], table), {
    message: 'invalid --count "-3": expected a whole number 1 or more',
  });
  throws(() => parseFlags(["--rate", "-0.5"], table), {
    message: 'invalid --rate "-0.5": expected a number above 0',
  });
  throws(() => parseFlags(["--wait", "-5s"], table), /invalid --wait "-5s": expected a duration/);
  // Other flags keep the hint: their value may well be a forgotten one.
  throws(() => parseFlags(["-t", "-1"], table), {
    message: '--text needs a value (write --text=VALUE for a value that starts with "-")',
  });
  // After "--" nothing is a flag any more.
  throws(() => parseFlags(["--", "--count", "-3"], table), {
    message: 'unexpected argument "--count"',
  });
});

Deno.test("formatFlags aligns flags and shows defaults", () => {
  strictEqual(
    formatFlags(TABLE),
    [
      "  -p, --port PORT    port (default: 8000)",
      "      --allow CIDR   allow",
      "      --json         json",
    ].join("\n"),
  );
  const durations = {
    a: durationFlag({ default: 300_000, help: "a" }),
    b: durationFlag({ default: 10_000, help: "b" }),
    c: durationFlag({ default: 0, help: "c" }),
  };
  strictEqual(
    formatFlags(durations),
    ["      --a   a (default: 5m)", "      --b   b (default: 10s)", "      --c   c (default: 0)"]
      .join("\n"),
  );
});

Deno.test("a command prints its usage for --help, whatever else was given", async () => {
  let ran = false;
  const command = {
    name: "demo",
    usage: "Usage: demo",
    flags: { port: portFlag({ min: 1, help: "port" }), help: switchFlag({ help: "help" }) },
    run: () => {
      ran = true;
      return Promise.resolve(0);
    },
  };
  const log = console.log;
  const printed: unknown[] = [];
  console.log = (...args: unknown[]) => printed.push(...args);
  try {
    strictEqual(await runCommand(command, ["--port", "abc", "--help"]), 0);
  } finally {
    console.log = log;
  }
  deepStrictEqual(printed, ["Usage: demo"]);
  ok(!ran);
  await rejects(runCommand(command, ["--port", "abc"]), (error: unknown) => {
    ok(error instanceof UsageError);
    strictEqual(error.command, "demo", "the hint points to the command's own --help");
    strictEqual(error.message, 'invalid --port "abc": expected a whole number from 1 to 65535');
    return true;
  });
});
