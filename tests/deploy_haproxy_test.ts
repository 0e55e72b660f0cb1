/**
 * `deploy/haproxy.cfg` for real: `haproxy -c` on the file as shipped, then
 * HAProxy on loopback in front of the instances the file's comments start
 * (the same command lines, ports 0), the file's ports replaced by the ones
 * the instances got. Named `system: …`: they need the `haproxy` program and
 * clients bound to 127.0.0.2x. Without haproxy they are ignored, saying why.
 */
import { ok, strictEqual } from "node:assert/strict";
import {
  type BoundClient,
  Cli,
  commandOutput,
  connectFrom,
  ROOT,
  testEngines,
  until,
} from "./helpers.ts";

const CONFIG = `${ROOT}deploy/haproxy.cfg`;
const text = Deno.readTextFileSync(CONFIG);

/** Why `haproxy` cannot run here, or undefined. */
function haproxyMissing(): string | undefined {
  try {
    const out = new Deno.Command("haproxy", { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync();
    return out.success ? undefined : "haproxy -v failed";
  } catch {
    return "haproxy is not installed";
  }
}
const missing = haproxyMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;

/** The instances' command lines, from the file's comments (`#   echo-server --port …`). */
const instanceArgs = [...text.matchAll(/^#\s+echo-server (--.+)$/gm)].map((m) =>
  m[1].trim().split(/\s+/)
);
/** The backend's servers: name, echo port, check (metrics) port, in the file's order. */
const servers = [...text.matchAll(/^\s*server (\S+) 127\.0\.0\.1:(\d+) check port (\d+)\s*$/gm)]
  .map(([, name, port, check]) => ({ name, port, check }));

/** The value after `flag` in `args`. */
function flagValue(args: string[], flag: string): string {
  const at = args.indexOf(flag);
  ok(at >= 0 && at + 1 < args.length, `${flag} in ${args.join(" ")}`);
  return args[at + 1];
}

/** HAProxy in the foreground on `config`, its stderr collected. */
class HaProxy implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stderr: Promise<void>;
  log = "";

  constructor(config: string) {
    const child = new Deno.Command("haproxy", {
      args: ["-f", config, "-db"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#stderr = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.log += chunk;
      }
    })();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await this.#child.status;
    await this.#stderr;
  }
}

Deno.test({
  name: `system: haproxy -c accepts deploy/haproxy.cfg as shipped${ignored}`,
  ignore: missing !== undefined,
  async fn() {
    const out = await commandOutput("haproxy", { args: ["-c", "-f", CONFIG] });
    strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  },
});

testEngines(
  `system: deploy/haproxy.cfg spreads clients over its instances, carries their address, skips a draining one${ignored}`,
  async (io) => {
    strictEqual(instanceArgs.length, servers.length, "one commented command line per server");
    await using stack = new AsyncDisposableStack();
    const instances = instanceArgs.map((args) => {
      strictEqual(flagValue(args, "--trusted-proxy"), "127.0.0.1");
      ok(args.includes("--proxy-protocol"));
      const local = args.map((arg, i) =>
        args[i - 1] === "--port" ? "0" : args[i - 1] === "--metrics" ? "127.0.0.1:0" : arg
      );
      return stack.use(new Cli(local, { io }));
    });
    // The file with this run's ports: instances on theirs, the frontend on a free one.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const front = probe.addr.port;
    probe.close();
    let config = text.replace(/^(\s*bind) :\d+$/m, `$1 127.0.0.1:${front}`)
      // Checks 10 times as often, but each may take 2 s, as a loaded test machine needs.
      .replace(/\binter 1s\b/, "inter 100ms")
      .replace(/^backend echo$/m, "backend echo\n  timeout check 2s");
    const names = new Map<Cli, string>();
    for (const [i, cli] of instances.entries()) {
      const port = await cli.port();
      const metrics = (await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/))[1];
      const server = servers.find((s) => s.port === flagValue(instanceArgs[i], "--port"));
      ok(server && server.check === flagValue(instanceArgs[i], "--metrics").split(":")[1]);
      names.set(cli, server.name);
      config = config.replace(
        new RegExp(`127\\.0\\.0\\.1:${server.port} check port ${server.check}\\b`),
        `127.0.0.1:${port} check port ${metrics}`,
      );
    }
    ok(config.includes(`bind 127.0.0.1:${front}`) && config.includes("timeout check 2s"));
    ok(config.includes("inter 100ms"));
    const dir = await Deno.makeTempDir({ prefix: "echo-haproxy-" });
    stack.defer(() => Deno.remove(dir, { recursive: true }));
    await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
    const haproxy = stack.use(new HaProxy(`${dir}/haproxy.cfg`));

    // Six clients, each echoing every byte value through HAProxy, all open at once.
    // (HAProxy says nothing when it is ready, and the instances' logs come as they come.)
    const bytes = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
    const first = await until(
      "haproxy to listen",
      () => connectFrom("127.0.0.21", front).catch(() => undefined),
    );
    const clients: BoundClient[] = [first];
    stack.defer(() => clients.forEach((client) => client.close()));
    for (let n = 22; n <= 26; n++) clients.push(await connectFrom(`127.0.0.${n}`, front));
    for (const client of clients) strictEqual(await client.echo(bytes), bytes);

    // Each client's own address, in the log of exactly one instance; every instance has some.
    const whose = (n: number) =>
      instances.filter((cli) => new RegExp(`opened from 127\\.0\\.0\\.${n}:`).test(cli.stderr));
    for (let n = 21; n <= 26; n++) {
      const found = await until(
        `127.0.0.${n} in a log`,
        () => whose(n).length ? whose(n) : undefined,
      );
      strictEqual(found.length, 1, `127.0.0.${n} opened on more than one instance`);
    }
    for (const cli of instances) {
      ok(/opened from 127\.0\.0\.2\d:/.test(cli.stderr), `leastconn left ${names.get(cli)} out`);
      ok(!/opened from 127\.0\.0\.1:/.test(cli.stderr), "HAProxy's own address is not the peer");
    }

    // Drain the instance of the first client: /readyz turns 503, HAProxy marks it down,
    // new clients go elsewhere, and the first client's connection goes on echoing.
    const draining = whose(21)[0];
    draining.kill("SIGTERM");
    await until(
      `${names.get(draining)} down`,
      () =>
        new RegExp(
          `Server echo/${names.get(draining)} is DOWN, reason: Layer7 wrong status, code: 503`,
        )
          .exec(haproxy.log) ?? undefined,
    );
    const late = await connectFrom("127.0.0.30", front);
    clients.push(late);
    strictEqual(await late.echo("after the drain began"), "after the drain began");
    strictEqual(await first.echo("still here"), "still here");
    await until("127.0.0.30 in a log", () => whose(30).at(0));
    ok(!whose(30).includes(draining), "a client went to the draining instance");
    // Its last connection closed, the draining instance exits 0 before its drain timeout.
    for (const client of clients) client.close();
    const { code, stderr } = await draining.finished();
    strictEqual(code, 0, stderr);
  },
  { ignore: missing !== undefined },
);
