/**
 * TLS end to end: `serve --cert --key`, `client --tls`, `bench --tls` and
 * the library's `serve({ tls })` and `connect({ tls })`, over real sockets,
 * with certificates made for the run by `openssl` (see certs.ts). Named
 * `system: …`; ignored, saying why, where `openssl` is missing.
 */
import { ok, rejects, strictEqual, throws } from "node:assert/strict";
import { connect } from "../client.ts";
import { Guard, serve } from "../server.ts";
import { Cli, pattern, readToEnd, runCli, sameBytes, within } from "./helpers.ts";
import { opensslMissing, testCerts } from "./certs.ts";

const missing = await opensslMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const ignore = missing !== undefined;
const permissions = ["--allow-net", "--allow-read"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const noStackTrace = (stderr: string) => ok(!/^\s+at /m.test(stderr), `stack trace:\n${stderr}`);

/** `serve` on a free loopback port with TLS, and the port it got. */
async function tlsServer(extra: string[] = []): Promise<{ cli: Cli; port: number }> {
  const certs = await testCerts();
  const cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--cert", certs.certPath, "--key", certs.keyPath, ...extra],
    { permissions },
  );
  return { cli, port: await cli.port() };
}

/** Runs `client` with read permission (for `--ca`) to completion. */
async function client(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  await using cli = new Cli(["client", ...args], { permissions });
  return await cli.finished();
}

Deno.test({
  name:
    `system: TLS: every byte value and 1 MiB come back exactly, the certificate verified${ignored}`,
  ignore,
  fn: async () => {
    const { cert, key, ca } = await testCerts();
    await using server = serve({ hostname: "127.0.0.1", port: 0, tls: { cert, key } });
    await using echo = await within(
      connect({ port: server.addr.port, tls: { caCerts: [ca] } }),
      "a TLS connection",
    );
    const send = (bytes: Uint8Array) =>
      within(echo.send(bytes, { verify: true }), `the echo of ${bytes.length} bytes over TLS`);
    const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
    ok(sameBytes(await send(everyByte), everyByte));
    const big = pattern(1 << 20, 3);
    ok(sameBytes(await send(big), big), "1 MiB echo differs");
    strictEqual(
      (await within(echo.end(), "the server to close after the half-close")).length,
      0,
      "bytes beyond the echo",
    );
    // A client that trusts only the roots Deno ships does not trust a test CA.
    await rejects(within(connect({ port: server.addr.port, tls: true }), "the TLS refusal"), {
      name: "ClientError",
      kind: "connect",
      message:
        `cannot connect to 127.0.0.1:${server.addr.port}: certificate not trusted (issued by an unknown authority)`,
    });
  },
});

Deno.test({
  name:
    `system: TLS: client --tls --ca echoes; --servername must be a name in the certificate${ignored}`,
  ignore,
  fn: async () => {
    const { caPath } = await testCerts();
    const { cli, port } = await tlsServer();
    await using _server = cli;
    const ok1 = await client(["-p", `${port}`, "--tls", "--ca", caPath, "-m", "over TLS"]);
    strictEqual(ok1.code, 0, ok1.stderr);
    strictEqual(ok1.stdout, "over TLS\n");
    const named = await client([
      "-p",
      `${port}`,
      "--tls",
      "--ca",
      caPath,
      "--servername",
      "localhost",
      "-n",
      "2",
      "-i",
      "0",
    ]);
    strictEqual(named.code, 0, named.stderr);
    strictEqual(named.stdout, "Hello, server 2\nHello, server 1\n");
    const piped = await runClientWithStdin(
      ["-p", `${port}`, "--tls", "--ca", caPath],
      "one\ntwo\n",
    );
    strictEqual(piped.code, 0, piped.stderr);
    strictEqual(piped.stdout, "one\ntwo\n");
    const wrong = await client([
      "-p",
      `${port}`,
      "--tls",
      "--ca",
      caPath,
      "--servername",
      "example.com",
      "-m",
      "x",
    ]);
    strictEqual(wrong.code, 1);
    strictEqual(
      wrong.stderr.trim(),
      `echo-server client: cannot connect to 127.0.0.1:${port}: certificate not valid for example.com (it is for localhost, 127.0.0.1, ::1)`,
    );
  },
});

/** `client` with `stdin` piped in (netcat mode). */
async function runClientWithStdin(
  args: string[],
  stdin: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using cli = new Cli(["client", ...args], { permissions, stdin: "piped" });
  const writer = cli.stdin.getWriter();
  await writer.write(encoder.encode(stdin));
  await writer.close();
  return await cli.finished();
}

Deno.test({
  name:
    `system: TLS: a plain-text client and one that does not trust the certificate are closed with a logged reason; the next is served${ignored}`,
  ignore,
  fn: async () => {
    const { caPath } = await testCerts();
    const { cli, port } = await tlsServer();
    await using _server = cli;
    // Plain text on the TLS port: the server answers with an alert and closes.
    using plain = await Deno.connect({ hostname: "127.0.0.1", port });
    await plain.write(encoder.encode("hello?\n"));
    const alert = await readToEnd(plain);
    strictEqual(alert[0], 0x15, "not a TLS alert record");
    await cli.waitFor(
      /#1 closed: TLS handshake with 127\.0\.0\.1:\d+ failed: the client does not speak TLS \(plain text\?\); 0 B in/,
    );
    const plainClient = await client(["-p", `${port}`, "-m", "hi"]);
    strictEqual(plainClient.code, 1);
    strictEqual(
      plainClient.stderr.trim(),
      `echo-server client: 127.0.0.1:${port} answered with a TLS alert: it speaks TLS`,
    );
    const untrusting = await client(["-p", `${port}`, "--tls", "-m", "hi"]);
    strictEqual(untrusting.code, 1);
    strictEqual(
      untrusting.stderr.trim(),
      `echo-server client: cannot connect to 127.0.0.1:${port}: certificate not trusted (issued by an unknown authority)`,
    );
    await cli.waitFor(
      /closed: TLS handshake with 127\.0\.0\.1:\d+ failed: the client does not trust the certificate \(UnknownCA\)/,
    );
    const next = await client(["-p", `${port}`, "--tls", "--ca", caPath, "-m", "next"]);
    strictEqual(next.code, 0, next.stderr);
    strictEqual(next.stdout, "next\n");
    noStackTrace(cli.stderr);
    ok(!cli.stderr.includes("ERROR"), cli.stderr);
  },
});

Deno.test({
  name:
    `system: TLS: a peer that never sends its handshake is closed for real by the handshake timeout and frees its slot${ignored}`,
  ignore,
  fn: async () => {
    const { cert, key, ca } = await testCerts();
    // One slot: while the silent peer holds it, the next client waits in the backlog.
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert, key },
      handshakeTimeoutMs: 300,
      idleTimeoutMs: 0,
      guard: new Guard({ maxConns: 1 }),
    });
    const started = performance.now(); // before the connect: the deadline may start before it resolves
    using silent = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await using next = await within(
      connect({ port: server.addr.port, tls: { caCerts: [ca] } }),
      "the next client's TLS connection",
    );
    strictEqual(
      decoder.decode(
        await within(next.send("after the silent one", { verify: true }), "the next echo"),
      ),
      "after the silent one",
    );
    const waited = performance.now() - started;
    // 300 ms is asked; the upper bound tells it from the default (10 s), with room for a busy machine.
    ok(waited >= 250 && waited < 9_000, `served after ${Math.round(waited)} ms`);
    // The silent peer's connection is gone on its side too: it reads the end, not a hang.
    strictEqual(await within(silent.read(new Uint8Array(16)), "the silent peer's end"), null);
    strictEqual(server.stats().closed?.error, 1);
  },
});

Deno.test({
  name: `system: TLS: bench --tls verifies every echo; without --ca it cannot connect${ignored}`,
  ignore,
  fn: async () => {
    const { caPath } = await testCerts();
    const { cli, port } = await tlsServer();
    await using _server = cli;
    await using bench = new Cli(
      // 1 s: the echoes in flight at the end get the drain time, as long as the run.
      ["bench", "-p", `${port}`, "--tls", "--ca", caPath, "-c", "4", "-d", "1s", "--json"],
      { permissions },
    );
    const run = await bench.finished();
    strictEqual(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    ok(report.ok && report.messages > 0 && report.mismatches === 0, run.stdout);
    strictEqual(report.options.tls, true);
    await using untrusting = new Cli(
      ["bench", "-p", `${port}`, "--tls", "-c", "2", "-d", "300ms"],
      {
        permissions,
      },
    );
    const refused = await untrusting.finished();
    strictEqual(refused.code, 1);
    ok(
      refused.stderr.includes(
        `cannot connect to 127.0.0.1:${port}: certificate not trusted (issued by an unknown authority)`,
      ),
      refused.stderr,
    );
  },
});

Deno.test({
  name: `system: TLS with --workers 2: each worker serves TLS on the shared port${ignored}`,
  ignore,
  fn: async () => {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer(["--workers", "2"]);
    await using _server = cli;
    await cli.waitFor(/2 workers share 127\.0\.0\.1 port \d+/);
    // 20 connections: a worker that did not serve TLS would almost surely get one.
    for (let i = 0; i < 20; i++) {
      await using echo = await within(connect({ port, tls: { caCerts: [ca] } }), `TLS client ${i}`);
      strictEqual(
        decoder.decode(await within(echo.send(`w ${i}`, { verify: true }), `echo ${i}`)),
        `w ${i}`,
      );
    }
  },
});

Deno.test({
  name:
    `system: TLS flags: a missing half, an unreadable file, a key of another certificate${ignored}`,
  ignore,
  fn: async () => {
    const { certPath, keyPath, otherKeyPath } = await testCerts();
    const halves = await runCli(["--cert", certPath]);
    strictEqual(halves.code, 2);
    ok(halves.stderr.startsWith("echo-server: --cert needs --key\n"), halves.stderr);
    const cases: Array<[string[], RegExp]> = [
      [
        ["--cert", "/nonexistent/cert.pem", "--key", keyPath],
        /cannot read --cert \/nonexistent\/cert\.pem: no such file$/m,
      ],
      [["--cert", certPath, "--key", otherKeyPath], /--cert and --key do not match \(/],
      [["--cert", keyPath, "--key", keyPath], /--cert .*server\.key: no PEM certificate in it$/m],
    ];
    for (const [args, expected] of cases) {
      await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", ...args], { permissions });
      const { code, stderr } = await cli.finished();
      strictEqual(code, 1, stderr);
      ok(expected.test(stderr), stderr);
      strictEqual(stderr.trim().split("\n").length, 1, stderr);
    }
    const withoutRead = await runCli(["--cert", certPath, "--key", keyPath]);
    strictEqual(withoutRead.code, 1);
    ok(
      withoutRead.stderr.includes("--cert and --key need --allow-read: run deno with --allow-read"),
      withoutRead.stderr,
    );
    const caAlone = await runCli(["client", "--ca", certPath, "-m", "x"]);
    strictEqual(caAlone.code, 2);
    ok(caAlone.stderr.startsWith("echo-server: --ca needs --tls\n"), caAlone.stderr);
    const proxied = await runCli([
      "--cert",
      certPath,
      "--key",
      keyPath,
      "--proxy-protocol",
      "--trusted-proxy",
      "127.0.0.1",
    ]);
    strictEqual(proxied.code, 2);
    ok(proxied.stderr.includes("--proxy-protocol with --cert needs --io epoll"), proxied.stderr);
  },
});

Deno.test("TLS: a server that accepts but never answers the handshake is a connect timeout", async () => {
  using mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = mute.accept();
  await rejects(
    connect({ port: mute.addr.port, tls: true, signal: AbortSignal.timeout(200) }),
    {
      name: "ClientError",
      kind: "timeout",
      message: `cannot connect to 127.0.0.1:${mute.addr.port}: timed out`,
    },
  );
  (await within(accepted, "the client's connection")).close();
});

Deno.test("TLS: serve with a certificate that is not PEM throws a ListenError saying so", () => {
  throws(
    () => serve({ hostname: "127.0.0.1", port: 0, tls: { cert: "not PEM", key: "not PEM" } }),
    {
      name: "ListenError",
      message: "cannot listen with TLS on 127.0.0.1:0: the certificate holds no PEM certificate",
    },
  );
  throws(
    () =>
      serve({
        hostname: "127.0.0.1",
        port: 0,
        tls: { cert: "x", key: "y" },
        proxyProtocol: { trustedProxies: [] },
      }),
    TypeError,
  );
});

Deno.test({
  name:
    `system: TLS: a connection the server closes (idle timeout) ends with close_notify, which the client reads as a close${ignored}`,
  ignore,
  fn: async () => {
    const { ca, caPath } = await testCerts();
    const { cli, port } = await tlsServer(["--idle-timeout", "300ms"]);
    await using _server = cli;
    using conn = await within(
      Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] }),
      "a TLS connection",
    );
    await conn.write(new TextEncoder().encode("hi"));
    const reply = new Uint8Array(2);
    strictEqual(await within(conn.read(reply), "the echo"), 2);
    // Then nothing: the idle timeout closes it, the TLS way (a truncation would be an error).
    strictEqual(await within(conn.read(reply), "the server's close"), null);
    // And the project's own client says so in its words.
    const { code, stderr } = await client([
      "-p",
      `${port}`,
      "--tls",
      "--ca",
      caPath,
      "-n",
      "2",
      "-i",
      "1s",
    ]);
    strictEqual(code, 1);
    ok(/closed the connection/.test(stderr) && !/docs\.rs|close_notify/.test(stderr), stderr);
  },
});

Deno.test({
  name:
    `system: TLS: bench counts a TLS refusal at accept as refused, with a report, as over plain TCP${ignored}`,
  ignore,
  fn: async () => {
    const { ca, caPath } = await testCerts();
    const { cli, port } = await tlsServer(["--max-conns", "1", "--when-full", "refuse"]);
    await using _server = cli;
    // The one slot, held.
    using held = await within(
      Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] }),
      "the connection that holds the slot",
    );
    await held.write(new TextEncoder().encode("x"));
    strictEqual(await within(held.read(new Uint8Array(1)), "its echo"), 1);
    await using bench = new Cli(
      ["bench", "-p", `${port}`, "--tls", "--ca", caPath, "-c", "2", "-d", "500ms", "--json"],
      { permissions },
    );
    const { code, stdout, stderr } = await bench.finished();
    strictEqual(code, 1, stderr);
    const report = JSON.parse(stdout) as { refused: number; connectionsFailed: number };
    ok(report.refused >= 2, stdout);
    ok(/refused\?/.test(stderr), stderr);
  },
});
