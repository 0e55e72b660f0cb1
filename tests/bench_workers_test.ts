/**
 * `bench --workers N`: the load split over isolates and merged into one
 * report; and the new flags' errors, each one line and an exit code.
 */
import { equal, match, ok } from "node:assert/strict";
import { Cli, runCli } from "./helpers.ts";

Deno.test("bench --workers 2 splits the connections and merges one report", async () => {
  await using server = new Cli(["--host", "127.0.0.1", "--port", "0"], { io: "epoll" });
  const port = String(await server.port());
  for (const io of ["deno", "epoll"]) {
    await using cli = new Cli(
      ["bench", "-p", port, "-c", "6", "-d", "1s", "--workers", "2", "--io", io, "--json"],
      { permissions: ["--allow-net", "--allow-read", "--allow-ffi"] },
    );
    const { code, stdout, stderr } = await cli.finished();
    equal(code, 0, stderr);
    const r = JSON.parse(stdout);
    equal(r.workers, 2);
    equal(r.options.connections, 6);
    equal(r.connectionsOpened, 6);
    equal(r.mismatches + r.errors, 0, stdout);
    equal(r.perConnection.none, 0, stdout);
    // The merged latency counts every message of both workers.
    equal(r.latencyUs.count, r.messages, stdout);
    ok(r.series.length >= 1 && r.series[0].msgsPerS > 0, stdout);
  }
});

Deno.test("bench's engine and output flags refuse bad values in one line", async () => {
  const usage = [
    [["--workers", "0"], /invalid --workers "0": expected a count from 1 to 256, or auto/],
    [["--warmup", "soon"], /invalid --warmup "soon": expected a duration/],
    [["--io", "uring"], /invalid --io "uring"/],
    [
      ["--io", "epoll", "--unix", "/tmp/x.sock"],
      /--io epoll drives TCP connections: not with --unix/,
    ],
    [["--udp", "--workers", "2"], /--workers applies to TCP runs, not to --udp/],
    [["-d", "1s", "--ramp", "2s"], /--ramp must fit in the run/],
  ] as const;
  for (const [args, message] of usage) {
    const { code, stderr } = await runCli(["bench", "-p", "1", ...args]);
    equal(code, 2, stderr);
    match(stderr, message);
    ok(!stderr.includes("    at "), stderr);
  }
  // Without --allow-ffi the epoll engine cannot run, without --allow-read the workers cannot
  // load: said before any load, exit 1.
  const ffi = await runCli(["bench", "-p", "1", "--io", "epoll"]);
  equal(ffi.code, 1);
  match(
    ffi.stderr,
    /^echo-server bench: --io epoll calls libc directly and needs --allow-ffi.*\n$/,
  );
  const read = await runCli(["bench", "-p", "1", "--workers", "2"]);
  equal(read.code, 1);
  match(read.stderr, /^echo-server bench: --workers loads .*worker\.ts .*--allow-read\n$/);
});
