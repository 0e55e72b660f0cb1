/**
 * `serve --metrics`: counts after known traffic (read back with a real
 * Prometheus parser), readiness during a drain, and the sum over workers.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  assertRefused,
  Cli,
  connectFrom,
  httpGet,
  outputOf,
  readEnd,
  readN,
  testEngines,
  tryEcho,
  within,
  writeAll,
} from "./helpers.ts";
import { type IoEngine, serve } from "../server.ts";
import { Inbox } from "./udp_helpers.ts";
import type { Connection, Listener } from "../transport/contract.ts";

const PYTHON = "/usr/bin/python3";

/** Whether the Debian package python3-prometheus-client is there to parse with. */
const hasPromParser = (() => {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import prometheus_client"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
})();

/** Parses exposition text with prometheus_client and prints `[name, labels, value]` samples. */
const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
`;

type Samples = Map<string, number>;

/** `name{a="x",b="y"}` with labels sorted, the key the samples are looked up by. */
function key(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
}

/** Parses with the real Prometheus parser (Python's prometheus_client). */
async function parseWithPrometheus(text: string): Promise<Samples> {
  const child = new Deno.Command(PYTHON, {
    args: ["-c", PARSE],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await within(writer.write(new TextEncoder().encode(text)), "prometheus_client to read the text");
  await within(writer.close(), "prometheus_client's stdin to close");
  const { success, stdout, stderr } = await outputOf(child, "prometheus_client's parse");
  ok(success, `prometheus_client rejected the text:\n${new TextDecoder().decode(stderr)}\n${text}`);
  const samples: Samples = new Map();
  const parsed = JSON.parse(new TextDecoder().decode(stdout)) as [
    string,
    Record<string, string>,
    number,
    string,
  ][];
  for (const [name, labels, value] of parsed) samples.set(key(name, labels), value);
  return samples;
}

/** Reads samples without labels' order mattering: for tests that do not need the real parser. */
function parseSimply(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").split(",").filter((p) => p !== "")) {
      const [k, v] = pair.split("=");
      labels[k] = v.slice(1, -1);
    }
    samples.set(key(match[1], labels), Number(match[3]));
  }
  return samples;
}

/** `GET url`: its status, text and content type; fails after `WAIT_MS`, naming the URL. */
function get(url: string): Promise<{ status: number; text: string; type: string }> {
  return httpGet(url);
}

/** Starts `serve` on engine `io` with `--metrics 127.0.0.1:0` and resolves with both ports. */
async function start(
  io: IoEngine,
  args: string[],
  permissions?: string[],
): Promise<{ cli: Cli; port: number; metrics: string }> {
  const cli = new Cli(
    ["--host", "127.0.0.1", "--port", "0", "--metrics", "127.0.0.1:0", ...args],
    { permissions, io },
  );
  const port = await cli.port();
  const match = await cli.waitFor(/metrics on (http:\/\/\S+)/);
  return { cli, port, metrics: match[1] };
}

/** Waits until stderr holds `n` `closed:` lines. */
async function closedLines(cli: Cli, n: number): Promise<void> {
  await cli.waitFor(new RegExp(`(?:closed: [^\\n]*\\n[^]*){${n}}`));
}

testEngines(
  "system: /metrics counts echoes, denials and an idle close, and parses with prometheus_client",
  async (io) => {
    const { cli, port, metrics } = await start(io, [
      "--deny",
      "127.0.0.2",
      "--idle-timeout",
      "300ms",
      "--udp",
    ]);
    await using _cli = cli;
    for (const text of ["one", "two", "three"]) {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      equal(await tryEcho(conn, text), text);
    }
    for (let i = 0; i < 2; i++) {
      const denied = await connectFrom("127.0.0.2", port);
      equal(await denied.closed, "");
    }
    {
      using idle = await Deno.connect({ hostname: "127.0.0.1", port });
      await readEnd(idle, "the idle timeout to close the silent connection");
    }
    {
      await using inbox = new Inbox();
      await inbox.send("ping", port);
      equal(new TextDecoder().decode(await inbox.next(3000) ?? undefined), "ping");
    }
    await closedLines(cli, 4);
    const { status, text, type } = await get(`${metrics}/metrics`);
    equal(status, 200);
    ok(type.startsWith("text/plain; version=0.0.4"), type);
    const samples = await parseWithPrometheus(text);
    const expect: [string, Record<string, string>, number][] = [
      ["echo_connections_accepted_total", {}, 4],
      ["echo_connections_open", {}, 0],
      ["echo_connections_refused_total", { reason: "denied" }, 2],
      ["echo_connections_refused_total", { reason: "cap" }, 0],
      ["echo_connections_refused_total", { reason: "proxy-header" }, 0],
      ["echo_connections_closed_total", { reason: "client-closed" }, 3],
      ["echo_connections_closed_total", { reason: "idle" }, 1],
      ["echo_connections_closed_total", { reason: "error" }, 0],
      ["echo_bytes_received_total", {}, 11],
      ["echo_bytes_sent_total", {}, 11],
      ["echo_connection_duration_seconds_count", {}, 4],
      ["echo_connection_duration_seconds_bucket", { le: "+Inf" }, 4],
      ["echo_accept_errors_total", {}, 0],
      ["echo_datagrams_received_total", {}, 1],
      ["echo_datagrams_echoed_total", {}, 1],
      ["echo_datagrams_sent_bytes_total", {}, 4],
      ["echo_datagrams_dropped_total", { reason: "rate" }, 0],
      ["echo_log_lines_dropped_total", {}, 0],
    ];
    for (const [name, labels, value] of expect) {
      equal(samples.get(key(name, labels)), value, key(name, labels));
    }
    ok(
      (samples.get("echo_connection_duration_seconds_sum") ?? 0) >= 0.3,
      "the idle one lasted 300ms",
    );
    ok((samples.get("process_resident_memory_bytes") ?? 0) > 1_000_000);
    ok(!samples.has(key("echo_connections_refused_total", { reason: "idle" })));
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  },
  // When ignored: install the Debian package python3-prometheus-client (for /usr/bin/python3).
  { ignore: !hasPromParser },
);

testEngines(
  "/readyz turns 503 at SIGTERM while an open connection keeps echoing; exit 0",
  async (io) => {
    const { cli, port, metrics } = await start(io, ["--drain-timeout", "5s"]);
    await using _cli = cli;
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    equal(await tryEcho(conn, "before"), "before");
    deepEqual(await get(`${metrics}/readyz`), {
      status: 200,
      text: "ready\n",
      type: "text/plain; charset=utf-8",
    });
    equal((await get(`${metrics}/healthz`)).status, 200);
    cli.kill("SIGTERM");
    await cli.waitFor(/draining 1 connection/);
    const ready = await get(`${metrics}/readyz`);
    equal(ready.status, 503);
    equal(ready.text, "draining\n");
    equal((await get(`${metrics}/healthz`)).status, 200);
    await assertRefused({ hostname: "127.0.0.1", port });
    equal(await tryEcho(conn, "during the drain"), "during the drain");
    const scrape = parseSimply((await get(`${metrics}/metrics`)).text);
    equal(scrape.get("echo_connections_open"), 1);
    equal((await get(`${metrics}/nothing`)).status, 404);
    conn.close();
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
  },
);

testEngines("/metrics with --workers 2 reports the sum over the workers", async (io) => {
  const { cli, port, metrics } = await start(
    io,
    ["--workers", "2", "--idle-timeout", "0"],
    ["--allow-net", "--allow-read"],
  );
  await using _cli = cli;
  const payload = new Uint8Array(1000).fill(7);
  const conns = await Promise.all(
    Array.from({ length: 8 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  for (const conn of conns) {
    await writeAll(conn, payload);
    equal((await readN(conn, payload.length)).length, payload.length);
  }
  const open = parseSimply((await get(`${metrics}/metrics`)).text);
  equal(open.get("echo_connections_open"), 8);
  equal(open.get("echo_bytes_received_total"), 8000);
  for (const conn of conns) conn.close();
  await closedLines(cli, 8);
  const done = parseSimply((await get(`${metrics}/metrics`)).text);
  equal(done.get("echo_connections_accepted_total"), 8);
  equal(done.get("echo_connections_open"), 0);
  equal(done.get("echo_bytes_sent_total"), 8000);
  equal(done.get(key("echo_connections_closed_total", { reason: "client-closed" })), 8);
  equal(done.get(key("echo_connection_duration_seconds_bucket", { le: "+Inf" })), 8);
  cli.kill("SIGTERM");
  equal((await cli.finished()).code, 0);
});

Deno.test("/metrics counts Unix socket connections too, with process_open_fds under --allow-all", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "echo-metrics-" });
  try {
    const path = `${dir}/echo.sock`;
    await using cli = new Cli(["--unix", path, "--metrics", "127.0.0.1:0"], {
      permissions: ["--allow-all"],
    });
    const metrics = (await cli.waitFor(/metrics on (http:\/\/\S+)/))[1];
    await cli.waitFor(/listening on/);
    {
      using conn = await Deno.connect({ transport: "unix", path });
      await writeAll(conn, new TextEncoder().encode("unix"));
      equal(new TextDecoder().decode(await readN(conn, 4)), "unix");
    }
    await closedLines(cli, 1);
    const samples = parseSimply((await get(`${metrics}/metrics`)).text);
    equal(samples.get("echo_connections_accepted_total"), 1);
    equal(samples.get("echo_bytes_sent_total"), 4);
    ok((samples.get("process_open_fds") ?? 0) > 3);
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A TCP listener whose first `failures` accepts fail. */
function failingListener(failures: number): Listener<Deno.NetAddr> {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return {
    addr: tcp.addr,
    close: () => tcp.close(),
    [Symbol.asyncIterator]: () => ({
      next: (): Promise<IteratorResult<Connection>> =>
        failures-- > 0
          ? Promise.reject(new Error("accept failed on purpose"))
          : tcp.accept().then((conn) => ({ done: false, value: conn })),
    }),
  };
}

Deno.test("stats count failed accepts, lifetime closes and drain timeouts, with durations", async () => {
  const server = serve({ listener: failingListener(2), maxLifetimeMs: 200, drainTimeoutMs: 20 });
  const addr = { hostname: "127.0.0.1", port: server.addr.port };
  {
    using old = await Deno.connect(addr);
    equal(await tryEcho(old, "x"), "x");
    await readEnd(old, "--max-lifetime to close the connection");
  }
  using late = await Deno.connect(addr);
  equal(await tryEcho(late, "y"), "y");
  const stats = await server.shutdown(); // the drain times out on `late`, which is then closed
  equal(stats.acceptErrors, 2);
  equal(stats.closed?.lifetime, 1);
  equal(stats.closed?.shutdown, 1);
  equal(stats.durations?.counts.reduce((a, b) => a + b, 0), 2);
  ok((stats.durations?.sum ?? 0) >= 0.2);
});

testEngines(
  "with --reuse-port, a second instance shares the metrics port too, for an upgrade",
  async (io) => {
    const first = await start(io, ["--reuse-port"]);
    await using _first = first.cli;
    const metricsPort = new URL(first.metrics).port;
    await using second = new Cli([
      "--host",
      "127.0.0.1",
      "--port",
      String(first.port),
      "--reuse-port",
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ], { io });
    await second.waitFor(new RegExp(`metrics on http://127\\.0\\.0\\.1:${metricsPort}`));
    first.cli.kill("SIGTERM");
    equal((await first.cli.finished()).code, 0);
    const ready = await get(`${first.metrics}/readyz`); // only the second one is left to answer
    equal(ready.status, 200);
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: first.port });
    equal(await tryEcho(conn, "upgraded"), "upgraded");
    second.kill("SIGTERM");
    conn.close();
    equal((await second.finished()).code, 0);
  },
);

Deno.test("a taken metrics port fails the start before the echo port listens", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using cli = new Cli([
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--metrics",
    `127.0.0.1:${taken.addr.port}`,
  ]);
  const { code, stderr } = await cli.finished();
  equal(code, 1);
  ok(stderr.includes(`cannot serve metrics on 127.0.0.1:${taken.addr.port}`), stderr);
  // An upgrade waits for this line before it stops the old instance: it must not appear.
  ok(!stderr.includes("listening on"), stderr);
});
