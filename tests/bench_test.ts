import assert from "node:assert/strict";
import {
  type BenchOptions,
  type BenchProgress,
  type BenchReport,
  formatProgress,
  formatReport,
  runBench,
} from "../bench.ts";

/** What a test server does with one accepted connection. */
type Handler = (conn: Deno.Conn) => Promise<void>;

interface TestServer {
  port: number;
  close(): Promise<void>;
}

/** A server on 127.0.0.1 with an ephemeral port; `close` ends every connection. */
function serve(handle: Handler): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      tasks.push(
        handle(conn).catch(() => {}).finally(() => {
          if (open.delete(conn)) closeQuietly(conn);
        }),
      );
    }
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      await accepting;
      for (const conn of [...open]) {
        open.delete(conn);
        closeQuietly(conn);
      }
      await Promise.all(tasks);
    },
  };
}

/**
 * The echo loop. `mangle` may alter each chunk before it goes back and returns
 * its new length, or null to hang up; `read` counts reads over all connections.
 */
function echo(mangle?: (buf: Uint8Array, n: number, read: number) => number | null): Handler {
  let reads = 0;
  return async (conn) => {
    const buf = new Uint8Array(64 * 1024 + 1);
    for (let n; (n = await conn.read(buf.subarray(0, 64 * 1024))) !== null;) {
      reads++;
      const m = mangle === undefined ? n : mangle(buf, n, reads);
      if (m === null) return; // close early
      for (let off = 0; off < m;) off += await conn.write(buf.subarray(off, m));
    }
  };
}

async function withServer(handle: Handler, body: (port: number) => Promise<void>) {
  const server = serve(handle);
  try {
    await body(server.port);
  } finally {
    await server.close();
  }
}

function options(port: number, more: Partial<BenchOptions> = {}): BenchOptions {
  return {
    host: "127.0.0.1",
    port,
    connections: 4,
    durationMs: 300,
    size: 1000,
    mode: "pingpong",
    ...more,
  };
}

function assertClean(r: BenchReport) {
  assert.ok(r.messages > 0, "no messages");
  assert.equal(r.mismatches, 0, `mismatches: ${formatReport(r)}`);
  assert.equal(r.errors, 0, `errors: ${formatReport(r)}`);
  assert.equal(r.ok, true);
  assert.equal(r.bytesReceived, r.bytesSent, "every byte sent came back");
}

Deno.test("pingpong against an echo server: verified messages, latency recorded", async () => {
  await withServer(echo(), async (port) => {
    const r = await runBench(options(port));
    assertClean(r);
    assert.equal(r.connectionsOpened, 4);
    assert.equal(r.bytesSent, r.messages * 1000);
    assert.equal(r.latencyUs.count, r.messages);
    assert.ok(r.latencyUs.p50 > 0 && r.latencyUs.p50 <= r.latencyUs.p99);
    assert.ok(r.latencyUs.p99 <= r.latencyUs.p99_9 && r.latencyUs.p99_9 <= r.latencyUs.max);
    assert.ok(r.elapsedS >= 0.29 && r.msgsPerS > 0);
  });
});

Deno.test("pingpong with messages larger than one read", async () => {
  await withServer(echo(), async (port) => {
    assertClean(await runBench(options(port, { connections: 2, size: 200_000 })));
  });
});

Deno.test("stream: concurrent writes and verified reads", async () => {
  await withServer(echo(), async (port) => {
    const r = await runBench(options(port, { mode: "stream" }));
    assertClean(r);
    assert.ok(r.mbPerS > 0);
  });
});

Deno.test("churn: a new connection for every echo", async () => {
  await withServer(echo(), async (port) => {
    const r = await runBench(options(port, { mode: "churn", size: 64 }));
    assertClean(r);
    assert.equal(r.connectionsOpened, r.messages);
    assert.ok(r.connectionsPerS > 0);
  });
});

Deno.test("a server flipping bytes is caught, in pingpong and stream", async () => {
  const flip = (buf: Uint8Array, n: number, read: number) => {
    if (read % 7 === 3) buf[n >> 1] ^= 0x20;
    return n;
  };
  for (const mode of ["pingpong", "stream"] as const) {
    await withServer(echo(flip), async (port) => {
      const r = await runBench(options(port, { mode }));
      assert.ok(r.corrupted > 0, `${mode}: no corruption seen`);
      assert.equal(r.mismatches, r.corrupted + r.short);
      assert.equal(r.ok, false);
    });
  }
});

Deno.test("a server adding a byte is caught", async () => {
  const extra = (buf: Uint8Array, n: number, read: number) => {
    if (read !== 5) return n;
    buf[n] = 0;
    return n + 1;
  };
  await withServer(echo(extra), async (port) => {
    const r = await runBench(options(port, { connections: 1 }));
    assert.ok(r.corrupted > 0);
    assert.equal(r.ok, false);
  });
});

Deno.test("a server dropping bytes is caught as a short echo", async () => {
  // Keeps the connection open, so the client waits for bytes that never come.
  const drop = (_buf: Uint8Array, n: number, read: number) => read === 5 ? n - 1 : n;
  for (const mode of ["pingpong", "stream"] as const) {
    await withServer(echo(drop), async (port) => {
      const r = await runBench(options(port, { mode }));
      assert.ok(r.short > 0, `${mode}: ${formatReport(r)}`);
      assert.equal(r.ok, false);
    });
  }
});

Deno.test("a server closing mid-echo is caught as a short echo and a reset", async () => {
  const hangUp = (_buf: Uint8Array, n: number, read: number) => read === 3 ? null : n;
  for (const mode of ["pingpong", "stream", "churn"] as const) {
    await withServer(echo(hangUp), async (port) => {
      const r = await runBench(options(port, { mode, connections: 2 }));
      assert.ok(r.short > 0, `${mode}: ${formatReport(r)}`);
      assert.ok(r.resets > 0, `${mode}: no reset counted`);
      assert.equal(r.errors, r.connectionsFailed + r.resets);
      assert.ok(r.firstError !== null);
      assert.equal(r.ok, false);
    });
  }
});

Deno.test("open-loop rate sends about the requested number of messages", async () => {
  await withServer(echo(), async (port) => {
    // 400 msg/s for 0.5 s: about 200.
    const r = await runBench(options(port, { durationMs: 500, rate: 400, size: 64 }));
    assertClean(r);
    assert.ok(r.messages >= 100 && r.messages <= 300, `${r.messages} messages`);
    assert.equal(r.options.rate, 400);
  });
});

Deno.test("report survives a JSON round trip and renders as text", async () => {
  await withServer(echo(), async (port) => {
    const r = await runBench(options(port, { connections: 2, durationMs: 100 }));
    const back: BenchReport = JSON.parse(JSON.stringify(r));
    assert.deepEqual(back, r);
    for (
      const key of [
        "options",
        "elapsedS",
        "messages",
        "bytesSent",
        "bytesReceived",
        "msgsPerS",
        "mbPerS",
        "connectionsOpened",
        "connectionsFailed",
        "errors",
        "resets",
        "mismatches",
        "latencyUs",
      ]
    ) {
      assert.ok(key in back, key);
    }
    for (const key of ["p50", "p90", "p99", "p99_9", "max", "mean"] as const) {
      assert.equal(typeof back.latencyUs[key], "number", key);
    }
    assert.deepEqual(back.options, {
      host: "127.0.0.1",
      port,
      connections: 2,
      durationMs: 100,
      size: 1000,
      mode: "pingpong",
      rate: null,
    });
    const text = formatReport(r);
    for (const word of ["p50", "p90", "p99", "p99.9", "max", "msg/s", "MB/s", "OK"]) {
      assert.ok(text.includes(word), `${word} missing from\n${text}`);
    }
  });
});

Deno.test("progress comes after a second, on one line; abort stops the run and still reports", async () => {
  await withServer(echo(), async (port) => {
    const ac = new AbortController();
    const seen: BenchProgress[] = [];
    const r = await runBench(options(port, {
      durationMs: 60_000,
      signal: ac.signal,
      // Abort from inside the run rather than after a guessed delay.
      onProgress: (p) => {
        seen.push(p);
        ac.abort();
      },
    }));
    assert.equal(seen.length, 1);
    assert.ok(seen[0].elapsedS >= 0.9 && seen[0].messages > 0 && seen[0].msgsPerS > 0);
    assert.equal(seen[0].openConnections, 4);
    const line = formatProgress(seen[0]);
    assert.ok(!/[\r\n]/.test(line) && line.includes("msg/s"), line);
    assertClean(r);
    assert.ok(r.elapsedS < 30, `ran ${r.elapsedS} s`);

    const pre = await runBench(options(port, { signal: AbortSignal.abort() }));
    assert.equal(pre.messages, 0);
    assert.equal(pre.mismatches, 0);
  });
});

Deno.test("an unreachable server rejects with a clear error", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  await assert.rejects(
    runBench(options(port)),
    new RegExp(`^Error: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused$`),
  );
});

Deno.test("invalid options are rejected", async () => {
  const bad: Partial<BenchOptions>[] = [
    { connections: 0 },
    { size: 0 },
    { size: 1.5 },
    { durationMs: 0 },
    { port: 70000 },
    { rate: -1 },
    { mode: "stream", rate: 10 },
    { mode: "bogus" as BenchOptions["mode"] },
  ];
  for (const more of bad) {
    await assert.rejects(runBench(options(1, more)), RangeError, JSON.stringify(more));
  }
});
