/**
 * What a reload and a config file say: each changed key with its old and new
 * value, each start-only key the file changed with the value kept, and
 * errors that name the file.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Cli } from "./helpers.ts";

const permissions = ["--allow-net", "--allow-read"];

/** Runs `main.ts` with `args` and read permission to its end. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  await using cli = new Cli(args, { permissions });
  return await cli.finished();
}

/** A config file in a fresh temporary folder; `write` replaces it. */
function configFile(json: unknown): { path: string; write(json: unknown): void } & Disposable {
  const dir = Deno.makeTempDirSync({ prefix: "echo-reload-words-" });
  const path = `${dir}/echo.json`;
  const write = (value: unknown) => Deno.writeTextFileSync(path, JSON.stringify(value));
  write(json);
  return { path, write, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test("SIGHUP: the reload line names each changed key with its old and new value", async () => {
  using config = configFile({
    "max-conns": 100,
    deny: ["198.51.100.0/24"],
    "reject-message": "busy",
  });
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--config", config.path], {
    permissions,
  });
  await cli.port();
  config.write({
    "max-conns": 200,
    "max-conns-per-ip": 20,
    deny: ["198.51.100.0/24", "10.0.0.0/8"],
    rate: 5,
    burst: 10,
  });
  cli.kill("SIGHUP");
  const [line] = await cli.waitFor(/SIGHUP: reloaded .*\n/);
  strictEqual(
    line.slice(line.indexOf("SIGHUP")),
    `SIGHUP: reloaded ${config.path}: max-conns 100 → 200, max-conns-per-ip off → 20, rate off → 5, burst off → 10, deny 198.51.100.0/24 → 198.51.100.0/24, 10.0.0.0/8, reject-message "busy" → none\n`,
  );
  // The next reload compares with what the last one put in force.
  config.write({ "max-conns": 200, "max-conns-per-ip": 20, rate: 5, burst: 10 });
  cli.kill("SIGHUP");
  await cli.waitFor(/SIGHUP: reloaded \S+: deny 198\.51\.100\.0\/24, 10\.0\.0\.0\/8 → none\n/);
  cli.kill("SIGHUP");
  await cli.waitFor(/SIGHUP: reloaded \S+: no change\n/);
  cli.kill("SIGTERM");
  strictEqual((await cli.finished()).code, 0);
});

Deno.test("SIGHUP: a start-only key the file changed (port) is named with the value kept and the file's", async () => {
  // The port comes from the file here, so that the file can change it.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  using config = configFile({ host: "127.0.0.1", port, "idle-timeout": "5m" });
  await using cli = new Cli(["--config", config.path, "--log-format", "json"], { permissions });
  await cli.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
  config.write({ host: "127.0.0.1", port: port + 1, "idle-timeout": "1m", "max-conns": 9 });
  cli.kill("SIGHUP");
  await cli.waitFor(/take effect only at a restart.*\n/);
  // Still serving on the first port.
  (await Deno.connect({ hostname: "127.0.0.1", port })).close();
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  const lines = stderr.trim().split("\n").map((text) => JSON.parse(text));
  const reloaded = lines.find((line) => line.message.startsWith("SIGHUP: reloaded"));
  strictEqual(reloaded.message, `SIGHUP: reloaded ${config.path}: max-conns 10000 → 9`);
  deepStrictEqual(reloaded.changed, { "max-conns": { from: "10000", to: "9" } });
  const warning = lines.find((line) => line.level === "warning");
  strictEqual(
    warning.message,
    `SIGHUP: port, idle-timeout in ${config.path} take effect only at a restart; unchanged: port ${port} (file: ${
      port + 1
    }), idle-timeout 5m (file: 1m)`,
  );
});

Deno.test("config errors name the file, at start and at a reload; the command line's own do not", async () => {
  using config = configFile({ burst: 5 });
  const atStart = await runCli(["-H", "127.0.0.1", "-p", "0", "--config", config.path]);
  strictEqual(atStart.code, 2, atStart.stderr);
  strictEqual(
    atStart.stderr,
    `echo-server: --config ${config.path}: --burst needs --rate\nTry "echo-server serve --help" for usage.\n`,
  );
  // The file gives the rate that --burst on the command line needs: fine.
  config.write({ rate: 5 });
  await using cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--config", config.path, "--burst", "3"],
    { permissions },
  );
  await cli.port();
  // The file takes the rate away again: the reload is refused, naming the file.
  config.write({});
  cli.kill("SIGHUP");
  await cli.waitFor(
    new RegExp(
      `ERROR server: SIGHUP: not reloaded, nothing changed: --config ${config.path}: --burst needs --rate\\n`,
    ),
  );
  cli.kill("SIGTERM");
  strictEqual((await cli.finished()).code, 0);
  // Without the rate anywhere, --burst on the command line is the command line's error.
  const own = await runCli(["-p", "0", "--config", config.path, "--burst", "3"]);
  strictEqual(own.code, 2);
  ok(own.stderr.startsWith("echo-server: --burst needs --rate\n"), own.stderr);
  // A combination the file completes: --cert on the command line, unix in the file.
  config.write({ unix: "/tmp/echo-reload-words.sock" });
  const mixed = await runCli(["--config", config.path, "--cert", "c.pem", "--key", "k.pem"]);
  strictEqual(mixed.code, 2);
  ok(
    mixed.stderr.startsWith(
      `echo-server: --config ${config.path}: --cert serves TLS over TCP only, not with --unix\n`,
    ),
    mixed.stderr,
  );
  // An unknown key names the nearest one.
  config.write({ "max-conn": 5 });
  const typo = await runCli(["--config", config.path]);
  strictEqual(typo.code, 2);
  ok(
    typo.stderr.startsWith(
      `echo-server: --config ${config.path}: unknown key "max-conn" (did you mean "max-conns"?)\n`,
    ),
    typo.stderr,
  );
});
