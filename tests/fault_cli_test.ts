/**
 * Faults from the command line: bad `--fault` values as usage errors, the
 * `opened` line and the stop summary, `from=` sparing other client
 * addresses, `PUT /faults` with `--fault-api`, and the config's `fault` key
 * reloaded on SIGHUP; on both engines.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { serve } from "../server.ts";
import { Cli, connectFrom, httpGet, runCli, testEngines, tryEcho } from "./helpers.ts";

const permissions = ["--allow-net", "--allow-read"];

/** PUTs `body` to `url`; the status and the text answered. */
async function httpPut(url: string, body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { method: "PUT", body, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, text: await response.text() };
}

/** Whether a new connection to `port` gets its echo (false: it was reset or closed at once). */
async function echoes(port: number): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return false;
    throw error;
  }
  using _conn = conn;
  return (await tryEcho(conn, "ping")) === "ping";
}

Deno.test("--fault: a bad spec is a usage error, one line, exit 2", async () => {
  for (
    const [args, message] of [
      [
        ["--fault", "dely=1s"],
        /--fault: fault "dely=1s": unknown name "dely" \(did you mean delay\?\)\n/,
      ],
      [["--fault", "rate=fast"], /--fault: fault "rate=fast": rate "fast": expected a rate/],
      [["--fault-api"], /--fault-api needs --metrics: \/faults is served there\n/],
      [
        ["--fault", "drop=0.5"],
        /--fault drop=0\.5: only datagram faults \(drop, duplicate, reorder\), and no --udp to shape\n/,
      ],
    ] as const
  ) {
    const { code, stderr } = await runCli(["-p", "0", ...args]);
    equal(code, 2, stderr);
    match(stderr, message);
    equal(stderr.trim().split("\n").length <= 2, true, `a line (and a hint) only: ${stderr}`);
  }
});

testEngines(
  "--fault from=127.0.0.2: that client is reset, 127.0.0.3 is spared; lines say so",
  async (io) => {
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--fault", "refuse=1,from=127.0.0.2"],
      { io },
    );
    const port = await cli.port();
    const spared = await connectFrom("127.0.0.3", port);
    equal(await spared.echo("hello"), "hello");
    spared.close();
    const hit = await connectFrom("127.0.0.2", port);
    equal(await hit.echo("hello"), null, "reset before any echo");
    hit.close();
    await cli.waitFor(/opened from 127\.0\.0\.2:\d+; faults: refuse=1,from=127\.0\.0\.2\n/);
    await cli.waitFor(/closed: fault: refused \(reset at once\)/);
    cli.kill("SIGTERM");
    const { stderr } = await cli.finished();
    match(stderr, /stopped: served 2 connections, echoed 5 bytes, 1 faulted on purpose/);
  },
);

testEngines(
  "--fault-api: PUT /faults applies to the next connection; a bad body changes nothing",
  async (io) => {
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--metrics", "127.0.0.1:0", "--fault-api"],
      { io },
    );
    const port = await cli.port();
    const [, metricsPort] = await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/);
    const url = `http://127.0.0.1:${metricsPort}/faults`;
    deepEqual(JSON.parse((await httpGet(url)).text), []);
    ok(await echoes(port), "no fault yet");

    const put = await httpPut(url, '["refuse=1"]');
    equal(put.status, 200, put.text);
    deepEqual(JSON.parse(put.text), ["refuse=1"]);
    await cli.waitFor(/INFO {2}server: PUT \/faults: fault none → refuse=1\n/);
    ok(!(await echoes(port)), "the next connection is refused");

    for (const body of ['["dely=1s"]', "{}", "not json", "[1]"]) {
      const bad = await httpPut(url, body);
      equal(bad.status, 400, `${body}: ${bad.text}`);
      equal(bad.text.trim().split("\n").length, 1, "the reason in one line");
    }
    match((await httpPut(url, '["dely=1s"]')).text, /unknown name "dely"/);
    deepEqual(JSON.parse((await httpGet(url)).text), ["refuse=1"], "nothing changed");
    ok(!(await echoes(port)), "still refused");

    equal((await httpPut(url, "[]")).status, 200);
    ok(await echoes(port), "faults lifted");
    const metrics = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    match(metrics.text, /echo_faults_total\{fault="refuse"\} 2\n/);
    match(metrics.text, /echo_connections_closed_total\{reason="fault"\} 2\n/);
  },
);

Deno.test("without --fault-api, /faults is not served and PUT is not allowed", async () => {
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--metrics", "127.0.0.1:0"]);
  await cli.port();
  const [, metricsPort] = await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/);
  equal((await httpGet(`http://127.0.0.1:${metricsPort}/faults`)).status, 404);
  equal((await httpPut(`http://127.0.0.1:${metricsPort}/faults`, "[]")).status, 405);
});

testEngines("SIGHUP re-reads the config's fault key for new connections", async (io) => {
  const dir = Deno.makeTempDirSync({ prefix: "echo-fault-" });
  const path = `${dir}/echo.json`;
  try {
    Deno.writeTextFileSync(path, JSON.stringify({ fault: ["refuse=1"] }));
    await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--config", path], {
      permissions,
      io,
    });
    const port = await cli.port();
    ok(!(await echoes(port)), "refused by the file's fault");
    Deno.writeTextFileSync(path, JSON.stringify({ fault: [] }));
    cli.kill("SIGHUP");
    await cli.waitFor(/SIGHUP: reloaded \S+: fault refuse=1 → none\n/);
    ok(await echoes(port), "no fault after the reload");
    Deno.writeTextFileSync(path, JSON.stringify({ fault: ["nope=1"] }));
    cli.kill("SIGHUP");
    await cli.waitFor(/not reloaded, nothing changed: .*unknown name "nope"/);
    ok(await echoes(port), "a bad file changes nothing");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a server without faults takes none at run time", () => {
  const server = serve({ hostname: "127.0.0.1", port: 0 });
  try {
    let said = "";
    try {
      server.reconfigureFaults?.(["delay=1s"]);
    } catch (error) {
      said = (error as Error).message;
    }
    equal(said, "this server was started without faults");
  } finally {
    void server.shutdown();
  }
});

testEngines(
  "the client names what a faulted server did: a reset, a close, a stall, a flipped bit",
  async (io) => {
    for (
      const [fault, words] of [
        ["reset-after=2", /reset the connection after echoing 2 of 5 bytes/],
        ["close-after=2", /closed the connection after echoing 2 of 5 bytes/],
        ["stall-after=2", /only 2 of 5 bytes came back within 500ms/],
        ["corrupt=1", /echo differs: sent "hello", got "/],
      ] as const
    ) {
      await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", fault], { io });
      const port = await server.port();
      const { code, stderr } = await runCli([
        "client",
        "-p",
        String(port),
        "-m",
        "hello",
        "-t",
        "500ms",
      ]);
      equal(code, 1, `${fault}: ${stderr}`);
      match(stderr, words);
    }
  },
);

Deno.test("bench against delay=50ms: every latency percentile is 50 ms more at least", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", "delay=50ms"]);
  const port = await server.port();
  const { code, stdout, stderr } = await runCli([
    "bench",
    "-p",
    String(port),
    "-c",
    "2",
    "-d",
    "1s",
    "--json",
  ]);
  equal(code, 0, stderr);
  const latency = JSON.parse(stdout).latencyUs;
  for (const key of ["min", "p50", "p90", "p99", "max"]) {
    ok(latency[key] >= 49_000, `${key} ${latency[key]} µs: not 50 ms more`);
  }
  ok(latency.p50 <= 90_000, `p50 ${latency.p50} µs: far over 50 ms`);
});
