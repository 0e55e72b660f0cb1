/**
 * Certificate reload on SIGHUP: after the certificate and key files are
 * replaced in place, a new connection sees the new certificate (its
 * fingerprint, read by Python's `ssl` as the independent client) while one
 * opened before keeps echoing; a bad pair is logged and the certificate in
 * use stays; the same with `--workers 2` and with `--config`. Named
 * `system: …`; ignored, saying why, where `openssl` or `python3` is missing.
 */
import { ok, strictEqual, throws } from "node:assert/strict";
import { connect, type EchoClient } from "../client.ts";
import { serve } from "../server.ts";
import { Cli, ioArgs, ioPermissions, testEngines, within } from "./helpers.ts";
import { opensslMissing } from "./certs.ts";
import { type CertPair, peerCerts, pythonClient, pythonMissing } from "./tls_peers.ts";

const missing = await opensslMissing() ?? await pythonMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const ignore = missing !== undefined;
const permissions = ["--allow-net", "--allow-read"];
const decoder = new TextDecoder();

/** A directory with `server.pem` and `server.key`, rewritten in place by {@linkcode Files.put}. */
class Files implements Disposable {
  readonly dir = Deno.makeTempDirSync({ prefix: "echo-tls-reload-" });
  readonly cert = `${this.dir}/server.pem`;
  readonly key = `${this.dir}/server.key`;

  /** Writes `cert`'s certificate and `key`'s key over the files (the same inodes). */
  put(cert: CertPair, key: CertPair = cert): void {
    Deno.writeTextFileSync(this.cert, cert.cert);
    Deno.writeTextFileSync(this.key, key.key);
  }

  [Symbol.dispose](): void {
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** The fingerprint of the certificate a new connection gets, trusting `trust`, and its echo. */
async function served(port: number, trust: CertPair): Promise<string> {
  const seen = await pythonClient(port, trust.certPath, "ping");
  strictEqual(seen.error, "", `Python's ssl trusting ${trust.certPath}`);
  strictEqual(seen.echo, "ping");
  return seen.fingerprint;
}

/** Sends `text` on an open connection and checks its echo. */
async function echoes(client: EchoClient, text: string): Promise<void> {
  strictEqual(decoder.decode(await within(client.send(text, { verify: true }), text)), text);
}

testEngines(
  `system: SIGHUP with --cert: new connections get the replaced certificate, an open one echoes on; a bad pair changes nothing${ignored}`,
  async (io) => {
    const { selfSigned, renewed } = await peerCerts();
    using files = new Files();
    files.put(selfSigned);
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--cert", files.cert, "--key", files.key, ...ioArgs(io)],
      { permissions: ioPermissions(io, permissions) },
    );
    const port = await cli.port();
    strictEqual(await served(port, selfSigned), selfSigned.fingerprint);
    await using open = await within(
      connect({ port, tls: { caCerts: [selfSigned.cert] } }),
      "a TLS connection",
    );
    await echoes(open, "before");

    files.put(renewed);
    cli.kill("SIGHUP");
    await cli.waitFor(
      /INFO {2}server: SIGHUP: serving a new certificate: CN=localhost, valid until /,
    );
    strictEqual(await served(port, renewed), renewed.fingerprint);
    await echoes(open, "after");

    // The new certificate with the old key: refused whole.
    files.put(renewed, selfSigned);
    cli.kill("SIGHUP");
    await cli.waitFor(
      /ERROR server: SIGHUP: certificate not reloaded, nothing changed: --cert and --key do not match/,
    );
    strictEqual(await served(port, renewed), renewed.fingerprint);
    await echoes(open, "still");

    files.put(renewed);
    cli.kill("SIGHUP");
    await cli.waitFor(/SIGHUP: certificate files read again, unchanged: CN=localhost/);
    ok(!/stack|^\s+at /m.test(cli.stderr), cli.stderr);
  },
  { ignore },
);

Deno.test({
  name:
    `system: SIGHUP with --cert and --workers 2: every worker serves the replaced certificate${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned, renewed } = await peerCerts();
    using files = new Files();
    files.put(selfSigned);
    await using cli = new Cli(
      ["-H", "127.0.0.1", "-p", "0", "--workers", "2", "--cert", files.cert, "--key", files.key],
      { permissions },
    );
    const port = await cli.port();
    await cli.waitFor(/2 workers share/);
    await using open = await within(
      connect({ port, tls: { caCerts: [selfSigned.cert] } }),
      "a TLS connection",
    );
    await echoes(open, "before");
    files.put(renewed);
    cli.kill("SIGHUP");
    await cli.waitFor(/ w1 server: reloaded certificate in use/);
    await cli.waitFor(/ w2 server: reloaded certificate in use/);
    // Whichever worker the kernel hands each one to, it serves the new certificate.
    for (let i = 0; i < 6; i++) strictEqual(await served(port, renewed), renewed.fingerprint);
    await echoes(open, "after");
  },
});

testEngines(
  `system: SIGHUP with cert and key in --config: the files are read again with the rest, client-ca added${ignored}`,
  async (io) => {
    const { selfSigned, renewed } = await peerCerts();
    using files = new Files();
    files.put(selfSigned);
    const config = `${files.dir}/echo.json`;
    Deno.writeTextFileSync(config, JSON.stringify({ cert: files.cert, key: files.key }));
    await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--config", config, ...ioArgs(io)], {
      permissions: ioPermissions(io, permissions),
    });
    const port = await cli.port();
    strictEqual(await served(port, selfSigned), selfSigned.fingerprint);
    files.put(renewed);
    const { caPath, client } = await peerCerts();
    Deno.writeTextFileSync(
      config,
      JSON.stringify({ cert: files.cert, key: files.key, "client-ca": caPath, "max-conns": 50 }),
    );
    cli.kill("SIGHUP");
    await cli.waitFor(
      /SIGHUP: serving a new certificate: CN=localhost, [^\n]*; client certificates required from now on\n/,
    );
    await cli.waitFor(/SIGHUP: reloaded \S+: max-conns 10000 → 50, client-ca none → "/);
    const without = await pythonClient(port, renewed.certPath, "x");
    strictEqual(without.echo, "");
    await cli.waitFor(/failed: the client sent no certificate/);
    const withCert = await pythonClient(port, renewed.certPath, "mutual", client);
    strictEqual(withCert.error, "");
    strictEqual(withCert.echo, "mutual");
    strictEqual(withCert.fingerprint, renewed.fingerprint);
  },
  { ignore },
);

Deno.test({
  name:
    `system: EchoServer.updateTls: a bad pair throws and changes nothing; a plain server has no TLS to update${ignored}`,
  ignore,
  fn: async () => {
    const { selfSigned, renewed } = await peerCerts();
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: selfSigned.cert, key: selfSigned.key },
    });
    throws(() => server.updateTls({ cert: renewed.cert, key: selfSigned.key }), {
      message: "the key does not match the certificate",
    });
    throws(() => server.updateTls({ cert: "x", key: renewed.key }), {
      message: "the certificate holds no PEM certificate",
    });
    strictEqual(await served(server.addr.port, selfSigned), selfSigned.fingerprint);
    server.updateTls({ cert: renewed.cert, key: renewed.key });
    strictEqual(await served(server.addr.port, renewed), renewed.fingerprint);
    await using plain = serve({ hostname: "127.0.0.1", port: 0 });
    throws(() => plain.updateTls({ cert: renewed.cert, key: renewed.key }), {
      message: "the server does not serve TLS",
    });
  },
});
