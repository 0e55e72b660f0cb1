/**
 * What `serve` says to someone using it for the first time: log levels as
 * the log prints them, the nearest name for a typo, every missing
 * permission at once, why a port is in use, `--metrics :PORT`, what the
 * `listening on` line names, and the stop summary.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { Cli, readToEnd, runCli, writeAll } from "./helpers.ts";
import { opensslMissing, testCerts } from "./certs.ts";

const missing = await opensslMissing();

/** Runs `main.ts` with `args` and `permissions` (none by default) to its end. */
const run = (args: string[], permissions: string[] = []) => runCli(args, { permissions });

/** The one line a run wrote to stderr, without its time stamp. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  strictEqual(lines.length, 1, stderr);
  return lines[0].replace(/^\S+Z /, "");
}

/** A free loopback TCP port (listened on, then closed). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

Deno.test("--log-level takes warn (as the log prints it) and any letter case", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(taken.addr.port);
  for (const level of ["warn", "WARN", "Warning", "ERROR"]) {
    // Read and in force: the failure to listen is an ERROR line and exit 1, not a usage error.
    const { code, stderr } = await run(["-H", "127.0.0.1", "-p", port, "--log-level", level], [
      "--allow-net",
    ]);
    strictEqual(code, 1, `${level}: ${stderr}`);
    match(
      oneLine(stderr),
      /^ERROR server: cannot listen on 127\.0\.0\.1:\d+: address already in use$/,
    );
  }
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--log-level", "DEBUG"]);
  const echoPort = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: echoPort });
  await writeAll(conn, new TextEncoder().encode("hi"));
  await cli.waitFor(/DEBUG conn: /);
});

Deno.test("a typo in a flag or a command names the nearest one, exit 2", async () => {
  const cases: [string[], string][] = [
    [
      ["--prot", "80"],
      'unknown flag --prot (did you mean --port?)\nTry "echo-server serve --help"',
    ],
    [["--idle-timout", "1s"], "unknown flag --idle-timout (did you mean --idle-timeout?)"],
    [["clinet", "-m", "x"], 'unknown command "clinet" (did you mean "client"?)'],
    [["bench", "--conections", "3"], "unknown flag --conections (did you mean --connections?)"],
    [["client", "--mesage", "x"], "unknown flag --mesage (did you mean --message?)"],
    [
      ["--log-level", "wraning"],
      "expected one of debug, info, warning, error (did you mean warning?)",
    ],
  ];
  for (const [args, expected] of cases) {
    const { code, stderr } = await run(args, ["--allow-net"]);
    strictEqual(code, 2, stderr);
    ok(stderr.startsWith(`echo-server: `) && stderr.includes(expected), stderr);
  }
});

Deno.test("missing permissions are listed all at once, in one line, exit 1", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "echo-permissions-" });
  try {
    const sock = `${dir}/echo.sock`;
    const config = `${dir}/echo.json`;
    Deno.writeTextFileSync(config, "{}");
    const unixConfig = `${dir}/unix.json`;
    Deno.writeTextFileSync(unixConfig, JSON.stringify({ unix: sock }));
    const serveCases: [string[], string[], string][] = [
      [
        ["--unix", sock],
        ["--allow-net"],
        "--unix needs --allow-read --allow-write: run deno with --allow-read --allow-write",
      ],
      [
        ["-p", "0", "--cert", `${dir}/c.pem`, "--key", `${dir}/k.pem`, "--config", config],
        ["--allow-net"],
        "--cert, --key and --config need --allow-read: run deno with --allow-read",
      ],
      [
        ["-H", "127.0.0.1", "-p", "0", "--metrics", "127.0.0.1:0", "--unix", sock],
        [],
        "--unix needs --allow-read --allow-write --allow-net, --metrics needs --allow-net: run deno with --allow-read --allow-write --allow-net",
      ],
      [
        // Where it listens comes from the file: no need for the default port's is made up.
        ["--config", unixConfig],
        ["--allow-read", "--allow-write"],
        "--unix needs --allow-net: run deno with --allow-net",
      ],
    ];
    if (Deno.build.os === "linux") {
      serveCases.push([
        ["-p", "0", "--workers", "2", "--io", "epoll"],
        ["--allow-net"],
        "--workers needs --allow-read, --io epoll needs --allow-ffi: run deno with --allow-read --allow-ffi",
      ]);
    }
    for (const [args, permissions, expected] of serveCases) {
      const { code, stderr } = await run(args, permissions);
      strictEqual(code, 1, stderr);
      ok(oneLine(stderr).startsWith(`ERROR server: ${expected}`), stderr);
    }
    const client = await run(["client", "--unix", sock, "-m", "hi"], ["--allow-net"]);
    strictEqual(client.code, 1);
    strictEqual(
      client.stderr,
      "echo-server client: --unix needs --allow-read --allow-write: run deno with --allow-read --allow-write\n",
    );
    const bench = await run(["bench", "--tls", "--ca", `${dir}/ca.pem`, "--json"]);
    strictEqual(bench.code, 1);
    const reason =
      "connecting to 127.0.0.1:8000 needs --allow-net, --ca needs --allow-read: run deno with --allow-net --allow-read";
    deepStrictEqual(JSON.parse(bench.stdout), { ok: false, error: reason });
    strictEqual(bench.stderr, `echo-server bench: ${reason}\n`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("address already in use: hints at --reuse-port when the holder shares the port, not otherwise", async () => {
  using sharing = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const port = String(sharing.addr.port);
  const { code, stderr } = await run(["-H", "127.0.0.1", "-p", port], ["--allow-net"]);
  strictEqual(code, 1, stderr);
  strictEqual(
    oneLine(stderr),
    `ERROR server: cannot listen on 127.0.0.1:${port}: address already in use: the listener there shares its port (it was started with --reuse-port, as for an upgrade): start this one with --reuse-port too to share it`,
  );
  // The same holder with --reuse-port: shared, as an upgrade needs.
  {
    await using second = new Cli(["-H", "127.0.0.1", "-p", port, "--reuse-port"]);
    strictEqual(await second.port(), sharing.addr.port);
  }
  // The metrics endpoint's port, the same way.
  const metrics = await run(["-H", "127.0.0.1", "-p", "0", "--metrics", `127.0.0.1:${port}`], [
    "--allow-net",
  ]);
  strictEqual(metrics.code, 1);
  ok(
    oneLine(metrics.stderr).startsWith(
      `ERROR server: cannot serve metrics on 127.0.0.1:${port}: address already in use: the listener there shares its port`,
    ),
    metrics.stderr,
  );
  // A holder that does not share: the plain reason, no hint.
  using plain = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held = await run(["-H", "127.0.0.1", "-p", String(plain.addr.port)], ["--allow-net"]);
  strictEqual(held.code, 1);
  strictEqual(
    oneLine(held.stderr),
    `ERROR server: cannot listen on 127.0.0.1:${plain.addr.port}: address already in use`,
  );
});

Deno.test("address already in use by the server's own --metrics: named, exit 1", async () => {
  const port = freePort();
  const { code, stderr } = await run(
    ["-H", "127.0.0.1", "-p", String(port), "--metrics", `:${port}`],
    ["--allow-net"],
  );
  strictEqual(code, 1, stderr);
  const lines = stderr.trimEnd().split("\n").map((line) => line.replace(/^\S+Z /, ""));
  deepStrictEqual(lines, [
    `INFO  server: metrics on http://0.0.0.0:${port}`,
    `ERROR server: cannot listen on 127.0.0.1:${port}: address already in use: the --metrics endpoint of this server took it (0.0.0.0:${port}); give --metrics another port`,
  ]);
});

Deno.test("--metrics :PORT serves on every address", async () => {
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--metrics", ":0"]);
  const [, port] = await cli.waitFor(/metrics on http:\/\/0\.0\.0\.0:(\d+)\n/);
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  strictEqual(response.status, 200);
  strictEqual(await response.text(), "ok\n");
});

Deno.test("the listening line names Unix, PROXY and the engine, with a field for each in JSON", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "echo-listening-" });
  try {
    const path = `${dir}/echo.sock`;
    {
      await using cli = new Cli(["--unix", path, "--proxy-protocol"], {
        permissions: ["--allow-net", "--allow-read", "--allow-write"],
      });
      await cli.waitFor(
        new RegExp(`INFO  server: listening on ${path} \\(Unix socket, PROXY protocol\\)\\n`),
      );
    }
    const args = ["-H", "127.0.0.1", "-p", "0", "--proxy-protocol", "--trusted-proxy", "127.0.0.1"];
    {
      await using cli = new Cli(args);
      await cli.waitFor(/INFO {2}server: listening on 127\.0\.0\.1:\d+ \(PROXY protocol\)\n/);
    }
    if (Deno.build.os === "linux") {
      await using cli = new Cli([...args, "--log-format", "json"], { io: "epoll" });
      const [line] = await cli.waitFor(/.*listening on.*\n/);
      const record = JSON.parse(line);
      match(record.message, /^listening on 127\.0\.0\.1:\d+ \(PROXY protocol, epoll\)$/);
      strictEqual(record.proxyProtocol, true);
      strictEqual(record.io, "epoll");
      strictEqual(record.tls, undefined);
    }
    {
      // Plain TCP on Deno's sockets: nothing to name.
      await using cli = new Cli(["-H", "127.0.0.1", "-p", "0"]);
      await cli.waitFor(/INFO {2}server: listening on 127\.0\.0\.1:\d+\n/);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: `system: the listening line names TLS${
    missing === undefined ? "" : ` (ignored: ${missing})`
  }`,
  ignore: missing !== undefined,
  fn: async () => {
    const { certPath, keyPath } = await testCerts();
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--cert", certPath, "--key", keyPath, "--log-format", "json"],
      { permissions: ["--allow-net", "--allow-read"] },
    );
    const [line] = await cli.waitFor(/.*listening on.*\n/);
    const record = JSON.parse(line);
    match(record.message, /^listening on 127\.0\.0\.1:\d+ \(TLS\)$/);
    strictEqual(record.tls, true);
  },
});

Deno.test("the stop summary counts connections cut at the drain timeout, and groups large numbers", async () => {
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--drain-timeout", "300ms"]);
  const port = await cli.port();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = new Uint8Array(5000).fill(7);
  await writeAll(conn, bytes);
  // The echo and then the server's close: read to the end, so that the cut is a clean one.
  const received = readToEnd(conn);
  await cli.waitFor(/#1 opened/);
  cli.kill("SIGTERM");
  strictEqual((await received).length, 5000);
  conn.close();
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  match(
    stderr,
    /INFO {2}server: stopped: served 1 connection, echoed 5,000 bytes, 1 cut at the drain timeout\n/,
  );
});
