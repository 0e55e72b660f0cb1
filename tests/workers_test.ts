import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Cli, exchange, runCli, testEngines, tryEcho } from "./helpers.ts";

const encoder = new TextEncoder();
const permissions = ["--allow-net", "--allow-read"];
const decoder = new TextDecoder();

/** Connects to `port` and tries one echo; the caller closes the connection. */
async function connectAndEcho(
  port: number,
  text: string,
): Promise<{ conn: Deno.Conn; reply: string | null }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  return { conn, reply: await tryEcho(conn, text) };
}

testEngines(
  "--workers 2: connections spread over both workers, shutdown drains both",
  async (io) => {
    await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--workers", "2"], {
      permissions,
      io,
    });
    const port = await cli.port();
    await cli.waitFor(/2 workers share 127\.0\.0\.1 port \d+/);
    for (let i = 0; i < 40; i++) {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      strictEqual(decoder.decode(await exchange(conn, encoder.encode(`hi ${i}`))), `hi ${i}`);
    }
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0, stderr);
    const opened = stderr.split("\n").filter((line) => / w[12] conn: #\d+ opened/.test(line));
    strictEqual(opened.length, 40, stderr);
    ok(opened.some((line) => line.includes(" w1 ")), "worker 1 served none");
    ok(opened.some((line) => line.includes(" w2 ")), "worker 2 served none");
    ok(stderr.includes("stopped: served 40 connections"), stderr);
  },
);

testEngines("--workers 2 --max-conns 10: the cap holds across workers", async (io) => {
  await using cli = new Cli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--workers",
    "2",
    "--max-conns",
    "10",
    "--when-full",
    "refuse",
  ], { permissions, io });
  const port = await cli.port();
  await cli.waitFor(/2 workers share/);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => connectAndEcho(port, `c${i}`)),
  );
  strictEqual(results.filter((r) => r.reply !== null).length, 10);
  strictEqual(results.filter((r) => r.reply === null).length, 20);
  for (const { conn } of results) conn.close();
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  ok(/ w1 server: refused/.test(stderr) || / w2 server: refused/.test(stderr), stderr);
});

Deno.test("--workers without read permission is one clear line, exit 1", async () => {
  const { code, stderr } = await runCli(["-p", "0", "--workers", "2"]);
  strictEqual(code, 1);
  ok(stderr.includes("--workers needs --allow-read"), stderr);
});

testEngines("--workers in wait mode queues past the shared cap instead of refusing", async (io) => {
  await using cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--workers", "2", "--max-conns", "2"],
    { permissions, io },
  );
  const port = await cli.port();
  await cli.waitFor(/2 workers share/);
  // Each client leaves once echoed, so all twelve are served two at a time.
  const replies = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const { conn, reply } = await connectAndEcho(port, `q${i}`);
      conn.close();
      return reply;
    }),
  );
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  deepStrictEqual(replies, Array.from({ length: 12 }, (_, i) => `q${i}`), stderr);
  strictEqual(code, 0, stderr);
  ok(!stderr.includes("refused"), stderr);
});

testEngines("a port held by another server is an error for --workers too", async (io) => {
  await using first = new Cli(["-H", "127.0.0.1", "-p", "0", "--workers", "2"], {
    permissions,
    io,
  });
  const port = await first.port();
  await first.waitFor(/2 workers share/);
  await using second = new Cli(
    ["-H", "127.0.0.1", "-p", String(port), "--workers", "2"],
    { permissions, io },
  );
  const { code, stderr } = await second.finished();
  strictEqual(code, 1);
  ok(stderr.includes(`cannot listen on 127.0.0.1:${port}: address already in use`), stderr);
});

testEngines(
  "--workers 2: each worker's summary counts its own refusals, the total all of them",
  async (io) => {
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--workers", "2", "--deny", "127.0.0.0/8"],
      { permissions, io },
    );
    const port = await cli.port();
    await cli.waitFor(/2 workers share/);
    const replies = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const { conn, reply } = await connectAndEcho(port, `d${i}`);
        conn.close();
        return reply;
      }),
    );
    deepStrictEqual(replies, Array(20).fill(null));
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0, stderr);
    const denied = (line: string) => Number(line.match(/denied (\d+)/)?.[1] ?? 0);
    const lines = stderr.split("\n");
    const workerLines = lines.filter((line) => / w[12] server: stopped: /.test(line));
    const totalLines = lines.filter((line) =>
      / server: stopped: /.test(line) && !/ w\d /.test(line)
    );
    strictEqual(workerLines.length, 2, stderr);
    strictEqual(totalLines.length, 1, stderr);
    // Shared counts reported as each worker's own would make these add up to 40.
    strictEqual(workerLines.reduce((sum, line) => sum + denied(line), 0), 20, stderr);
    strictEqual(denied(totalLines[0]), 20, stderr);
  },
);
