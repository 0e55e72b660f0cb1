/**
 * Mutual TLS: `serve --client-ca` (and `serve({ tls: { clientCa } })`)
 * echoes for a client whose certificate the CA signed, naming it in the
 * `opened` line (text and JSON), and refuses one without a certificate or
 * with one from elsewhere, logging why and counting it; checked with this
 * project's client and with Python's `ssl` as the independent one. Named
 * `system: …`; ignored, saying why, where `openssl` or `python3` is missing.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { connect } from "../client.ts";
import { serve } from "../server.ts";
import { Cli, ioArgs, ioPermissions, runCli, testEngines, until, within } from "./helpers.ts";
import type { IoEngine } from "../server.ts";
import { opensslMissing } from "./certs.ts";
import { peerCerts, pythonClient, pythonMissing } from "./tls_peers.ts";

const missing = await opensslMissing() ?? await pythonMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const ignore = missing !== undefined;
const permissions = ["--allow-net", "--allow-read"];

/** Runs `main.ts` with `args` to completion, with read permission for the PEM files. */
const run = (args: string[]) => runCli(args, { permissions });

/** `stderr` is one error line (logged, as the server's start failures are) ending in `text`. */
function oneLine(stderr: string, text: string): void {
  strictEqual(stderr.trim().split("\n").length, 1, stderr);
  ok(stderr.trim().endsWith(` ERROR server: ${text}`), stderr);
}

/** `serve --client-ca` on a free loopback port with engine `io`, and the port it got. */
async function mtlsServer(
  extra: string[] = [],
  io: IoEngine = "deno",
): Promise<{ cli: Cli; port: string }> {
  const { certPath, keyPath, caPath } = await peerCerts();
  const cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--cert", certPath, "--key", keyPath, "--client-ca", caPath]
      .concat(extra, ioArgs(io)),
    { permissions: ioPermissions(io, permissions) },
  );
  return { cli, port: String(await cli.port()) };
}

testEngines(
  `system: mutual TLS: a client certificate signed by --client-ca echoes and is named in the opened line${ignored}`,
  async (io) => {
    const { caPath, client } = await peerCerts();
    const { cli, port } = await mtlsServer([], io);
    await using _server = cli;
    const echoed = await run([
      "client",
      "-p",
      port,
      "--tls",
      "--ca",
      caPath,
      "--cert",
      client.certPath,
      "--key",
      client.keyPath,
      "-m",
      "mutual",
    ]);
    strictEqual(echoed.code, 0, echoed.stderr);
    strictEqual(echoed.stdout, "mutual\n");
    await cli.waitFor(
      /#1 opened from 127\.0\.0\.1:\d+, client certificate CN=echo client,O=Example\n/,
    );
    const python = await pythonClient(Number(port), caPath, "from python", client);
    strictEqual(python.error, "");
    strictEqual(python.echo, "from python");
    await cli.waitFor(
      /#2 opened from 127\.0\.0\.1:\d+, client certificate CN=echo client,O=Example/,
    );
    await cli.waitFor(/#2 closed: client closed; 11 B in, 11 B out/);
  },
  { ignore },
);

testEngines(
  `system: mutual TLS: no client certificate, or one from another CA, is refused with the reason logged${ignored}`,
  async (io) => {
    const { caPath, stranger } = await peerCerts();
    const { cli, port } = await mtlsServer([], io);
    await using _server = cli;
    const without = await run(["client", "-p", port, "--tls", "--ca", caPath, "-m", "x"]);
    strictEqual(without.code, 1);
    // The server's alert, or only its close when the reset (our "x" unread) overtakes it.
    ok(
      new RegExp(
        `^echo-server client: (connection to 127\\.0\\.0\\.1:${port} failed: the server requires a client certificate|127\\.0\\.0\\.1:${port} closed the connection before echoing anything \\(refused\\?\\))\n$`,
      ).test(without.stderr),
      without.stderr,
    );
    await cli.waitFor(
      /#1 opened from 127\.0\.0\.1:\d+\n.*#1 closed: TLS handshake with 127\.0\.0\.1:\d+ failed: the client sent no certificate; 0 B in, 0 B out/,
    );
    const strange = await run([
      "client",
      "-p",
      port,
      "--tls",
      "--ca",
      caPath,
      "--cert",
      stranger.certPath,
      "--key",
      stranger.keyPath,
      "-m",
      "x",
    ]);
    strictEqual(strange.code, 1);
    // Deno's engine closes after its handshake; OpenSSL's (epoll) sends its alert, which the client
    // reads unless the reset of our unread "x" overtakes it.
    ok(
      /closed the connection before echoing anything|the server does not trust the certificate \(UnknownCA\)/
        .test(strange.stderr),
      strange.stderr,
    );
    await cli.waitFor(
      /#2 closed: TLS handshake with 127\.0\.0\.1:\d+ failed: the client's certificate \(CN=stranger\) is not trusted \(self-signed, and not among those trusted\); 0 B in, 0 B out/,
    );
    // Python's ssl, as an independent client: none, then the stranger's.
    const pythonWithout = await pythonClient(Number(port), caPath, "x");
    strictEqual(pythonWithout.echo, "");
    await cli.waitFor(/#3 closed: TLS handshake with \S+ failed: the client sent no certificate/);
    const pythonStranger = await pythonClient(Number(port), caPath, "x", stranger);
    strictEqual(pythonStranger.echo, "");
    await cli.waitFor(
      /#4 closed: TLS handshake with \S+ failed: the client's certificate \(CN=stranger\)/,
    );
    ok(!/opened from [^\n]*client certificate/.test(cli.stderr), cli.stderr);
  },
  { ignore },
);

Deno.test({
  name: `system: mutual TLS: the JSON log's opened line has a clientSubject field${ignored}`,
  ignore,
  fn: async () => {
    const { caPath, client } = await peerCerts();
    const { cli, port } = await mtlsServer(["--log-format", "json"]);
    await using _server = cli;
    const python = await pythonClient(Number(port), caPath, "json", client);
    strictEqual(python.echo, "json");
    const [line] = await cli.waitFor(/\{[^\n]*"#1 opened from[^\n]*\}\n/);
    const record = JSON.parse(line);
    strictEqual(record.clientSubject, "CN=echo client,O=Example");
    ok(record.message.endsWith(", client certificate CN=echo client,O=Example"), record.message);
  },
});

Deno.test({
  name:
    `system: mutual TLS: serve({ tls: { clientCa } }) counts refused handshakes as closed by error${ignored}`,
  ignore,
  fn: async () => {
    const { cert, key, ca, client, stranger } = await peerCerts();
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert, key, clientCa: ca },
    });
    const port = server.addr.port;
    await using good = await within(
      connect({ port, tls: { caCerts: [ca], cert: client.cert, key: client.key } }),
      "a mutual TLS connection",
    );
    strictEqual(
      new TextDecoder().decode(await within(good.send("lib", { verify: true }), "the echo")),
      "lib",
    );
    for (const tls of [{ caCerts: [ca] }, { caCerts: [ca], ...stranger }]) {
      await using refused = await within(connect({ port, tls }), "a TLS connection");
      await rejects(within(refused.send("x", { verify: true }), "the refusal"), {
        name: "ClientError",
      });
    }
    await until("two refused handshakes counted", () => server.stats().closed?.error === 2);
  },
});

Deno.test({
  name: `system: --client-ca misuse is one line and the right exit code${ignored}`,
  ignore,
  fn: async () => {
    const { caPath, certPath, keyPath, dir } = await peerCerts();
    const alone = await run(["-p", "0", "--client-ca", caPath]);
    strictEqual(alone.code, 2);
    ok(
      alone.stderr.startsWith(
        "echo-server: --client-ca needs --cert and --key: mutual TLS is TLS first\n",
      ),
      alone.stderr,
    );
    const notPem = await run(
      ["-H", "127.0.0.1", "-p", "0", "--cert", certPath, "--key", keyPath, "--client-ca", keyPath],
    );
    strictEqual(notPem.code, 1);
    oneLine(notPem.stderr, `--client-ca ${keyPath}: no PEM certificate in it`);
    const none = await run(
      [
        "-H",
        "127.0.0.1",
        "-p",
        "0",
        "--cert",
        certPath,
        "--key",
        keyPath,
        "--client-ca",
        `${dir}/x`,
      ],
    );
    strictEqual(none.code, 1);
    oneLine(none.stderr, `cannot read --client-ca ${dir}/x: no such file`);
    const help = await run(["serve", "--help"]);
    ok(/--client-ca FILE/.test(help.stdout), help.stdout);
  },
});
