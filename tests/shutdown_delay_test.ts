/**
 * `serve --shutdown-delay`: after SIGTERM the server is not ready (`/readyz`
 * 503) at once but goes on accepting and echoing new clients for the delay,
 * then closes its listener and drains; a second signal ends the delay early.
 */
import { equal, match, ok } from "node:assert/strict";
import { assertRefused, Cli, httpGet, testEngines, tryEcho } from "./helpers.ts";
import type { IoEngine } from "../server.ts";
import { opensslMissing, testCerts } from "./certs.ts";

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
  return (await httpGet(`http://127.0.0.1:${metrics}/readyz`)).status;
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
    // Not ready, then (the delay run out: the lines' own timestamps) stopped.
    const at = (pattern: RegExp) => Date.parse(stderr.match(pattern)?.[1] ?? "");
    const notReadyAt = at(/^(\S+) INFO {2}server: SIGTERM: not ready/m);
    const stoppedAt = at(/^(\S+) INFO {2}server: stopped:/m);
    ok(stoppedAt - notReadyAt >= 190, `stopped ${stoppedAt - notReadyAt} ms after not ready`);
    await assertRefused({ hostname: "127.0.0.1", port });
  },
);

Deno.test("--shutdown-delay takes a duration, and says so when it is not one", async () => {
  await using cli = new Cli(["--port", "0", "--shutdown-delay", "soon"]);
  const { code, stderr } = await cli.finished();
  equal(code, 2);
  match(stderr, /invalid --shutdown-delay "soon": expected a duration/);
});

/** A TLS client's echo of `text`, verified against the test CA. */
async function tlsEcho(port: number, ca: string, text: string): Promise<string> {
  using conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
  await conn.write(new TextEncoder().encode(text));
  const reply = new Uint8Array(text.length);
  for (let got = 0; got < reply.length;) {
    const n = await conn.read(reply.subarray(got));
    if (n === null) throw new Error(`closed after ${got} bytes`);
    got += n;
  }
  return new TextDecoder().decode(reply);
}

Deno.test({
  name:
    "system: --shutdown-delay with --workers 2 and TLS: every worker goes on accepting during the delay",
  ignore: (await opensslMissing()) !== undefined,
  async fn() {
    const { certPath, keyPath, ca } = await testCerts();
    const cli = new Cli(
      [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics",
        "127.0.0.1:0",
        "--cert",
        certPath,
        "--key",
        keyPath,
        "--workers",
        "2",
        "--shutdown-delay",
        "30s",
      ],
      { permissions: ["--allow-net", "--allow-read"] },
    );
    await using _cli = cli;
    const port = await cli.port();
    await cli.waitFor(/2 workers share/);
    const metrics = Number((await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/))[1]);
    cli.kill("SIGTERM");
    await cli.waitFor(/not ready; accepting for 30s more/);
    equal(await readyz(metrics), 503);
    // Ten, which the kernel spreads over the workers.
    for (let i = 0; i < 10; i++) equal(await tlsEcho(port, ca, `late ${i}`), `late ${i}`);
    await new Promise((resolve) => setTimeout(resolve, 350));
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
    match(stderr, /stopped: served 10 connections/);
  },
});
