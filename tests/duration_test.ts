import { strictEqual, throws } from "node:assert/strict";
import { formatDuration, parseDuration } from "../text/duration.ts";

Deno.test("parseDuration reads units and plain seconds", () => {
  strictEqual(parseDuration("500ms"), 500);
  strictEqual(parseDuration("10s"), 10_000);
  strictEqual(parseDuration("2m"), 120_000);
  strictEqual(parseDuration("1h"), 3_600_000);
  strictEqual(parseDuration("1.5"), 1500);
  strictEqual(parseDuration("0"), 0);
});

Deno.test("parseDuration names what it cannot read", () => {
  for (const bad of ["", "abc", "-1s", "10 parsecs", "1e3", "s"]) {
    throws(() => parseDuration(bad), { name: "RangeError", message: new RegExp(`"${bad}"`) });
  }
  throws(() => parseDuration("100000h"), /too long/);
});

Deno.test("formatDuration prints short durations readably", () => {
  strictEqual(formatDuration(850), "850ms");
  strictEqual(formatDuration(12_345), "12.3s");
  strictEqual(formatDuration(245_000), "4m05s");
  strictEqual(formatDuration(7_500_000), "2h05m");
});
