/**
 * `scripts/memory.ts` (`deno task memory`) measures: with a few hundred
 * non-reading clients on each engine it prints one row per engine with a
 * per-connection figure, and it refuses a bad flag by naming it. The figures
 * themselves belong to BENCHMARKS.md (thousands of connections); the bound
 * here is only a generous sanity check, one-time costs included.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { ROOT } from "./helpers.ts";

async function runMemory(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "scripts/memory.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  });
  const { code, stdout, stderr } = await command.output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}

Deno.test("scripts/memory.ts: 100 non-reading clients per engine, one row each with KiB per connection", async () => {
  const { code, out, err } = await runMemory([
    ...["--io", "deno,epoll", "--kind", "nonreading", "--conns", "100"],
    ...["--settle-ms", "100", "--leave-ms", "100"],
  ]);
  strictEqual(code, 0, err);
  for (const engine of ["deno", "epoll"]) {
    const row = new RegExp(
      `^\\| ${engine} \\| nonreading \\| 100 \\| [\\d.]+ \\| [\\d.]+ \\| \\*\\*(-?[\\d.]+)\\*\\* \\| [\\d.]+ \\|$`,
      "m",
    );
    const kib = Number(row.exec(out)?.[1]);
    ok(Number.isFinite(kib), `no ${engine} row in:\n${out}\n${err}`);
    ok(kib < 1024, `${engine}: ${kib} KiB per non-reading connection`);
  }
});

Deno.test("scripts/memory.ts: a bad flag is named, exit 2", async () => {
  const { code, err } = await runMemory(["--kind", "sleepy"]);
  strictEqual(code, 2);
  match(err, /^memory: invalid --kind "sleepy": expected idle, busy, nonreading$/m);
});
