import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  choiceFlag,
  durationFlag,
  type FlagTable,
  formatFlags,
  hostFlag,
  intFlag,
  numberFlag,
  parseFlags,
  UsageError,
} from "../cli/flags.ts";

const TABLE: FlagTable = {
  port: { type: "string", short: "p", value: "PORT", default: "8000", help: "port" },
  allow: { type: "string", multiple: true, value: "CIDR", help: "allow" },
  json: { type: "boolean", help: "json" },
};

Deno.test("parseFlags fills defaults, aliases and repeated flags", () => {
  deepStrictEqual(parseFlags([], TABLE), { port: "8000" });
  deepStrictEqual(parseFlags(["-p", "1", "--allow", "a", "--allow=b", "--json"], TABLE), {
    port: "1",
    allow: ["a", "b"],
    json: true,
  });
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
  deepStrictEqual(parseFlags(["--port=-1"], TABLE).port, "-1");
  throws(() => parseFlags(["extra"], TABLE), { message: 'unexpected argument "extra"' });
});

Deno.test("value readers name the flag and the bad value", () => {
  strictEqual(intFlag("port", "0", 0, 65535), 0);
  for (const bad of ["abc", "-1", "65536", "1.5", ""]) {
    throws(() => intFlag("port", bad, 0, 65535), (e: unknown) => {
      return e instanceof UsageError && e.message.startsWith(`invalid --port "${bad}"`);
    });
  }
  strictEqual(numberFlag("rate", "0.5"), 0.5);
  throws(() => numberFlag("rate", "0"), /invalid --rate "0"/);
  strictEqual(durationFlag("idle-timeout", "5m"), 300_000);
  throws(() => durationFlag("idle-timeout", "soon"), /invalid --idle-timeout "soon"/);
  throws(() => durationFlag("idle-timeout", "1000h"), /"1000h": longer than the longest/);
  strictEqual(hostFlag("host", "::"), "::");
  throws(() => hostFlag("host", ""), /invalid --host "": expected a host name/);
  throws(() => hostFlag("host", "bad host!"), /invalid --host "bad host!"/);
  strictEqual(choiceFlag("mode", "b", ["a", "b"]), "b");
  throws(() => choiceFlag("mode", "c", ["a", "b"]), /expected one of a, b/);
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
});
