import { ok, strictEqual } from "node:assert/strict";
import {
  assertRefused,
  Cli,
  exchange,
  fillBacklog,
  pattern,
  readEnd,
  runCli,
  sameBytes,
  testEngines,
  within,
} from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const noStackTrace = (stderr: string) => ok(!/^\s+at /m.test(stderr), `stack trace:\n${stderr}`);

testEngines("serve logs the real port for --port 0 and echoes", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0"], { io });
  const port = await cli.port();
  ok(port > 0);
  ok(cli.stderr.includes(`listening on 127.0.0.1:${port}`));
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("ping"))), "ping");
  await cli.waitFor(/#1 opened from 127\.0\.0\.1:\d+/);
});

testEngines("serve listens on IPv6 ::1", async (io) => {
  await using cli = new Cli(["serve", "-H", "::1", "-p", "0"], { io });
  const port = await cli.port();
  ok(cli.stderr.includes(`listening on [::1]:${port}`));
  using conn = await Deno.connect({ hostname: "::1", port });
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("six"))), "six");
});

testEngines(
  "SIGTERM drains: the open connection finishes, new ones are refused, exit 0",
  async (io) => {
    await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--drain-timeout", "20s"], {
      io,
    });
    const port = await cli.port();
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    strictEqual(decoder.decode(await exchange(conn, encoder.encode("before"))), "before");
    cli.kill("SIGTERM");
    await cli.waitFor(/draining 1 connection\b/);
    await assertRefused({ hostname: "127.0.0.1", port });
    strictEqual(decoder.decode(await exchange(conn, encoder.encode("during"))), "during");
    await conn.closeWrite();
    await readEnd(conn, "the server to close the drained connection");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0);
    ok(/stopped: served 1 connection, echoed 12 bytes/.test(stderr), stderr);
  },
);

testEngines("after the drain timeout the rest are closed and the server exits 0", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--drain-timeout", "100ms"], {
    io,
  });
  const port = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("x"))), "x");
  cli.kill("SIGINT");
  await readEnd(conn, "the server to close the connection at the drain timeout");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0);
  ok(stderr.includes("closed: shutdown"), stderr);
});

testEngines("a second signal exits at once", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--drain-timeout", "1m"], {
    io,
  });
  const port = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("x"))), "x");
  cli.kill("SIGTERM");
  await cli.waitFor(/draining/);
  // The spacing is the input under test: within 300 ms a signal counts as the
  // same one delivered twice (see the next test).
  await new Promise((resolve) => setTimeout(resolve, 400));
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 143);
  ok(stderr.includes("second SIGTERM: exiting now"), stderr);
});

testEngines("one Ctrl-C delivered twice (terminal and deno task) still drains", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--drain-timeout", "20s"], {
    io,
  });
  const port = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("a"))), "a");
  cli.kill("SIGINT");
  cli.kill("SIGINT");
  await cli.waitFor(/draining 1 connection/);
  strictEqual(decoder.decode(await exchange(conn, encoder.encode("still"))), "still");
  await conn.closeWrite();
  await readEnd(conn, "the server to close the drained connection");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  ok(!stderr.includes("exiting now"), stderr);
});

testEngines("a busy port is one clear line and exit 1", async (io) => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stderr } = await runCli(
    ["--host", "127.0.0.1", "--port", String(taken.addr.port)],
    { io },
  );
  strictEqual(code, 1);
  ok(
    stderr.includes(`cannot listen on 127.0.0.1:${taken.addr.port}: address already in use`),
    stderr,
  );
  noStackTrace(stderr);
});

for (
  const [args, message] of [
    [["--port", "abc"], 'invalid --port "abc": expected a whole number from 0 to 65535'],
    [["--port", "70000"], 'invalid --port "70000"'],
    [["--drain-timeout", "soon"], 'invalid --drain-timeout "soon"'],
    [
      ["--log-level", "loud"],
      'invalid --log-level "loud": expected one of debug, info, warning, error',
    ],
    [["--bogus"], "unknown flag --bogus"],
    [["frobnicate"], 'unknown command "frobnicate"'],
    [["client", "--count", "0"], 'invalid --count "0"'],
    [["client", "--timeout", "0"], 'invalid --timeout "0": must be above 0'],
    [["--port", "-1"], 'invalid --port "-1": expected a whole number from 0 to 65535'],
    [["serve", "-p", "-1"], 'invalid --port "-1": expected a whole number from 0 to 65535'],
    [["--port=-1"], 'invalid --port "-1"'],
    [["client", "-n", "-3"], 'invalid --count "-3": expected a whole number 1 or more'],
    [["--idle-timeout", "-5s"], 'invalid --idle-timeout "-5s": expected a duration'],
    [["-H", ""], 'invalid --host "": expected a host name or an IP address'],
    [["--idle-timeout", "1000h"], 'invalid --idle-timeout "1000h": longer than the longest'],
    [["bench", "--mode", "stream", "--rate", "5"], "--rate applies to pingpong and churn"],
  ] as const
) {
  Deno.test(`bad input ${args.join(" ")} exits 2 with a hint`, async () => {
    const { code, stderr } = await runCli([...args]);
    strictEqual(code, 2);
    ok(stderr.includes(message), stderr);
    // The hint points to the help that lists the flag: the command's own, serve's by default.
    const command = ["serve", "client", "bench"].includes(args[0])
      ? ` ${args[0]}`
      : args[0].startsWith("-")
      ? " serve"
      : "";
    ok(stderr.includes(`Try "echo-server${command} --help"`), stderr);
    noStackTrace(stderr);
  });
}

Deno.test("--help and --version print to stdout and exit 0", async () => {
  const help = await runCli(["--help"]);
  strictEqual(help.code, 0);
  ok(help.stdout.includes("echo-server client [FLAGS]"));
  const serveHelp = await runCli(["serve", "--help"]);
  ok(serveHelp.stdout.includes("--drain-timeout DURATION"));
  const clientHelp = await runCli(["client", "-h"]);
  ok(clientHelp.stdout.includes("--message TEXT"));
  const version = await runCli(["--version"]);
  ok(/^echo-server \d+\.\d+\.\d+\n$/.test(version.stdout), version.stdout);
});

testEngines("--log-format json writes one JSON object a line", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"], { io });
  const port = await cli.port();
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0);
  const lines = stderr.trim().split("\n").map((line) => JSON.parse(line));
  // The default engine goes unnamed; the other is named, in the text and as a field.
  strictEqual(
    lines[0].message,
    `listening on 127.0.0.1:${port}${io === "epoll" ? " (epoll)" : ""}`,
  );
  strictEqual(lines[0].io, io === "epoll" ? "epoll" : undefined);
  strictEqual(lines[0].level, "info");
  strictEqual(lines[0].logger, "echo-server.server");
});

testEngines("--log-level debug logs every chunk", async (io) => {
  await using cli = new Cli(["--host", "127.0.0.1", "--port", "0", "--log-level", "debug"], { io });
  const port = await cli.port();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await exchange(conn, encoder.encode("12345"));
  await cli.waitFor(/#1 got 5 bytes/);
});

Deno.test("client sends one message, a periodic series, and stdin", async () => {
  await using server = new Cli(["--host", "127.0.0.1", "--port", "0"]);
  const port = String(await server.port());
  const one = await runCli(["client", "-p", port, "-m", "Hello, server"]);
  strictEqual(one.code, 0, one.stderr);
  strictEqual(one.stdout, "Hello, server\n");
  const series = await runCli(["client", "-p", port, "--count", "3", "--interval", "10ms"]);
  strictEqual(series.code, 0, series.stderr);
  strictEqual(series.stdout, "Hello, server 3\nHello, server 2\nHello, server 1\n");
  const piped = await runCli(["client", "--port", port], { stdin: "one\ntwo\n\u00e9\u0000\n" });
  strictEqual(piped.code, 0, piped.stderr);
  strictEqual(piped.stdout, "one\ntwo\n\u00e9\u0000\n");
});

Deno.test("client says so when the server is unreachable", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const { code, stderr } = await runCli(["client", "-p", String(port), "-m", "hi"]);
  strictEqual(code, 1);
  strictEqual(
    stderr,
    `echo-server client: cannot connect to 127.0.0.1:${port}: connection refused\n`,
  );
});

Deno.test("client exits 1 when the echo differs", async () => {
  // A server that answers with the wrong bytes.
  using liar = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await liar.accept();
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer) ?? 0;
    await conn.write(buffer.subarray(0, n).map((b) => b ^ 1));
    await conn.read(buffer);
  })();
  const { code, stderr } = await runCli(["client", "-p", String(liar.addr.port), "-m", "abc"]);
  await within(serving, "the lying server to answer the client and see it close");
  strictEqual(code, 1);
  ok(stderr.includes('echo differs: sent "abc", got "`cb"'), stderr);
});

testEngines(
  "client tells a refusal line from a corrupted echo, in one wording whatever the mode",
  async (io) => {
    await using server = new Cli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--deny",
      "127.0.0.1",
      "--reject-message",
      "busy, try later",
    ], { io });
    const port = String(await server.port());
    const refused =
      /^echo-server client: 127\.0\.0\.1:\d+ sent "busy, try later\\n" instead of an echo and closed the connection \(refused\?\)\n$/;
    // Messages no longer than the refusal line: the reply differs, then the server closes.
    // A longer message: the server closes before a whole reply came back.
    for (const args of [["-m", "hi"], ["-n", "1"], ["-m", "a message longer than the refusal"]]) {
      const { code, stderr } = await runCli(["client", "-p", port, ...args]);
      strictEqual(code, 1);
      ok(refused.test(stderr), stderr);
    }
    // Netcat mode: the refusal arrives before anything was sent.
    await using piped = new Cli(["client", "-p", port], { stdin: "piped" });
    const { code, stderr } = await piped.finished();
    strictEqual(code, 1);
    ok(refused.test(stderr), stderr);
  },
);

testEngines("a refusal without a message reads the same with -m and -n", async (io) => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--deny", "127.0.0.1"], { io });
  const port = String(await server.port());
  const closed =
    /^echo-server client: 127\.0\.0\.1:\d+ closed the connection before echoing anything \(refused\?\)\n$/;
  for (const args of [["-m", "hi"], ["-n", "1"]]) {
    const { code, stderr } = await runCli(["client", "-p", port, ...args]);
    strictEqual(code, 1);
    ok(closed.test(stderr), stderr);
  }
  // (In netcat mode a close before anything was sent reads "closed the connection": with
  // nothing sent, a refusal and an idle close look the same.)
});

Deno.test("system: client says it cannot connect when the server never completes the handshake", async () => {
  // Linux drops new connections once a listener's accept queue is full.
  using full = await fillBacklog();
  const { code, stderr } = await runCli([
    "client",
    "-p",
    String(full.port),
    "-m",
    "hi",
    "-t",
    "300ms",
  ]);
  strictEqual(code, 1);
  strictEqual(
    stderr,
    `echo-server client: cannot connect to 127.0.0.1:${full.port}: timed out after 300ms\n`,
  );
});

Deno.test("client says it connected, and names the server and the limit, when no reply comes", async () => {
  using mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = mute.accept();
  const run = runCli(["client", "-p", String(mute.addr.port), "-m", "hello?", "-t", "200ms"]);
  using conn = await within(accepted, "the client to connect");
  const { code, stderr } = await run;
  strictEqual(code, 1);
  strictEqual(
    stderr,
    `echo-server client: connected to 127.0.0.1:${mute.addr.port}, but no reply came within 200ms\n`,
  );
  strictEqual(await within(conn.read(new Uint8Array(16)), "the client's 6 bytes"), 6);
});

Deno.test("client notices bytes beyond the echo", async () => {
  // A server that echoes, then adds a line of its own when the client is done.
  using chatty = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    using conn = await chatty.accept();
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer) ?? 0;
    await conn.write(buffer.subarray(0, n));
    await conn.read(buffer);
    await conn.write(encoder.encode("bye\n"));
  })();
  const extra = await runCli(["client", "-p", String(chatty.addr.port), "-m", "hi"]);
  await within(serving, "the chatty server to echo, then add its line");
  strictEqual(extra.code, 1);
  ok(extra.stderr.includes("echo differs: 4 more bytes came back than were sent"), extra.stderr);
});

testEngines(
  "client in netcat mode notices at once when the server closes an idle connection",
  async (io) => {
    await using server = new Cli(["-H", "127.0.0.1", "-p", "0", "--idle-timeout", "200ms"], { io });
    const port = String(await server.port());
    // stdin stays open and silent: only the server's close can end this client.
    await using client = new Cli(["client", "-p", port], { stdin: "piped" });
    const { code, stderr } = await client.finished();
    strictEqual(code, 1);
    ok(/echo-server client: 127\.0\.0\.1:\d+ closed the connection\n$/.test(stderr), stderr);
  },
);

testEngines("client in netcat mode streams a large binary input exactly", async (io) => {
  await using server = new Cli(["-H", "127.0.0.1", "-p", "0"], { io });
  const port = String(await server.port());
  await using client = new Cli(["client", "-p", port], { stdin: "piped" });
  const input = pattern(5 << 20, 3);
  const writer = client.stdin.getWriter();
  await within(writer.write(input), "the client to read 5 MiB from its stdin");
  await within(writer.close(), "the client's stdin to close");
  const { code, stderr, bytes } = await client.finishedBytes();
  strictEqual(code, 0, stderr);
  ok(sameBytes(bytes, input), `got ${bytes.length} bytes of ${input.length}`);
});
