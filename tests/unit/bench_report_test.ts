import assert from "node:assert/strict";
import {
  type BenchOptions,
  type BenchReport,
  formatProgress,
  formatReport,
  runBench,
} from "../../bench/mod.ts";

function options(port: number, more: Partial<BenchOptions> = {}): BenchOptions {
  return {
    host: "127.0.0.1",
    port,
    connections: 4,
    durationMs: 200,
    size: 1000,
    mode: "pingpong",
    ...more,
  };
}

/** A finished pingpong run, as `runBench` would report it. */
function report(more: Partial<BenchReport> = {}): BenchReport {
  return {
    options: {
      host: "127.0.0.1",
      port: 8000,
      connections: 100,
      durationMs: 1000,
      size: 64,
      mode: "pingpong",
      rate: null,
    },
    elapsedS: 1.234,
    messages: 123456,
    bytesSent: 7901184,
    bytesReceived: 7901184,
    msgsPerS: 100045.3,
    rateAchievedFraction: null,
    mbPerS: 6.4,
    connectionsOpened: 100,
    connectionsFailed: 0,
    refused: 0,
    connectionsPerS: 81.04,
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
    latencyUs: {
      count: 123456,
      min: 12.3,
      p50: 400,
      p90: 900,
      p99: 1500,
      p99_9: 4000,
      max: 123456.7,
      mean: 512.5,
    },
    ...more,
  };
}

Deno.test("invalid options are rejected", async () => {
  const bad: Partial<BenchOptions>[] = [
    { connections: 0 },
    { size: 0 },
    { size: 1.5 },
    { durationMs: 0 },
    { port: 70000 },
    { rate: -1 },
    { rate: Number.NaN },
    { rate: Infinity },
    { host: "" },
    { durationMs: 2 ** 31 },
    { mode: "stream", rate: 10 },
    { mode: "bogus" as BenchOptions["mode"] },
  ];
  for (const more of bad) {
    await assert.rejects(runBench(options(1, more)), RangeError, JSON.stringify(more));
  }
});

Deno.test("report wording: singular connection, churn progress shows conn/s", () => {
  const line = formatProgress({
    elapsedS: 1,
    messages: 10,
    msgsPerS: 10,
    mbPerS: 0,
    p99Us: 100,
    openConnections: 0,
    connectionsPerS: 1234,
    mode: "churn",
    errors: 0,
    mismatches: 0,
  });
  assert.ok(line.includes("1,234 conn/s") && !line.includes("0 conns"), line);
  assert.ok(
    formatProgress({
      elapsedS: 1,
      messages: 1,
      msgsPerS: 1,
      mbPerS: 0,
      p99Us: 1,
      openConnections: 1,
      errors: 0,
      mismatches: 0,
    }).includes(" 1 conn "),
  );
});

Deno.test("the report's text, line by line", () => {
  assert.equal(
    formatReport(report()),
    [
      "bench pingpong, 100 connections × 64 B, 1.23 s against 127.0.0.1:8000 (closed loop)",
      "  messages     123,456  (100,045 msg/s)",
      "  throughput   6.4 MB/s echoed  (sent 7.9 MB, received 7.9 MB)",
      "  connections  100 served (81/s), 0 closed by the server before echoing, 0 failed to connect",
      "  errors       0  (0 connect, 0 refused, 0 closed or reset)",
      "  mismatches   0  (0 corrupted, 0 short)",
      "  latency µs   round trip, 123,456 samples, mean 513, min 12",
      "    p50            400  ███████████████",
      "    p90            900  █████████████████",
      "    p99          1,500  ███████████████████",
      "    p99.9        4,000  █████████████████████",
      "    max        123,457  ██████████████████████████████",
      "  result       OK",
    ].join("\n"),
  );
});

Deno.test("report wording: grouped counts, churn slots, IPv6 hosts, failures", () => {
  const o = report().options;
  const big = formatReport(report({
    options: { ...o, host: "::1", connections: 100_000, size: 16 * 1024 * 1024 },
  }));
  assert.ok(
    big.startsWith("bench pingpong, 100,000 connections × 16 MiB, 1.23 s against [::1]:8000 "),
    big,
  );
  // A host given in brackets is not bracketed twice.
  assert.ok(formatReport(report({ options: { ...o, host: "[::1]" } })).includes(" [::1]:8000 "));
  const churn = formatReport(report({
    options: { ...o, mode: "churn", connections: 1500, size: 2048, rate: 1e7 },
    starved: 1234,
    rateAchievedFraction: 0.01,
    msgsPerS: 100_000,
  }));
  assert.ok(churn.startsWith("bench churn, 1,500 slots × 2 KiB, "), churn);
  assert.ok(churn.includes("(open loop at 10,000,000 msg/s)"), churn);
  assert.ok(
    churn.includes("\n  rate         achieved 100,000 of 10,000,000 msg/s requested (1.0 %)\n"),
    churn,
  );
  assert.ok(
    churn.includes(
      ", 1,234 slots got no echo during the run (queued by the server, or this client could not keep up)",
    ),
  );
  assert.ok(churn.includes("latency µs   connect → echo → close, "), churn);
  const one = formatReport(report({
    options: { ...o, mode: "churn", connections: 1, rate: 0.5 },
    starved: 1,
    rateAchievedFraction: 0.5,
    msgsPerS: 0.25,
  }));
  assert.ok(one.startsWith("bench churn, 1 slot × 64 B, "), one);
  assert.ok(one.includes("achieved 0.25 of 0.5 msg/s requested (50.0 %)"), one);
  assert.ok(one.includes(", 1 slot got no echo during the run"), one);
  const failed = formatReport(report({
    options: { ...o, mode: "stream", connections: 4 },
    refused: 3,
    connectionsFailed: 5,
    errors: 7,
    resets: 2,
    mismatches: 3,
    corrupted: 1,
    short: 2,
    timedOut: 3,
    starved: 2,
    firstError: "no reply within the run",
    ok: false,
  }));
  assert.ok(failed.startsWith("bench stream, 4 connections, 1.23 s "), failed);
  for (
    const line of [
      "  connections  98 served (79/s), 3 closed by the server before echoing, 2 failed to connect, 2 got no echo during the run (queued by the server, or this client could not keep up)",
      // The first problem was a timeout: its words are on its own line, not on the errors'.
      "  errors       7  (2 connect, 3 refused, 2 closed or reset)",
      "  mismatches   3  (1 corrupted, 2 short)",
      "  timed out    3  (no reply within the run)",
    ]
  ) {
    assert.ok(failed.includes(`\n${line}\n`), `${line}\nmissing from\n${failed}`);
  }
  assert.ok(failed.includes("latency µs   write → echo per 64 KiB, "), failed);
  assert.ok(failed.endsWith("\n  result       FAILED"), failed);
  const empty = formatReport(report({
    latencyUs: { count: 0, min: 0, p50: 0, p90: 0, p99: 0, p99_9: 0, max: 0, mean: 0 },
  }));
  assert.ok(empty.includes("\n  latency      no samples\n"), empty);
});

Deno.test("progress line: grouped figures, one line", () => {
  assert.equal(
    formatProgress({
      elapsedS: 3.4,
      messages: 510_000,
      msgsPerS: 170_000.4,
      mbPerS: 10.93,
      p99Us: 1300,
      openConnections: 12_345,
      errors: 1234,
      mismatches: 0,
    }),
    "   3s      170,000 msg/s      10.9 MB/s  p99    1,300 µs  12,345 conns  1,234 errors  0 mismatches",
  );
});
