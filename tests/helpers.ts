/**
 * Shared pieces of the tests: payloads, raw socket exchanges and the CLI run
 * as a real subprocess.
 *
 * @module
 */
import net from "node:net";
import { fileURLToPath } from "node:url";
import { IO_ENGINES, type IoEngine, SERVE_DEFAULTS } from "../server.ts";

/** The project root, where `main.ts` is. */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/**
 * How long a test waits for any one thing (an echo, a close, a log line, an
 * exit, a scrape) before it fails saying what it waited for. Far beyond what
 * anything takes on a busy machine (two busy loops on two cores slow a step
 * to a second or two at worst), far below CI's time limit: a hang costs one
 * failed test, not the run.
 */
export const WAIT_MS = 30_000;

/**
 * Resolves like `promise`, or rejects after `ms` with an error that says
 * what was awaited: `what`, or what `what()` says at the deadline (for a
 * message that tells how far it got). The timer is cleared either way, for
 * the sanitizers; `promise` itself goes on (close its resource to end it:
 * a rejection then is handled here).
 */
export async function within<T>(
  promise: Promise<T>,
  what: string | (() => string),
  ms = WAIT_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const awaited = typeof what === "string" ? what : what();
      reject(new Error(`timed out after ${ms} ms waiting for ${awaited}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Asks `probe` every `everyMs` until it returns something other than
 * `undefined` or `false`, and resolves with that; rejects naming `what` (or
 * what `what()` says then) after `ms`. For states that nothing announces (a
 * log line of HAProxy's, a counter in a server's stats); an event, where
 * there is one, is better.
 */
export async function until<T>(
  what: string | (() => string),
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  ms = WAIT_MS,
  everyMs = 20,
): Promise<T> {
  const deadline = performance.now() + ms;
  while (true) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * A probe for {@linkcode until} that is true once `value()` is above 0 and has
 * stayed the same for `probes` probes in a row: for a flow that stalls.
 */
export function steady(value: () => number, probes = 10): () => boolean {
  let last = -1;
  let same = 0;
  return () => {
    const now = value();
    same = now === last && now > 0 ? same + 1 : 0;
    last = now;
    return same >= probes;
  };
}

/** How many file descriptors the process `pid` holds now (from `/proc/PID/fd`). */
export function descriptorsOf(pid: number): number {
  let count = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) count++;
  return count;
}

/** `conn`'s peer in words, for messages. */
function describePeer(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : addr.transport === "unix" || addr.transport === "unixpacket"
    ? addr.path || "a Unix socket"
    : "the peer";
}

/**
 * The I/O engines that the server's end-to-end tests run over, each test
 * once per engine (see {@linkcode testEngines}): Deno's own sockets, and
 * epoll through libc.
 */
export const ENGINES: typeof IO_ENGINES = IO_ENGINES;

/**
 * The `serve` flags that pick `io`: none for the default engine (so that
 * its tests keep running the command line as users type it), `--io NAME`
 * for another.
 */
export function ioArgs(io: IoEngine): string[] {
  return io === SERVE_DEFAULTS.io ? [] : ["--io", io];
}

/**
 * `permissions` with what a server on `io` needs besides: `--allow-ffi` for
 * epoll, which calls libc; nothing more for Deno's engine.
 */
export function ioPermissions(io: IoEngine, permissions: string[] = ["--allow-net"]): string[] {
  const granted = permissions.includes("--allow-all") || permissions.includes("--allow-ffi");
  return io === "epoll" && !granted ? [...permissions, "--allow-ffi"] : permissions;
}

/**
 * Registers `fn` as one test per engine of {@linkcode ENGINES}, named
 * `name [engine]`, so that `deno test --filter "[epoll]"` runs one engine's.
 */
export function testEngines(
  name: string,
  fn: (io: IoEngine) => Promise<void>,
  options: Omit<Deno.TestDefinition, "name" | "fn"> = {},
): void {
  for (const io of ENGINES) Deno.test({ ...options, name: `${name} [${io}]`, fn: () => fn(io) });
}

/** `n` bytes cycling through every value 0-255, offset by `seed`. */
export function pattern(n: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i + seed * 7) & 0xff;
  return bytes;
}

/** Writes all of `bytes`; fails after `ms` if the peer stops taking them. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array, ms = WAIT_MS): Promise<void> {
  let off = 0;
  await within(
    (async () => {
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    })(),
    () => `${describePeer(conn)} to take ${bytes.length} bytes (${off} taken)`,
    ms,
  );
}

/** Reads exactly `n` bytes, or fewer if the stream ends first; fails after `ms`. */
export async function readN(conn: Deno.Conn, n: number, ms = WAIT_MS): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  await within(
    (async () => {
      while (got < n) {
        const r = await conn.read(out.subarray(got));
        if (r === null) break;
        got += r;
      }
    })(),
    () => `${n} bytes from ${describePeer(conn)} (${got} came)`,
    ms,
  );
  return out.subarray(0, got);
}

/**
 * Resolves once the peer ends the stream; rejects when bytes come instead,
 * or nothing within `ms`. `what` says who was to close it, for the message.
 */
export async function readEnd(conn: Deno.Conn, what: string, ms = WAIT_MS): Promise<void> {
  const n = await within(conn.read(new Uint8Array(1)), `${what} (${describePeer(conn)})`, ms);
  if (n !== null) {
    throw new Error(`${n} byte(s) came from ${describePeer(conn)} instead of ${what}`);
  }
}

/**
 * Reads until the peer closes (`eof`) or resets (`reset`) the connection, and
 * returns everything that came and which way it ended; fails after `ms`.
 */
export async function readUntilGone(
  conn: Deno.Conn,
  ms = WAIT_MS,
): Promise<{ bytes: Uint8Array; end: "eof" | "reset" }> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  let end: "eof" | "reset" = "eof";
  await within(
    (async () => {
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          chunks.push(buffer.slice(0, n));
          total += n;
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
        end = "reset";
      }
    })(),
    () => `${describePeer(conn)} to end the connection (${total} bytes read until then)`,
    ms,
  );
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, off);
    off += chunk.length;
  }
  return { bytes, end };
}

/** Reads until the peer closes, and returns everything read; fails after `ms`, or on a reset. */
export async function readToEnd(conn: Deno.Conn, ms = WAIT_MS): Promise<Uint8Array> {
  const { bytes, end } = await readUntilGone(conn, ms);
  if (end === "reset") {
    throw new Deno.errors.ConnectionReset(
      `${describePeer(conn)} reset the connection after ${bytes.length} bytes`,
    );
  }
  return bytes;
}

/**
 * Sends `text` and resolves with its echo, or `null` when the server closes
 * or resets the connection first (a refusal).
 */
export async function tryEcho(conn: Deno.Conn, text: string): Promise<string | null> {
  const bytes = new TextEncoder().encode(text);
  try {
    await writeAll(conn, bytes);
    const reply = await readN(conn, bytes.length);
    return reply.length === bytes.length ? new TextDecoder().decode(reply) : null;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return null;
    throw error;
  }
}

/** Sends `bytes` over `conn` while reading the echo, and returns what came back. */
export async function exchange(conn: Deno.Conn, bytes: Uint8Array): Promise<Uint8Array> {
  const [, reply] = await Promise.all([writeAll(conn, bytes), readN(conn, bytes.length)]);
  return reply;
}

/** Tells whether two byte arrays are equal, without printing megabytes on failure. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Asserts that nobody serves `addr`: the connection is refused, or, when the
 * kernel had already queued it as the listener closed, reset or ended
 * without an echo.
 */
export async function assertRefused(addr: { hostname: string; port: number }): Promise<void> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: addr.hostname, port: addr.port });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return;
    if (error instanceof Deno.errors.ConnectionReset) return;
    throw error;
  }
  try {
    await conn.write(new Uint8Array([1]));
    const n = await within(
      conn.read(new Uint8Array(1)),
      `${addr.hostname}:${addr.port} to refuse, reset or close a connection`,
    );
    if (n !== null) throw new Error(`${addr.hostname}:${addr.port} still echoes`);
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    conn.close();
  }
}

/** How {@linkcode Cli} starts its process. */
export interface CliOptions {
  /** The module to run instead of `main.ts`. */
  entry?: string;
  /** A program to run with `args` as they are, instead of `deno run`. */
  executable?: string;
  /** `piped` to write to the child's stdin. @default {"null"} */
  stdin?: "piped" | "null";
  /** Deno's permission flags. @default {["--allow-net"]} */
  permissions?: string[];
  /** The I/O engine of the server it starts; not with `executable`. @default {the default engine, no flag} */
  io?: IoEngine;
  /**
   * Kills the process (SIGKILL) if it still runs after this long, so that a
   * server that stops answering fails its test (its sockets close, `waitFor`
   * gives up) instead of hanging the suite. @default {CLI_DEADLINE_MS}
   */
  deadlineMs?: number;
}

/** `serve`'s arguments for a server on a free loopback port that takes PROXY headers from 127.0.0.1. */
export const PROXIED_SERVE_ARGS: readonly string[] = [
  "--host",
  "127.0.0.1",
  "--port",
  "0",
  "--proxy-protocol",
  "--trusted-proxy",
  "127.0.0.1/32",
];

/** How long a {@linkcode Cli} process may run at most, unless told otherwise. */
export const CLI_DEADLINE_MS = 60_000;

/** A `main.ts` subprocess with its stderr collected as it comes. */
export class Cli implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #pump: Promise<void>;
  readonly #stdout: Promise<Uint8Array>;
  /** The command line in words, for messages. */
  readonly #name: string;
  #stderr = "";
  #ended = false;
  #waiters: Array<() => void> = [];

  /**
   * Starts `deno run --allow-net <entry> ...args` in the project root (or
   * with the given permissions instead of `--allow-net`), or
   * `<executable> ...args` for a compiled binary. With `io`, the server runs
   * on that engine: its flags follow `args` (see {@linkcode ioArgs}) and its
   * permission joins the others (see {@linkcode ioPermissions}).
   */
  constructor(args: string[], options: CliOptions = {}) {
    const io = options.io ?? SERVE_DEFAULTS.io;
    const child = new Deno.Command(options.executable ?? Deno.execPath(), {
      args: options.executable !== undefined ? args : [
        "run",
        "--quiet",
        ...ioPermissions(io, options.permissions),
        options.entry ?? "main.ts",
        ...args,
        ...ioArgs(io),
      ],
      cwd: ROOT,
      stdin: options.stdin ?? "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    this.#name = `${options.executable ?? options.entry ?? "main.ts"} ${args.join(" ")}`.trimEnd();
    const deadlineMs = options.deadlineMs ?? CLI_DEADLINE_MS;
    const deadline = setTimeout(() => {
      try {
        child.kill("SIGKILL");
        this.#stderr += `\n[killed by the test: still running after ${deadlineMs} ms]\n`;
      } catch {
        // Exited meanwhile.
      }
    }, deadlineMs);
    // Cleared at the exit, which every test awaits (finished() or disposal): no timer leaks.
    child.status.finally(() => clearTimeout(deadline));
    this.#stdout = new Response(child.stdout).bytes();
    this.#pump = (async () => {
      for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += text;
        for (const wake of this.#waiters.splice(0)) wake();
      }
      // Set before the last wake, so that a woken waitFor sees the end at once.
      this.#ended = true;
      for (const wake of this.#waiters.splice(0)) wake();
    })();
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** The child's stdin (when started with `stdin: "piped"`). */
  get stdin(): WritableStream<Uint8Array> {
    return this.#child.stdin;
  }

  /** Everything written to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Resolves with the first match of `pattern` in stderr, waiting for more
   * output as needed; rejects if stderr ends without a match or after `ms`.
   */
  async waitFor(pattern: RegExp, ms = WAIT_MS): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    while (true) {
      const match = this.#stderr.match(pattern);
      if (match) return match;
      if (this.#ended || Date.now() > deadline) {
        const why = this.#ended ? "ended without" : `did not show within ${ms} ms`;
        throw new Error(`the stderr of ${this.#name} ${why} ${pattern}:\n${this.#stderr}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, deadline - Date.now());
      });
      clearTimeout(timer);
    }
  }

  /** Waits for the `listening on` line and returns the port it names. */
  async port(): Promise<number> {
    const match = await this.waitFor(/listening on \S*:(\d+)/);
    return Number(match[1]);
  }

  /** Sends a signal to the process. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    this.#child.kill(signal);
  }

  /**
   * Waits for the exit; resolves with the code, stdout and all of stderr.
   * After `ms` it kills the process and rejects, saying so.
   */
  async finished(ms = WAIT_MS): Promise<{ code: number; stdout: string; stderr: string }> {
    const { code, bytes, stderr } = await this.finishedBytes(ms);
    return { code, stdout: new TextDecoder().decode(bytes), stderr };
  }

  /**
   * Waits for the exit; resolves with the code, stdout as bytes and all of
   * stderr. After `ms` it kills the process and rejects, saying so.
   */
  async finishedBytes(ms = WAIT_MS): Promise<{ code: number; bytes: Uint8Array; stderr: string }> {
    const exited = Promise.all([this.#child.status, this.#stdout, this.#pump]);
    let timedOut = false;
    try {
      const [status, bytes] = await within(exited, () => {
        timedOut = true;
        return `${this.#name} to exit`;
      }, ms);
      return { code: status.code, bytes, stderr: this.#stderr };
    } catch (error) {
      if (!timedOut) throw error;
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
      await exited.catch(() => {});
      throw new Error(`${(error as Error).message}; killed it. Its stderr:\n${this.#stderr}`);
    }
  }

  /** Kills the process if it still runs and waits for it, so that no test leaks it. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.finished();
  }
}

/** Runs `main.ts` with `args` to completion; with `io`, as {@linkcode Cli} does. */
export async function runCli(
  args: string[],
  options: { entry?: string; stdin?: string; io?: IoEngine; permissions?: string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  await using cli = new Cli(args, {
    entry: options.entry,
    stdin: options.stdin === undefined ? "null" : "piped",
    io: options.io,
    permissions: options.permissions,
  });
  if (options.stdin !== undefined) {
    const writer = cli.stdin.getWriter();
    await within(writer.write(new TextEncoder().encode(options.stdin)), "the child to read stdin");
    await within(writer.close(), "the child's stdin to close");
  }
  return await cli.finished();
}

/**
 * Waits for `child` to exit and collects its output, as `child.output()`
 * does; after `ms` kills it and rejects, naming `what` (the program).
 */
export async function outputOf(
  child: Deno.ChildProcess,
  what: string,
  ms = WAIT_MS,
): Promise<Deno.CommandOutput> {
  const output = child.output();
  let timedOut = false;
  try {
    return await within(output, () => {
      timedOut = true;
      return `${what} to exit`;
    }, ms);
  } catch (error) {
    if (!timedOut) throw error;
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
    await output.catch(() => {});
    throw new Error(`${(error as Error).message}; killed it`);
  }
}

/**
 * `new Deno.Command(program, options).output()`, with the same defaults
 * (stdin null, stdout and stderr piped), that kills the program and rejects
 * after `ms`, naming its command line.
 */
export async function commandOutput(
  program: string,
  options: Deno.CommandOptions = {},
  ms = WAIT_MS,
): Promise<Deno.CommandOutput> {
  const child = new Deno.Command(program, {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).spawn();
  return await outputOf(child, [program, ...options.args ?? []].join(" "), ms);
}

/**
 * GETs `url` and reads the whole answer; aborts the request and rejects
 * after `ms`, naming the URL.
 */
export async function httpGet(
  url: string,
  ms = WAIT_MS,
): Promise<{ status: number; text: string; type: string }> {
  const signal = AbortSignal.timeout(ms);
  try {
    const response = await fetch(url, { signal });
    return {
      status: response.status,
      text: await response.text(),
      type: response.headers.get("content-type") ?? "",
    };
  } catch (error) {
    if (!signal.aborted) throw error;
    throw new Error(`timed out after ${ms} ms waiting for GET ${url}`, { cause: error });
  }
}

/** A TCP client bound to a chosen local address, for per-address limits. */
export interface BoundClient {
  /**
   * Sends `text` and resolves with the echo, or `null` when the server closed
   * or reset instead; rejects when neither comes within {@linkcode WAIT_MS}.
   */
  echo(text: string): Promise<string | null>;
  /**
   * Resolves with everything received once the server closes the connection;
   * rejects when it does not within {@linkcode WAIT_MS} of being asked.
   */
  readonly closed: Promise<string>;
  /** Closes the connection. */
  close(): void;
}

/**
 * Connects to `127.0.0.1:port` from `localAddress` (any 127.x address), which
 * `Deno.connect` cannot choose; node:net can. Rejects when the connection is
 * not made within `ms`.
 */
export function connectFrom(
  localAddress: string,
  port: number,
  ms = WAIT_MS,
): Promise<BoundClient> {
  const from = `the connection from ${localAddress} to 127.0.0.1:${port}`;
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: "127.0.0.1", port, localAddress });
    let received = "";
    let wanted = 0;
    let onData: (() => void) | undefined;
    const closed = new Promise<string>((done) => socket.on("close", () => done(received)));
    const failed = (error: Error) => {
      clearTimeout(timer);
      // Reset as it connected (a server that refuses by resetting, as `--fault refuse` does, can
      // be faster than node's connect event): a connection that ended before any echo.
      if ("code" in error && error.code === "ECONNRESET") {
        return resolve({
          echo: () => Promise.resolve(null),
          closed: Promise.resolve(""),
          close: () => socket.destroy(),
        });
      }
      reject(error);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      failed(new Error(`timed out after ${ms} ms waiting for ${from}`));
    }, ms);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      received += chunk;
      onData?.();
    });
    socket.on("error", () => {}); // a reset shows as "close"; the tests look at what came back
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", failed);
      resolve({
        echo: (text) =>
          within(
            new Promise((done) => {
              const start = wanted;
              wanted += text.length;
              onData = () => {
                if (received.length >= wanted) done(received.slice(start, wanted));
              };
              closed.then(() =>
                done(received.length >= wanted ? received.slice(start, wanted) : null)
              );
              socket.write(text, "latin1");
            }),
            () => `the echo of ${text.length} bytes on ${from} (${received.length} came in all)`,
          ),
        // A getter: the deadline runs from when a test waits for the close, not from the connect.
        get closed() {
          return within(closed, `the server to close ${from}`);
        },
        close: () => socket.destroy(),
      });
    });
    socket.once("error", failed);
  });
}

/** A loopback listener whose accept queue is full, so that new connections hang. */
export interface FullListener extends Disposable {
  /** The port that no longer completes handshakes. */
  port: number;
}

/**
 * How many connections wait in the accept queue of the listener on
 * 127.0.0.1:`port`, as Linux counts them (a listening socket's `rx_queue` in
 * `/proc/net/tcp`); undefined where that cannot be read.
 */
function acceptQueue(port: number): number | undefined {
  let table: string;
  try {
    table = Deno.readTextFileSync("/proc/net/tcp");
  } catch {
    return undefined;
  }
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of table.split("\n").slice(1)) {
    const [, address, , state, queues] = line.trim().split(/\s+/);
    if (address === local && state === "0A") return parseInt(queues.split(":")[1], 16);
  }
  return undefined;
}

/**
 * Opens a listener on 127.0.0.1 that never accepts, and connects to it until
 * its backlog is full: Linux then drops further handshakes, so a connect
 * there waits until its own timeout, without any traffic leaving the machine.
 *
 * A connect that times out is not proof enough on a busy machine (the test's
 * event loop may just not have run in time): the queue is full when the
 * kernel did not queue that connection either, as `/proc/net/tcp` tells.
 */
export async function fillBacklog(): Promise<FullListener> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const queued: Deno.Conn[] = [];
  const release = () => {
    for (const conn of queued) conn.close();
    listener.close();
  };
  // Connections in the kernel's accept queue: ours, and those whose connect timed out here
  // although the kernel had completed them.
  let inQueue = 0;
  // Deno's backlog is a few hundred; the bound keeps a system that never drops from looping on.
  for (let i = 0; i < 5000; i++) {
    try {
      queued.push(
        await Deno.connect({ hostname: "127.0.0.1", port, signal: AbortSignal.timeout(100) }),
      );
      inQueue++;
    } catch (error) {
      if (!(error instanceof DOMException && error.name === "TimeoutError")) {
        release();
        throw error;
      }
      const now = acceptQueue(port);
      if (now === undefined || now <= inQueue) return { port, [Symbol.dispose]: release };
      inQueue = now; // queued by the kernel after all: not full yet
    }
  }
  release();
  throw new Error(`the backlog of 127.0.0.1:${port} never filled`);
}
