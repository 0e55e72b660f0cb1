import { ok, strictEqual } from "node:assert/strict";
import { Cli, readToEnd, testEngines, tryEcho } from "./helpers.ts";

const permissions = ["--allow-net", "--allow-read"];
const decoder = new TextDecoder();

/** A config file in a fresh temporary folder; `write` replaces its text. */
function configFile(json: unknown): { path: string; write(json: unknown): void } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "echo-reload-" });
  const path = `${dir}/echo.json`;
  const write = (value: unknown) =>
    Deno.writeTextFileSync(path, typeof value === "string" ? value : JSON.stringify(value));
  write(json);
  return { path, write, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

/** Waits until stderr holds `pattern` `times` times. */
async function waitForCount(cli: Cli, pattern: RegExp, times: number): Promise<void> {
  await cli.waitFor(new RegExp(`(?:${pattern.source}[^]*?){${times}}`));
}

const connect = (port: number) => Deno.connect({ hostname: "127.0.0.1", port });

/** Connects, sends nothing, and resolves with what the server wrote before closing. */
async function refusalLine(port: number): Promise<string> {
  using conn = await connect(port);
  return decoder.decode(await readToEnd(conn));
}

testEngines(
  "SIGHUP reloads --config: tightened, loosened, then broken files; the open connection echoes throughout",
  async (io) => {
    using config = configFile({ "max-conns-per-ip": 2, "reject-message": "refused" });
    await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--config", config.path], {
      permissions,
      io,
    });
    const port = await cli.port();
    const held = await connect(port);
    strictEqual(await tryEcho(held, "a1"), "a1");
    {
      using second = await connect(port);
      strictEqual(await tryEcho(second, "b1"), "b1", "the file's limit of 2 admits a second");
    }

    // Tightened: a second connection is refused at once; the open one stays.
    config.write({ "max-conns-per-ip": 1, "reject-message": "refused" });
    cli.kill("SIGHUP");
    await cli.waitFor(/SIGHUP: reloaded \S+: max-conns-per-ip 2 → 1\n/);
    strictEqual(await refusalLine(port), "refused\n");
    strictEqual(await tryEcho(held, "a2"), "a2");

    // Loosened: two more are admitted.
    config.write({ "max-conns-per-ip": 3 });
    cli.kill("SIGHUP");
    await cli.waitFor(
      /SIGHUP: reloaded \S+: max-conns-per-ip 1 → 3, reject-message "refused" → none\n/,
    );
    const third = await connect(port);
    const fourth = await connect(port);
    strictEqual(await tryEcho(third, "c"), "c");
    strictEqual(await tryEcho(fourth, "d"), "d");

    // Broken files: each logged with its reason, nothing changed.
    const broken: [unknown, RegExp][] = [
      ["{ nope", /not reloaded, nothing changed: --config \S+: not valid JSON/],
      [
        { "max-conns-per-ip": 0 },
        /not reloaded, nothing changed: .*invalid --max-conns-per-ip "0"/,
      ],
      [{ "max-conn": 5 }, /not reloaded, nothing changed: .*unknown key "max-conn"/],
      [{ burst: 4 }, /not reloaded, nothing changed: --config \S+: --burst needs --rate\n/],
    ];
    for (const [text, reason] of broken) {
      config.write(text);
      cli.kill("SIGHUP");
      await cli.waitFor(reason);
    }
    Deno.removeSync(config.path);
    cli.kill("SIGHUP");
    await cli.waitFor(/not reloaded, nothing changed: --config \S+: /);
    // Still 3 per address: three are open, so a fourth is refused (without a message now).
    strictEqual(await refusalLine(port), "");
    strictEqual(await tryEcho(held, "a3"), "a3");
    strictEqual(await tryEcho(third, "c2"), "c2");

    for (const conn of [held, third, fourth]) conn.close();
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0, stderr);
    ok(!/\n\s+at /.test(stderr), `no stack trace:\n${stderr}`);
  },
);

testEngines("--workers 2: SIGHUP applies the reloaded limits in both workers", async (io) => {
  using config = configFile({ "max-conns-per-ip": 5 });
  await using cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--workers", "2", "--config", config.path],
    { permissions, io },
  );
  const port = await cli.port();
  await cli.waitFor(/2 workers share/);
  const held = await connect(port);
  strictEqual(await tryEcho(held, "a1"), "a1");

  config.write({ "max-conns-per-ip": 1, "reject-message": "refused" });
  cli.kill("SIGHUP");
  await cli.waitFor(/ w1 server: reloaded limits applied/);
  await cli.waitFor(/ w2 server: reloaded limits applied/);
  // Whichever worker the kernel hands each one to, the new limit refuses it.
  for (let i = 0; i < 8; i++) strictEqual(await refusalLine(port), "refused\n");
  strictEqual(await tryEcho(held, "a2"), "a2");

  config.write({ "max-conns-per-ip": 10 });
  cli.kill("SIGHUP");
  await waitForCount(cli, / w1 server: reloaded limits applied/, 2);
  await waitForCount(cli, / w2 server: reloaded limits applied/, 2);
  const more = await Promise.all(Array.from({ length: 8 }, () => connect(port)));
  for (const [i, conn] of more.entries()) strictEqual(await tryEcho(conn, `m${i}`), `m${i}`);
  for (const conn of more) conn.close();
  strictEqual(await tryEcho(held, "a3"), "a3");

  held.close();
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  const refused = stderr.split("\n").filter((line) => / w[12] server: refused/.test(line));
  ok(refused.length > 0, stderr);
});

Deno.test("--config: the command line wins, start-only keys apply at start, bad files are one line and exit 2", async () => {
  using config = configFile({ "max-conns-per-ip": 1, "log-level": "debug", port: 1 });
  // --port 0 on the command line wins over the file's port 1; the file's log level applies.
  await using cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--config", config.path, "--max-conns-per-ip", "2"],
    { permissions },
  );
  const port = await cli.port();
  const first = await connect(port);
  const second = await connect(port);
  strictEqual(await tryEcho(first, "x"), "x");
  strictEqual(await tryEcho(second, "y"), "y", "--max-conns-per-ip 2 on the command line wins");
  await cli.waitFor(/DEBUG conn: /);
  // A start-only key changed in the file is named, and left as it was.
  config.write({ "max-conns-per-ip": 1, "log-level": "debug", port: 1, udp: true });
  cli.kill("SIGHUP");
  await cli.waitFor(/SIGHUP: reloaded \S+: no change/);
  await cli.waitFor(/WARN {2}server: SIGHUP: udp in \S+ takes effect only at a restart; unchanged/);
  first.close();
  second.close();
  cli.kill("SIGTERM");
  strictEqual((await cli.finished()).code, 0);

  config.write({ "max-conns": "lots" });
  for (
    const [args, message] of [
      [["--config", config.path], /--config \S+: invalid --max-conns "lots": expected a whole/],
      [["--config", `${config.path}.missing`], /--config \S+\.missing: /],
      [["--unix", "/tmp/x.sock", "--reuse-port"], /--reuse-port is for TCP ports, not with --unix/],
    ] as const
  ) {
    await using bad = new Cli(["-H", "127.0.0.1", "-p", "0", ...args], { permissions });
    const { code, stderr } = await bad.finished();
    strictEqual(code, 2, stderr);
    ok(message.test(stderr), stderr);
    ok(!/\n\s+at /.test(stderr), stderr);
  }
});
