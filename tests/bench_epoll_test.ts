/**
 * `io: "epoll"`: the bench's connections on the libc epoll engine, against
 * real servers on port 0: every mode, the open loop, and the failures it
 * must count as the Deno engine does (corrupted, refused, cut short), PROXY
 * headers, the warm-up, the ramp and the per-connection spread.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { type BenchOptions, type BenchReport, formatReport, runBench } from "../bench/mod.ts";
import { parseCidr } from "../admission/cidr.ts";
import { Guard, serve } from "../server.ts";
import { Cli, within } from "./helpers.ts";

/** A run of the epoll engine against `port`, small and short unless told otherwise. */
function run(port: number, more: Partial<BenchOptions> = {}): Promise<BenchReport> {
  return within(
    runBench({
      host: "127.0.0.1",
      port,
      connections: 4,
      durationMs: 300,
      size: 100,
      mode: "pingpong",
      io: "epoll",
      ...more,
    }),
    "the bench run",
  );
}

/** A server on port 0 whose connections `handle` serves; closing it ends them all. */
function listen(handle: (conn: Deno.Conn) => Promise<void>): {
  port: number;
  close(): Promise<void>;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      tasks.push(
        handle(conn).catch(() => {}).finally(() => {
          if (open.delete(conn)) conn.close();
        }),
      );
    }
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      for (const conn of open) conn.close();
      open.clear();
      await accepting;
      await Promise.all(tasks);
    },
  };
}

/** Echoes with the first byte of every read flipped. */
async function corrupting(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (let n; (n = await conn.read(buf)) !== null;) {
    buf[0] ^= 0x40;
    for (let off = 0; off < n;) off += await conn.write(buf.subarray(off, n));
  }
}

/** Echoes `limit` bytes, then hangs up. */
function echoUpTo(limit: number): (conn: Deno.Conn) => Promise<void> {
  return async (conn) => {
    const buf = new Uint8Array(65536);
    for (let total = 0; total < limit;) {
      const n = await conn.read(buf);
      if (n === null) return;
      const m = Math.min(n, limit - total);
      for (let off = 0; off < m;) off += await conn.write(buf.subarray(off, m));
      total += m;
    }
  };
}

Deno.test("bench --io epoll verifies every mode against the server", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 });
  for (const mode of ["pingpong", "stream", "churn"] as const) {
    const r = await run(server.addr.port, { mode, durationMs: 500 });
    const text = formatReport(r);
    ok(r.ok, text);
    equal(r.errors + r.mismatches + r.timedOut, 0, text);
    ok(r.messages > 0 && r.bytesReceived > 0, text);
    equal(r.options.io, "epoll");
    equal(r.perConnection?.none, 0, text);
    ok((r.series?.length ?? 0) >= 1, text);
    if (mode === "churn") ok(r.connectionsOpened > 4, text);
  }
});

Deno.test("bench --io epoll paces an open loop and times messages from their schedule", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 });
  for (const mode of ["pingpong", "churn"] as const) {
    const r = await run(server.addr.port, { mode, rate: 200, durationMs: 1000 });
    const text = formatReport(r);
    ok(r.ok, text);
    // 200 a second for a second; a busy machine may lose a few to late timers, never add.
    ok(r.messages >= 100 && r.messages <= 210, text);
  }
});

Deno.test("bench --io epoll counts corrupted echoes in pingpong and stream", async () => {
  const server = listen(corrupting);
  try {
    for (const mode of ["pingpong", "stream"] as const) {
      const r = await run(server.port, { mode, durationMs: 300 });
      ok(!r.ok && r.corrupted > 0, formatReport(r));
      ok(r.firstError?.includes("corrupted echo"), formatReport(r));
    }
  } finally {
    await within(server.close(), "the test server to close");
  }
});

Deno.test("bench --io epoll counts refusals, and echoes cut short", async () => {
  const refusing = listen(echoUpTo(0));
  const cutting = listen(echoUpTo(150));
  try {
    const refused = await run(refusing.port);
    ok(!refused.ok && refused.refused === 4, formatReport(refused));
    const cut = await run(cutting.port);
    ok(!cut.ok && cut.resets === 4 && cut.short === 4, formatReport(cut));
  } finally {
    await within(Promise.all([refusing.close(), cutting.close()]), "the test servers to close");
  }
});

Deno.test("bench --io epoll says so when nothing listens", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  await rejects(run(port), /cannot connect to 127\.0\.0\.1:\d+: .*refused/i);
});

Deno.test("bench --io epoll leaves the warm-up out and ramps the connections up", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 });
  const r = await run(server.addr.port, {
    connections: 20,
    warmupMs: 800,
    rampMs: 300,
    durationMs: 500,
  });
  const text = formatReport(r);
  ok(r.ok, text);
  equal(r.connectionsOpened, 20, text);
  // The report covers the 500 ms after the warm-up, not the whole 1.3 s (late timers aside).
  ok(r.elapsedS > 0.2 && r.elapsedS < 1, text);
  deepEqual([r.options.warmupMs, r.options.rampMs], [800, 300]);
  // The echoes of the warm-up's last messages count in the warm-up, as their bytes sent did.
  equal(r.bytesReceived, r.bytesSent, text);
});

Deno.test("bench --io epoll starves none of 1,000 connections to an epoll server", async () => {
  await using server = new Cli(["--host", "127.0.0.1", "--port", "0"], { io: "epoll" });
  const r = await run(await server.port(), { connections: 1000, size: 64, durationMs: 1500 });
  const text = formatReport(r);
  ok(r.ok, text);
  equal(r.starved, 0, text);
  equal(r.perConnection?.none, 0, text);
  ok((r.perConnection?.min ?? 0) > 0, text);
});

Deno.test("bench --io epoll --proxy v2 --sources: one address each passes a per-address cap of 1", async () => {
  const proxyProtocol = { trustedProxies: [parseCidr("127.0.0.1/32")] };
  for (const [sources, served] of [["10.1.0.0/24", 20], ["10.1.0.7/32", 1]] as const) {
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol,
      guard: new Guard({ maxConnsPerIp: 1 }),
    });
    const r = await run(server.addr.port, {
      connections: 20,
      proxy: 2,
      proxySources: sources,
      durationMs: 500,
    });
    const text = formatReport(r);
    equal(r.connectionsOpened, served, text);
    equal(r.refused, 20 - served, text);
    ok(r.messages > 0 && r.mismatches === 0, text);
    equal(server.stats().refusals["per-ip"], 20 - served);
  }
});

Deno.test("bench refuses io epoll over Unix sockets and UDP", async () => {
  for (const more of [{ path: "/tmp/x.sock" }, { udp: true }]) {
    await rejects(run(1, more), RangeError);
  }
});
