/**
 * UDP to a port where nothing listens: `client --udp` says "refused" at once
 * instead of waiting for its timeout, and `bench --udp` says so instead of
 * blaming the server's rate limit. A silent or slow socket is not refused.
 */
import { deepStrictEqual, equal, ok, strictEqual } from "node:assert/strict";
import { udpPortUnbound } from "../client/udp.ts";
import { runCli } from "./helpers.ts";

/** A loopback UDP port with nothing bound to it (bound, then closed). */
function closedUdpPort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  socket.close();
  return (socket.addr as Deno.NetAddr).port;
}

Deno.test("udpPortUnbound: true where nothing is bound, false where a socket is, undefined elsewhere", () => {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  strictEqual(udpPortUnbound({ transport: "udp", hostname: "127.0.0.1", port }), false);
  socket.close();
  strictEqual(udpPortUnbound({ transport: "udp", hostname: "127.0.0.1", port }), true);
  // A socket on every address holds the port on loopback too.
  const any = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const anyPort = (any.addr as Deno.NetAddr).port;
  strictEqual(udpPortUnbound({ transport: "udp", hostname: "127.0.0.1", port: anyPort }), false);
  any.close();
  // Another machine's address (TEST-NET-1): nothing can be told from here.
  strictEqual(udpPortUnbound({ transport: "udp", hostname: "192.0.2.1", port: 7 }), undefined);
});

Deno.test("client --udp to a closed port says refused at once, exit 1", async () => {
  const port = closedUdpPort();
  const started = performance.now();
  const { code, stdout, stderr } = await runCli([
    "client",
    "--udp",
    "-p",
    String(port),
    "-m",
    "anyone?",
    "-t",
    "30s",
  ]);
  const took = performance.now() - started;
  strictEqual(code, 1);
  strictEqual(stdout, "");
  strictEqual(
    stderr,
    `echo-server client: cannot reach 127.0.0.1:${port} over UDP: refused (nothing listens on that UDP port of this machine)\n`,
  );
  // Far sooner than the 30 s it would otherwise wait (a process start included).
  ok(took < 15_000, `took ${took.toFixed(0)} ms`);
});

Deno.test("client --udp waits for a slow server whose port is bound: not refused", async () => {
  const slow = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (slow.addr as Deno.NetAddr).port;
  const answering = (async () => {
    const [data, from] = await slow.receive();
    // Answers well after the grace in which the client looks at the port: slow, not refused.
    await new Promise((resolve) => setTimeout(resolve, 600));
    await slow.send(data, from);
  })();
  try {
    const { code, stdout, stderr } = await runCli([
      "client",
      "--udp",
      "-p",
      String(port),
      "-m",
      "slow",
      "-t",
      "10s",
    ]);
    strictEqual(code, 0, stderr);
    strictEqual(stdout, "slow\n");
    await answering;
  } finally {
    slow.close();
  }
});

Deno.test("bench --udp to a closed port stops at once and says refused, not the rate limit", async () => {
  const port = closedUdpPort();
  const started = performance.now();
  const { code, stdout, stderr } = await runCli([
    "bench",
    "--udp",
    "-p",
    String(port),
    "-c",
    "2",
    "-d",
    "30s",
  ]);
  ok(performance.now() - started < 15_000, "it waited");
  strictEqual(code, 1);
  ok(
    stdout.includes("\n               refused: nothing listens on that UDP port of this machine\n"),
    stdout,
  );
  ok(!stdout.includes("--udp-rate"), stdout);
  ok(stdout.includes("  errors       2  (0 connect, 2 refused, 0 closed or reset)"), stdout);
  ok(stdout.includes("  result       FAILED"), stdout);
  ok(
    stderr.includes(
      `(first: cannot reach 127.0.0.1:${port} over UDP: refused (nothing listens on that UDP port of this machine))`,
    ),
    stderr,
  );
  const json = await runCli([
    "bench",
    "--udp",
    "-p",
    String(port),
    "-c",
    "1",
    "-d",
    "30s",
    "--json",
  ]);
  strictEqual(json.code, 1);
  const report = JSON.parse(json.stdout);
  strictEqual(report.udp.refused, true);
  deepStrictEqual([report.refused, report.errors, report.ok], [1, 1, false]);
  equal(
    report.firstError,
    `cannot reach 127.0.0.1:${port} over UDP: refused (nothing listens on that UDP port of this machine)`,
  );
});
