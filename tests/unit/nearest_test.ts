import { equal, throws } from "node:assert/strict";
import { choiceFlag } from "../../cli/flags.ts";
import { configToGiven } from "../../cli/config_file.ts";
import { scanFlags } from "../../cli/parse.ts";
import { BENCH_FLAGS } from "../../cli/bench_command.ts";
import { SERVE_FLAGS } from "../../cli/serve_command.ts";
import { didYouMean, editDistance, nearest } from "../../text/nearest.ts";

Deno.test("editDistance: insertions, deletions, substitutions and swaps cost 1 each", () => {
  equal(editDistance("", ""), 0);
  equal(editDistance("port", "port"), 0);
  equal(editDistance("prot", "port"), 1, "a swap of neighbours");
  equal(editDistance("pot", "port"), 1);
  equal(editDistance("ports", "port"), 1);
  equal(editDistance("pirt", "port"), 1);
  equal(editDistance("kitten", "sitting"), 3);
  equal(editDistance("abc", ""), 3);
  equal(editDistance("ca", "abc"), 3, "optimal string alignment: no edit of a swapped pair");
});

Deno.test("nearest: a likely typo finds its name, a different word finds none", () => {
  const names = Object.keys(SERVE_FLAGS);
  equal(nearest("prot", names), "port");
  equal(nearest("max-con", names), "max-conns");
  equal(nearest("max-conns-per", names), "max-conns-per-ip");
  equal(nearest("idle-timout", names), "idle-timeout");
  equal(nearest("drain-time", names), "drain-timeout");
  equal(nearest("PORT", names), "port", "letter case does not count");
  equal(nearest("reuseport", names), "reuse-port");
  equal(nearest("bogus", names), undefined);
  equal(nearest("x", names), undefined);
  equal(nearest("tls", ["udp", "io"]), undefined, "short words need a close match");
  equal(nearest("conections", Object.keys(BENCH_FLAGS)), "connections");
  equal(nearest("anything", []), undefined);
});

Deno.test("didYouMean: the hint as messages end with it", () => {
  equal(didYouMean("prot", ["port"], (n) => `--${n}`), " (did you mean --port?)");
  equal(
    didYouMean("clinet", ["serve", "client", "bench"], (n) => `"${n}"`),
    ' (did you mean "client"?)',
  );
  equal(didYouMean("zzz", ["port"]), "");
});

Deno.test("an unknown flag names the nearest flag of its command; an unknown config key the nearest key", () => {
  throws(() => scanFlags(["--prot", "80"], SERVE_FLAGS), {
    name: "UsageError",
    message: "unknown flag --prot (did you mean --port?)",
  });
  throws(() => scanFlags(["--max-conns-per=3"], SERVE_FLAGS), {
    message: "unknown flag --max-conns-per (did you mean --max-conns-per-ip?)",
  });
  throws(() => scanFlags(["--duraton", "1s"], BENCH_FLAGS), {
    message: "unknown flag --duraton (did you mean --duration?)",
  });
  // Nothing near: no guess; a one-letter alias gets none either.
  throws(() => scanFlags(["--bogus"], SERVE_FLAGS), { message: "unknown flag --bogus" });
  throws(() => scanFlags(["-q"], SERVE_FLAGS), { message: "unknown flag -q" });
  throws(() => configToGiven({ "max-conn-per-ip": 5 }, SERVE_FLAGS, ["config", "help"]), {
    message: 'unknown key "max-conn-per-ip" (did you mean "max-conns-per-ip"?)',
  });
  // A key the file may not hold is not suggested.
  throws(() => configToGiven({ confg: "x" }, SERVE_FLAGS, ["config", "help"]), {
    message: 'unknown key "confg"',
  });
});

Deno.test("choices: any letter case, aliases, and the nearest choice for a typo", () => {
  const level = SERVE_FLAGS["log-level"];
  equal(level.read(["warn"], "log-level"), "warning", "as the text log prints it");
  equal(level.read(["WARN"], "log-level"), "warning");
  equal(level.read(["Warning"], "log-level"), "warning");
  equal(level.read(["DEBUG"], "log-level"), "debug");
  equal(level.read(["Error"], "log-level"), "error");
  throws(() => level.read(["loud"], "log-level"), {
    message: 'invalid --log-level "loud": expected one of debug, info, warning, error',
  });
  throws(() => level.read(["debgu"], "log-level"), {
    message:
      'invalid --log-level "debgu": expected one of debug, info, warning, error (did you mean debug?)',
  });
  equal(SERVE_FLAGS["log-format"].read(["JSON"], "log-format"), "json");
  equal(SERVE_FLAGS["when-full"].read(["Refuse"], "when-full"), "refuse");
  equal(BENCH_FLAGS.mode.read(["STREAM"], "mode"), "stream");
  equal(BENCH_FLAGS.proxy.read(["V2"], "proxy"), "v2");
  const plain = choiceFlag({ choices: ["a", "b"], help: "" });
  throws(() => plain.read(["warn"], "x"), /expected one of a, b$/);
});
