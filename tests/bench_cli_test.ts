import { ok, strictEqual } from "node:assert/strict";
import { Cli, runCli, within } from "./helpers.ts";

Deno.test("bench verifies a real server and reports JSON", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0"]);
  const port = String(await server.port());
  for (const mode of ["pingpong", "stream", "churn"]) {
    // What is in flight when the run ends must come back within the drain time, as long as the
    // run up to 2 s: 300 ms left a stream's last 32 KiB unechoed on a busy machine.
    const { code, stdout, stderr } = await runCli([
      "bench",
      "-p",
      port,
      "-c",
      "4",
      "-d",
      "2s",
      // Stream has no message size: -s there is a usage error.
      ...(mode === "stream" ? [] : ["-s", "100"]),
      "--mode",
      mode,
      "--json",
    ]);
    strictEqual(code, 0, stderr);
    const report = JSON.parse(stdout);
    strictEqual(report.mismatches, 0);
    strictEqual(report.errors, 0);
    ok(report.bytesReceived > 0, stdout);
    strictEqual(report.options.mode, mode);
  }
});

Deno.test("bench prints a text report with the latency histogram", async () => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0"]);
  const port = String(await server.port());
  const { code, stdout, stderr } = await runCli([
    "bench",
    "-p",
    port,
    "-c",
    "2",
    "-d",
    "1200ms",
    "--rate",
    "200",
  ]);
  strictEqual(code, 0, stderr);
  for (const label of ["p50", "p90", "p99", "p99.9", "max"]) ok(stdout.includes(label), stdout);
  // Not a terminal: progress comes as plain lines, at least one a second.
  ok(stderr.split("\n").filter((line) => line.trim() !== "").length >= 1, stderr);
  ok(!stderr.includes("\r"), "no terminal control characters in a pipe");
});

Deno.test("bench catches a server that corrupts echoes and exits 1", async () => {
  using liar = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const tasks: Promise<void>[] = [];
    for await (const conn of liar) {
      tasks.push((async () => {
        const buffer = new Uint8Array(4096);
        try {
          for (let n; (n = await conn.read(buffer)) !== null;) {
            buffer[0] ^= 0x40;
            for (let off = 0; off < n;) off += await conn.write(buffer.subarray(off, n));
          }
        } catch {
          // The bench closes its connections as it ends.
        } finally {
          conn.close();
        }
      })());
    }
    await Promise.all(tasks);
  })();
  const { code, stdout, stderr } = await runCli([
    "bench",
    "-p",
    String(liar.addr.port),
    "-c",
    "2",
    "-d",
    "200ms",
    "--json",
  ]);
  liar.close();
  await within(serving, "the corrupting server to end once the bench closed its connections");
  strictEqual(code, 1);
  ok(JSON.parse(stdout).mismatches > 0, stdout);
  ok(stderr.includes("mismatches"), stderr);
});

Deno.test("bench says so when the server is unreachable, and rejects bad flags", async () => {
  const gone = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(gone.addr.port);
  gone.close();
  const unreachable = await runCli(["bench", "-p", port, "-d", "200ms"]);
  strictEqual(unreachable.code, 1);
  ok(
    unreachable.stderr.includes(`cannot connect to 127.0.0.1:${port}: connection refused`),
    unreachable.stderr,
  );
  const json = await runCli(["bench", "-p", port, "-d", "200ms", "--json"]);
  strictEqual(json.code, 1);
  const parsed = JSON.parse(json.stdout);
  strictEqual(parsed.ok, false);
  ok(String(parsed.error).includes("cannot connect"), json.stdout);
  const bad = await runCli(["bench", "--mode", "sprint"]);
  strictEqual(bad.code, 2);
  ok(
    bad.stderr.includes('invalid --mode "sprint": expected one of pingpong, stream, churn'),
    bad.stderr,
  );
});
