/**
 * Running out of file descriptors never ends the process: the server runs
 * under a small `ulimit -n`, clients take every descriptor, and the metrics
 * endpoint, the echo port and the cap on connections all come through it.
 * Named `system: …`: they run the server under bash's `ulimit`.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  Cli,
  descriptorsOf,
  httpGet,
  ioArgs,
  ioPermissions,
  testEngines,
  tryEcho,
} from "./helpers.ts";
import type { IoEngine } from "../server.ts";

/** The server on a free loopback port with metrics, under `ulimit -n limit`. */
async function limitedServer(
  io: IoEngine,
  limit: number,
  flags: string[] = [],
): Promise<{ cli: Cli; port: number; metrics: number }> {
  // Workers load main.ts again: that needs --allow-read.
  const deno = [
    Deno.execPath(),
    "run",
    "--quiet",
    ...ioPermissions(io, ["--allow-net", "--allow-read"]),
  ];
  const server = [
    ...deno,
    "main.ts",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--metrics",
    "127.0.0.1:0",
    ...flags,
    ...ioArgs(io),
  ];
  const cli = new Cli(["-c", `ulimit -n ${limit} && exec "$@"`, "bash", ...server], {
    executable: "bash",
  });
  const port = await cli.port();
  // With workers, every one of them listens before any client comes.
  if (flags.includes("--workers")) await cli.waitFor(/workers share/);
  const metrics = Number((await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  return { cli, port, metrics };
}

/** Opens `count` connections that each echo once, as far as the server takes them. */
async function fill(port: number, count: number): Promise<Deno.TcpConn[]> {
  return await Promise.all(
    Array.from({ length: count }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
}

/** GET `path` with a deadline; the status, or the error's name when there was no answer. */
async function status(metrics: number, path: string, ms = 5_000): Promise<number | string> {
  try {
    return (await httpGet(`http://127.0.0.1:${metrics}${path}`, ms)).status;
  } catch (error) {
    return error instanceof Error
      ? `${error.name}: ${error.message} (${String(error.cause)})`
      : String(error);
  }
}

/** A keep-alive connection to the metrics port that has had one answer and stays open. */
async function keepAlive(metrics: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: metrics });
  await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
  const answer = new Uint8Array(1024);
  let text = "";
  while (!text.endsWith("ok\n")) {
    const n = await conn.read(answer);
    if (n === null) throw new Error(`the metrics port closed a keep-alive connection: ${text}`);
    text += new TextDecoder().decode(answer.subarray(0, n));
  }
  return conn;
}

/** Reads a sample's value from `/metrics`. */
async function sample(metrics: number, name: string): Promise<number> {
  const { text } = await httpGet(`http://127.0.0.1:${metrics}/metrics`);
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  ok(line !== undefined, `${name} in /metrics:\n${text}`);
  return Number(line.split(" ")[1]);
}

// Each worker is an isolate with threads and descriptors of its own: a higher limit, more clients.
for (const [workers, limit] of [[[], 80], [["--workers", "2"], 160]] as const) {
  const label = workers.length === 0 ? "" : " with --workers 2";
  testEngines(
    `system: out of descriptors (ulimit -n ${limit})${label}, the metrics port still answers /healthz and the process lives; echo resumes once descriptors free`,
    async (io) => {
      const { cli, port, metrics } = await limitedServer(io, limit, [...workers]);
      await using _cli = cli;
      // More clients than descriptors: the server runs out, and says so.
      const conns = await fill(port, limit + 10);
      const replies = conns.map((conn, i) => tryEcho(conn, `client ${i}`));
      await cli.waitFor(/out of file descriptors with \d+ connections? open/);
      // The endpoint gives back its reserve descriptor for a probe, again and again.
      for (let i = 0; i < 5; i++) equal(await status(metrics, "/healthz"), 200);
      // Many probes at once: some may wait, none ends the process.
      await Promise.all(Array.from({ length: 30 }, () => status(metrics, "/healthz", 1_000)));
      equal(await status(metrics, "/healthz"), 200);
      // The clients leave; every one was served in the end.
      for (let i = 0; i < conns.length; i++) {
        equal(await replies[i], `client ${i}`);
        conns[i].close();
      }
      using later = await Deno.connect({ hostname: "127.0.0.1", port });
      equal(await tryEcho(later, "after"), "after");
      ok(await sample(metrics, "echo_accept_errors_total") > 0);
      later.close();
      cli.kill("SIGTERM");
      const { code, stderr } = await cli.finished();
      equal(code, 0, stderr);
      ok(!/Uncaught|Too many open files \(os error 24\)\n\s+at /.test(stderr), stderr);
    },
  );
}

testEngines(
  "system: the cap lowered for want of descriptors rises again by itself once other descriptors are given back",
  async (io) => {
    const { cli, port, metrics } = await limitedServer(io, 80);
    await using _cli = cli;
    // Idle keep-alive connections to the metrics port hold descriptors the echo side needs.
    // Each has had its answer, so each is held by the server before the echo clients come.
    const hogs = await Promise.all(Array.from({ length: 25 }, () => keepAlive(metrics)));
    const all = await fill(port, 80);
    const lowered = Number((await cli.waitFor(/accepting at most (\d+) until/))[1]);
    // Ten more clients than the lowered cap stay (the rest leave while still queued), and all
    // of them are to be served at once: that takes the descriptors the hogs hold.
    const kept = all.slice(0, lowered + 10);
    for (const conn of all.slice(lowered + 10)) conn.close();
    const replies = kept.map((conn, i) => tryEcho(conn, `kept ${i}`));
    // The hogs leave: 25 descriptors come back, and the cap with them, without a reload.
    for (const hog of hogs) hog.close();
    await cli.waitFor(/file descriptors available again after [\d.]+ s/, 15_000);
    for (const [i, reply] of (await Promise.all(replies)).entries()) equal(reply, `kept ${i}`);
    equal(await sample(metrics, "echo_connections_open"), lowered + 10);
    for (const conn of kept) conn.close();
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
    match(stderr, /out of file descriptors/);
  },
);

Deno.test(
  "system: 500 slowloris connections to the metrics port hold at most 32 descriptors, and /healthz still answers",
  async () => {
    const { cli, metrics } = await limitedServer("deno", 4096);
    await using _cli = cli;
    const before = descriptorsOf(cli.pid);
    const slow: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: metrics });
        await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nx-slow: "));
        slow.push(conn);
      }
      equal(await status(metrics, "/healthz"), 200);
      const held = descriptorsOf(cli.pid) - before;
      ok(held <= 33, `the server holds ${held} more descriptors`);
    } finally {
      for (const conn of slow) conn.close();
    }
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  },
);
