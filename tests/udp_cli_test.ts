/**
 * UDP through the command line: `serve --udp`, `client --udp`, `bench --udp`
 * as real subprocesses, their output and exit codes.
 */
import { equal, ok } from "node:assert/strict";
import { serve } from "../server.ts";
import { Cli, runCli } from "./helpers.ts";
import { Inbox } from "./udp_helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;

Deno.test("UDP CLI: serve --udp, then client --udp with -m, --count and stdin lines", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--udp"]);
  const port = String(await server.port());
  await server.waitFor(/echoing UDP datagrams on 127\.0\.0\.1:\d+/);

  const one = await runCli(["client", "--udp", "-p", port, "-m", "Hello, server"]);
  equal(one.code, 0, one.stderr);
  equal(one.stdout, "Hello, server\n");

  const series = await runCli(["client", "--udp", "-p", port, "--count", "2", "-i", "10ms"]);
  equal(series.code, 0, series.stderr);
  equal(series.stdout, "Hello, server 2\nHello, server 1\n");

  const piped = await runCli(["client", "--udp", "-p", port], { stdin: "one\ntwo\nthree" });
  equal(piped.code, 0, piped.stderr);
  equal(piped.stdout, "one\ntwo\nthree");

  server.kill("SIGTERM");
  const { code, stderr } = await server.finished();
  equal(code, 0, stderr);
  ok(
    /stopped: served 0 connections, echoed 0 bytes; datagrams: 6 echoed \(56 bytes\), 0 dropped/
      .test(stderr),
    stderr,
  );
});

Deno.test("UDP CLI: client --udp says so, and exits 1, when no reply comes", async () => {
  // A socket that receives and never answers: the server "is there" but silent.
  await using silent = new Inbox();
  const { code, stdout, stderr } = await runCli([
    "client",
    "--udp",
    "-p",
    String(silent.port),
    "-m",
    "anyone?",
    "-t",
    "200ms",
  ]);
  equal(code, 1);
  equal(stdout, "");
  ok(stderr.includes(`no reply from 127.0.0.1:${silent.port} within 200ms`), stderr);
  ok(stderr.includes("--udp"), stderr);
  ok(!stderr.includes("    at "), stderr);
  ok(await silent.next(1_000) !== null, "the datagram never left");
});

Deno.test("UDP CLI: bench --udp reports no loss on a short run, in JSON", async () => {
  await using server = serve({ ...local, udp: { rate: 1_000_000 } });
  // A datagram is lost when its echo takes longer than the run, up to 1 s: 400 ms was little
  // margin on a busy machine.
  const { code, stdout, stderr } = await runCli([
    "bench",
    "--udp",
    "-p",
    String(server.addr.port),
    "-c",
    "4",
    "-w",
    "2",
    "-d",
    "1s",
    "--json",
  ]);
  equal(code, 0, stderr);
  const report = JSON.parse(stdout);
  ok(report.ok, stdout);
  ok(report.messages > 0, stdout);
  equal(report.udp.lost, 0, stdout);
  equal(report.udp.duplicated, 0, stdout);
  equal(report.udp.sent, report.udp.echoed, stdout);
  equal(report.udp.sockets, 4);
  equal(report.udp.window, 2);
  equal(report.mismatches, 0);
  equal(report.options.udp, true);
  equal(server.stats().datagrams?.echoed, report.udp.echoed);
});

Deno.test("UDP CLI: bench --udp against a server's reply limit reports the loss and why", async () => {
  await using server = serve({ ...local, udp: { rate: 0.01, burst: 5 } });
  const { code, stdout, stderr } = await runCli([
    "bench",
    "--udp",
    "-p",
    String(server.addr.port),
    "-c",
    "2",
    "-d",
    "300ms",
  ]);
  // Lost datagrams are UDP's nature: reported, and not a failure.
  equal(code, 0, stderr);
  const lost = stdout.match(/lost +(\d+)/);
  ok(lost !== null && Number(lost[1]) > 0, stdout);
  ok(/datagrams +\d+ sent, 5 echoed/.test(stdout), stdout);
  ok(stdout.includes("serve --udp-rate"), stdout);
  equal(server.stats().datagrams?.dropped.rate, Number(lost[1]));
});

Deno.test("UDP CLI: bench --udp with nobody answering fails in one line", async () => {
  await using silent = new Inbox();
  const { code, stderr } = await runCli([
    "bench",
    "--udp",
    "-p",
    String(silent.port),
    "-c",
    "1",
    "-d",
    "200ms",
  ]);
  equal(code, 1);
  ok(stderr.includes("no datagram came back"), stderr);
  ok(!stderr.includes("    at "), stderr);
});

Deno.test("UDP CLI: --workers 2 --udp: worker 1 echoes datagrams, the total counts them", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--workers", "2", "--udp"], {
    permissions: ["--allow-net", "--allow-read"],
  });
  const port = await server.port();
  await server.waitFor(/2 workers share/);
  await using inbox = new Inbox();
  for (let i = 0; i < 3; i++) {
    await inbox.send(`datagram ${i}`, port);
    ok(await inbox.next(5_000) !== null, `no reply to datagram ${i}`);
  }
  server.kill("SIGTERM");
  const { code, stderr } = await server.finished();
  equal(code, 0, stderr);
  equal(stderr.match(/echoing UDP datagrams/g)?.length, 1, stderr);
  ok(/ w1 server: echoing UDP datagrams/.test(stderr), stderr);
  ok(/\n\S+ INFO {2}server: stopped: .*datagrams: 3 echoed/.test(stderr), stderr);
});

for (
  const [args, message] of [
    [["--udp", "--udp-rate", "0"], 'invalid --udp-rate "0": expected a number above 0'],
    [["--udp", "--udp-rate", "fast"], 'invalid --udp-rate "fast"'],
    [["--udp", "--udp-burst", "0"], 'invalid --udp-burst "0"'],
    [["--udp-rate", "5"], "--udp-rate and --udp-burst need --udp"],
    [["bench", "--udp", "-m", "stream"], "--udp runs pingpong only, not --mode stream"],
    [["bench", "--udp", "-s", "4"], 'invalid --size "4": a datagram of --udp holds 8 to 65507'],
    [["bench", "--udp", "-s", "65508"], 'invalid --size "65508"'],
    [["bench", "--window", "2"], "--window needs --udp"],
  ] as const
) {
  Deno.test(`UDP CLI: ${args.join(" ")} exits 2 with one line`, async () => {
    const { code, stderr } = await runCli([...args]);
    equal(code, 2, stderr);
    ok(stderr.includes(message), stderr);
    ok(!stderr.includes("    at "), stderr);
  });
}
