/**
 * Logging never stops serving: with the server's stderr going to a pipe that
 * nobody reads (a hung log shipper), echo goes on, the lines beyond the log
 * buffer are dropped, and one line says how many once the pipe is read again.
 */
import { equal, match, ok } from "node:assert/strict";
import { ioArgs, ioPermissions, ROOT, testEngines } from "./helpers.ts";
import type { IoEngine } from "../server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Churning clients: each connects, echoes a few small messages and closes, until `until`. */
async function churn(port: number, until: number): Promise<number> {
  let connections = 0;
  const byte = new Uint8Array([120]);
  const reply = new Uint8Array(1);
  while (performance.now() < until) {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      continue; // a full backlog under churn is not what this test is about
    }
    try {
      conn.setNoDelay(true);
      // Each round trip is one debug line on the server: many lines, little work.
      for (let i = 0; i < 20; i++) {
        await conn.write(byte);
        if (await conn.read(reply) === null) break;
      }
      connections++;
    } catch {
      // reset under churn: the next connection carries on
    } finally {
      conn.close();
    }
  }
  return connections;
}

/** A well-behaved client: one connection, one message every few ms, each echo timed. */
async function steady(port: number, until: number): Promise<{ count: number; worstMs: number }> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let count = 0;
  let worstMs = 0;
  while (performance.now() < until) {
    const message = encoder.encode(`steady ${count}\n`);
    const started = performance.now();
    await conn.write(message);
    const got = new Uint8Array(message.length);
    for (let off = 0; off < got.length;) {
      const n = await conn.read(got.subarray(off));
      if (n === null) throw new Error(`server closed the steady connection after ${count} echoes`);
      off += n;
    }
    equal(decoder.decode(got), `steady ${count}\n`);
    worstMs = Math.max(worstMs, performance.now() - started);
    count++;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { count, worstMs };
}

/**
 * Serves on engine `io` with `flags` and debug logs into a pipe that stalls,
 * under load; see the module doc.
 */
async function echoWhileStderrStalls(io: IoEngine, flags: string[]): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...ioPermissions(io, ["--allow-net", "--allow-read"]),
      "main.ts",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--log-level",
      "debug",
      ...flags,
      ...ioArgs(io),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  try {
    while (!/listening on \S+:\d+/.test(stderr)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`server ended before listening:\n${stderr}`);
      stderr += value;
    }
    const port = Number(/listening on \S+:(\d+)/.exec(stderr)?.[1]);
    // From here on nobody reads the pipe: it fills (64 KiB), then the log buffer does.
    const until = performance.now() + 1500;
    const [good, ...churned] = await Promise.all([
      steady(port, until),
      ...Array.from({ length: 20 }, () => churn(port, until)),
    ]);
    const connections = churned.reduce((sum, n) => sum + n, 0);
    ok(good.count > 50, `only ${good.count} steady echoes in 1.5 s`);
    ok(good.worstMs < 500, `a steady echo took ${good.worstMs.toFixed(0)} ms`);
    ok(connections > 100, `only ${connections} churned connections`);

    // Reading again: the queued lines come out, then the report of the lost ones.
    const report = /(\d+) log lines dropped: stderr was not being read/;
    /** Reads until `pattern` shows, or without one to the end. */
    const readUntil = async (pattern?: RegExp) => {
      while (pattern === undefined || !pattern.test(stderr)) {
        const { value, done } = await reader.read();
        if (done) return;
        stderr += value;
      }
    };
    await readUntil(report);
    const dropped = Number(report.exec(stderr)?.[1] ?? "0");
    ok(dropped > 0, `no "log lines dropped" line in ${stderr.length} characters of stderr`);
    child.kill("SIGTERM");
    await readUntil(); // to the end, as the process exits
    match(stderr, /INFO {2}server: stopped: /);
    // Every line whole: none cut short or mixed with another's, workers' lines included.
    for (const line of stderr.trimEnd().split("\n")) {
      match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO |WARN |ERROR) (w\d )?[a-z]+: /);
    }
    match(stderr, /WARN {2}log: \d+ log lines dropped/);
    equal((await child.status).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await reader.cancel().catch(() => {});
    await child.status;
  }
}

testEngines(
  "a stalled stderr reader does not stop the echo; dropped lines are counted and reported",
  (io) => echoWhileStderrStalls(io, []),
);

testEngines(
  "with --workers 2, a stalled stderr reader stops no worker's echo",
  (io) => echoWhileStderrStalls(io, ["--workers", "2"]),
);
