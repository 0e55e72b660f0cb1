/**
 * `deploy/haproxy.cfg` run for real in the tests: the instances its comments
 * start (their command lines, on free ports), and HAProxy itself on the file
 * with those ports in place of the file's. Tests that use it are named
 * `system: …` and are ignored, saying why, where `haproxy` is missing.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import { Cli, commandOutput, ROOT } from "./helpers.ts";
import type { IoEngine } from "../server.ts";

/** The file as shipped. */
export const HAPROXY_CONFIG = `${ROOT}deploy/haproxy.cfg`;
const text = Deno.readTextFileSync(HAPROXY_CONFIG);

/** Why `haproxy` cannot run here, or undefined. */
export async function haproxyMissing(): Promise<string | undefined> {
  try {
    const { success } = await commandOutput("haproxy", {
      args: ["-v"],
      stdout: "null",
      stderr: "null",
    });
    return success ? undefined : "haproxy -v failed";
  } catch {
    return "haproxy is not installed";
  }
}

/** The instances' command lines, from the file's comments (`#   echo-server --port …`). */
export const INSTANCE_ARGS: readonly string[][] = [
  ...text.matchAll(/^#\s+echo-server (--.+)$/gm),
].map((m) => m[1].trim().split(/\s+/));

/** The backend's servers: name, echo port, check (metrics) port, in the file's order. */
const SERVERS = [...text.matchAll(/^\s*server (\S+) 127\.0\.0\.1:(\d+) check port (\d+)\s*$/gm)]
  .map(([, name, port, check]) => ({ name, port, check }));

/** The value after `flag` in `args`. */
export function flagValue(args: readonly string[], flag: string): string {
  const at = args.indexOf(flag);
  ok(at >= 0 && at + 1 < args.length, `${flag} in ${args.join(" ")}`);
  return args[at + 1];
}

/** HAProxy in the foreground on `config`, its stderr collected. */
export class HaProxy implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stderr: Promise<void>;
  /** Everything HAProxy logged so far. */
  log = "";

  /** Starts `haproxy -f config -db`. */
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

  /** Kills HAProxy and waits for it. */
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

/** The shipped file's set-up running on this machine's free ports. */
export interface Stack {
  /** The instances, in the file's order. */
  instances: Cli[];
  /** The backend's name of each instance (`echo1`…). */
  names: Map<Cli, string>;
  /** HAProxy's frontend port on 127.0.0.1. */
  front: number;
  /** HAProxy. */
  haproxy: HaProxy;
}

/**
 * Starts the instances the file's comments name (ports 0, on `io`), then
 * HAProxy on the file with this run's ports, `edit` applied to it; all of it
 * is disposed with `stack`.
 */
export async function startStack(
  stack: AsyncDisposableStack,
  io: IoEngine,
  edit: (config: string) => string = (config) => config,
): Promise<Stack> {
  strictEqual(INSTANCE_ARGS.length, SERVERS.length, "one commented command line per server");
  const instances = INSTANCE_ARGS.map((args) => {
    strictEqual(flagValue(args, "--trusted-proxy"), "127.0.0.1");
    ok(args.includes("--proxy-protocol"));
    const local = args.map((arg, i) =>
      args[i - 1] === "--port" ? "0" : args[i - 1] === "--metrics" ? "127.0.0.1:0" : arg
    );
    return stack.use(new Cli(local, { io }));
  });
  // The frontend on a free port.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const front = probe.addr.port;
  probe.close();
  let config = edit(text.replace(/^(\s*bind) :\d+$/m, `$1 127.0.0.1:${front}`));
  const names = new Map<Cli, string>();
  for (const [i, cli] of instances.entries()) {
    const port = await cli.port();
    const metrics = (await cli.waitFor(/metrics on http:\/\/127\.0\.0\.1:(\d+)/))[1];
    const server = SERVERS.find((s) => s.port === flagValue(INSTANCE_ARGS[i], "--port"));
    ok(server && server.check === flagValue(INSTANCE_ARGS[i], "--metrics").split(":")[1]);
    names.set(cli, server.name);
    config = config.replace(
      new RegExp(`127\\.0\\.0\\.1:${server.port} check port ${server.check}\\b`),
      `127.0.0.1:${port} check port ${metrics}`,
    );
  }
  ok(config.includes(`bind 127.0.0.1:${front}`));
  const dir = await Deno.makeTempDir({ prefix: "echo-haproxy-" });
  stack.defer(() => Deno.remove(dir, { recursive: true }));
  await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
  const haproxy = stack.use(new HaProxy(`${dir}/haproxy.cfg`));
  return { instances, names, front, haproxy };
}
