/**
 * Resident memory per connection: starts the server (main.ts) as a
 * subprocess, opens `--conns` clients of one kind, and reads the server's
 * `VmRSS` from `/proc/PID/status` before, while they are open (after
 * `--settle-ms`), and after they have left (after `--leave-ms`). One fresh
 * server per engine and kind, so that no run inherits another's heap.
 *
 *   deno task memory [--io deno,epoll] [--kind idle,busy,nonreading] [--conns 4000]
 *                    [--settle-ms 1000] [--leave-ms 5000] [--cert F --key F --ca F]
 *                    [-- SERVER FLAGS…]
 *
 * Kinds (see `memory_clients.ts`): `idle` (one byte echoed, then silent),
 * `busy` (64-byte pingpong, back to back), `nonreading` (64 KiB writes, never
 * read; plain TCP clients with a 4 KiB receive buffer). With `--cert`,
 * `--key` and `--ca` the server serves TLS (on either engine) and the
 * clients speak it. Raise `ulimit -n` first: the server and this script each
 * hold one descriptor per connection. It runs with `--allow-all`: Deno
 * reads another process's `/proc/PID/status` under no narrower permission.
 *
 * Prints one Markdown row per run: RSS before, with the clients, per
 * connection, and after they left.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Kind, KINDS, openClients } from "./memory_clients.ts";
import { startProjectServer } from "./project_server.ts";

const ENGINES = ["deno", "epoll"] as const;
type Engine = typeof ENGINES[number];

/** One measurement, in KiB of resident memory. */
interface Measured {
  engine: Engine;
  kind: Kind;
  tls: boolean;
  conns: number;
  beforeKiB: number;
  withKiB: number;
  afterKiB: number;
}

/** The flags, validated; every error names its flag. */
function parseFlags(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    options: {
      io: { type: "string", default: "deno,epoll" },
      kind: { type: "string", default: "idle,busy,nonreading" },
      conns: { type: "string", default: "4000" },
      "settle-ms": { type: "string", default: "1000" },
      "leave-ms": { type: "string", default: "5000" },
      cert: { type: "string" },
      key: { type: "string" },
      ca: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  const list = <T extends string>(flag: string, text: string, allowed: readonly T[]): T[] => {
    const items = text.split(",").filter((item) => item !== "");
    for (const item of items) {
      if (!allowed.includes(item as T)) {
        throw new Error(`invalid --${flag} "${item}": expected ${allowed.join(", ")}`);
      }
    }
    if (items.length === 0) throw new Error(`--${flag} is empty`);
    return items as T[];
  };
  const whole = (flag: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`invalid --${flag} "${text}": expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
  const tlsFlags = [values.cert, values.key, values.ca].filter((v) => v !== undefined).length;
  if (tlsFlags !== 0 && tlsFlags !== 3) throw new Error("--cert, --key and --ca go together");
  const engines = list("io", values.io, ENGINES);
  return {
    engines,
    kinds: list("kind", values.kind, KINDS),
    conns: whole("conns", values.conns, 1, 50_000),
    settleMs: whole("settle-ms", values["settle-ms"], 0, 600_000),
    leaveMs: whole("leave-ms", values["leave-ms"], 0, 600_000),
    tls: tlsFlags === 3
      ? { cert: values.cert ?? "", key: values.key ?? "", ca: values.ca ?? "" }
      : undefined,
    serverFlags: positionals,
  };
}

/** The server's resident memory, in KiB. */
async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kib)) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return kib;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measure(
  engine: Engine,
  kind: Kind,
  options: ReturnType<typeof parseFlags>,
): Promise<Measured> {
  const { tls } = options;
  const flags = tls === undefined
    ? options.serverFlags
    : ["--cert", tls.cert, "--key", tls.key, ...options.serverFlags];
  await using server = await startProjectServer([
    ...(engine === "epoll" ? ["--io", "epoll"] : []),
    ...["--max-conns", "50000"],
    ...flags,
  ]);
  const caCert = tls === undefined ? undefined : await Deno.readTextFile(tls.ca);
  // The server's start-up settles (its first GCs, the log's first writes) before the baseline.
  await sleep(1000);
  const beforeKiB = await rssKiB(server.pid);
  const deadline = performance.now() + 120_000;
  const clients = await openClients(kind, options.conns, { port: server.port, caCert }, deadline);
  await sleep(options.settleMs);
  const withKiB = await rssKiB(server.pid);
  await clients.close();
  await sleep(options.leaveMs);
  const afterKiB = await rssKiB(server.pid);
  if (clients.open !== options.conns) {
    throw new Error(`only ${clients.open} of ${options.conns} ${kind} clients opened`);
  }
  return {
    engine,
    kind,
    tls: tls !== undefined,
    conns: clients.open,
    beforeKiB,
    withKiB,
    afterKiB,
  };
}

function row(m: Measured): string {
  const mb = (kib: number) => (kib / 1024).toFixed(1);
  const per = ((m.withKiB - m.beforeKiB) / m.conns).toFixed(1);
  return `| ${m.engine}${m.tls ? " + TLS" : ""} | ${m.kind} | ${m.conns} | ${mb(m.beforeKiB)} | ${
    mb(m.withKiB)
  } | **${per}** | ${mb(m.afterKiB)} |`;
}

const USAGE = `Usage: deno task memory [--io deno,epoll] [--kind idle,busy,nonreading]
  [--conns 4000] [--settle-ms 1000] [--leave-ms 5000] [--cert F --key F --ca F] [-- SERVER FLAGS…]

The server's resident memory per connection, one row per engine and kind of client.
Raise ulimit -n first: the server and this script each hold a descriptor per connection.`;

async function main(): Promise<number> {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  let options: ReturnType<typeof parseFlags>;
  try {
    options = parseFlags(Deno.args);
  } catch (error) {
    // node:util's own words for an unknown option end in a hint about positionals: not ours.
    const message = error instanceof Error
      ? error.message.replace(/\. To specify a positional.*$/s, "")
      : String(error);
    console.error(`memory: ${message}\n${USAGE}`);
    return 2;
  }
  console.log(
    "| engine | clients | conns | RSS before MB | RSS with them MB | KiB per conn | RSS after they left MB |",
  );
  console.log("|---|---|---|---|---|---|---|");
  try {
    for (const kind of options.kinds) {
      for (const engine of options.engines) console.log(row(await measure(engine, kind, options)));
    }
  } catch (error) {
    console.error(`memory: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  console.log(
    `(${options.settleMs} ms after the last client was ready; "after": ${options.leaveMs} ms after they closed)`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main());
