import { ok, strictEqual, throws } from "node:assert/strict";
import {
  DurationError,
  formatDuration,
  formatExactDuration,
  parseDuration,
} from "../../text/duration.ts";

Deno.test("parseDuration reads units and plain seconds", () => {
  strictEqual(parseDuration("500ms"), 500);
  strictEqual(parseDuration("10s"), 10_000);
  strictEqual(parseDuration("2m"), 120_000);
  strictEqual(parseDuration("1h"), 3_600_000);
  strictEqual(parseDuration("1.5"), 1500);
  strictEqual(parseDuration("0"), 0);
});

Deno.test("parseDuration names what it cannot read, and says why by kind", () => {
  for (const bad of ["", "abc", "-1s", "10 parsecs", "1e3", "s"]) {
    throws(() => parseDuration(bad), (error: unknown) => {
      ok(error instanceof DurationError && error instanceof RangeError);
      strictEqual(error.name, "DurationError");
      strictEqual(error.kind, "syntax");
      strictEqual(error.text, bad);
      ok(error.message.includes(`"${bad}"`), error.message);
      return true;
    });
  }
  throws(() => parseDuration("100000h"), /too long/);
  throws(
    () => parseDuration("100000h"),
    (error: unknown) => error instanceof DurationError && error.kind === "too-long",
  );
});

Deno.test("formatDuration prints short durations readably", () => {
  strictEqual(formatDuration(850), "850ms");
  strictEqual(formatDuration(12_345), "12.3s");
  strictEqual(formatDuration(245_000), "4m05s");
  strictEqual(formatDuration(7_500_000), "2h05m");
});

Deno.test("formatExactDuration prints what parseDuration reads back exactly", () => {
  for (
    const [ms, text] of [[0, "0"], [500, "500ms"], [1000, "1s"], [90_000, "90s"], [300_000, "5m"], [
      7_200_000,
      "2h",
    ], [1500, "1500ms"]] as const
  ) {
    strictEqual(formatExactDuration(ms), text);
    strictEqual(parseDuration(text), ms);
  }
});
