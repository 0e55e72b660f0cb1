/**
 * The PROXY protocol against the real thing: HAProxy (`send-proxy` and
 * `send-proxy-v2`) in front of the server, started on loopback by the test.
 * Named `system: …`: they need the `haproxy` program and clients bound to
 * 127.0.0.5 and 127.0.0.6. Without haproxy they are ignored, saying why.
 */
import { ok, strictEqual } from "node:assert/strict";
import { HaProxy, haproxyMissing } from "./haproxy.ts";
import { Cli, connectFrom, PROXIED_SERVE_ARGS, testEngines, WAIT_MS } from "./helpers.ts";

const missing = await haproxyMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;

/** A port that was free a moment ago: HAProxy cannot report the port it got for 0. */
function freePort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = probe.addr;
  probe.close();
  return port;
}

/** HAProxy with one frontend per PROXY version, all to `serverPort`. */
class ProxyPair implements AsyncDisposable {
  readonly v1Port = freePort();
  readonly v2Port = freePort();
  readonly #dir = Deno.makeTempDirSync({ prefix: "echo-haproxy-" });
  readonly #haproxy: HaProxy;

  constructor(serverPort: number) {
    const config = `global
  maxconn 200

defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s

frontend v1
  bind 127.0.0.1:${this.v1Port}
  default_backend echo_v1

frontend v2
  bind 127.0.0.1:${this.v2Port}
  default_backend echo_v2

backend echo_v1
  server s1 127.0.0.1:${serverPort} send-proxy

backend echo_v2
  server s1 127.0.0.1:${serverPort} send-proxy-v2
`;
    Deno.writeTextFileSync(`${this.#dir}/haproxy.cfg`, config);
    this.#haproxy = new HaProxy(`${this.#dir}/haproxy.cfg`);
  }

  /**
   * Resolves once both frontends accept connections; HAProxy says nothing
   * when it is ready, so this asks, a bounded number of times.
   */
  async ready(): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    for (const port of [this.v1Port, this.v2Port]) {
      while (true) {
        try {
          // The probe connects from an address the tests do not otherwise use.
          const probe = await connectFrom("127.0.0.9", port);
          probe.close();
          break;
        } catch (error) {
          if (performance.now() > deadline) {
            throw new Error(`haproxy never listened on ${port}: ${error}\n${this.#haproxy.log}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#haproxy[Symbol.asyncDispose]();
    Deno.removeSync(this.#dir, { recursive: true });
  }
}

testEngines(
  `system: HAProxy send-proxy and send-proxy-v2: exact echo, the client's address in the log${ignored}`,
  async (io) => {
    await using server = new Cli([...PROXIED_SERVE_ARGS], { io });
    await using haproxy = new ProxyPair(await server.port());
    await haproxy.ready();
    // Every byte value, through HAProxy and back.
    const bytes = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
    for (const [port, version] of [[haproxy.v1Port, 1], [haproxy.v2Port, 2]]) {
      const conn = await connectFrom("127.0.0.5", port);
      strictEqual(await conn.echo(bytes.repeat(64)), bytes.repeat(64), `v${version}`);
      conn.close();
    }
    const opened = await server.waitFor(
      /#\d+ opened from 127\.0\.0\.5:\d+[^]*#\d+ opened from 127\.0\.0\.5:\d+/,
    );
    ok(!/opened from 127\.0\.0\.1:/.test(opened[0]), "the proxy's own address is not the peer");
  },
  { ignore: missing !== undefined },
);

testEngines(
  `system: HAProxy: --max-conns-per-ip 1 counts the client behind the proxy${ignored}`,
  async (io) => {
    await using server = new Cli([...PROXIED_SERVE_ARGS, "--max-conns-per-ip", "1"], { io });
    await using haproxy = new ProxyPair(await server.port());
    await haproxy.ready();
    const first = await connectFrom("127.0.0.5", haproxy.v1Port);
    strictEqual(await first.echo("first"), "first");
    // The same client through the other frontend: refused, whichever version carries it.
    const second = await connectFrom("127.0.0.5", haproxy.v2Port);
    strictEqual(await second.echo("second"), null);
    await server.waitFor(/refused 127\.0\.0\.5:\d+: per-ip/);
    const other = await connectFrom("127.0.0.6", haproxy.v2Port);
    strictEqual(await other.echo("other"), "other");
    strictEqual(await first.echo("again"), "again");
    for (const conn of [first, second, other]) conn.close();
  },
  { ignore: missing !== undefined },
);
