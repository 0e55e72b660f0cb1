/**
 * Logging never stops serving: with the server's stderr going to a pipe that
 * nobody reads (a hung log shipper), echo goes on, the lines beyond the log
 * buffer are dropped, and one line says how many once the pipe is read again.
 *
 * How fast the machine is does not matter: the load goes on (bounded in
 * connections and time) until the server's `echo_log_lines_dropped_total`,
 * scraped from `--metrics` (which does not go through stderr), says that
 * lines were dropped; the queue is full from then on, for as long as nobody
 * reads.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  httpGet,
  ioArgs,
  ioPermissions,
  readN,
  ROOT,
  testEngines,
  tryEcho,
  until,
  WAIT_MS,
  within,
  writeAll,
} from "./helpers.ts";
import type { IoEngine } from "../server.ts";

/** The most the load may take to fill the log queue: a few seconds on a busy 2-core machine. */
const LOAD_MS = 60_000;
/** Churned connections at most, in all: about a thousand fill the queue. */
const MAX_CONNECTIONS = 100_000;
/**
 * Round trips once the queue is full, on the steady connection and on as many
 * new ones, each awaited with a deadline.
 */
const ECHOES_WHILE_FULL = 20;

/**
 * Churning clients: each connects, echoes a few bytes one at a time and
 * closes, while `go()` says so and fewer than {@linkcode MAX_CONNECTIONS}
 * were made; resolves with how many it made.
 */
async function churn(port: number, go: () => boolean, made: { count: number }): Promise<number> {
  let connections = 0;
  const byte = new Uint8Array([120]);
  while (go() && made.count < MAX_CONNECTIONS) {
    made.count++;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      continue; // a full backlog under churn is not what this test is about
    }
    try {
      conn.setNoDelay(true);
      // Each round trip is one debug line on the server: many lines, little work.
      for (let i = 0; i < 20; i++) {
        await writeAll(conn, byte);
        if ((await readN(conn, 1)).length === 0) break;
      }
      connections++;
    } catch (error) {
      // A reset under churn: the next connection carries on. A deadline is not that.
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    } finally {
      conn.close();
    }
  }
  return connections;
}

/** A well-behaved client: one message every few ms, each echo checked, while `go()` says so. */
async function steady(conn: Deno.Conn, go: () => boolean): Promise<number> {
  let count = 0;
  while (go()) {
    equal(await tryEcho(conn, `steady ${count}\n`), `steady ${count}\n`);
    count++;
    await new Promise((resolve) => setTimeout(resolve, 5)); // its pace, not a wait for anything
  }
  return count;
}

/** The value of the sample `name` (without labels) in exposition text, if any. */
function sample(text: string, name: string): number | undefined {
  const found = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return found === null ? undefined : Number(found[1]);
}

/** A child's stderr, read only when asked to: in between, nobody reads the pipe. */
class StallableStderr {
  readonly #reader: ReadableStreamDefaultReader<string>;
  text = "";
  #ended = false;

  constructor(stderr: ReadableStream<Uint8Array>) {
    this.#reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Reads until `pattern` shows (or, without one, to the end); fails after `ms`, saying so. */
  async readUntil(what: string, pattern?: RegExp, ms = WAIT_MS): Promise<void> {
    const deadline = performance.now() + ms;
    while (pattern === undefined || !pattern.test(this.text)) {
      if (this.#ended) {
        if (pattern === undefined) return;
        throw new Error(`stderr ended before ${what}:\n${this.text}`);
      }
      const { value, done } = await within(
        this.#reader.read(),
        () => `${what} on stderr; it ends with:\n${this.text.slice(-2000)}`,
        Math.max(0, deadline - performance.now()),
      );
      if (done) this.#ended = true;
      else this.text += value;
    }
  }

  /** Stops reading for good, ending a read left pending. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/**
 * Serves on engine `io` with `flags` and debug logs into a pipe that stalls,
 * under load; see the module doc.
 */
async function echoWhileStderrStalls(io: IoEngine, flags: string[]): Promise<void> {
  const workers = flags.includes("--workers");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...ioPermissions(io, ["--allow-net", "--allow-read"]),
      "main.ts",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--metrics",
      "127.0.0.1:0",
      "--log-level",
      "debug",
      ...flags,
      ...ioArgs(io),
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new StallableStderr(child.stderr);
  try {
    // With workers, every worker listens once the main thread says they share the port.
    const ready = workers ? /workers share \S+ port (\d+)/ : /listening on \S+:(\d+)/;
    const metricsLine = /metrics on (http:\/\/\S+)/;
    await stderr.readUntil("the server to listen", ready);
    await stderr.readUntil("the metrics endpoint", metricsLine);
    const port = Number(ready.exec(stderr.text)?.[1]);
    const metrics = `${metricsLine.exec(stderr.text)?.[1]}/metrics`;
    const dropped = async () => {
      const scrape = await httpGet(metrics);
      // 503: a worker did not answer the scrape in time (a busy machine); ask again.
      return scrape.status === 200
        ? sample(scrape.text, "echo_log_lines_dropped_total")
        : undefined;
    };

    // From here on nobody reads the pipe: it fills (64 KiB), then the log queue does.
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    let loading = true;
    const made = { count: 0 };
    const started = performance.now();
    const steadying = steady(conn, () => loading);
    const churning = Array.from({ length: 20 }, () => churn(port, () => loading, made));
    let droppedWhileStalled = 0;
    try {
      droppedWhileStalled = await until(
        () =>
          `echo_log_lines_dropped_total above 0 (the log queue full) after ${made.count} ` +
          "churned connections",
        async () => {
          const count = await dropped();
          if (count !== undefined && count > 0) return count;
          if (made.count >= MAX_CONNECTIONS) {
            throw new Error(`${made.count} churned connections and no log line dropped`);
          }
          return undefined;
        },
        LOAD_MS,
        100,
      );
    } finally {
      loading = false;
      // Each of their steps has a deadline: the clients end soon after they are told to.
      await Promise.allSettled([steadying, ...churning]);
    }
    const [steadyEchoes, ...churned] = await Promise.all([steadying, ...churning]);
    const connections = churned.reduce((sum, n) => sum + n, 0);
    const loadMs = performance.now() - started;
    ok(steadyEchoes > 0, `no steady echo during ${loadMs.toFixed(0)} ms of load`);

    // The queue is full and stderr still unread: the echo goes on, every one of these in time,
    // on the open connection and on new ones (which the kernel spreads over the workers).
    for (let i = 0; i < ECHOES_WHILE_FULL; i++) {
      equal(await tryEcho(conn, `while full ${i}\n`), `while full ${i}\n`);
      using fresh = await Deno.connect({ hostname: "127.0.0.1", port });
      equal(await tryEcho(fresh, `new while full ${i}\n`), `new while full ${i}\n`);
    }
    ok(
      (await dropped() ?? 0) >= droppedWhileStalled,
      "echo_log_lines_dropped_total went down",
    );
    conn.close();

    // Reading again: the queued lines come out, then the report of the lost ones.
    const report = /(\d+) log lines dropped: stderr was not being read/g;
    await stderr.readUntil(
      `the "log lines dropped" line (${droppedWhileStalled} dropped after ${connections} ` +
        `churned connections in ${loadMs.toFixed(0)} ms)`,
      /log lines dropped: stderr was not being read\n/,
    );
    const reported = () =>
      [...stderr.text.matchAll(report)].reduce((sum, m) => sum + Number(m[1]), 0);
    // The load is over: no line is dropped after the report, which counts every one before it.
    equal(await dropped(), reported(), "the reported count is the metric's");
    child.kill("SIGTERM");
    await stderr.readUntil("the end of stderr, as the server exits"); // to the end
    match(stderr.text, /INFO {2}server: stopped: /);
    // Every line whole: none cut short or mixed with another's, workers' lines included.
    for (const line of stderr.text.trimEnd().split("\n")) {
      match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO |WARN |ERROR) (w\d )?[a-z]+: /);
    }
    match(stderr.text, /WARN {2}log: \d+ log lines dropped/);
    ok(reported() >= droppedWhileStalled, `reported ${reported()} of ${droppedWhileStalled}`);
    equal((await within(child.status, "the server to exit after SIGTERM")).code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await stderr.cancel();
    await child.status;
  }
}

testEngines(
  "a stalled stderr reader does not stop the echo; dropped lines are counted and reported",
  (io) => echoWhileStderrStalls(io, []),
);

testEngines(
  "with --workers 2, a stalled stderr reader stops no worker's echo",
  (io) => echoWhileStderrStalls(io, ["--workers", "2"]),
);
