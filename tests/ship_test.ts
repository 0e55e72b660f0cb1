/**
 * The shipped forms: the single-file bundle and the compiled binary, each
 * built, started and echoed through.
 */
import { ok, strictEqual } from "node:assert/strict";
import { Cli, exchange, ROOT, runCli } from "./helpers.ts";

const encoder = new TextEncoder();

async function echoThrough(cli: Cli): Promise<void> {
  const port = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const message = encoder.encode("through the shipped file \u0000\u00ff");
  const reply = await exchange(conn, message);
  strictEqual(new TextDecoder().decode(reply), "through the shipped file \u0000\u00ff");
  conn.close();
  cli.kill("SIGTERM");
  const { code } = await cli.finished();
  strictEqual(code, 0);
}

async function deno(args: string[], env: Record<string, string> = {}) {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("deno task bundle writes one file that serves and echoes", async () => {
  const built = await deno(["task", "--quiet", "bundle"]);
  strictEqual(built.code, 0, built.stderr);
  const version = await runCli(["--version"], { entry: "dist/echo-server.js" });
  ok(/^echo-server \d/.test(version.stdout), version.stdout);
  await echoThrough(
    new Cli(["--host", "127.0.0.1", "--port", "0"], { entry: "dist/echo-server.js" }),
  );
});

// `deno compile` needs Deno's runtime binary: from DENORT_BIN, or downloaded
// from Deno's host. Where neither is possible the test says so by being
// ignored, with the reason in its name, instead of passing without testing.
const workDir = Deno.makeTempDirSync({ prefix: "echo-server-compile-" });
const binary = `${workDir}/echo-server`;
const compiled = await deno(["compile", "--allow-net", "--output", binary, "main.ts"]);
// The innermost cause is the line that says what went wrong (e.g. a DNS failure).
const cause = compiled.stderr.split("\n").map((line) => line.trim())
  .filter((line) => /^\d+: /.test(line) && !line.includes("<unknown>")).pop()?.replace(
    /^\d+: /,
    "",
  ) ?? "unknown error";
const unavailable = compiled.code === 0 || Deno.env.get("DENORT_BIN")
  ? ""
  : `no runtime: DENORT_BIN is unset and the download failed: ${cause}`;
if (unavailable) Deno.removeSync(workDir, { recursive: true });

Deno.test({
  name: `deno compile builds a binary that serves and echoes${
    unavailable ? ` [ignored: ${unavailable}]` : ""
  }`,
  ignore: unavailable !== "",
  async fn() {
    strictEqual(compiled.code, 0, compiled.stderr);
    try {
      await echoThrough(new Cli(["--host", "127.0.0.1", "--port", "0"], { executable: binary }));
    } finally {
      Deno.removeSync(workDir, { recursive: true });
    }
  },
});
