/**
 * `deno task compile`: `deno compile` of the program into `dist/echo-server`,
 * with the permissions the server needs. `deno compile` downloads Deno's
 * runtime (`denort`) from dl.deno.land unless `DENORT_BIN` names one; where
 * that download fails, Deno's own error is a dozen lines of causes and a
 * backtrace, so this says in one line what to do instead: set `DENORT_BIN`.
 *
 * Arguments are `deno compile` options put before the program
 * (`deno task compile --target aarch64-unknown-linux-gnu`); an `--output`
 * among them replaces `dist/echo-server`.
 *
 * @module
 */

/** The `deno compile` options the task always uses. */
const PERMISSIONS = ["--unstable-net", "--allow-net", "--allow-read", "--allow-write"];
/** Where the binary goes unless `--output` says otherwise. */
const OUTPUT = "dist/echo-server";
/** A terminal colour code, as Deno wraps its `error:` in (built from text: a literal would be a control character in a regular expression). */
const COLOUR = "\u001b\\[[\\d;]*m";
/** The start of Deno's error, at the start of a line, coloured or not. */
const ERROR_START = new RegExp(`(^|\n)(${COLOUR})*error(${COLOUR})*:`);

/**
 * When `deno compile`'s error output says that it could not get Deno's
 * runtime (`denort`), the cause it ends with (`dns error: failed to lookup
 * address information`); otherwise undefined.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { runtimeDownloadFailure } from "./compile.ts";
 * const stderr = [
 *   "error: Writing deno compile executable to temporary file 'dist/echo-server.tmp-1'",
 *   "",
 *   "Caused by:",
 *   "    0: Setting up base binary.",
 *   "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error",
 *   "    2: failed to lookup address information: Name or service not known",
 *   "",
 *   "Stack backtrace:",
 *   "   0: <unknown>",
 * ].join("\n");
 * equal(runtimeDownloadFailure(stderr), "failed to lookup address information: Name or service not known");
 * equal(runtimeDownloadFailure("error: Module not found"), undefined);
 * equal(
 *   runtimeDownloadFailure("Caused by:\n    0: Could not find denort at '/x'\n    1: No such file or directory (os error 2)"),
 *   "No such file or directory (os error 2)",
 * );
 * ```
 */
export function runtimeDownloadFailure(stderr: string): string | undefined {
  if (!/Setting up base binary|denort[\w.-]*\.zip|Could not find denort/.test(stderr)) {
    return undefined;
  }
  // The causes are numbered; so are the frames of the backtrace that may follow them.
  const causes = stderr.split(/^Stack backtrace:/m)[0];
  const numbered = [...causes.matchAll(/^\s*\d+: (.+)$/gm)].map((match) => match[1].trim());
  return numbered.at(-1) ?? "the download failed";
}

/**
 * The one line said instead of Deno's error when the runtime could not be
 * had: what failed, why, and to set `DENORT_BIN` (or that the one it names
 * did not work).
 *
 * @example
 * ```ts
 * import { match } from "node:assert/strict";
 * import { runtimeHint } from "./compile.ts";
 * match(runtimeHint("dns error", undefined, "2.9.6"), /set DENORT_BIN to the path of a denort 2\.9\.6 binary/);
 * match(runtimeHint("no such file", "/opt/denort", "2.9.6"), /DENORT_BIN=\/opt\/denort/);
 * ```
 */
export function runtimeHint(cause: string, denortBin: string | undefined, version: string): string {
  return denortBin === undefined || denortBin === ""
    ? `deno task compile: deno compile could not download Deno's runtime (denort ${version}, from dl.deno.land: ${cause}); set DENORT_BIN to the path of a denort ${version} binary, downloaded where that host is reachable, and run it again`
    : `deno task compile: deno compile could not use the runtime DENORT_BIN=${denortBin} names (${cause}); point DENORT_BIN at a denort ${version} binary`;
}

/** Runs `deno compile` and resolves with its exit code, passing its output on. */
async function main(args: readonly string[]): Promise<number> {
  const output = args.some((arg) => /^(-o|--output)(=|$)/.test(arg)) ? [] : ["--output", OUTPUT];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["compile", ...PERMISSIONS, ...output, ...args, "main.ts"],
    cwd: new URL("..", import.meta.url),
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  // Deno's progress lines pass at once; from its first error line on, the
  // text is held until it is known whether one line should replace it.
  let held = "";
  let erring = false;
  const encoder = new TextEncoder();
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    if (!erring) {
      const at = chunk.search(ERROR_START);
      if (at === -1) {
        await Deno.stderr.write(encoder.encode(chunk));
        continue;
      }
      erring = true;
      await Deno.stderr.write(encoder.encode(chunk.slice(0, at)));
      held += chunk.slice(at);
    } else held += chunk;
  }
  const { code } = await child.status;
  if (code === 0) return 0;
  // Without colour codes, so that the text can be read.
  const plain = held.replace(new RegExp(COLOUR, "g"), "");
  const cause = runtimeDownloadFailure(plain);
  if (cause === undefined) {
    await Deno.stderr.write(encoder.encode(held));
  } else {
    console.error(runtimeHint(cause, Deno.env.get("DENORT_BIN"), Deno.version.deno));
  }
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
