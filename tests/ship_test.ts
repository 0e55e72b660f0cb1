/**
 * The shipped forms: the single-file bundle and the compiled binary, each
 * built, started and echoed through.
 */
import { ok, strictEqual } from "node:assert/strict";
import {
  Cli,
  commandOutput,
  exchange,
  outputOf,
  ROOT,
  runCli,
  WAIT_MS,
  within,
} from "./helpers.ts";

const encoder = new TextEncoder();

/** How long a build may take, a download (esbuild, Deno's runtime) included. */
const FETCH_MS = 4 * WAIT_MS;

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

/**
 * Runs `deno ARGS` in the project root; fails after `ms`. Bundling and
 * compiling may first fetch esbuild or Deno's runtime: more than a step on a
 * busy machine takes, so they get {@linkcode FETCH_MS}.
 */
async function deno(args: string[], env: Record<string, string> = {}, ms = FETCH_MS) {
  const { code, stderr } = await commandOutput(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }, ms);
  return { code, stderr: new TextDecoder().decode(stderr) };
}

// System-dependent: deno bundle needs esbuild, fetched into the Deno cache on first use.
Deno.test("system: deno task bundle writes one file that serves and echoes", async () => {
  const built = await deno(["task", "--quiet", "bundle"]);
  strictEqual(built.code, 0, built.stderr);
  const version = await runCli(["--version"], { entry: "dist/echo-server.js" });
  ok(/^echo-server \d/.test(version.stdout), version.stdout);
  await echoThrough(
    new Cli(["--host", "127.0.0.1", "--port", "0"], { entry: "dist/echo-server.js" }),
  );
});

/** Runs `deno run FLAGS echo-server.js ARGS` in `dir`, where no deno.json is to be found. */
function runAlone(dir: string, flags: string[], args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, "echo-server.js", ...args],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

// System-dependent: deno bundle needs esbuild, fetched into the Deno cache on first use.
Deno.test("system: the bundle alone in an empty folder serves --workers 2 with the README's command, and says what is missing without it", async () => {
  const workDir = await Deno.makeTempDir({ prefix: "echo-server-bundle-" });
  try {
    const built = await deno(["bundle", "--quiet", "--output", `${workDir}/build.js`, "main.ts"]);
    strictEqual(built.code, 0, built.stderr);
    const alone = `${workDir}/alone`;
    await Deno.mkdir(alone);
    await Deno.copyFile(`${workDir}/build.js`, `${alone}/echo-server.js`);

    // Without --unstable-net: one line naming the flag, exit 1; not Deno's own message (exit 70).
    const args = ["--host", "127.0.0.1", "--port", "0", "--workers", "2"];
    const bare = await outputOf(
      runAlone(alone, ["--allow-net", "--allow-read"], args),
      "the bundle without --unstable-net",
    );
    const said = new TextDecoder().decode(bare.stderr).trimEnd();
    strictEqual(bare.code, 1, said);
    strictEqual(said.split("\n").length, 1, said);
    ok(/ERROR server: --workers needs Deno's unstable net API.*--unstable-net/.test(said), said);

    // The README's command: both workers start, and the echo goes through.
    const child = runAlone(alone, ["--unstable-net", "--allow-net", "--allow-read"], args);
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    /** The next piece of stderr; fails saying what it waited for, after `WAIT_MS` in all. */
    const deadline = performance.now() + WAIT_MS;
    const read = (what: string) =>
      within(reader.read(), () => `${what}; its stderr:\n${stderr}`, deadline - performance.now());
    try {
      while (!/2 workers share \S+ port \d+/.test(stderr)) {
        const { value, done } = await read("the bundle's two workers to listen");
        if (done) throw new Error(`the bundle ended before listening:\n${stderr}`);
        stderr += value;
      }
      const port = Number(/2 workers share \S+ port (\d+)/.exec(stderr)?.[1]);
      for (let i = 0; i < 4; i++) {
        using conn = await Deno.connect({ hostname: "127.0.0.1", port });
        const message = encoder.encode(`alone ${i} \u0000\u00ff`);
        strictEqual(
          new TextDecoder().decode(await exchange(conn, message)),
          `alone ${i} \u0000\u00ff`,
        );
      }
      child.kill("SIGTERM");
      const end = "the bundle to exit after SIGTERM";
      for (let chunk = await read(end); !chunk.done; chunk = await read(end)) {
        stderr += chunk.value;
      }
      strictEqual((await within(child.status, end)).code, 0, stderr);
      ok(/INFO {2}server: stopped: served 4 connections/.test(stderr), stderr);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited already
      }
      await reader.cancel().catch(() => {});
      await child.status;
    }
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
});

/**
 * Why `deno compile` cannot work here, or "" if it can: it needs Deno's
 * runtime binary, from DENORT_BIN or downloaded from Deno's host. Only the
 * host's name is looked up here; the compiling waits for the test itself.
 */
async function noRuntime(): Promise<string> {
  if (Deno.env.get("DENORT_BIN")) return "";
  try {
    await Deno.resolveDns("dl.deno.land", "A", { signal: AbortSignal.timeout(2000) });
    return "";
  } catch (error) {
    const why = error instanceof Error ? error.name : String(error);
    return `no runtime: DENORT_BIN is unset and dl.deno.land, where it is downloaded from, does not resolve (${why})`;
  }
}

// Where there is no runtime the test says so by being ignored, with the
// reason in its name, instead of passing without testing.
const unavailable = await noRuntime();

Deno.test({
  name: `system: deno compile builds a binary that serves and echoes${
    unavailable ? ` [ignored: ${unavailable}]` : ""
  }`,
  ignore: unavailable !== "",
  async fn() {
    const workDir = await Deno.makeTempDir({ prefix: "echo-server-compile-" });
    try {
      const binary = `${workDir}/echo-server`;
      const compiled = await deno(["compile", "--allow-net", "--output", binary, "main.ts"]);
      strictEqual(compiled.code, 0, compiled.stderr);
      await echoThrough(new Cli(["--host", "127.0.0.1", "--port", "0"], { executable: binary }));
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});
