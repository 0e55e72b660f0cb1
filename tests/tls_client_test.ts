/**
 * `client` and `bench` over TLS with any test certificate: the self-signed
 * `openssl req -x509` kind (`CA:TRUE`, used as the server's own) trusted
 * through `--ca`, against this server and against Python's `ssl` as an
 * independent one; a certificate from elsewhere still refused, the name
 * still checked; `--insecure` with its one warning line; `--cert`/`--key`
 * checked before connecting. Named `system: …`; ignored, saying why, where
 * `openssl` or `python3` is missing.
 */
import { ok, strictEqual } from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { dial, endpointOf } from "../client/dial.ts";
import { serve } from "../server.ts";
import { Cli, runCli, within } from "./helpers.ts";
import { opensslMissing } from "./certs.ts";
import { peerCerts, pythonEchoServer, pythonMissing } from "./tls_peers.ts";

const missing = await opensslMissing() ?? await pythonMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const ignore = missing !== undefined;
const permissions = ["--allow-net", "--allow-read"];

/** Runs `main.ts` with `args` to completion, with read permission for the PEM files. */
const run = (args: string[]) => runCli(args, { permissions });

/** `serve` on a free loopback port with `cert` and `key`, and the port it got. */
async function tlsServer(certPath: string, keyPath: string): Promise<{ cli: Cli; port: string }> {
  const cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--cert", certPath, "--key", keyPath],
    { permissions },
  );
  return { cli, port: String(await cli.port()) };
}

Deno.test({
  name:
    `system: TLS client: --ca with the server's own self-signed CA:TRUE certificate echoes, on client and bench, name checked${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned } = await peerCerts();
    ok(new X509Certificate(selfSigned.cert).ca, "the openssl req -x509 certificate is CA:TRUE");
    const { cli, port } = await tlsServer(selfSigned.certPath, selfSigned.keyPath);
    await using _server = cli;
    const trusted = await run([
      "client",
      "-p",
      port,
      "--tls",
      "--ca",
      selfSigned.certPath,
      "-m",
      "hi",
    ]);
    strictEqual(trusted.code, 0, trusted.stderr);
    strictEqual(trusted.stdout, "hi\n");
    strictEqual(trusted.stderr, "");
    const bench = await run(
      ["bench", "-p", port, "--tls", "--ca", selfSigned.certPath, "-c", "2", "-d", "300ms"],
    );
    strictEqual(bench.code, 0, bench.stderr);
    const churn = await run(
      [
        "bench",
        "-p",
        port,
        "--tls",
        "--ca",
        selfSigned.certPath,
        "-m",
        "churn",
        "-c",
        "2",
        "-d",
        "300ms",
      ],
    );
    strictEqual(churn.code, 0, churn.stderr);
    // Trusting the certificate is not trusting it for any name.
    const wrongName = await run(
      [
        "client",
        "-p",
        port,
        "--tls",
        "--ca",
        selfSigned.certPath,
        "--servername",
        "example.com",
        "-m",
        "x",
      ],
    );
    strictEqual(wrongName.code, 1);
    strictEqual(
      wrongName.stderr.trim(),
      `echo-server client: cannot connect to 127.0.0.1:${port}: certificate not valid for example.com (it is for localhost, 127.0.0.1)`,
    );
  },
});

Deno.test({
  name:
    `system: TLS client: --ca with a self-signed certificate echoes against Python's ssl as the server${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned, renewed } = await peerCerts();
    await using python = await pythonEchoServer(selfSigned);
    const port = String(python.port);
    const echoed = await run([
      "client",
      "-p",
      port,
      "--tls",
      "--ca",
      selfSigned.certPath,
      "-n",
      "2",
      "-i",
      "0",
    ]);
    strictEqual(echoed.code, 0, echoed.stderr);
    strictEqual(echoed.stdout, "Hello, server 2\nHello, server 1\n");
    // Another self-signed certificate for the same name is not this one.
    const other = await run(["client", "-p", port, "--tls", "--ca", renewed.certPath, "-m", "x"]);
    strictEqual(other.code, 1);
    strictEqual(
      other.stderr.trim(),
      `echo-server client: cannot connect to 127.0.0.1:${port}: certificate not trusted (self-signed, and not among those trusted)`,
    );
  },
});

Deno.test({
  name:
    `system: TLS client: a certificate from another CA is refused; --insecure echoes with one warning line${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned, caPath, certPath, keyPath } = await peerCerts();
    // The server's certificate is signed by the test CA; the client trusts only a self-signed one.
    const { cli, port } = await tlsServer(certPath, keyPath);
    await using _server = cli;
    const refused = await run([
      "client",
      "-p",
      port,
      "--tls",
      "--ca",
      selfSigned.certPath,
      "-m",
      "x",
    ]);
    strictEqual(refused.code, 1);
    strictEqual(
      refused.stderr.trim(),
      `echo-server client: cannot connect to 127.0.0.1:${port}: certificate not trusted (issued by an unknown authority)`,
    );
    const benchRefused = await run(
      ["bench", "-p", port, "--tls", "--ca", selfSigned.certPath, "-c", "1", "-d", "200ms"],
    );
    strictEqual(benchRefused.code, 1);
    ok(benchRefused.stderr.includes("certificate not trusted"), benchRefused.stderr);
    for (const flag of ["--insecure", "-k"]) {
      const insecure = await run(["client", "-p", port, "--tls", flag, "-m", "anyway"]);
      strictEqual(insecure.code, 0, insecure.stderr);
      strictEqual(insecure.stdout, "anyway\n");
      strictEqual(
        insecure.stderr,
        "echo-server client: warning: --insecure: the server's certificate is not verified\n",
      );
    }
    const benchInsecure = await run(["bench", "-p", port, "--tls", "-k", "-c", "1", "-d", "200ms"]);
    strictEqual(benchInsecure.code, 0, benchInsecure.stderr);
    strictEqual(
      benchInsecure.stderr.split("\n").filter((line) => line.includes("warning")).length,
      1,
      benchInsecure.stderr,
    );
    const trusted = await run(["client", "-p", port, "--tls", "--ca", caPath, "-m", "ok"]);
    strictEqual(trusted.code, 0, trusted.stderr);
  },
});

Deno.test({
  name:
    `system: TLS client: --cert/--key/--insecure misuse is one line and the right exit code${ignored}`,
  ignore,
  fn: async () => {
    const { client, selfSigned, dir } = await peerCerts();
    const cases: [string[], number, string][] = [
      [["--cert", client.certPath, "--key", client.keyPath], 2, "echo-server: --cert needs --tls"],
      [["-k"], 2, "echo-server: --insecure needs --tls"],
      [["--tls", "--cert", client.certPath], 2, "echo-server: --cert needs --key"],
      [["--tls", "--key", client.keyPath], 2, "echo-server: --key needs --cert"],
      [
        ["--tls", "-k", "--ca", selfSigned.certPath],
        2,
        "echo-server: --insecure verifies nothing, so --ca would be unused: give one of them",
      ],
      [
        ["--tls", "--cert", client.certPath, "--key", selfSigned.keyPath],
        1,
        `echo-server client: --cert and --key do not match (${client.certPath}, ${selfSigned.keyPath})`,
      ],
      [
        ["--tls", "--cert", client.keyPath, "--key", client.keyPath],
        1,
        `echo-server client: --cert ${client.keyPath}: no PEM certificate in it`,
      ],
      [
        ["--tls", "--cert", client.certPath, "--key", client.certPath],
        1,
        `echo-server client: --key ${client.certPath}: no PEM private key in it (PKCS#8, RSA or EC)`,
      ],
      [
        ["--tls", "--cert", `${dir}/none.pem`, "--key", client.keyPath],
        1,
        `echo-server client: cannot read --cert ${dir}/none.pem: no such file`,
      ],
    ];
    for (const [flags, code, line] of cases) {
      const result = await run(["client", "-p", "1", "-m", "x", ...flags]);
      strictEqual(result.code, code, `${flags.join(" ")}: ${result.stderr}`);
      strictEqual(result.stderr.split("\n")[0], line, flags.join(" "));
      ok(!/^\s+at /m.test(result.stderr), result.stderr);
    }
  },
});

Deno.test({
  name:
    `system: TLS client: a dialled TLS connection is a whole Deno.Conn (streams, addresses, half-close)${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned } = await peerCerts();
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: selfSigned.cert, key: selfSigned.key },
    });
    const endpoint = endpointOf({
      host: "127.0.0.1",
      port: server.addr.port,
      tls: { caCerts: [selfSigned.cert] },
    });
    using conn = await within(dial(endpoint), "a TLS connection");
    strictEqual((conn.remoteAddr as Deno.NetAddr).port, server.addr.port);
    ok((conn.localAddr as Deno.NetAddr).port > 0);
    const writer = conn.writable.getWriter();
    await writer.write(new TextEncoder().encode("through streams"));
    await writer.close(); // close_notify and FIN: the server echoes what it has, then closes
    const echoed = await within(new Response(conn.readable).text(), "the echo to its end");
    strictEqual(echoed, "through streams");
  },
});
