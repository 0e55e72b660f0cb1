/**
 * `serve --shutdown-delay`: after SIGTERM the server is not ready (`/readyz`
 * 503) at once but goes on accepting and echoing new clients for the delay,
 * then closes its listener and drains; a second signal ends the delay early.
 */
import { equal, match, ok } from "node:assert/strict";
import { assertRefused, Cli, testEngines, tryEcho } from "./helpers.ts";
import type { IoEngine } from "../server.ts";

/** Starts a server on a free port with a metrics endpoint; resolves with both ports. */
async function start(
  io: IoEngine,
  flags: string[],
): Promise<{ cli: Cli; port: number; metrics: number }> {
  const cli = new Cli(
    ["--host", "127.0.0.1", "--port", "0", "--metrics", "127.0.0.1:0", ...flags],
    { io },
  );
  const port = await cli.port();
  const metrics = Number((await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/))[1]);
  return { cli, port, metrics };
}

/** The status of `/readyz`. */
async function readyz(metrics: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${metrics}/readyz`, {
    signal: AbortSignal.timeout(5_000),
  });
  await response.body?.cancel();
  return response.status;
}

testEngines(
  "--shutdown-delay: /readyz is 503 at once, new clients are still echoed during the delay, then the listener closes and the server exits 0",
  async (io) => {
    const { cli, port, metrics } = await start(io, ["--shutdown-delay", "30s"]);
    await using _cli = cli;
    equal(await readyz(metrics), 200);
    using held = await Deno.connect({ hostname: "127.0.0.1", port });
    equal(await tryEcho(held, "before"), "before");

    cli.kill("SIGTERM");
    await cli.waitFor(/SIGTERM: not ready; accepting for 30s more, then draining/);
    equal(await readyz(metrics), 503);
    // The delay is long: nothing here races it.
    for (let i = 0; i < 5; i++) {
      using late = await Deno.connect({ hostname: "127.0.0.1", port });
      equal(await tryEcho(late, `during the delay ${i}`), `during the delay ${i}`);
    }
    equal(await tryEcho(held, "still open"), "still open");

    // A second signal ends the delay: the listener closes, the open connection drains.
    // (Past the same-keypress window of 300 ms, measured from the first signal.)
    await new Promise((resolve) => setTimeout(resolve, 350));
    cli.kill("SIGTERM");
    await cli.waitFor(/second SIGTERM: draining now/);
    await cli.waitFor(/draining 1 connection/);
    await assertRefused({ hostname: "127.0.0.1", port });
    equal(await tryEcho(held, "while draining"), "while draining");
    held.close();
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
    match(stderr, /stopped: served 6 connections/);
  },
);

testEngines(
  "--shutdown-delay: the drain starts by itself when the delay is over",
  async (io) => {
    const { cli, port } = await start(io, ["--shutdown-delay", "200ms"]);
    await using _cli = cli;
    cli.kill("SIGTERM");
    await cli.waitFor(/accepting for 200ms more/);
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
    // The order of the lines is the order of the events: not ready, then stopped.
    ok(stderr.indexOf("not ready") < stderr.indexOf("stopped:"), stderr);
    await assertRefused({ hostname: "127.0.0.1", port });
  },
);

Deno.test("--shutdown-delay takes a duration, and says so when it is not one", async () => {
  await using cli = new Cli(["--port", "0", "--shutdown-delay", "soon"]);
  const { code, stderr } = await cli.finished();
  equal(code, 2);
  match(stderr, /invalid --shutdown-delay "soon": expected a duration/);
});
