/**
 * Unix domain sockets end to end: `serve --unix`, `client --unix`,
 * `bench --unix`, and `listenUnix` with `serve({ listener })` and
 * `connect({ path })`: echoes, a stale socket file replaced, anything else at
 * the path left alone, a live server's socket refused.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { ClientError, connect } from "../client.ts";
import { Guard, type IoEngine, listenEpollUnix, listenUnix, serve } from "../server.ts";
import { Cli, pattern, runCli, sameBytes, testEngines, within } from "./helpers.ts";

/** A Unix socket's client needs read permission; the server also write, to make the file. */
const permissions = ["--allow-net", "--allow-read", "--allow-write"];
const decoder = new TextDecoder();
const noStackTrace = (stderr: string) => ok(!/^\s+at /m.test(stderr), `stack trace:\n${stderr}`);

/** A fresh directory for socket files, removed by `using`. */
function tempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "echo-unix-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

/** `serve --unix path` on the engine `io`, started and listening. */
async function unixServer(path: string, io: IoEngine, extra: string[] = []): Promise<Cli> {
  const cli = new Cli(["--unix", path, ...extra], { permissions, io });
  // The engine named whenever it is not Deno's own, also for a socket file.
  const words = io === "epoll" ? "Unix socket, epoll" : "Unix socket";
  await cli.waitFor(new RegExp(`listening on /\\S+ \\(${words}\\)\n`));
  return cli;
}

/** Runs a subcommand (with `io`, a server on that engine) with the Unix socket permissions to completion. */
const run = (args: string[], io?: IoEngine) => runCli(args, { permissions, io });

/** A Unix socket listener on the engine `io`. */
function listenOn(io: IoEngine, path: string) {
  return io === "epoll" ? listenEpollUnix(path) : listenUnix(path);
}

testEngines(
  "Unix socket: binary data round trips through the client module; clients share one admission key",
  async (io) => {
    using dir = tempDir();
    const path = `${dir.path}/echo.sock`;
    await using server = serve({
      listener: await listenOn(io, path),
      guard: new Guard({ maxConnsPerIp: 1 }),
    });
    strictEqual(server.addr.path, path);
    await using echo = await connect({ path });
    strictEqual(echo.address, path);
    const data = pattern(300_000, 5);
    ok(
      sameBytes(await within(echo.send(data, { verify: true }), "the echo of 300,000 bytes"), data),
      "echo differs",
    );
    // Unix clients have no address: the per-address cap counts them together.
    await using second = await connect({ path });
    // Closed unread: the write or the read finds out, whichever comes first.
    await rejects(
      within(second.send("refused?", { verify: true }), "the refusal of the second client"),
      (error) => error instanceof ClientError && ["closed", "failed"].includes(error.kind),
    );
    strictEqual(server.stats().refusals["per-ip"], 1);
    await rejects(connect({ path: `${dir.path}/none.sock` }), {
      name: "ClientError",
      kind: "connect",
      message: `cannot connect to ${dir.path}/none.sock: no such socket file`,
    });
  },
);

testEngines(
  "Unix socket: serve --unix, client --unix and bench --unix; the socket file goes at shutdown",
  async (io) => {
    using dir = tempDir();
    const path = `${dir.path}/echo.sock`;
    const cli = await unixServer(path, io);
    await using _server = cli;
    const reply = await run(["client", "--unix", path, "-m", "over a Unix socket"]);
    strictEqual(reply.code, 0, reply.stderr);
    strictEqual(reply.stdout, "over a Unix socket\n");
    await cli.waitFor(/#1 opened from an unnamed socket/);
    // 1 s: the echoes in flight at the end get the drain time, as long as the run.
    const bench = await run(["bench", "--unix", path, "-c", "4", "-d", "1s", "--json"]);
    strictEqual(bench.code, 0, bench.stderr);
    const report = JSON.parse(bench.stdout);
    ok(report.ok && report.messages > 0, bench.stdout);
    strictEqual(report.options.path, path);
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0, stderr);
    noStackTrace(stderr);
    strictEqual(existing(path), false, "the socket file is still there");
  },
);

/** Whether anything is at `path`. */
function existing(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

testEngines("Unix socket: the socket file of a dead server is replaced", async (io) => {
  using dir = tempDir();
  const path = `${dir.path}/echo.sock`;
  // A socket file nobody listens on, as a killed server leaves: closing a
  // listener removes its path, but not a second link to the same socket.
  const dead = Deno.listen({ transport: "unix", path: `${dir.path}/dead.sock` });
  Deno.linkSync(`${dir.path}/dead.sock`, path);
  dead.close();
  ok(Deno.lstatSync(path).isSocket);
  const cli = await unixServer(path, io);
  await using _server = cli;
  ok(
    cli.stderr.includes(`replaced the stale socket file ${path}: no server answered on it`),
    cli.stderr,
  );
  await using echo = await connect({ path });
  strictEqual(
    decoder.decode(await within(echo.send("fresh", { verify: true }), "the echo")),
    "fresh",
  );
});

testEngines(
  "Unix socket: a regular file at the path is left untouched, and the server exits 1 saying why",
  async (io) => {
    using dir = tempDir();
    const path = `${dir.path}/notes.txt`;
    Deno.writeTextFileSync(path, "precious\n");
    const { code, stderr } = await run(["--unix", path], io);
    strictEqual(code, 1);
    strictEqual(stderr.trim().split("\n").length, 1, stderr);
    ok(
      stderr.includes(
        `ERROR server: cannot listen on ${path}: a regular file is there, not a socket; left untouched`,
      ),
      stderr,
    );
    strictEqual(Deno.readTextFileSync(path), "precious\n");
  },
);

testEngines(
  "Unix socket: a live server's socket is refused as in use, and that server keeps serving",
  async (io) => {
    using dir = tempDir();
    const path = `${dir.path}/echo.sock`;
    await using first = serve({ listener: await listenOn(io, path) });
    const { code, stderr } = await run(["--unix", path], io);
    strictEqual(code, 1);
    ok(
      stderr.includes(`cannot listen on ${path}: address already in use (a server answers there)`),
      stderr,
    );
    noStackTrace(stderr);
    await using echo = await connect({ path });
    strictEqual(
      decoder.decode(await within(echo.send("still here", { verify: true }), "the echo")),
      "still here",
    );
    strictEqual(first.addr.path, path);
  },
);

Deno.test("Unix socket flags: what --unix cannot be combined with is a usage error", async () => {
  const cases: Array<[string[], string]> = [
    [["--unix", "/tmp/x.sock", "--workers", "2"], "--workers applies to TCP ports"],
    [
      ["--unix", "/tmp/x.sock", "--cert", "c.pem", "--key", "k.pem"],
      "--cert serves TLS over TCP only",
    ],
    [["--unix", "/tmp/x.sock", "--allow", "10.0.0.0/8"], "--allow and --deny match IP addresses"],
    [["--unix", "/tmp/x.sock", "--udp"], "--udp echoes on a UDP port"],
    [["client", "--unix", "/tmp/x.sock", "--tls"], "--tls runs over TCP only"],
    [["bench", "--unix", "/tmp/x.sock", "--tls"], "--tls runs over TCP only"],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await runCli(args);
    strictEqual(code, 2, `${args.join(" ")}: ${stderr}`);
    ok(stderr.startsWith(`echo-server: ${message}`), stderr);
  }
  const { code, stderr } = await runCli(["--unix", "/tmp/echo-server-unwritable.sock"]);
  strictEqual(code, 1);
  ok(stderr.includes("--unix needs --allow-read --allow-write: run deno with"), stderr);
});
