/**
 * `serve --workers N`: N isolates in Web Workers, each with its own listener
 * on the same port (`reusePort`), sharing one set of admission counts through
 * a SharedArrayBuffer so that the limits stay global.
 *
 * @module
 */
import { Guard, type GuardOptions } from "./guard.ts";
import { logger, type LoggingOptions, setupLogging } from "./log.ts";
import {
  type EchoServer,
  ListenError,
  serve,
  type ServeOptions,
  type ServerStats,
} from "./server.ts";
import { SharedCounts } from "./shared_counts.ts";

/** What each worker needs to start its server: plain data, cloned into the worker. */
export interface WorkerConfig {
  /** Server options; `port` 0 means the first worker picks and the others follow. */
  serve: Omit<ServeOptions, "guard" | "reusePort">;
  /** Admission limits, enforced across all workers together. */
  guard: Omit<GuardOptions, "now" | "shared">;
  /** Log level and format; each line carries the worker's number. */
  logging: LoggingOptions;
}

/** Options for {@linkcode startWorkers}. */
export interface WorkersOptions {
  /** The module that runs {@linkcode workerMain} when started as a worker: main.ts's own URL. */
  entry: string | URL;
  /** How many workers. */
  count: number;
  /** What each worker serves. */
  config: WorkerConfig;
}

type ToWorker =
  | { type: "start"; id: number; config: WorkerConfig; shared: SharedArrayBuffer }
  | { type: "shutdown" };
type FromWorker =
  | { type: "listening"; port: number }
  | { type: "failed"; message: string; listen: boolean }
  | { type: "stopped"; stats: ServerStats };

const log = logger("server");

/**
 * Starts `count` workers serving on one port and resolves once all listen.
 * The result behaves as one {@linkcode EchoServer}: its stats add up the
 * workers', and `shutdown` drains them all. Rejects with a
 * {@linkcode ListenError} when the port cannot be had.
 */
export async function startWorkers(options: WorkersOptions): Promise<EchoServer> {
  const shared = SharedCounts.create();
  const workers: Worker[] = [];
  const stopped: Promise<ServerStats>[] = [];
  const finished = Promise.withResolvers<ServerStats>();
  finished.promise.catch(() => {}); // a caller that never awaits it must not see an unhandled rejection
  let port = options.config.serve.port ?? 8000;
  let shuttingDown = false;

  const fail = (message: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    for (const worker of workers) worker.terminate();
    finished.reject(new Error(message));
  };

  for (let id = 1; id <= options.count; id++) {
    const worker = new Worker(options.entry, { type: "module", name: `echo-server worker ${id}` });
    workers.push(worker);
    const listening = Promise.withResolvers<number>();
    const done = Promise.withResolvers<ServerStats>();
    stopped.push(done.promise);
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "listening") listening.resolve(message.port);
      else if (message.type === "stopped") done.resolve(message.stats);
      else if (message.listen) listening.reject(new ListenError(message.message));
      else fail(`worker ${id}: ${message.message}`);
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      const error = new Error(`worker ${id} crashed: ${event.message}`);
      listening.reject(error);
      fail(error.message);
    };
    const start: ToWorker = {
      type: "start",
      id,
      config: { ...options.config, serve: { ...options.config.serve, port } },
      shared: shared.buffer,
    };
    worker.postMessage(start);
    try {
      // The first worker may have been given port 0: the others join the port it got.
      port = await listening.promise;
    } catch (error) {
      for (const w of workers) w.terminate();
      throw error;
    }
  }
  const hostname = options.config.serve.hostname ?? "0.0.0.0";
  log.info("{count} workers share {hostname} port {port}", {
    count: options.count,
    hostname,
    port,
  });

  const total = (all: ServerStats[]): ServerStats => ({
    open: all.reduce((sum, s) => sum + s.open, 0),
    served: all.reduce((sum, s) => sum + s.served, 0),
    bytesIn: all.reduce((sum, s) => sum + s.bytesIn, 0),
    bytesOut: all.reduce((sum, s) => sum + s.bytesOut, 0),
    refusals: { ...shared.refusals },
  });

  async function shutdown(): Promise<ServerStats> {
    if (!shuttingDown) {
      shuttingDown = true;
      const stop: ToWorker = { type: "shutdown" };
      for (const worker of workers) worker.postMessage(stop);
      const summary = total(await Promise.all(stopped));
      for (const worker of workers) worker.terminate();
      log.info("stopped: served {served} connections, echoed {bytesOut} bytes", { ...summary });
      finished.resolve(summary);
    }
    return await finished.promise;
  }

  return {
    addr: { transport: "tcp", hostname, port },
    finished: finished.promise,
    shutdown,
    // Live per-worker byte counts stay in the workers; the shared counts are what is global.
    stats: () => ({
      open: shared.open,
      served: 0,
      bytesIn: 0,
      bytesOut: 0,
      refusals: { ...shared.refusals },
    }),
    [Symbol.asyncDispose]: async () => {
      await shutdown();
    },
  };
}

/** Tells whether this code runs inside a Web Worker. */
export function inWorker(): boolean {
  // Only a worker's global scope has WorkerGlobalScope; the main isolate's does not.
  const scope =
    (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
  return scope !== undefined && globalThis instanceof scope;
}

/**
 * The worker side: waits for its start message, serves, and on `shutdown`
 * drains and reports its stats. main.ts calls it when started as a worker.
 */
export function workerMain(): void {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
    postMessage(message: FromWorker): void;
    close(): void;
  };
  let server: EchoServer | undefined;
  scope.onmessage = async (event) => {
    const message = event.data;
    if (message.type === "shutdown") {
      const stats = server === undefined ? undefined : await server.shutdown();
      if (stats !== undefined) scope.postMessage({ type: "stopped", stats });
      return;
    }
    await setupLogging({ ...message.config.logging, worker: message.id });
    const guard = new Guard({ ...message.config.guard, shared: SharedCounts.from(message.shared) });
    try {
      server = serve({ ...message.config.serve, guard, reusePort: true });
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      scope.postMessage({ type: "failed", message: text, listen: error instanceof ListenError });
      return;
    }
    server.finished.catch((error: unknown) => {
      scope.postMessage({
        type: "failed",
        message: error instanceof Error ? error.message : String(error),
        listen: false,
      });
    });
    scope.postMessage({ type: "listening", port: server.addr.port });
  };
}
