/**
 * The PROXY protocol end to end, with hand-made headers over real sockets:
 * the carried address drives the admission rules and the logs, and every
 * bad header is closed, counted and logged while the server keeps serving.
 * HAProxy itself is in proxy_haproxy_test.ts.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseCidr } from "../admission/cidr.ts";
import { noRefusals } from "../admission/refusals.ts";
import { runBench } from "../bench/mod.ts";
import { encodeProxyV1, encodeProxyV2, type ProxyAddresses } from "../proxy/encode.ts";
import { Guard, type IoEngine, serve, type ServeOptions } from "../server.ts";
import {
  Cli,
  exchange,
  pattern,
  PROXIED_SERVE_ARGS,
  readN,
  readToEnd,
  runCli,
  sameBytes,
  testEngines,
  tryEcho,
  within,
  writeAll,
} from "./helpers.ts";

const encoder = new TextEncoder();
const trustLoopback = { trustedProxies: [parseCidr("127.0.0.1/32")] };

/** A client at `address` (the header's source) that connected to `port` on 127.0.0.1. */
function client(address: string, port: number, sourcePort = 40000): ProxyAddresses {
  return {
    source: { address, port: sourcePort },
    destination: { address: "127.0.0.1", port },
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A server on 127.0.0.1, on engine `io`, that takes the PROXY protocol from 127.0.0.1. */
function proxiedServer(io: IoEngine, options: ServeOptions = {}) {
  return serve({ hostname: "127.0.0.1", port: 0, io, proxyProtocol: trustLoopback, ...options });
}

/**
 * Sends `header` and the first `split` bytes of `data` in one write, so that
 * they arrive together, then the rest while reading the echo; resolves with
 * what came back.
 */
async function echoAfterHeader(
  conn: Deno.Conn,
  header: Uint8Array,
  data: Uint8Array,
  split: number,
): Promise<Uint8Array> {
  await writeAll(conn, concat(header, data.subarray(0, split)));
  const [, reply] = await Promise.all([
    writeAll(conn, data.subarray(split)),
    readN(conn, data.length),
  ]);
  return reply;
}

/**
 * Resolves with what the server sent before it closed the connection; a
 * reset (it closed with our bytes unread) counts as closed too.
 */
async function closedBy(conn: Deno.Conn): Promise<Uint8Array> {
  try {
    return await readToEnd(conn);
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return new Uint8Array(0);
    throw error;
  }
}

/** Connects, sends `header`, and resolves with the connection ready for the echo. */
async function connectAs(port: number, header: Uint8Array): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, header);
  return conn;
}

testEngines(
  "PROXY v1 and v2: the carried address is the peer in the log; bad headers are closed, logged and counted",
  async (io) => {
    await using server = new Cli([...PROXIED_SERVE_ARGS], { io });
    const port = await server.port();

    // v1, with the first bytes of the client in the same segment as the header.
    const data = pattern(4096, 1);
    {
      using conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const header = encodeProxyV1(client("203.0.113.7", port));
      ok(sameBytes(await echoAfterHeader(conn, header, data, 100), data));
    }
    await server.waitFor(/#1 opened from 203\.0\.113\.7:40000/);

    // v2 over IPv6, with a TLV to skip.
    {
      const header = encodeProxyV2(client("2001:db8::7", port, 5555), {
        tlvs: Uint8Array.of(0x04, 0, 2, 0, 0),
      });
      using conn = await connectAs(port, header);
      ok(sameBytes(await exchange(conn, data), data));
    }
    await server.waitFor(/#2 opened from \[2001:db8::7\]:5555/);

    // A truncated header, then the client closes.
    {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await writeAll(conn, encodeProxyV2(client("203.0.113.9", port)).subarray(0, 20));
      await conn.closeWrite();
      strictEqual((await closedBy(conn)).length, 0);
      conn.close();
    }
    await server.waitFor(
      /refused 127\.0\.0\.1:\d+: proxy-header \(closed after 20 bytes of an incomplete PROXY header\)/,
    );

    // A malformed header: the connection is closed unanswered.
    {
      using conn = await connectAs(port, encoder.encode("GET / HTTP/1.0\r\n\r\n"));
      strictEqual((await closedBy(conn)).length, 0);
    }

    // The next client is served as ever.
    {
      using conn = await connectAs(port, encodeProxyV1(client("198.51.100.2", port)));
      strictEqual(await tryEcho(conn, "still here"), "still here");
    }
    await server.waitFor(/#3 opened from 198\.51\.100\.2:40000/);

    server.kill("SIGTERM");
    const { code, stderr } = await server.finished();
    strictEqual(code, 0);
    // The malformed one shares the throttled line of the truncated one (same reason, same proxy).
    ok(/refused or closed by limits: proxy-header 2/.test(stderr), stderr);
  },
);

testEngines(
  "PROXY: bytes in the same segment as the header are echoed first, in order",
  async (io) => {
    await using server = proxiedServer(io);
    const data = pattern(70_000, 3);
    for (const header of [encodeProxyV1(client("203.0.113.7", 1)), encodeProxyV2()]) {
      using conn = await Deno.connect(server.addr);
      const reply = await echoAfterHeader(conn, header, data, 1000);
      ok(sameBytes(reply, data), `${reply.length} bytes back`);
    }
  },
);

testEngines(
  "PROXY: --deny applies to the carried address; v2 LOCAL stands for the proxy itself",
  async (io) => {
    await using server = proxiedServer(io, {
      guard: new Guard({ deny: [parseCidr("203.0.113.0/24"), parseCidr("127.0.0.1/32")] }),
    });
    const port = server.addr.port;
    {
      using denied = await connectAs(port, encodeProxyV1(client("203.0.113.7", port)));
      strictEqual(await tryEcho(denied, "hi"), null);
    }
    {
      // LOCAL (a health check): the proxy's own address, 127.0.0.1, which is denied too.
      using local = await connectAs(port, encodeProxyV2());
      strictEqual(await tryEcho(local, "hi"), null);
    }
    {
      using allowed = await connectAs(port, encodeProxyV2(client("198.51.100.1", port)));
      strictEqual(await tryEcho(allowed, "hi"), "hi");
    }
    deepStrictEqual(server.stats().refusals, { ...noRefusals(), denied: 2 });
  },
);

testEngines("PROXY: --max-conns-per-ip counts per carried address", async (io) => {
  await using server = proxiedServer(io, { guard: new Guard({ maxConnsPerIp: 1 }) });
  const port = server.addr.port;
  using first = await connectAs(port, encodeProxyV1(client("203.0.113.7", port, 1)));
  strictEqual(await tryEcho(first, "a"), "a");
  using other = await connectAs(port, encodeProxyV2(client("203.0.113.8", port, 2)));
  strictEqual(await tryEcho(other, "b"), "b");
  using again = await connectAs(port, encodeProxyV2(client("203.0.113.7", port, 3)));
  strictEqual(await tryEcho(again, "c"), null);
  strictEqual(await tryEcho(first, "d"), "d");
  deepStrictEqual(server.stats().refusals, { ...noRefusals(), "per-ip": 1 });
  strictEqual(server.stats().open, 2);
});

testEngines(
  "PROXY: a header that never completes is closed at the timeout, counted; the next client is served",
  async (io) => {
    await using server = proxiedServer(io, {
      proxyProtocol: { ...trustLoopback, headerTimeoutMs: 200 },
    });
    const port = server.addr.port;
    const started = performance.now();
    using silent = await connectAs(port, encoder.encode("PROXY TCP4 203.0.113."));
    // Another client gets through while the first one's header is pending.
    {
      using conn = await connectAs(port, encodeProxyV1(client("203.0.113.8", port)));
      strictEqual(await tryEcho(conn, "meanwhile"), "meanwhile");
    }
    strictEqual((await closedBy(silent)).length, 0);
    const waited = performance.now() - started;
    // 200 ms is asked; the upper bound tells the header timeout from any other close, with
    // room for a busy machine.
    ok(waited >= 150 && waited < 10_000, `closed after ${waited} ms`);
    strictEqual(server.stats().refusals["proxy-header"], 1);
    strictEqual(server.stats().served, 1);
  },
);

testEngines(
  "PROXY: at most maxPending connections await their header; the next waits in the backlog",
  async (io) => {
    await using server = proxiedServer(io, {
      proxyProtocol: { ...trustLoopback, headerTimeoutMs: 300, maxPending: 2 },
    });
    const port = server.addr.port;
    using silent1 = await connectAs(port, encoder.encode("PROXY "));
    using silent2 = await connectAs(port, encoder.encode("PROXY "));
    using good = await connectAs(port, encodeProxyV1(client("203.0.113.8", port)));
    // The good one is taken only once a silent one has been given up on.
    strictEqual(await tryEcho(good, "late"), "late");
    ok(server.stats().refusals["proxy-header"] >= 1, "served before a pending slot was free");
    strictEqual((await closedBy(silent1)).length, 0);
    strictEqual((await closedBy(silent2)).length, 0);
    strictEqual(server.stats().refusals["proxy-header"], 2);
  },
);

testEngines(
  "PROXY: a connection from an untrusted address is closed unread and counted",
  async (io) => {
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      io,
      proxyProtocol: { trustedProxies: [parseCidr("127.0.0.2/32")] },
    });
    const port = server.addr.port;
    for (const header of [encodeProxyV1(client("203.0.113.7", port)), encodeProxyV2()]) {
      using conn = await Deno.connect(server.addr);
      // The server may close before the header is even written: either way, nothing comes back.
      await writeAll(conn, header).catch(() => {});
      strictEqual((await closedBy(conn)).length, 0);
    }
    deepStrictEqual(server.stats().refusals, { ...noRefusals(), "proxy-untrusted": 2 });
    strictEqual(server.stats().served, 0);
  },
);

Deno.test("PROXY on a Unix socket: every peer is trusted, the carried address drives --deny", async () => {
  const dir = await Deno.makeTempDir({ prefix: "echo-proxy-" });
  try {
    const path = `${dir}/echo.sock`;
    await using server = serve({
      listener: Deno.listen({ transport: "unix", path }),
      proxyProtocol: { trustedProxies: [] },
      guard: new Guard({ deny: [parseCidr("203.0.113.0/24")] }),
    });
    const header = (address: string) =>
      encodeProxyV2({
        source: { address, port: 1234 },
        destination: { address: "10.0.0.1", port: 7 },
      });
    {
      using conn = await Deno.connect({ transport: "unix", path });
      await writeAll(conn, header("198.51.100.1"));
      strictEqual(await tryEcho(conn, "hi"), "hi");
    }
    {
      using conn = await Deno.connect({ transport: "unix", path });
      await writeAll(conn, header("203.0.113.7"));
      strictEqual((await closedBy(conn)).length, 0);
    }
    deepStrictEqual(server.stats().refusals, { ...noRefusals(), denied: 1 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

testEngines(
  "PROXY with --workers 2: served through the workers, refusals in the total",
  async (io) => {
    await using server = new Cli([
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--workers",
      "2",
      "--proxy-protocol",
      "--trusted-proxy",
      "127.0.0.0/8",
    ], { permissions: ["--allow-net", "--allow-read"], io });
    await server.waitFor(/2 workers share/);
    const port = await server.port();
    for (let i = 0; i < 4; i++) {
      using conn = await connectAs(port, encodeProxyV2(client(`203.0.113.${i}`, port)));
      strictEqual(await tryEcho(conn, `hi ${i}`), `hi ${i}`);
    }
    {
      using bad = await connectAs(port, encoder.encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"));
      strictEqual((await closedBy(bad)).length, 0);
    }
    await server.waitFor(/proxy-header \(v1 header: "99999" is not a port from 0 to 65535\)/);
    server.kill("SIGTERM");
    const { code, stderr } = await server.finished();
    strictEqual(code, 0);
    ok(/server: stopped: served 4 connections, .*proxy-header 1/.test(stderr), stderr);
  },
);

Deno.test("PROXY flags: --proxy-protocol and --trusted-proxy need each other; bad values are usage errors", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--proxy-protocol"], /--proxy-protocol needs at least one --trusted-proxy CIDR/],
    [["--trusted-proxy", "10.0.0.0/8"], /--trusted-proxy needs --proxy-protocol/],
    [["--proxy-protocol", "--trusted-proxy", "10.0.0.0/33"], /prefix length must be 0-32/],
    [["bench", "--sources", "10.0.0.0/8"], /--sources needs --proxy/],
    [["bench", "--proxy", "v3"], /invalid --proxy "v3": expected one of v1, v2/],
    [["bench", "--proxy", "v2", "--sources", "10.0.0"], /--sources: invalid CIDR "10.0.0"/],
  ];
  for (const [args, message] of cases) {
    const { code, stderr } = await runCli(args);
    strictEqual(code, 2, `${args.join(" ")}: ${stderr}`);
    ok(message.test(stderr), stderr);
  }
});

testEngines(
  "bench --proxy v2 --sources: 50 connections from 50 addresses pass a per-address cap of 1",
  async (io) => {
    await using server = proxiedServer(io, { guard: new Guard({ maxConnsPerIp: 1 }) });
    const report = await within(
      runBench({
        host: "127.0.0.1",
        port: server.addr.port,
        connections: 50,
        durationMs: 1000,
        size: 64,
        mode: "pingpong",
        proxy: 2,
        proxySources: "10.1.0.0/24",
      }),
      "a 1 s bench run",
    );
    ok(report.ok, JSON.stringify(report));
    strictEqual(report.connectionsOpened, 50);
    strictEqual(report.refused, 0);
    strictEqual(server.stats().refusals["per-ip"], 0);
  },
);

testEngines(
  "bench --proxy v2 --sources one address: only one connection of 50 is served",
  async (io) => {
    await using server = proxiedServer(io, { guard: new Guard({ maxConnsPerIp: 1 }) });
    const { code, stdout } = await runCli([
      "bench",
      "-p",
      String(server.addr.port),
      "--proxy",
      "v2",
      "--sources",
      "10.1.0.7/32",
      "-c",
      "50",
      "-d",
      "1s",
      "--json",
    ]);
    strictEqual(code, 1);
    const report = JSON.parse(stdout);
    deepStrictEqual([report.options.proxy, report.options.proxySources], [2, "10.1.0.7/32"]);
    strictEqual(report.connectionsOpened, 1);
    strictEqual(report.refused, 49);
    ok(report.messages > 0);
    strictEqual(server.stats().refusals["per-ip"], 49);
  },
);

testEngines(
  "PROXY: the carried address is the peer of the idle-timeout line and of the closed line's JSON",
  async (io) => {
    await using server = new Cli([
      ...PROXIED_SERVE_ARGS,
      "--idle-timeout",
      "200ms",
      "--log-format",
      "json",
    ], { io });
    const port = await server.port();
    for (
      const [address, sourcePort, text] of [
        ["203.0.113.7", 40000, "203.0.113.7:40000"],
        ["2001:db8::7", 5555, "[2001:db8::7]:5555"],
      ] as const
    ) {
      using conn = await connectAs(port, encodeProxyV2(client(address, port, sourcePort)));
      // Silent: the idle timeout closes it, and both lines name the client the header carried.
      strictEqual((await closedBy(conn)).length, 0);
      const peer = text.replace(/[.[\]]/g, "\\$&");
      await server.waitFor(new RegExp(`"message":"closed #\\d+ from ${peer}: idle"`));
      await server.waitFor(
        new RegExp(`"message":"#\\d+ closed: idle timeout;[^"]*".*"peer":"${peer}"`),
      );
    }
  },
);
