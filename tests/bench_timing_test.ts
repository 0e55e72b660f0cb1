/**
 * `warmupMs` and `rampMs` on Deno's sockets (the epoll engine's are in
 * `bench_epoll_test.ts`), and the per-second series of a run: every mode
 * against the project's server on port 0.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { formatReport, runBench } from "../bench/mod.ts";
import { serve } from "../server.ts";
import { within } from "./helpers.ts";

Deno.test("bench leaves the warm-up out and ramps the connections up, in every mode", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 });
  for (const mode of ["pingpong", "stream", "churn"] as const) {
    const r = await within(
      runBench({
        host: "127.0.0.1",
        port: server.addr.port,
        connections: 10,
        durationMs: 500,
        size: 100,
        mode,
        warmupMs: 800,
        rampMs: 300,
      }),
      `the ${mode} run`,
    );
    const text = formatReport(r);
    ok(r.ok, text);
    ok(r.connectionsOpened >= 10, text);
    // The report covers the 500 ms after the warm-up, not the whole 1.3 s (late timers aside).
    ok(r.elapsedS > 0.2 && r.elapsedS < 1, text);
    deepEqual([r.options.warmupMs, r.options.rampMs], [800, 300]);
    // Echoes of bytes sent in the warm-up count in the warm-up, as those bytes did:
    // every byte sent is back once a clean run has drained, and no more.
    if (mode === "stream") ok(r.bytesReceived <= r.bytesSent, text);
    else equal(r.bytesReceived, r.bytesSent, text);
    equal(r.perConnection?.none, 0, text);
    ok((r.series?.length ?? 0) >= 1 && (r.series?.[0].t ?? 0) <= 1.1, text);
  }
});

Deno.test("bench's series has a point a second, each with its own percentiles", async () => {
  await using server = serve({ hostname: "127.0.0.1", port: 0 });
  const r = await within(
    runBench({
      host: "127.0.0.1",
      port: server.addr.port,
      connections: 2,
      durationMs: 2100,
      size: 64,
      mode: "pingpong",
      rate: 400,
    }),
    "the run",
  );
  const series = r.series ?? [];
  ok(series.length >= 2 && series.length <= 3, JSON.stringify(series));
  for (const s of series.slice(0, 2)) {
    // 400 a second were asked for; a busy machine may fall short, never over.
    ok(s.msgsPerS > 100 && s.msgsPerS < 480, JSON.stringify(s));
    ok(s.p50 > 0 && s.p50 <= s.p99 && s.p99 <= s.p99_9 && s.p99_9 <= s.max, JSON.stringify(s));
  }
});
