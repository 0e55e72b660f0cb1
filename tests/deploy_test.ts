/**
 * The deployment files in `deploy/`, checked as far as this machine can: the
 * systemd units by `systemd-analyze`, the Dockerfile and the Kubernetes YAML
 * by parsing them (HAProxy's file: tests/deploy_haproxy_test.ts). Nothing
 * here builds an image or talks to a cluster; what can run (every command
 * line the files start the server with, their config files, the health
 * check) is run with Deno against the real server.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { parseDuration } from "../text/duration.ts";
import { Cli, commandOutput, httpGet, ROOT, tryEcho } from "./helpers.ts";
import { CUT_GRACE_MS } from "../server/connections.ts";
import { SAME_SIGNAL_MS } from "../cli/stop_signals.ts";

const DEPLOY = `${ROOT}deploy/`;
const read = (name: string): string => Deno.readTextFileSync(DEPLOY + name);
/** What the compiled binary is granted, in the Dockerfile's and the compile task's terms. */
const PERMISSIONS = ["--allow-net", "--allow-read"];

/** Whether `program` runs here; the reason in words when it does not. */
function missing(program: string, args: string[]): string | undefined {
  try {
    const { success } = new Deno.Command(program, { args, stdout: "null", stderr: "null" })
      .outputSync();
    return success ? undefined : `${program} ${args.join(" ")} failed`;
  } catch {
    return `${program} is not installed`;
  }
}

/** The last part of a path. */
const base = (path: string): string => path.slice(path.lastIndexOf("/") + 1);

/** The value after `flag` in `args`, if any. */
function flagValue(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
}

/** `args` with the value after each flag of `values` replaced. */
function withValues(args: string[], values: Record<string, string>): string[] {
  return args.map((arg, i) => i > 0 && args[i - 1] in values ? values[args[i - 1]] : arg);
}

/**
 * Runs a server command line taken from a deployment file, made local: host
 * 127.0.0.1, port 0 (or `port`), metrics (if any) on 127.0.0.1 port 0,
 * `config` for `--config`. Resolves once it listens, with its TCP port and
 * its metrics address.
 */
async function serveAs(
  args: string[],
  config?: string,
  port = 0,
): Promise<{ cli: Cli; port: number; metrics: string }> {
  const local: Record<string, string> = { "--host": "127.0.0.1", "--port": String(port) };
  const metrics = flagValue(args, "--metrics") !== undefined;
  if (metrics) local["--metrics"] = "127.0.0.1:0";
  if (config !== undefined) local["--config"] = config;
  const cli = new Cli(withValues(args, local), { permissions: PERMISSIONS });
  return {
    cli,
    port: await cli.port(),
    metrics: metrics ? (await cli.waitFor(/metrics on http:\/\/([^\s"]+)/))[1] : "",
  };
}

/** One exact echo over a new connection. */
async function assertEchoes(port: number, text: string): Promise<void> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(await tryEcho(conn, text), text);
}

/** The status of `GET http://address/path`. */
async function status(address: string, path: string): Promise<number> {
  return (await httpGet(`http://${address}${path}`)).status;
}

/** SIGTERM, then the exit: 0, having drained. */
async function assertDrains(cli: Cli): Promise<void> {
  await stop(cli);
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
}

/**
 * SIGTERM, as systemd, Docker and the kubelet send it; where the command
 * line has a `--shutdown-delay`, a second one once the first has been taken
 * (past the same-keypress window), which ends the delay early: the stop
 * path is the same, without the seconds a test need not wait.
 */
async function stop(cli: Cli): Promise<void> {
  cli.kill("SIGTERM");
  const said = await cli.waitFor(/SIGTERM: (shutting down|not ready; accepting)/);
  if (said[1] === "shutting down") return;
  await new Promise((resolve) => setTimeout(resolve, SAME_SIGNAL_MS + 50));
  cli.kill("SIGTERM");
}

// ---------------------------------------------------------------- systemd

/** A unit file's settings as `Section.Key` → values, in order (continuations joined). */
function parseUnit(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = "";
  for (const line of text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = line.match(/^\[(.+)\]$/);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf("=");
    const key = `${section}.${line.slice(0, eq).trim()}`;
    settings.set(key, [...settings.get(key) ?? [], line.slice(eq + 1).trim()]);
  }
  return settings;
}

const unitText = read("echo-server.service");
const unit = parseUnit(unitText);
const setting = (key: string): string | undefined => unit.get(key)?.at(-1);
const execStart = (setting("Service.ExecStart") ?? "").split(/\s+/);
/** The template for upgrades: echo-server@9707 and echo-server@9708 take turns. */
const templateText = read("echo-server@.service");
const template = parseUnit(templateText);
const templateStart = (template.get("Service.ExecStart")?.at(-1) ?? "").split(/\s+/);
const noSystemd = missing("systemd-analyze", ["--version"]);

Deno.test({
  name: `system: deploy/echo-server.service and echo-server@.service pass systemd-analyze${
    noSystemd ? ` (ignored: ${noSystemd})` : ""
  }`,
  ignore: noSystemd !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "echo-unit-" });
    try {
      for (const [name, text] of [["echo-server", unitText], ["echo-server@9707", templateText]]) {
        // verify insists that ExecStart's binary exists: point a copy at Deno's.
        const copy = `${dir}/${name}.service`;
        ok(text.includes(`ExecStart=${execStart[0]} `));
        await Deno.writeTextFile(
          copy,
          text.replace(`ExecStart=${execStart[0]} `, `ExecStart=${Deno.execPath()} `),
        );
        const run = async (args: string[]) => {
          const out = await commandOutput("systemd-analyze", { args, cwd: dir });
          const all = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
          return { code: out.code, text: all };
        };
        // Unknown keys and bad values are only warnings: any output is a failure.
        deepStrictEqual(await run(["verify", copy]), { code: 0, text: "" }, name);
        // Exposure 0-10 (10 = unprotected); the threshold is in tenths.
        const security = await run(["security", "--offline=yes", "--threshold=20", copy]);
        strictEqual(security.code, 0, security.text);
        ok(/exposure level for echo-server\S*: 1\.\d OK/.test(security.text), security.text);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deploy/echo-server.service: hardened, stopped by SIGTERM after the drain", () => {
  const expected: Record<string, string> = {
    "Service.DynamicUser": "yes",
    "Service.User": "echo-server",
    "Service.NoNewPrivileges": "yes",
    "Service.ProtectSystem": "strict",
    "Service.ProtectHome": "yes",
    "Service.PrivateTmp": "yes",
    "Service.KillSignal": "SIGTERM",
    "Service.Restart": "on-failure",
    "Service.ExecReload": "/bin/kill -HUP $MAINPID",
    "Service.CapabilityBoundingSet": "",
    "Install.WantedBy": "multi-user.target",
  };
  for (const [key, value] of Object.entries(expected)) strictEqual(setting(key), value, key);
  ok(Number(setting("Service.LimitNOFILE")) >= 65536);
  // V8 needs writable executable memory: this setting would kill it at start.
  strictEqual(setting("Service.MemoryDenyWriteExecute"), undefined);
  strictEqual(execStart[0], "/usr/local/bin/echo-server");
  // Not ready while still accepting for longer than a balancer takes to see it (haproxy.cfg's
  // checks: 2 s), then the drain, then the last second of the connections it cuts, with slack.
  const delayMs = parseDuration(flagValue(execStart, "--shutdown-delay") ?? "0");
  ok(delayMs > 2000, "--shutdown-delay above deploy/haproxy.cfg's inter x fall");
  const drainMs = parseDuration(flagValue(execStart, "--drain-timeout") ?? "10s");
  ok(
    parseDuration(setting("Service.TimeoutStopSec") ?? "0") >=
      delayMs + drainMs + CUT_GRACE_MS + 5_000,
  );
  // A privileged port needs the capability, which the unit does not grant.
  ok(Number(flagValue(execStart, "--port")) >= 1024);
  // The template is the same service, taking turns on the port: only these differ.
  const differs = [...new Set([...unit.keys(), ...template.keys()])]
    .filter((key) => JSON.stringify(unit.get(key)) !== JSON.stringify(template.get(key)));
  deepStrictEqual(differs, ["Unit.Description", "Service.ExecStart"]);
  deepStrictEqual(
    templateStart.filter((arg) => arg !== "--reuse-port"),
    withValues(execStart, { "--metrics": "127.0.0.1:%i" }),
  );
});

Deno.test("deploy/echo-server.service: ExecStart with deploy/config.json serves, reloads, drains", async () => {
  const { cli, port } = await serveAs(execStart.slice(1), `${DEPLOY}config.json`);
  await using _ = cli;
  await assertEchoes(port, "from the unit's command line");
  // ExecReload's signal re-reads the file; the server goes on serving.
  cli.kill("SIGHUP");
  await cli.waitFor(/SIGHUP: reloaded /);
  await assertEchoes(port, "after systemctl reload");
  await assertDrains(cli);
});

Deno.test("deploy/echo-server@.service: a second instance takes over the port, the first drains", async () => {
  const config = `${DEPLOY}config.json`;
  const old = await serveAs(templateStart.slice(1), config);
  await using _old = old.cli;
  using held = await Deno.connect({ hostname: "127.0.0.1", port: old.port });
  strictEqual(await tryEcho(held, "held by the old instance"), "held by the old instance");
  const next = await serveAs(templateStart.slice(1), config, old.port);
  await using _next = next.cli;
  strictEqual(next.port, old.port);
  await stop(old.cli);
  // Logged once its listener has closed: from then on, connects reach the new instance
  // (earlier, one queued on the old listener as it closed could be reset; see --reuse-port).
  await old.cli.waitFor(/draining 1 connection/);
  await assertEchoes(old.port, "to the new instance");
  await next.cli.waitFor(/#1 opened from/);
  strictEqual(await tryEcho(held, "still draining"), "still draining");
  held.close();
  strictEqual((await old.cli.finished()).code, 0);
  await assertDrains(next.cli);
});

// ---------------------------------------------------------------- Dockerfile

/** One Dockerfile instruction, with the stage (0-based) it belongs to. */
interface Instruction {
  stage: number;
  op: string;
  args: string;
}

/** A Dockerfile's instructions: comments dropped, continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text.split("\n").filter((line) => !/^\s*#/.test(line)).join("\n")
    .replace(/\\\n/g, " ");
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of joined.split("\n").map((l) => l.trim()).filter((l) => l !== "")) {
    const [, op, args] = line.match(/^(\S+)\s+(.*)$/) ?? [];
    if (op.toUpperCase() === "FROM") stage++;
    out.push({ stage, op: op.toUpperCase(), args: args.replace(/\s+/g, " ") });
  }
  return out;
}

const docker = parseDockerfile(read("Dockerfile"));
const finalStage = Math.max(...docker.map((i) => i.stage));
/** The last `op` of the final stage, or of any stage with `anyStage`. */
const last = (op: string, anyStage = false) =>
  docker.findLast((i) => i.op === op && (anyStage || i.stage === finalStage));
/** An exec-form (JSON) argument list. */
const execForm = (args: string | undefined): string[] => JSON.parse(args ?? "[]");
const healthArgs = execForm(last("HEALTHCHECK")?.args.replace(/^(--\S+ )*CMD /, ""));
const entrypoint = execForm(last("ENTRYPOINT")?.args);
const cmd = execForm(last("CMD")?.args);

Deno.test("deploy/Dockerfile: compiled in Deno's image, run as non-root with a health check", () => {
  const froms = docker.filter((i) => i.op === "FROM").map((i) => i.args);
  strictEqual(froms.length, 2);
  strictEqual(froms[0], `denoland/deno:${Deno.version.deno} AS build`);
  ok(froms.every((from) => /:\S+/.test(from) && !/:latest\b/.test(from)), "pinned tags");
  ok(!froms[1].startsWith("denoland/deno"), "a small run image, not the build image");
  const user = last("USER")?.args ?? "root";
  ok(!/^(root|0)(:|$)/.test(user), `USER ${user}`);
  strictEqual(last("STOPSIGNAL")?.args, "SIGTERM");
  const compile = docker.find((i) => i.op === "RUN" && i.args.includes("deno compile"));
  for (const flag of ["--unstable-net", "--allow-net", "--allow-read", "--frozen-lockfile"]) {
    ok(compile?.args.includes(` ${flag} `), `deno compile ${flag}`);
  }
  const output = compile?.args.match(/--output (\S+)/)?.[1];
  ok(compile?.args.includes(" main.ts"));
  strictEqual(last("COPY")?.args, `--from=build ${output} ${entrypoint[0]}`);
  // Exec form everywhere: there is no shell in the run image.
  strictEqual(healthArgs[0], entrypoint[0]);
  deepStrictEqual(healthArgs.slice(1, 2), ["client"]);
  strictEqual(flagValue(healthArgs, "--port"), flagValue(cmd, "--port"));
  const exposed = last("EXPOSE")?.args.split(" ") ?? [];
  ok(exposed.includes(`${flagValue(cmd, "--port")}/tcp`), "EXPOSE the echo port");
  ok(exposed.includes(`${flagValue(cmd, "--metrics")?.split(":").at(-1)}/tcp`), "EXPOSE metrics");
});

Deno.test("deploy/Dockerfile.dockerignore keeps every module the binary is compiled from", async () => {
  const patterns = read("Dockerfile.dockerignore").split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const { stdout } = await commandOutput(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stderr: "null",
  });
  const graph: { modules: { specifier: string }[] } = JSON.parse(new TextDecoder().decode(stdout));
  const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith("file://"))
    .map((s) => decodeURIComponent(s.slice(`file://${ROOT}`.length)));
  ok(local.length > 20 && local.includes("main.ts"), local.join(" "));
  for (const file of [...local, "deno.json", "deno.lock"]) {
    for (const pattern of patterns) {
      const glob = new RegExp(`^${pattern.replace(/\./g, "\\.").replace(/\*/g, "[^/]*")}(/|$)`);
      ok(!glob.test(file), `${pattern} leaves ${file} out of the build context`);
    }
  }
});

Deno.test("deploy/Dockerfile: its CMD serves, its HEALTHCHECK passes, then fails once stopped", async () => {
  const { cli, port } = await serveAs(cmd);
  await using _ = cli;
  const check = async () =>
    await new Cli(withValues(healthArgs.slice(1), { "--port": String(port) })).finished();
  const healthy = await check();
  deepStrictEqual([healthy.code, healthy.stdout], [0, "healthcheck\n"]);
  await assertDrains(cli);
  strictEqual((await check()).code, 1);
});

// ---------------------------------------------------------------- Kubernetes

/** `value[key]` for a record, else undefined: YAML comes back untyped. */
function at(value: unknown, ...keys: (string | number)[]): unknown {
  let here = value;
  for (const key of keys) {
    if (typeof here !== "object" || here === null) return undefined;
    here = (here as Record<string | number, unknown>)[key];
  }
  return here;
}

/** Each element of a YAML list (none if it is not one). */
const list = (value: unknown): unknown[] => Array.isArray(value) ? value : [];

const manifests = parseAllDocuments(read("kubernetes.yaml")).map((doc) => {
  deepStrictEqual(doc.errors, [], "kubernetes.yaml parses");
  return doc.toJS() as unknown;
});
/** The one manifest of `kind`. */
function manifest(kind: string): unknown {
  const found = manifests.filter((m) => at(m, "kind") === kind);
  strictEqual(found.length, 1, kind);
  return found[0];
}
const deployment = manifest("Deployment");
const pod = at(deployment, "spec", "template", "spec");
const container = at(pod, "containers", 0);
const containerArgs = list(at(container, "args")).map(String);

/** The README's sizing ("Limits and file descriptors"): the start, and a non-reading connection on Deno's engine. */
const START_MB = 57;
const NON_READER_KIB = 30.4;

Deno.test("deploy/kubernetes.yaml: probes, graceful stop, security, a Service on the named ports", () => {
  strictEqual(at(deployment, "apiVersion"), "apps/v1");
  const labels = at(deployment, "spec", "template", "metadata", "labels");
  deepStrictEqual(at(deployment, "spec", "selector", "matchLabels"), labels);
  // Named container ports, and the numbers the server is told to listen on.
  const ports = new Map(
    list(at(container, "ports")).map((p) => [at(p, "name"), at(p, "containerPort")]),
  );
  strictEqual(ports.get("echo"), Number(flagValue(containerArgs, "--port")));
  strictEqual(ports.get("metrics"), Number(flagValue(containerArgs, "--metrics")?.split(":")[1]));
  for (const [probe, path] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
    deepStrictEqual(at(container, probe, "httpGet"), { path, port: "metrics" }, probe);
  }
  // The shutdown delay gives the endpoints time to drop the pod while it still accepts, then
  // the drain runs and the connections it cuts get their last second: all of it fits the grace.
  const delayMs = parseDuration(flagValue(containerArgs, "--shutdown-delay") ?? "0");
  ok(delayMs >= 3000, "--shutdown-delay of 3 s or more");
  strictEqual(at(container, "lifecycle"), undefined, "no preStop hook: the delay does its work");
  const drainMs = parseDuration(flagValue(containerArgs, "--drain-timeout") ?? "10s");
  const graceMs = Number(at(pod, "terminationGracePeriodSeconds")) * 1000;
  ok(graceMs >= delayMs + drainMs + CUT_GRACE_MS + 5000, `grace ${graceMs} ms`);
  strictEqual(at(pod, "securityContext", "runAsNonRoot"), true);
  ok(Number(at(pod, "securityContext", "runAsUser")) > 0);
  const security = at(container, "securityContext");
  strictEqual(at(security, "readOnlyRootFilesystem"), true);
  strictEqual(at(security, "allowPrivilegeEscalation"), false);
  deepStrictEqual(at(security, "capabilities", "drop"), ["ALL"]);
  ok(
    at(container, "resources", "requests", "memory") &&
      at(container, "resources", "limits", "memory"),
  );
  // The config file the args name is the ConfigMap's, mounted where they look.
  const configPath = flagValue(containerArgs, "--config") ?? "";
  const mount = list(at(container, "volumeMounts")).find((m) =>
    configPath.startsWith(`${at(m, "mountPath")}/`)
  );
  const volume = list(at(pod, "volumes")).find((v) => at(v, "name") === at(mount, "name"));
  strictEqual(at(volume, "configMap", "name"), at(manifest("ConfigMap"), "metadata", "name"));
  const limits = JSON.parse(String(at(manifest("ConfigMap"), "data", base(configPath)))) as Record<
    string,
    unknown
  >;
  // The memory limit holds --max-conns connections of the costliest kind on the pod's engine
  // and transport (plain TCP, Deno's engine: clients that never read), at the README's figures.
  const limitMiB = Number(
    /^(\d+)Mi$/.exec(String(at(container, "resources", "limits", "memory")))?.[1],
  );
  const neededMiB = (START_MB * 1e6 + Number(limits["max-conns"]) * NON_READER_KIB * 1024) /
    2 ** 20;
  ok(limitMiB >= neededMiB, `memory limit ${limitMiB} MiB, needed ${neededMiB.toFixed(0)} MiB`);
  // The Service selects the pods and reaches each named port by name.
  const service = manifest("Service");
  deepStrictEqual(at(service, "spec", "selector"), labels);
  const servicePorts = list(at(service, "spec", "ports"));
  ok(servicePorts.length >= 2);
  for (const port of servicePorts) ok(ports.has(at(port, "targetPort")), `${at(port, "name")}`);
  deepStrictEqual(at(manifest("PodDisruptionBudget"), "spec", "selector", "matchLabels"), labels);
});

Deno.test("deploy/kubernetes.yaml: the container's args and ConfigMap serve, probes answer 200", async () => {
  const dir = await Deno.makeTempDir({ prefix: "echo-k8s-" });
  try {
    const configPath = flagValue(containerArgs, "--config") ?? "";
    const config = `${dir}/${base(configPath)}`;
    await Deno.writeTextFile(config, String(at(manifest("ConfigMap"), "data", base(configPath))));
    const { cli, port, metrics } = await serveAs(containerArgs, config);
    await using _ = cli;
    await assertEchoes(port, "from the pod's args");
    for (const probe of ["readinessProbe", "livenessProbe"]) {
      strictEqual(await status(metrics, String(at(container, probe, "httpGet", "path"))), 200);
    }
    await assertDrains(cli);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
