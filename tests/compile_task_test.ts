/**
 * `deno task compile` where Deno's runtime cannot be downloaded: one line
 * that names DENORT_BIN, not Deno's error and backtrace. The download is
 * made to fail here on purpose (through a proxy that refuses), so that the
 * test means the same wherever it runs.
 */
import { ok, strictEqual } from "node:assert/strict";
import { runtimeDownloadFailure, runtimeHint } from "../scripts/compile.ts";
import { ROOT } from "./helpers.ts";

const DENO_ERROR =
  `error: Writing deno compile executable to temporary file 'dist/echo-server.tmp-a577dba90a1fe602'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
    2: client error (Connect)
    3: dns error
    4: failed to lookup address information: Name or service not known

Stack backtrace:
   0: <unknown>
`;

Deno.test("compile: a failed runtime download is recognised, with its last cause", () => {
  strictEqual(
    runtimeDownloadFailure(DENO_ERROR),
    "failed to lookup address information: Name or service not known",
  );
  strictEqual(runtimeDownloadFailure('error: Module not found "file:///x.ts".\n'), undefined);
  strictEqual(
    runtimeHint("tcp connect error", undefined, "2.9.6"),
    "deno task compile: deno compile could not download Deno's runtime (denort 2.9.6, from dl.deno.land: tcp connect error); set DENORT_BIN to the path of a denort 2.9.6 binary, downloaded where that host is reachable, and run it again",
  );
  ok(runtimeHint("no such file", "/opt/denort", "2.9.6").includes("DENORT_BIN=/opt/denort"));
});

/** Deno's cache folder, where a runtime downloaded before would be found instead. */
async function denoDir(): Promise<string> {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(stdout)).denoDir;
}

const cache = await denoDir();
const cachedRuntime = (() => {
  try {
    return [...Deno.readDirSync(`${cache}/dl/release/v${Deno.version.deno}`)]
      .some((entry) => entry.name.startsWith("denort"));
  } catch {
    return false;
  }
})();

Deno.test({
  name:
    `system: deno task compile, the runtime's download failing: one line naming DENORT_BIN, exit 1${
      cachedRuntime ? " (ignored: a runtime is in Deno's cache, nothing would be downloaded)" : ""
    }`,
  ignore: cachedRuntime,
  fn: async () => {
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    closed.close();
    const proxy = `http://127.0.0.1:${closed.addr.port}`;
    const out = await Deno.makeTempDir({ prefix: "echo-compile-task-" });
    try {
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["task", "compile", "--output", `${out}/echo-server`],
        cwd: ROOT,
        // DENORT_BIN left out; every download through a proxy that refuses.
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "",
          HOME: Deno.env.get("HOME") ?? "",
          DENO_DIR: cache,
          NO_COLOR: "1",
          HTTPS_PROXY: proxy,
          https_proxy: proxy,
        },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).output();
      const text = new TextDecoder().decode(stderr);
      strictEqual(code, 1, text);
      const last = text.trimEnd().split("\n").at(-1) ?? "";
      ok(
        last.startsWith(
          "deno task compile: deno compile could not download Deno's runtime (denort ",
        ),
        text,
      );
      ok(last.includes("set DENORT_BIN to the path of a denort"), text);
      ok(!text.includes("Stack backtrace"), text);
      ok(!text.includes("Caused by"), text);
      strictEqual([...Deno.readDirSync(out)].length, 0, "a binary was left behind");
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
