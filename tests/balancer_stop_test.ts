/**
 * A balancer's stop, for real: `deploy/haproxy.cfg` with its shipped timing
 * (checks every 1 s, down after 2 failures) in front of the three instances
 * its comments start (with their `--shutdown-delay`), the project's own
 * bench churning connections through HAProxy, and SIGTERM to one instance
 * mid-run. Not one connect may fail: the stopping instance says 503 on
 * `/readyz` while it keeps accepting, HAProxy marks it down, and only then
 * does its listener close. Run with `net.ipv4.tcp_migrate_req` at 0 (set by
 * the test where it may, and restored), where connections queued on a closing
 * listener are reset: none may be queued there. Named `system: …`: it needs
 * `haproxy`; without it it is ignored, saying why.
 */
import { equal, ok } from "node:assert/strict";
import { Cli, testEngines, until } from "./helpers.ts";
import type { IoEngine } from "../server.ts";
import { flagValue, haproxyMissing, INSTANCE_ARGS, startStack } from "./haproxy.ts";
import { migrateReqSettable, withMigrateReq } from "./sysctl.ts";
import { parseDuration } from "../text/duration.ts";

const missing = await haproxyMissing();

/** The bench's JSON report. */
interface BenchReport {
  connectionsOpened: number;
  connectionsFailed: number;
  refused: number;
  errors: number;
  resets: number;
  mismatches: number;
  ok: boolean;
  firstError: string | null;
}

const settable = migrateReqSettable();
const ignored = missing !== undefined
  ? ` (ignored: ${missing})`
  : settable
  ? ", tcp_migrate_req=0 (set by the test, then restored)"
  : ", tcp_migrate_req as the machine has it";

testEngines(
  `system: SIGTERM to one of deploy/haproxy.cfg's instances under churn loses no connection${ignored}`,
  (io) => withMigrateReq("0", () => balancerStop(io)),
  { ignore: missing !== undefined },
);

/** The test itself; see the module's documentation. */
async function balancerStop(io: IoEngine): Promise<void> {
  // What makes the stop lossless: the instances accept longer than HAProxy takes to see the
  // 503 (checks 1 s apart, down after 2 failures), as the file starts them.
  const delayMs = parseDuration(flagValue(INSTANCE_ARGS[0], "--shutdown-delay"));
  ok(delayMs > 2_000, `--shutdown-delay ${delayMs} ms in deploy/haproxy.cfg's command lines`);
  await using stack = new AsyncDisposableStack();
  const { instances, names, front, haproxy } = await startStack(stack, io);
  // Until HAProxy listens, connects are refused: the load starts once one gets through.
  await until(
    "HAProxy to take a connection",
    () =>
      Deno.connect({ hostname: "127.0.0.1", port: front }).then(
        (conn) => (conn.close(), true),
        () => undefined,
      ),
  );
  // The load runs until told to stop (SIGINT: the bench reports and exits), after the stop.
  const bench = stack.use(
    new Cli([
      "bench",
      "--port",
      String(front),
      "--mode",
      "churn",
      "--connections",
      "10",
      "--duration",
      "60s",
      "--json",
    ]),
  );
  const stopping = instances[1];
  const others = instances.filter((cli) => cli !== stopping);
  // The load has reached the instance before it is told to stop.
  await stopping.waitFor(/#20 opened from/);
  stopping.kill("SIGTERM");
  await stopping.waitFor(/SIGTERM: not ready/);
  await until(
    `HAProxy to mark ${names.get(stopping)} down`,
    () =>
      new RegExp(
        `Server echo/${names.get(stopping)} is DOWN, reason: Layer7 wrong status, code: 503`,
      )
        .exec(haproxy.log) ?? undefined,
  );
  const { code, stderr } = await stopping.finished();
  equal(code, 0, stderr);
  // (That it goes on accepting during the delay is tests/shutdown_delay_test.ts's to show:
  // whether HAProxy sends it anyone then is up to its balancing and the machine's pace.)
  // The load went on after the instance had gone: 20 more connections through the others.
  const opens = () =>
    others.reduce((n, cli) => n + (cli.stderr.match(/ opened from /g)?.length ?? 0), 0);
  const before = opens();
  await until("20 more connections through the other instances", () => opens() >= before + 20);
  bench.kill("SIGINT");
  const { code: benchCode, stdout } = await bench.finished();
  const report = JSON.parse(stdout) as BenchReport;
  const lost = {
    failed: report.connectionsFailed,
    refused: report.refused,
    errors: report.errors,
    resets: report.resets,
    mismatches: report.mismatches,
  };
  equal(
    JSON.stringify(lost),
    JSON.stringify({ failed: 0, refused: 0, errors: 0, resets: 0, mismatches: 0 }),
    `first error: ${report.firstError}; ${report.connectionsOpened} connects`,
  );
  ok(report.ok && benchCode === 0, stdout);
  ok(report.connectionsOpened > 100, `only ${report.connectionsOpened} connects`);
}
