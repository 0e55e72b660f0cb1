/**
 * `bench --io epoll --tls`: the bench's epoll engine speaking TLS through
 * OpenSSL, against the project's server on both engines and against
 * Python's `ssl` echo server, with certificates made at test time: every
 * mode with every byte verified, `--ca` with a CA and with a self-signed
 * server certificate, `-k`, mutual TLS, and a certificate from another CA
 * refused in the words and with the exit code of the default engine.
 */
import { equal, match, ok } from "node:assert/strict";
import { type BenchOptions, type BenchReport, formatReport, runBench } from "../bench/mod.ts";
import type { ClientTlsOptions } from "../client/dial.ts";
import type { IoEngine } from "../server.ts";
import { opensslMissing, testCerts } from "./certs.ts";
import { Cli, testEngines, within } from "./helpers.ts";
import { peerCerts, pythonEchoServer, pythonMissing } from "./tls_peers.ts";

const missing = await opensslMissing();
const noPython = await pythonMissing();
const permissions = ["--allow-net", "--allow-read", "--allow-ffi"];

/** A short epoll run over TLS against `port` (localhost, so that the name checks). */
function run(port: number, tls: ClientTlsOptions, more: Partial<BenchOptions> = {}) {
  return within(
    runBench({
      host: "localhost",
      port,
      connections: 3,
      durationMs: 400,
      size: 100,
      mode: "pingpong",
      io: "epoll",
      tls,
      ...more,
    }),
    "the bench run",
  );
}

/** Every echo whole and verified, none missing, no error. */
function clean(r: BenchReport): void {
  const text = formatReport(r);
  ok(r.ok, text);
  equal(r.errors + r.mismatches + r.timedOut + r.connectionsFailed, 0, text);
  ok(r.messages > 0, text);
  equal(r.bytesReceived, r.bytesSent, text);
  equal(r.options.io, "epoll");
}

/** `serve` with TLS on `io`, on a free loopback port. */
async function tlsServer(io: IoEngine, extra: string[] = []): Promise<{ cli: Cli; port: number }> {
  const certs = await testCerts();
  const cli = new Cli(
    ["-H", "127.0.0.1", "-p", "0", "--cert", certs.certPath, "--key", certs.keyPath, ...extra],
    { permissions: ["--allow-net", "--allow-read"], io },
  );
  return { cli, port: await cli.port() };
}

testEngines(
  "bench --io epoll --tls verifies pingpong, stream and churn against serve --cert",
  async (io) => {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer(io);
    await using _server = cli;
    for (const mode of ["pingpong", "stream", "churn"] as const) {
      const r = await run(port, { caCerts: [ca] }, { mode });
      clean(r);
      if (mode === "churn") ok(r.connectionsOpened > 3, formatReport(r));
    }
    // Churn with a full handshake every time.
    const full = await run(port, { caCerts: [ca] }, { mode: "churn", tlsResume: false });
    clean(full);
    equal(full.options.tlsResume, false);
    // The open loop, and -k (no verification at all) by IP address.
    const paced = await run(port, { insecure: true }, { host: "127.0.0.1", rate: 200 });
    clean(paced);
    ok(
      paced.rateAchievedFraction !== null && paced.rateAchievedFraction > 0.5,
      formatReport(paced),
    );
  },
  { ignore: missing !== undefined },
);

Deno.test({
  name:
    "bench --io epoll --tls against Python's ssl echo server, trusting its self-signed certificate",
  ignore: missing !== undefined || noPython !== undefined,
  fn: async () => {
    const { selfSigned } = await peerCerts();
    await using python = await pythonEchoServer(selfSigned);
    for (const mode of ["pingpong", "stream", "churn"] as const) {
      clean(await run(python.port, { caCerts: [selfSigned.cert] }, { mode, connections: 2 }));
    }
  },
});

testEngines("bench --io epoll --tls presents --cert/--key to serve --client-ca", async (io) => {
  const { caPath } = await testCerts();
  const { client } = await peerCerts();
  const { ca } = await testCerts();
  const { cli, port } = await tlsServer(io, ["--client-ca", caPath]);
  await using _server = cli;
  for (const mode of ["pingpong", "churn"] as const) {
    clean(await run(port, { caCerts: [ca], cert: client.cert, key: client.key }, { mode }));
  }
  // Without one, TLS 1.3's handshake is done on the client's side first: the server's alert comes
  // instead of the echo, or (the default engine, closing as it sends it) only its close: either
  // way a refusal, as the default engine's bench counts it.
  const none = await run(port, { caCerts: [ca] });
  ok(!none.ok && none.refused > 0, formatReport(none));
  match(
    none.firstError ?? "",
    /the server requires a client certificate|closed the connection before echoing \(refused\?\)/,
  );
}, { ignore: missing !== undefined });

Deno.test("bench --no-resume applies to --io epoll --tls only: a usage error otherwise", async () => {
  for (const more of [["--tls"], ["--io", "epoll"]]) {
    await using bench = new Cli(["bench", "-p", "1", "--no-resume", ...more], { permissions });
    const { code, stderr } = await bench.finished();
    equal(code, 2, stderr);
    match(stderr, /--no-resume applies to --io epoll --tls/);
  }
});

/** What `bench --tls` with `args` says on each engine: its exit code and its stderr. */
async function bothEngines(
  args: string[],
): Promise<Record<string, { code: number; line: string }>> {
  const said: Record<string, { code: number; line: string }> = {};
  for (const io of ["deno", "epoll"]) {
    await using bench = new Cli(
      ["bench", "--tls", ...args, "--io", io, "-c", "2", "-d", "300ms"],
      { permissions },
    );
    const { code, stderr } = await bench.finished();
    ok(!/^\s+at /m.test(stderr), stderr);
    said[io] = { code, line: stderr.trim() };
  }
  equal(said.epoll.line, said.deno.line);
  equal(said.epoll.code, said.deno.code);
  return said;
}

Deno.test({
  name:
    "bench --io epoll --tls refuses a certificate as --io deno does: another CA's, another name's, no TLS",
  ignore: missing !== undefined || noPython !== undefined,
  fn: async () => {
    const { selfSigned } = await peerCerts();
    const { caPath } = await testCerts();
    // The Python server's certificate is self-signed: the test CA did not sign it.
    await using python = await pythonEchoServer(selfSigned);
    const port = `${python.port}`;
    const other = await bothEngines(["-H", "localhost", "-p", port, "--ca", caPath]);
    equal(other.epoll.code, 1, other.epoll.line);
    match(other.epoll.line, /cannot connect to localhost:\d+: certificate not trusted \(/);
    const named = await bothEngines(
      ["-p", port, "--ca", selfSigned.certPath, "--servername", "example.com"],
    );
    equal(named.epoll.code, 1, named.epoll.line);
    match(
      named.epoll.line,
      /certificate not valid for example\.com \(it is for localhost, 127\.0\.0\.1\)/,
    );
    await using plain = new Cli(["-H", "127.0.0.1", "-p", "0"]);
    const echoed = await bothEngines(["-p", `${await plain.port()}`, "-k"]);
    match(echoed.epoll.line, /the server does not speak TLS/);
  },
});
