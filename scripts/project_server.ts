/**
 * Starts the project's server (main.ts) as a subprocess on a free loopback
 * port, for the benchmark scripts.
 *
 * @module
 */

/** A running main.ts server. */
export interface ProjectServer extends AsyncDisposable {
  /** The port it listens on. */
  port: number;
}

/**
 * Starts `main.ts -H 127.0.0.1 -p 0 ...flags` and resolves once its
 * `listening on` line names the port. Its log is drained in the background
 * (so that it never blocks on a full pipe); disposing sends SIGTERM and
 * waits for the exit.
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
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net",
      "--allow-read",
      ...(epoll ? ["--allow-ffi"] : []),
      "main.ts",
      ...["-H", "127.0.0.1", "-p", "0", ...flags],
    ],
    cwd: new URL("../", import.meta.url),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`the server did not start:\n${log}`);
    log += value;
    port = Number(/listening on \S+:(\d+)/.exec(log)?.[1] ?? 0);
  }
  const draining = (async () => {
    while (!(await lines.read()).done);
  })();
  return {
    port,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await draining;
    },
  };
}
