/**
 * TLS passthrough behind HAProxy with `send-proxy-v2`, the usual set-up for
 * TLS behind a balancer: HAProxy forwards the client's TLS bytes untouched
 * after a PROXY v2 header, and `serve --io epoll --cert --proxy-protocol`
 * reads the header, then runs the handshake. The client (Python's `ssl`,
 * bound to 127.0.0.5) must be the peer in the log, not HAProxy. Named
 * `system: …`; ignored, saying why, without `haproxy`, `openssl` or `python3`.
 */
import { strictEqual } from "node:assert/strict";
import { HaProxy, haproxyMissing } from "./haproxy.ts";
import { Cli, commandOutput, WAIT_MS } from "./helpers.ts";
import { opensslMissing } from "./certs.ts";
import { moreCerts } from "./epoll_tls_certs.ts";

const missing = await haproxyMissing() ?? await opensslMissing() ??
  await commandOutput("python3", { args: ["--version"] }).then(
    ({ success }) => success ? undefined : "python3 --version failed",
    () => "python3 is not installed",
  );
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const decoder = new TextDecoder();

/** Python's `ssl` from 127.0.0.5: echoes MESSAGE over TLS; prints the local port, then the echo. */
const PYTHON_CLIENT = `
import socket, ssl, sys
port, ca, message = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=("127.0.0.5", 0))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(message)
got = b""
while len(got) < len(message):
    chunk = s.recv(1000)
    if not chunk: break
    got += chunk
print(s.getsockname()[1], got.decode())
s.close()
`;

/** A port that was free a moment ago: HAProxy cannot report the port it got for 0. */
function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr;
  probe.close();
  return port;
}

Deno.test({
  name:
    `system: epoll TLS behind HAProxy's TLS passthrough (send-proxy-v2): the client's address in the log${ignored}`,
  ignore: missing !== undefined,
  fn: async () => {
    const { base } = await moreCerts();
    await using server = new Cli([
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--cert",
      base.certPath,
      "--key",
      base.keyPath,
      "--proxy-protocol",
      "--trusted-proxy",
      "127.0.0.1/32",
    ], { permissions: ["--allow-net", "--allow-read"], io: "epoll" });
    const serverPort = await server.port();
    const front = freePort();
    const dir = Deno.makeTempDirSync({ prefix: "echo-haproxy-tls-" });
    try {
      Deno.writeTextFileSync(
        `${dir}/haproxy.cfg`,
        `global
  maxconn 100

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend tls_passthrough
  bind 127.0.0.1:${front}
  default_backend echo

backend echo
  server s1 127.0.0.1:${serverPort} send-proxy-v2
`,
      );
      await using _haproxy = new HaProxy(`${dir}/haproxy.cfg`);
      const deadline = performance.now() + WAIT_MS;
      let out = "";
      // HAProxy says nothing when it is ready: the client tries until it gets through.
      while (true) {
        const result = await commandOutput("python3", {
          args: ["-c", PYTHON_CLIENT, `${front}`, base.caPath, "through HAProxy"],
        });
        out = decoder.decode(result.stdout).trim();
        if (result.success) break;
        if (performance.now() > deadline) {
          throw new Error(`no echo through HAProxy: ${decoder.decode(result.stderr)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const [port, ...echo] = out.split(" ");
      strictEqual(echo.join(" "), "through HAProxy");
      await server.waitFor(new RegExp(`#\\d+ opened from 127\\.0\\.0\\.5:${port}\\b`));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
