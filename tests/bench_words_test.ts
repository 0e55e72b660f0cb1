/**
 * What `bench` reports at its edges: a run ended by Ctrl-C says so (text and
 * JSON), connections that got no echo are not called served, small volumes
 * are not 0.0 MB, `-s` in stream mode is a usage error, and TLS connections
 * end cleanly on both sides.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { type BenchReport, formatProgress, formatReport } from "../bench/mod.ts";
import { volume } from "../bench/numbers.ts";
import { Cli, runCli, testEngines } from "./helpers.ts";
import { opensslMissing, testCerts } from "./certs.ts";

const missing = await opensslMissing();

/** A finished pingpong run, as `runBench` would report it. */
function report(more: Partial<BenchReport> = {}): BenchReport {
  return {
    options: {
      host: "127.0.0.1",
      port: 8000,
      connections: 2,
      durationMs: 10_000,
      size: 8,
      mode: "pingpong",
      rate: null,
    },
    elapsedS: 2,
    messages: 2623,
    bytesSent: 20_984,
    bytesReceived: 20_984,
    msgsPerS: 1311.5,
    rateAchievedFraction: null,
    mbPerS: 0.010492,
    connectionsOpened: 2,
    connectionsFailed: 0,
    refused: 0,
    connectionsPerS: 1,
    errors: 0,
    resets: 0,
    mismatches: 0,
    corrupted: 0,
    short: 0,
    timedOut: 0,
    starved: 0,
    firstError: null,
    interrupted: false,
    ok: true,
    latencyUs: { count: 1, min: 1, p50: 1, p90: 1, p99: 1, p99_9: 1, max: 1, mean: 1 },
    ...more,
  };
}

Deno.test("report: small volumes in B and kB, not 0.0 MB; a connection without an echo is not served", () => {
  deepStrictEqual(
    [0, 999, 1000, 20_984, 999_949, 7_901_184].map(volume),
    ["0 B", "999 B", "1.0 kB", "21.0 kB", "999.9 kB", "7.9 MB"],
  );
  const small = formatReport(report());
  ok(
    small.includes("\n  throughput   10.5 kB/s echoed  (sent 21.0 kB, received 21.0 kB)\n"),
    small,
  );
  const none = formatReport(report({ messages: 0, bytesSent: 64, bytesReceived: 0, mbPerS: 0 }));
  ok(none.includes("\n  throughput   0 B/s echoed  (sent 64 B, received 0 B)\n"), none);
  const starved = formatReport(report({ starved: 1 }));
  ok(
    starved.includes(
      "\n  connections  1 served (1/s), 0 closed by the server before echoing, 0 failed to connect, 1 got no echo during the run",
    ),
    starved,
  );
  const interrupted = formatReport(report({ interrupted: true }));
  ok(
    interrupted.includes(
      "\n  interrupted  after 2.00 s of the 10.00 s asked for: the figures are for that part\n",
    ),
    interrupted,
  );
  ok(!small.includes("interrupted"), small);
  // The progress line keeps its columns, and says kB/s rather than 0.0 MB/s.
  const progress = (mbPerS: number) =>
    formatProgress({
      elapsedS: 1,
      messages: 1,
      msgsPerS: 1,
      mbPerS,
      p99Us: 1,
      openConnections: 1,
      errors: 0,
      mismatches: 0,
    });
  ok(progress(0.0123).includes(" msg/s      12.3 kB/s  p99 "), progress(0.0123));
  ok(progress(10.9).includes(" msg/s      10.9 MB/s  p99 "), progress(10.9));
  ok(progress(0).includes(" msg/s          0 B/s  p99 "), progress(0));
});

Deno.test("bench against a real server: small volumes and starved connections read as such", async () => {
  // One connection at a time: the bench's second waits in the backlog for the whole run.
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--max-conns", "1"]);
  const port = String(await server.port());
  const { code, stdout, stderr } = await runCli([
    "bench",
    "-p",
    port,
    "-c",
    "2",
    "-d",
    "400ms",
    "-s",
    "8",
  ]);
  strictEqual(code, 0, stderr);
  ok(!stdout.includes("0.0 MB"), stdout);
  match(
    stdout,
    /\n {2}throughput {3}[\d.,]+ (B|kB)\/s echoed {2}\(sent [\d.,]+ (B|kB), received [\d.,]+ (B|kB)\)\n/,
  );
  match(
    stdout,
    /\n {2}connections {2}1 served \(\d+\/s\), 0 closed by the server before echoing, 0 failed to connect, 1 got no echo during the run /,
  );
});

testEngines(
  "bench against a stalling server: the stalled are timed out, not errors with a reason",
  async (io) => {
    // Echoes the first 5-byte message of each connection, then reads on and answers nothing.
    await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", "stall-after=5"]);
    const port = String(await server.port());
    const { code, stdout, stderr } = await runCli(
      ["bench", "-p", port, "-c", "3", "-d", "300ms", "-s", "5"],
      { io },
    );
    strictEqual(code, 1, stderr);
    match(stdout, /\n {2}errors {7}0 {2}\(0 connect, 0 refused, 0 closed or reset\)\n/);
    match(stdout, /\n {2}timed out {4}3 {2}\(no reply within the run\)\n/);
    ok(!stdout.includes("first:"), stdout);
    match(stdout, /\n {2}result {7}FAILED\n$/);
  },
);

testEngines(
  "bench against a flapping backend (refuse=1): every connect reset is a refusal, with a report",
  async (io) => {
    await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", "refuse=1"]);
    const port = String(await server.port());
    for (const mode of ["pingpong", "churn"]) {
      const { code, stdout, stderr } = await runCli(
        ["bench", "-p", port, "-c", "3", "-d", "300ms", "-m", mode],
        { io },
      );
      strictEqual(code, 1, stderr);
      ok(!stderr.includes("cannot connect"), stderr);
      match(
        stdout,
        /\n {2}errors {7}\d+ {2}\(0 connect, \d+ refused, 0 closed or reset\) {2}first: /,
      );
      match(stdout, /the server closed the connection before echoing \(refused\?\)/);
      match(stdout, /\n {2}result {7}FAILED\n$/);
    }
  },
);

Deno.test("report: the first problem stands on the line that counts it", () => {
  const corrupted = formatReport(report({
    mismatches: 1,
    corrupted: 1,
    firstError: "a corrupted echo: byte 3 of 8 was 0x01, expected 0x02",
    ok: false,
  }));
  match(corrupted, /\n {2}errors {7}0 {2}\(0 connect, 0 refused, 0 closed or reset\)\n/);
  match(
    corrupted,
    /\n {2}mismatches {3}1 {2}\(1 corrupted, 0 short\) {2}first: a corrupted echo: byte 3/,
  );
  const silent = formatReport(
    report({ messages: 0, firstError: "no echo completed within the run", ok: false }),
  );
  match(silent, /\n {2}result {7}FAILED {2}first: no echo completed within the run$/);
  ok(!silent.includes("errors       0  (0 connect, 0 refused, 0 closed or reset)  first"), silent);
});

Deno.test("bench -s in stream mode is a usage error, exit 2", async () => {
  for (const args of [["-m", "stream", "-s", "100"], ["--size", "64", "--mode", "stream"]]) {
    const { code, stdout, stderr } = await runCli(["bench", ...args]);
    strictEqual(code, 2);
    strictEqual(stdout, "");
    strictEqual(
      stderr,
      'echo-server: --size applies to pingpong and churn, not to stream (it writes flat out, about 64 KiB at a time)\nTry "echo-server bench --help" for usage.\n',
    );
  }
});

/** Runs a bench of `args` against `port`, Ctrl-C after its first progress line; its output. */
async function interruptedBench(
  port: number,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using bench = new Cli(["bench", "-p", String(port), "-c", "2", "-d", "30s", ...args]);
  await bench.waitFor(/^ +1s /m);
  bench.kill("SIGINT");
  return await bench.finished();
}

Deno.test("a bench ended by Ctrl-C says it was interrupted, in text and in --json", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--udp"]);
  const port = await server.port();
  const text = await interruptedBench(port, []);
  strictEqual(text.code, 0, text.stderr);
  match(
    text.stdout,
    /\n {2}interrupted {2}after [\d.]+ s of the 30\.00 s asked for: the figures are for that part\n/,
  );
  ok(text.stdout.includes("\n  result       OK"), text.stdout);
  const json = await interruptedBench(port, ["--json"]);
  strictEqual(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  strictEqual(report.interrupted, true);
  ok(report.elapsedS < 30, json.stdout);
  const udp = await interruptedBench(port, ["--udp", "--json"]);
  strictEqual(JSON.parse(udp.stdout).interrupted, true, udp.stdout);
  // A run that ends at its duration was not interrupted.
  const whole = await runCli(["bench", "-p", String(port), "-c", "1", "-d", "200ms", "--json"]);
  strictEqual(JSON.parse(whole.stdout).interrupted, false);
});

Deno.test({
  name:
    `system: TLS connections that bench and client end close cleanly on both sides: the server logs "client closed", no reset${
      missing === undefined ? "" : ` (ignored: ${missing})`
    }`,
  ignore: missing !== undefined,
  fn: async () => {
    const { certPath, keyPath, caPath } = await testCerts();
    const permissions = ["--allow-net", "--allow-read"];
    await using server = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--cert", certPath, "--key", keyPath, "--log-format", "json"],
      { permissions },
    );
    const port = String(await server.port());
    const tls = ["-p", port, "--tls", "--ca", caPath];
    for (const mode of ["pingpong", "stream", "churn"]) {
      await using bench = new Cli(["bench", ...tls, "-c", "4", "-d", "300ms", "-m", mode], {
        permissions,
      });
      const { code, stdout, stderr } = await bench.finished();
      strictEqual(code, 0, stderr);
      ok(stdout.includes("  errors       0  "), stdout);
    }
    for (const args of [["-m", "one"], ["-n", "2", "-i", "10ms"]]) {
      await using client = new Cli(["client", ...tls, ...args], { permissions });
      strictEqual((await client.finished()).code, 0);
    }
    // Every client has exited; the drain waits for the server's side of each connection to end.
    server.kill("SIGTERM");
    const { code, stderr } = await server.finished();
    strictEqual(code, 0, stderr);
    const lines = stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
    const ends = lines.filter((line) => / closed: /.test(line.message)).map((line) => line.reason);
    ok(ends.length > 10, stderr);
    deepStrictEqual(new Set(ends), new Set(["client closed"]));
    // The counts behind echo_connections_closed_total, as the stop line carries them.
    const stopped = lines.find((line) => line.message.startsWith("stopped: "));
    strictEqual(stopped.closed.reset, 0, stopped.message);
    strictEqual(stopped.closed["client-closed"], ends.length, stopped.message);
    strictEqual(stopped.served, ends.length, stopped.message);
  },
});
