/**
 * Starts the project's server (main.ts) as a subprocess on a free loopback
 * port, for the benchmark and measuring scripts.
 *
 * @module
 */

/** A running main.ts server. */
export interface ProjectServer extends AsyncDisposable {
  /** Its process id (for `/proc/PID/…`). */
  pid: number;
  /** The port it listens on. */
  port: number;
}

/** How long the server may take to accept its first connection, and then to stop. */
const START_STOP_MS = 30_000;

/** A port free on 127.0.0.1 a moment ago. */
function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Starts `main.ts -H 127.0.0.1 -p PORT ...flags` on a port chosen here (so
 * that any `--log-level` will do) and resolves once it accepts a connection,
 * within 30 s. Its log is drained in the background (so that it never
 * blocks on a full pipe), its tail kept for errors; disposing sends SIGTERM
 * and waits for the exit (SIGKILL after 30 s), saying so when it was not 0.
 *
 * @throws {Error} when the server exits or does not accept in time, with the end of its log.
 *
 * @example
 * ```ts ignore
 * import { startProjectServer } from "./project_server.ts";
 * await using server = await startProjectServer(["--workers", "2"]);
 * console.log(server.port);
 * ```
 */
export async function startProjectServer(flags: string[] = []): Promise<ProjectServer> {
  // The epoll engine calls libc: it gets the permission it needs, and only it.
  const epoll = flags.some((flag, i) =>
    flag === "--io=epoll" || (flag === "--io" && flags[i + 1] === "epoll")
  );
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net",
      "--allow-read",
      ...(epoll ? ["--allow-ffi"] : []),
      "main.ts",
      ...["-H", "127.0.0.1", "-p", String(port), ...flags],
    ],
    cwd: new URL("../", import.meta.url),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const draining = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      tail = (tail + text).slice(-2000);
    }
  })();
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = performance.now() + START_STOP_MS;
  while (true) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (exited || performance.now() > deadline) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited already.
        }
        await draining;
        throw new Error(`the server did not start on port ${port}:\n${tail}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    pid: child.pid,
    port,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), START_STOP_MS);
      const { code } = await child.status;
      clearTimeout(killer);
      await draining;
      if (code !== 0) console.error(`the server exited ${code}:\n${tail}`);
    },
  };
}
