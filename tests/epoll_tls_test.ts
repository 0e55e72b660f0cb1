/**
 * TLS on the epoll engine (OpenSSL 3 through FFI), end to end over real
 * sockets, with Python's `ssl` and `openssl s_client` as the independent
 * peers beside the project's own client: bytes echoed exactly over TLS 1.2
 * and 1.3, session resumption, mutual TLS, a certificate replaced while
 * serving, the handshake timeout, and a PROXY v2 header before the
 * handshake. Named `system: …`; ignored, saying why, where `openssl` or
 * `python3` is missing.
 */
import { deepStrictEqual, match, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { connect } from "../client.ts";
import { listenEpollTls, serve } from "../server.ts";
import { encodeProxyV2 } from "../proxy/encode.ts";
import type { EchoEnd } from "../transport/echo.ts";
import { Cli, commandOutput, pattern, readToEnd, sameBytes, within } from "./helpers.ts";
import { opensslMissing } from "./certs.ts";
import { moreCerts } from "./epoll_tls_certs.ts";

const missing = await opensslMissing() ??
  await commandOutput("python3", { args: ["--version"] }).then(
    ({ success }) => success ? undefined : "python3 --version failed",
    () => "python3 is not installed",
  );
const ignore = missing !== undefined;
const ignored = ignore ? ` (ignored: ${missing})` : "";
const permissions = ["--allow-net", "--allow-read", "--allow-ffi"];
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Python's `ssl` as the peer: sends SIZE random bytes over TLS VERSION,
 * checks that exactly they come back, then connects again with the session
 * and prints the version, and whether the second connection resumed it.
 */
const PYTHON_ECHO = `
import os, select, socket, ssl, sys, time
port, ca, version, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = ctx.maximum_version = v
if len(sys.argv) > 6: ctx.load_cert_chain(sys.argv[5], sys.argv[6])
WAIT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
def echo(session, size):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=20),
                        server_hostname="localhost", session=session)
    s.setblocking(False)
    data, got, sent, deadline = os.urandom(size), bytearray(), 0, time.time() + 20
    # One thread, reads and writes interleaved: an SSL object is not to be shared by threads.
    while len(got) < size:
        if time.time() > deadline: sys.exit(f"timed out: {len(got)} of {size} bytes back")
        moved = False
        if sent < size:
            try:
                sent += s.send(data[sent:sent + 16384])
                moved = True
            except WAIT: pass
        try:
            chunk = s.recv(65536)
            if not chunk: sys.exit(f"the server closed: {len(got)} of {size} bytes back")
            got.extend(chunk)
            moved = True
        except WAIT: pass
        if not moved: select.select([s], [s] if sent < size else [], [], 1)
    if bytes(got) != data: sys.exit("the echo differs")
    s.setblocking(True)
    result = (s.version(), s.session, s.session_reused)
    s.close()
    return result
version, session, _ = echo(None, size)
_, _, reused = echo(session, 64)
print(version, "reused" if reused else "new")
`;

/**
 * Python's \`ssl\` over memory buffers, so that the PROXY header HEX and the
 * ClientHello leave in one segment; prints what came back of MESSAGE.
 */
const PYTHON_PROXIED = `
import socket, ssl, sys
port, ca, header, message = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4].encode()
ctx = ssl.create_default_context(cafile=ca)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
sock = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
first = [header]
def flush():
    data = b"".join(first) + outgoing.read()
    first.clear()
    if data: sock.sendall(data)
def feed():
    data = sock.recv(65536)
    if not data: sys.exit("the server closed during the handshake")
    incoming.write(data)
while True:
    try:
        tls.do_handshake()
        flush()
        break
    except ssl.SSLWantReadError:
        flush()
        feed()
tls.write(message)
flush()
got = b""
while len(got) < len(message):
    try:
        got += tls.read(65536)
    except ssl.SSLWantReadError:
        feed()
print(got.decode())
`;

/**
 * Python's \`ssl\` as a peer that echoes MESSAGE (when not empty), then
 * reads to the end, ragged ends not suppressed; prints what came, and
 * whether the end was a close_notify.
 */
const PYTHON_UNTIL_CLOSED = `
import socket, ssl, sys
port, ca, message = sys.argv[1], sys.argv[2], sys.argv[3].encode()
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=20),
                    server_hostname="localhost", suppress_ragged_eofs=False)
got = b""
if message:
    s.sendall(message)
    while len(got) < len(message): got += s.recv(100)
try:
    while True:
        chunk = s.recv(100)
        if not chunk: break
        got += chunk
    print(repr(got.decode()), "close_notify")
except ssl.SSLEOFError:
    print(repr(got.decode()), "no close_notify")
`;

async function python(script: string, args: string[]): Promise<string> {
  const { success, stdout, stderr } = await commandOutput("python3", {
    args: ["-c", script, ...args],
  });
  const out = decoder.decode(stdout).trim();
  ok(success, `python3 failed: ${decoder.decode(stderr)}${out}`);
  return out;
}

/** `serve --io epoll --cert --key` on a free loopback port, and the port. */
async function epollTlsServer(extra: string[] = []): Promise<{ cli: Cli; port: number }> {
  const { base } = await moreCerts();
  const cli = new Cli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--cert",
    base.certPath,
    "--key",
    base.keyPath,
    ...extra,
  ], { permissions, io: "epoll" });
  return { cli, port: await cli.port() };
}

Deno.test({
  name:
    `system: epoll TLS: 1 MiB of random bytes back exactly over TLS 1.2 and 1.3 (Python ssl), sessions resumed${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    const { cli, port } = await epollTlsServer();
    await using _ = cli;
    for (const version of ["1.2", "1.3"]) {
      const out = await python(PYTHON_ECHO, [`${port}`, base.caPath, version, `${1 << 20}`]);
      strictEqual(out, `TLSv${version} reused`);
    }
    await cli.waitFor(/closed: client closed; 1048576 B in, 1048576 B out/);
  },
});

Deno.test({
  name: `system: epoll TLS: openssl s_client reports the session Reused, TLS 1.2 and 1.3${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    const { cli, port } = await epollTlsServer();
    await using _ = cli;
    const session = `${base.dir}/epoll-session.pem`;
    for (const version of ["-tls1_2", "-tls1_3"]) {
      const first = await sClient(port, [version, "-CAfile", base.caPath, "-sess_out", session]);
      match(first, /^New, TLSv1\.[23]/m);
      const second = await sClient(port, [version, "-CAfile", base.caPath, "-sess_in", session]);
      match(second, /^Reused, TLSv1\.[23]/m);
    }
  },
});

/**
 * Runs `openssl s_client` with `args`, echoes a line through it, and ends
 * it once the line came back (so that a TLS 1.3 ticket, sent before the
 * echo, was read); resolves with its output.
 */
async function sClient(port: number, args: string[]): Promise<string> {
  const child = new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode("ping over s_client\n"));
  let out = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  await within(
    (async () => {
      while (!out.includes("ping over s_client")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
    })(),
    "the echo through s_client",
  );
  await writer.close();
  for (let next = await reader.read(); !next.done; next = await reader.read()) out += next.value;
  const status = await within(child.status, "s_client to exit");
  await new Response(child.stderr).text();
  strictEqual(status.code, 0, out);
  ok(out.includes("ping over s_client"), out);
  return out;
}

Deno.test({
  name:
    `system: epoll TLS: the project's client echoes 1 MiB over serve({ io: "epoll", tls })${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      io: "epoll",
      tls: { cert: base.cert, key: base.key },
    });
    await using echo = await within(
      connect({ port: server.addr.port, tls: { caCerts: [base.ca] } }),
      "a TLS connection",
    );
    const big = pattern(1 << 20, 5);
    ok(sameBytes(await within(echo.send(big, { verify: true }), "the 1 MiB echo"), big));
    strictEqual((await within(echo.end(), "the end after the half-close")).length, 0);
  },
});

/** What an echo's end was: how, and the error's message. */
type Ended = { end: EchoEnd | "error"; message?: string };

/**
 * A mutual-TLS epoll listener whose connections echo; resolves each
 * connection's subject and end through `seen`.
 */
async function mutualListener() {
  const certs = await moreCerts();
  const { base } = certs;
  const listener = listenEpollTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: base.cert,
    key: base.key,
    clientCa: base.ca,
    handshakeTimeoutMs: 10_000,
  });
  const seen: Promise<{ subject?: string; ended: Ended }>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      const ended = Promise.withResolvers<Ended>();
      conn.echo?.({}, {
        echoEnded: (end, error) =>
          ended.resolve({ end, message: error instanceof Error ? error.message : undefined }),
      });
      seen.push(ended.promise.then((result) => {
        const subject = conn.clientSubject;
        conn.close();
        return { subject, ended: result };
      }));
    }
  })();
  return { certs, listener, seen, accepting };
}

Deno.test({
  name:
    `system: epoll TLS: mutual TLS takes a client certificate from the CA (its subject on the connection), refuses none or another CA's${ignored}`,
  ignore,
  fn: async () => {
    const { certs, listener, seen, accepting } = await mutualListener();
    const port = listener.addr.port;
    const { base } = certs;
    const accepted = await sClient(port, [
      "-CAfile",
      base.caPath,
      "-cert",
      certs.clientCertPath,
      "-key",
      certs.clientKeyPath,
    ]);
    match(accepted, /Verify return code: 0/);
    const first = await within(seen[0], "the first connection's end");
    deepStrictEqual([first.subject, first.ended.end], ["CN=client-1,O=Example", "eof"]);
    // Python, with no certificate and with one from a CA the server does not trust.
    const refusals = [[], [certs.rogueCertPath, certs.rogueKeyPath]];
    for (const extra of refusals) {
      const { success } = await commandOutput("python3", {
        args: ["-c", PYTHON_ECHO, `${port}`, base.caPath, "1.3", "16", ...extra],
      });
      strictEqual(success, false, "a refused client's echo succeeded");
    }
    const [none, rogue] = await within(Promise.all(seen.slice(1, 3)), "the refusals");
    strictEqual(none.ended.end, "error");
    match(
      none.ended.message ?? "",
      /^TLS handshake with 127\.0\.0\.1:\d+ failed: the client sent no certificate/,
    );
    match(
      rogue.ended.message ?? "",
      /failed: the client's certificate (\([^)]*\) )?is not trusted \(issued by an unknown authority\)/,
    );
    listener.close();
    await accepting;
    await listener.stopped;
  },
});

Deno.test({
  name:
    `system: epoll TLS: updateTls serves the new certificate to new connections; an open one keeps echoing; bad material changes nothing${ignored}`,
  ignore,
  fn: async () => {
    const certs = await moreCerts();
    const { base } = certs;
    const listener = listenEpollTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: base.cert,
      key: base.key,
      handshakeTimeoutMs: 10_000,
    });
    await using server = serve({ listener });
    const port = listener.addr.port;
    await using before = await within(
      connect({ port, tls: { caCerts: [base.ca] } }),
      "a connection before the reload",
    );
    ok(sameBytes(await before.send(pattern(100), { verify: true }), pattern(100)));
    throws(() => listener.updateTls({ cert: base.cert, key: certs.nextKey }), {
      message: "the key does not match the certificate",
    });
    listener.updateTls({ cert: certs.nextCert, key: certs.nextKey });
    // The old CA no longer vouches for what new handshakes get; the new certificate's does.
    await rejects(within(connect({ port, tls: { caCerts: [base.ca] } }), "the refusal"));
    await using after = await within(
      connect({ port, tls: { caCerts: [certs.nextCa] } }),
      "a connection after the reload",
    );
    ok(sameBytes(await after.send(pattern(64, 1), { verify: true }), pattern(64, 1)));
    ok(sameBytes(await before.send(pattern(5000, 2), { verify: true }), pattern(5000, 2)));
    strictEqual(server.stats().open, 2);
  },
});

Deno.test({
  name:
    `system: epoll TLS: a silent connection is closed at the handshake timeout, in the default engine's words${ignored}`,
  ignore,
  fn: async () => {
    const { cli, port } = await epollTlsServer(["--handshake-timeout", "300ms"]);
    await using _ = cli;
    using silent = await Deno.connect({ hostname: "127.0.0.1", port });
    strictEqual((await readToEnd(silent, 10_000)).length, 0);
    await cli.waitFor(
      /closed: TLS handshake with 127\.0\.0\.1:\d+ failed: no handshake within 300ms/,
    );
    // Plain text instead of a ClientHello.
    using plain = await Deno.connect({ hostname: "127.0.0.1", port });
    await plain.write(encoder.encode("GET / HTTP/1.0\r\n\r\n"));
    await readToEnd(plain, 10_000);
    await cli.waitFor(/failed: the client does not speak TLS \(plain text\?\)/);
  },
});

Deno.test({
  name:
    `system: epoll TLS: a PROXY v2 header, then the handshake (in one segment): the client's address in the log${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    const { cli, port } = await epollTlsServer([
      "--proxy-protocol",
      "--trusted-proxy",
      "127.0.0.1/32",
    ]);
    await using _ = cli;
    const header = encodeProxyV2({
      source: { address: "203.0.113.7", port: 40000 },
      destination: { address: "127.0.0.1", port },
    });
    const hex = Array.from(header, (b) => b.toString(16).padStart(2, "0")).join("");
    strictEqual(
      await python(PYTHON_PROXIED, [`${port}`, base.caPath, hex, "through the proxy"]),
      "through the proxy",
    );
    await cli.waitFor(/opened from 203\.0\.113\.7:40000/);
    // The header alone first, then TLS on the same socket (Deno's client).
    using tcp = await Deno.connect({ hostname: "127.0.0.1", port });
    await tcp.write(encodeProxyV2({
      source: { address: "198.51.100.9", port: 41000 },
      destination: { address: "127.0.0.1", port },
    }));
    using tls = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [base.ca] });
    await tls.write(encoder.encode("second"));
    const reply = new Uint8Array(6);
    let got = 0;
    while (got < 6) got += (await within(tls.read(reply.subarray(got)), "the echo")) ?? 6;
    strictEqual(decoder.decode(reply), "second");
    await cli.waitFor(/opened from 198\.51\.100\.9:41000/);
  },
});

Deno.test("serve --cert --proxy-protocol on the default engine: a usage error that says --io epoll", async () => {
  await using cli = new Cli([
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--cert",
    "cert.pem",
    "--key",
    "key.pem",
    "--proxy-protocol",
    "--trusted-proxy",
    "127.0.0.1",
  ], { permissions: ["--allow-net", "--allow-read"] });
  const { code, stderr } = await cli.finished();
  strictEqual(code, 2, stderr);
  match(stderr, /^echo-server: --proxy-protocol with --cert needs --io epoll/);
});

Deno.test({
  name:
    `system: epoll TLS: the server's closes send close_notify: idle timeout, a refusal with its line, the drain${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    const args = (port: number, message: string) => [`${port}`, base.caPath, message];
    {
      const { cli, port } = await epollTlsServer(["--idle-timeout", "300ms"]);
      await using _ = cli;
      strictEqual(await python(PYTHON_UNTIL_CLOSED, args(port, "idle")), "'idle' close_notify");
      await cli.waitFor(/closed: idle timeout/);
    }
    {
      const { cli, port } = await epollTlsServer([
        "--max-conns",
        "1",
        "--when-full",
        "refuse",
        "--reject-message",
        "busy",
        "--drain-timeout",
        "200ms",
      ]);
      // The one slot, taken until the drain cuts it.
      const holder = python(PYTHON_UNTIL_CLOSED, args(port, "holding"));
      await cli.waitFor(/#1 opened/);
      strictEqual(await python(PYTHON_UNTIL_CLOSED, args(port, "")), "'busy\\n' close_notify");
      cli.kill("SIGTERM");
      strictEqual(await holder, "'holding' close_notify");
      strictEqual((await cli.finished()).code, 0);
    }
  },
});

Deno.test({
  name:
    `system: epoll TLS: an OpenSSL that does not open is one line and exit 1, naming the fix${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    // Empty files the loader finds first: they do not open, as a missing library does not.
    const dir = await Deno.makeTempDir({ prefix: "echo-nossl-" });
    try {
      await Deno.writeFile(`${dir}/libssl.so.3`, new Uint8Array());
      await Deno.writeFile(`${dir}/libcrypto.so.3`, new Uint8Array());
      const { code, stderr } = await commandOutput(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          ...permissions,
          "main.ts",
          "-H",
          "127.0.0.1",
          "-p",
          "0",
          "--io",
          "epoll",
          "--cert",
          base.certPath,
          "--key",
          base.keyPath,
        ],
        cwd: new URL("..", import.meta.url),
        env: { NO_COLOR: "1", LD_LIBRARY_PATH: dir },
      });
      const text = decoder.decode(stderr);
      strictEqual(code, 1, text);
      const lines = text.trimEnd().split("\n");
      strictEqual(lines.length, 1, text);
      match(
        lines[0],
        /ERROR server: cannot listen with TLS on 127\.0\.0\.1:0: --io epoll serves TLS through the system's OpenSSL 3 \(libssl\.so\.3\), which did not open \(.*\): install it \(Debian: apt-get install libssl3\), or use --io deno$/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `system: epoll TLS with --workers 2: both workers handshake and echo${ignored}`,
  ignore,
  fn: async () => {
    const { base } = await moreCerts();
    const { cli, port } = await epollTlsServer(["--workers", "2"]);
    await cli.waitFor(/2 workers share 127\.0\.0\.1 port \d+/);
    for (let i = 0; i < 20; i++) {
      using conn = await within(
        Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [base.ca] }),
        `TLS connection ${i}`,
      );
      await conn.write(encoder.encode(`tls ${i}`));
      const reply = new Uint8Array(32);
      const n = await within(conn.read(reply), `the echo ${i}`);
      strictEqual(decoder.decode(reply.subarray(0, n ?? 0)), `tls ${i}`);
    }
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0, stderr);
    const opened = stderr.split("\n").filter((line) => / w[12] conn: #\d+ opened/.test(line));
    strictEqual(opened.length, 20, stderr);
    ok(opened.some((line) => line.includes(" w1 ")), "worker 1 served none");
    ok(opened.some((line) => line.includes(" w2 ")), "worker 2 served none");
  },
});
