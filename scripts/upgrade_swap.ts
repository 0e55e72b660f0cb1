/**
 * A zero-downtime upgrade, measured: an old server (main.ts `--reuse-port`)
 * serves while client loops connect, echo a few bytes, check them and close,
 * over and over; a new instance starts on the same port with `--reuse-port`,
 * and once it logs `listening`, the old one gets SIGTERM and drains. The load
 * goes on a little longer, then the figures: connects attempted, failed, and
 * echoes verified. Whether any connect fails at the swap is the kernel's
 * doing: see server/reuse_port.ts and `net.ipv4.tcp_migrate_req`.
 *
 * Bounded: at most `--max-connects` attempts and `--max-seconds` in all.
 *
 *   deno run -A scripts/upgrade_swap.ts [--clients 6] [--sysctl 0|1] [--runs 1]
 *
 * `--sysctl` sets `net.ipv4.tcp_migrate_req` for the runs and restores it
 * after (root only).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { MIGRATE_REQ_PATH, migrateReqOn } from "../server/reuse_port.ts";

/** Options for {@linkcode upgradeSwap}. */
export interface SwapOptions {
  /** Client loops running at once. @default {6} */
  clients?: number;
  /** How long the old instance serves the load alone first. @default {300} */
  beforeMs?: number;
  /** How long the load goes on after the SIGTERM. @default {500} */
  afterMs?: number;
  /** At most this many connects in all. @default {50000} */
  maxConnects?: number;
  /** At most this long in all; the load stops then, swapped or not. @default {10000} */
  maxMs?: number;
}

/** What one swap did. */
export interface SwapResult {
  /** Connects tried. */
  attempted: number;
  /** Connects refused, or reset before their echo came back. */
  failed: number;
  /** Echoes that came back whole and equal to what was sent. */
  verified: number;
  /** Echoes that came back different: never acceptable. */
  mismatched: number;
  /** The first few failures, in words. */
  errors: string[];
  /** The old instance's exit code. */
  oldExit: number;
  /** The sysctl during the run, when it could be read. */
  migrateReq: boolean | undefined;
}

const ROOT = new URL("../", import.meta.url);
const CONNECT_TIMEOUT_MS = 3000;

/** A main.ts server subprocess whose log is read until `listening`, then drained. */
class Instance {
  readonly #child: Deno.ChildProcess;
  readonly port: Promise<number>;
  #log = "";

  constructor(port: number) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net",
        "main.ts",
        ...["-H", "127.0.0.1", "-p", String(port), "--reuse-port", "--log-level", "info"],
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const listening = Promise.withResolvers<number>();
    this.port = listening.promise;
    // Drained to the end, so that a chatty server never blocks on a full pipe.
    (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        if (this.#log.length < 4096) this.#log += text;
        const match = /listening on \S+:(\d+)/.exec(this.#log);
        if (match) listening.resolve(Number(match[1]));
      }
      listening.reject(new Error(`the server did not start:\n${this.#log}`));
    })();
  }

  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Exited already.
    }
  }

  async exit(): Promise<number> {
    return (await this.#child.status).code;
  }
}

/** Resolves with `promise`, or rejects after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs one swap under load on a free loopback port and resolves with its
 * figures. Both instances are stopped before it resolves.
 *
 * @example
 * ```ts ignore
 * import { upgradeSwap } from "./upgrade_swap.ts";
 * const result = await upgradeSwap({ clients: 6 });
 * console.log(result.attempted, result.failed, result.verified);
 * ```
 */
export async function upgradeSwap(options: SwapOptions = {}): Promise<SwapResult> {
  const { clients = 6, beforeMs = 300, afterMs = 500, maxConnects = 50_000, maxMs = 10_000 } =
    options;
  const old = new Instance(0);
  let fresh: Instance | undefined;
  const result: SwapResult = {
    attempted: 0,
    failed: 0,
    verified: 0,
    mismatched: 0,
    errors: [],
    oldExit: -1,
    migrateReq: migrateReqOn(),
  };
  try {
    const port = await within(old.port, 10_000, "the old instance's start");
    let stop = false;
    const deadline = setTimeout(() => stop = true, maxMs);
    const loop = async (client: number) => {
      for (let n = 0; !stop && result.attempted < maxConnects; n++) {
        result.attempted++;
        const sent = new TextEncoder().encode(`client ${client} echo ${n}\n`);
        let conn: Deno.TcpConn | undefined;
        try {
          conn = await within(
            Deno.connect({ hostname: "127.0.0.1", port }),
            CONNECT_TIMEOUT_MS,
            "connect",
          );
          await conn.write(sent);
          const got = new Uint8Array(sent.length);
          for (let off = 0; off < got.length;) {
            const read = await conn.read(got.subarray(off));
            if (read === null) throw new Error("closed before the whole echo came back");
            off += read;
          }
          if (got.every((byte, i) => byte === sent[i])) result.verified++;
          else result.mismatched++;
        } catch (error) {
          result.failed++;
          if (result.errors.length < 5) {
            result.errors.push(error instanceof Error ? `${error.name}: ${error.message}` : "?");
          }
        } finally {
          try {
            conn?.close();
          } catch {
            // Closed already.
          }
        }
      }
    };
    const loops = Array.from({ length: clients }, (_, i) => loop(i));
    await new Promise((resolve) => setTimeout(resolve, beforeMs));
    fresh = new Instance(port);
    await within(fresh.port, 10_000, "the new instance's start");
    old.signal("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, afterMs));
    stop = true;
    clearTimeout(deadline);
    await Promise.all(loops);
    result.oldExit = await within(old.exit(), 15_000, "the old instance's exit");
    return result;
  } finally {
    old.signal("SIGKILL");
    await old.exit();
    if (fresh !== undefined) {
      fresh.signal("SIGTERM");
      await fresh.exit();
    }
  }
}

/** Sets `net.ipv4.tcp_migrate_req` to `value` and returns the value it had, or throws. */
export function setMigrateReq(value: "0" | "1"): string {
  const before = Deno.readTextFileSync(MIGRATE_REQ_PATH).trim();
  Deno.writeTextFileSync(MIGRATE_REQ_PATH, value);
  return before;
}

const USAGE = `Usage: deno task upgrade-swap [--runs 1] [--clients 6] [--sysctl 0|1]
  [--max-connects 50000] [--max-seconds 10]

Swaps a running instance for a new one on the same port (--reuse-port) under load, and reports the
connects that failed and the echoes verified. --sysctl sets net.ipv4.tcp_migrate_req for the runs
and restores it (root).`;

/** The flags, each checked; a wrong one ends the script with one line, exit 2. */
function swapFlags(args: string[]) {
  const fail = (message: string): never => {
    console.error(`upgrade_swap: ${message}\n${USAGE}`);
    Deno.exit(2);
  };
  let values: Record<string, string | undefined> = {};
  try {
    values = parseArgs({
      args,
      options: {
        clients: { type: "string", default: "6" },
        runs: { type: "string", default: "1" },
        sysctl: { type: "string" },
        "max-connects": { type: "string", default: "50000" },
        "max-seconds": { type: "string", default: "10" },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail(
      error instanceof Error
        ? error.message.replace(/\. To specify a positional.*$/s, "")
        : String(error),
    );
  }
  const whole = (name: string): number => {
    const n = Number(values[name]);
    return Number.isInteger(n) && n > 0
      ? n
      : fail(`invalid --${name} "${values[name]}": expected a whole number above 0`);
  };
  const sysctl = values.sysctl;
  if (sysctl !== undefined && sysctl !== "0" && sysctl !== "1") fail("--sysctl takes 0 or 1");
  return {
    clients: whole("clients"),
    runs: whole("runs"),
    maxConnects: whole("max-connects"),
    maxSeconds: whole("max-seconds"),
    sysctl: sysctl as "0" | "1" | undefined,
  };
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const flags = swapFlags(Deno.args);
  const sysctl = flags.sysctl;
  let restore: string | undefined;
  try {
    if (sysctl !== undefined) restore = setMigrateReq(sysctl);
  } catch (error) {
    console.error(`upgrade_swap: cannot set ${MIGRATE_REQ_PATH}: ${error}`);
    Deno.exit(1);
  }
  let bad = false;
  try {
    for (let run = 1; run <= flags.runs; run++) {
      const r = await upgradeSwap({
        clients: flags.clients,
        maxConnects: flags.maxConnects,
        maxMs: flags.maxSeconds * 1000,
      });
      const sysctlText = r.migrateReq === undefined ? "unknown" : r.migrateReq ? "1" : "0";
      console.log(
        `run ${run}: tcp_migrate_req=${sysctlText}  connects ${r.attempted}  failed ${r.failed}  echoes verified ${r.verified}  mismatched ${r.mismatched}  old instance exit ${r.oldExit}`,
      );
      for (const error of r.errors) console.log(`  e.g. ${error}`);
      if (r.mismatched > 0 || r.oldExit !== 0) bad = true;
    }
  } finally {
    if (restore !== undefined) Deno.writeTextFileSync(MIGRATE_REQ_PATH, restore);
  }
  Deno.exit(bad ? 1 : 0);
}
