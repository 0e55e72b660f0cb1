/** The commands' flag tables take their defaults and bounds from the library they drive. */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { GUARD_DEFAULTS } from "../../admission/guard.ts";
import { BENCH_LIMITS } from "../../bench/mod.ts";
import { BENCH_FLAGS } from "../../cli/bench_command.ts";
import { CLIENT_FLAGS } from "../../cli/client_command.ts";
import { PORT_MAX } from "../../cli/flags.ts";
import type { FlagTable, FlagValues } from "../../cli/flags.ts";
import { formatFlags, readFlags, scanFlags } from "../../cli/parse.ts";
import { SERVE_FLAGS } from "../../cli/serve_command.ts";
import { CONNECT_DEFAULTS } from "../../client.ts";
import { SERVE_DEFAULTS } from "../../server.ts";
import { MAX_WORKERS } from "../../server/workers.ts";

/** The command's own path: scan, then read every value. */
function parseFlags<S extends FlagTable>(args: readonly string[], table: S): FlagValues<S> {
  return readFlags(scanFlags(args, table), table);
}

Deno.test("serve's defaults are serve()'s and the guard's", () => {
  const values = parseFlags([], SERVE_FLAGS);
  strictEqual(values.host, SERVE_DEFAULTS.hostname);
  strictEqual(values.port, SERVE_DEFAULTS.port);
  strictEqual(values["drain-timeout"], SERVE_DEFAULTS.drainTimeoutMs);
  strictEqual(values["when-full"], SERVE_DEFAULTS.whenFull);
  strictEqual(values["idle-timeout"], SERVE_DEFAULTS.idleTimeoutMs);
  strictEqual(values["max-lifetime"], SERVE_DEFAULTS.maxLifetimeMs);
  strictEqual(values["max-conns"], GUARD_DEFAULTS.maxConns);
  strictEqual(values["max-conns-per-ip"], undefined);
  strictEqual(values.rate, undefined);
  strictEqual(values.workers, 1);
  deepStrictEqual([values.allow, values.deny], [[], []]);
  const help = formatFlags(SERVE_FLAGS);
  for (const shown of ["(default: 10s)", "(default: 5m)", "(default: 0)", "(default: 10000)"]) {
    strictEqual(help.includes(shown), true, `${shown} in\n${help}`);
  }
});

Deno.test("serve's --workers is bounded by MAX_WORKERS and takes auto", () => {
  strictEqual(parseFlags(["--workers", String(MAX_WORKERS)], SERVE_FLAGS).workers, MAX_WORKERS);
  throws(() => parseFlags(["--workers", String(MAX_WORKERS + 1)], SERVE_FLAGS), {
    message: `invalid --workers "${
      MAX_WORKERS + 1
    }": expected a whole number from 1 to ${MAX_WORKERS}, or auto`,
  });
  strictEqual(
    parseFlags(["--workers", "auto"], SERVE_FLAGS).workers,
    navigator.hardwareConcurrency,
  );
});

Deno.test("client and bench connect where connect() does by default", () => {
  const client = parseFlags([], CLIENT_FLAGS);
  deepStrictEqual([client.host, client.port], [CONNECT_DEFAULTS.host, CONNECT_DEFAULTS.port]);
  deepStrictEqual([client.interval, client.timeout], [1000, 10_000]);
  const bench = parseFlags([], BENCH_FLAGS);
  deepStrictEqual([bench.host, bench.port], [CONNECT_DEFAULTS.host, CONNECT_DEFAULTS.port]);
  strictEqual(parseFlags(["-p", String(PORT_MAX)], CLIENT_FLAGS).port, PORT_MAX);
  throws(() => parseFlags(["-p", "0"], CLIENT_FLAGS), { message: /from 1 to 65535/ });
  strictEqual(parseFlags(["-p", "0"], SERVE_FLAGS).port, 0);
});

Deno.test("bench's bounds are runBench's", () => {
  throws(
    () => parseFlags(["-c", String(BENCH_LIMITS.maxConnections + 1)], BENCH_FLAGS),
    { message: new RegExp(`from 1 to ${BENCH_LIMITS.maxConnections}$`) },
  );
  strictEqual(
    parseFlags(["-c", String(BENCH_LIMITS.maxConnections)], BENCH_FLAGS).connections,
    BENCH_LIMITS.maxConnections,
  );
  throws(
    () => parseFlags(["-s", String(BENCH_LIMITS.maxSize + 1)], BENCH_FLAGS),
    {
      message: `invalid --size "${
        BENCH_LIMITS.maxSize + 1
      }": expected a whole number from 1 to ${BENCH_LIMITS.maxSize}`,
    },
  );
  throws(() => parseFlags(["-d", "0"], BENCH_FLAGS), {
    message: 'invalid --duration "0": must be above 0',
  });
});

Deno.test("a number too large for any flag says so; --workers names auto", () => {
  throws(() => parseFlags(["--max-conns", "999999999999999999999999"], SERVE_FLAGS), {
    message:
      `invalid --max-conns "999999999999999999999999": too large (at most ${Number.MAX_SAFE_INTEGER})`,
  });
  throws(() => parseFlags(["--workers", "x"], SERVE_FLAGS), {
    message: `invalid --workers "x": expected a whole number from 1 to 64, or auto`,
  });
});
