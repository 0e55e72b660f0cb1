/**
 * The client against servers that misbehave on purpose (`--fault`): a whole
 * echo from a server that then stalls is a success, a cut echo's timeout
 * counts what came, netcat mode keeps to `-t` after stdin ends, and a reset
 * right after the accept reads the same whichever step noticed it; on both
 * engines.
 */
import { equal, match, ok } from "node:assert/strict";
import { ClientError, connect } from "../client.ts";
import { serve } from "../server.ts";
import { Cli, runCli, testEngines, within } from "./helpers.ts";

/** Runs `client -p port ...args` with `stdin`; its result and how long it took. */
async function client(port: number, args: string[], stdin?: string) {
  const started = performance.now();
  const result = await runCli(["client", "-p", String(port), "-t", "500ms", ...args], { stdin });
  return { ...result, ms: performance.now() - started };
}

testEngines(
  "stall-after=5: a whole echo exits 0 with a note, a cut one counts what came",
  async (io) => {
    await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", "stall-after=5"], {
      io,
    });
    const port = await server.port();
    const whole = await client(port, ["-m", "hello"]);
    equal(whole.code, 0, whole.stderr);
    equal(whole.stdout, "hello\n");
    equal(
      whole.stderr,
      `echo-server client: the echo came back whole, but 127.0.0.1:${port} did not close the connection within 500ms; not waiting longer\n`,
    );
    const cut = await client(port, ["-n", "1"]);
    equal(cut.code, 1, cut.stderr);
    equal(
      cut.stderr,
      `echo-server client: connected to 127.0.0.1:${port}, but only 5 of 15 bytes came back within 500ms\n`,
    );
  },
);

testEngines("stall-after=5: netcat mode keeps to -t once stdin has ended", async (io) => {
  await using server = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--fault", "stall-after=5", "--idle-timeout", "60s"],
    { io },
  );
  const port = await server.port();
  const whole = await client(port, [], "hello");
  equal(whole.code, 0, whole.stderr);
  equal(whole.stdout, "hello");
  match(whole.stderr, /the echo came back whole, but .* did not close the connection within 500ms/);
  const cut = await client(port, [], "helloworld");
  equal(cut.code, 1, cut.stderr);
  equal(cut.stdout, "hello");
  equal(
    cut.stderr,
    `echo-server client: connected to 127.0.0.1:${port}, but only 5 of 10 bytes came back within 500ms\n`,
  );
  // The server would hold the connection for a minute: -t, not it, ended both.
  ok(whole.ms < 10_000 && cut.ms < 10_000, `took ${whole.ms} and ${cut.ms} ms`);
});

testEngines(
  "refuse=1: a reset right after the accept reads as one refusal, message or netcat",
  async (io) => {
    await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--fault", "refuse=1"], { io });
    const port = await server.port();
    const refusal =
      `echo-server client: 127.0.0.1:${port} closed the connection before echoing anything (refused?)\n`;
    // Which step meets the reset (connect, write, read) is timing: try each way a few times.
    for (let i = 0; i < 4; i++) {
      for (const [args, stdin] of [[["-m", "hello"]], [[], "hi"]] as const) {
        const { code, stderr } = await client(port, [...args], stdin);
        equal(code, 1, stderr);
        equal(stderr, refusal);
      }
    }
  },
);

testEngines("send's timeout counts the bytes of the echo that came back", async (io) => {
  await using server = serve({
    hostname: "127.0.0.1",
    port: 0,
    io,
    faults: ["stall-after=5"],
    drainTimeoutMs: 200,
  });
  await using echo = await connect({ port: server.addr.port });
  const error = await within(
    echo.send("Hello, server", { signal: AbortSignal.timeout(300) }).catch((e) => e),
    "the send to time out",
  );
  ok(error instanceof ClientError, String(error));
  equal(error.kind, "timeout");
  equal(error.progress?.received, 5);
  equal(error.progress?.expected, 13);
  equal(
    error.message,
    `connected to 127.0.0.1:${server.addr.port}, but only 5 of 13 bytes came back in time`,
  );
});
