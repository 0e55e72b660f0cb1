/**
 * `serve --workers N`: N isolates in Web Workers, each with its own listener
 * on the same port (`reusePort`), sharing one set of admission counts through
 * a SharedArrayBuffer so that the limits stay global.
 *
 * @module
 */
import { Guard, type GuardOptions } from "../admission/guard.ts";
import { checkGuardOptions } from "../admission/guard_options.ts";
import { SharedCounts } from "../admission/shared_counts.ts";
import { logger, type LoggingOptions, setupLogging, writeLogLines } from "../log/log.ts";
import { ListenError, type TlsMaterial } from "../transport/contract.ts";
import { checkTlsMaterial } from "../transport/tls_material.ts";
import { listenTcp } from "../transport/tcp.ts";
import {
  type EchoServer,
  type LiveOptions,
  serve,
  SERVE_DEFAULTS,
  type ServeOptions,
} from "./serve.ts";
import { parseFaultSpecs } from "../fault/spec.ts";
import { type ServerStats, summary as describeSummary, total } from "./stats.ts";

/** Each worker is a whole isolate (tens of MiB); more than this helps no machine. */
export const MAX_WORKERS = 64;

/** What each worker needs to start its server: plain data, cloned into the worker. */
export interface WorkerConfig {
  /** Server options; `port` 0 means the first worker picks and the others follow. */
  serve: Omit<ServeOptions, "guard" | "reusePort" | "listener">;
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
  /**
   * Share the port with other processes too (`--reuse-port`, for an
   * upgrade): the first listen, which otherwise refuses a port that anyone
   * holds, then allows one held with SO_REUSEPORT by the same user.
   * @default {false}
   */
  reusePort?: boolean;
}

/** The workers, run as one {@linkcode EchoServer}, whose log set-up can also be changed. */
export interface WorkerPool extends EchoServer {
  /** Sets up every worker's logging again, e.g. a new level on reload. */
  setLogging(logging: LoggingOptions): void;
  /**
   * Asks every worker for its counts and adds them up (for metrics); rejects
   * when a worker does not answer within `timeoutMs`.
   */
  collectStats(timeoutMs?: number): Promise<ServerStats>;
}

/** How long a metrics scrape waits for the workers' counts. */
const SCRAPE_TIMEOUT_MS = 2000;

type ToWorker =
  | { type: "start"; id: number; config: WorkerConfig; shared: SharedArrayBuffer }
  | { type: "shutdown" }
  | { type: "reconfigure"; options: LiveOptions }
  | { type: "tls"; material: TlsMaterial }
  | { type: "faults"; specs: readonly string[] }
  | { type: "logging"; logging: LoggingOptions }
  | { type: "stats"; seq: number };
type FromWorker =
  | { type: "log"; text: string; lines: number }
  | { type: "listening"; port: number }
  | { type: "failed"; message: string; listen: boolean }
  | { type: "stopped"; stats: ServerStats }
  | { type: "stats"; seq: number; stats: ServerStats | undefined };

const log = logger("server");

/**
 * Starts `count` workers serving on one port and resolves once all listen.
 * The result behaves as one {@linkcode EchoServer}: `shutdown` drains every
 * worker and its summary adds up theirs, each of which counts only its own
 * refusals; `stats()` gives the shared counts (open connections, refusals),
 * while served and byte counts come with the summary. `finished` rejects if
 * a worker dies. Rejects with a {@linkcode ListenError} when the port cannot
 * be had.
 */
export async function startWorkers(options: WorkersOptions): Promise<WorkerPool> {
  const hostname = options.config.serve.hostname ?? SERVE_DEFAULTS.hostname;
  // Listening once without reusePort first makes a port that anyone else
  // holds (even another echo-server with workers) a clear error instead of
  // a silently shared port, and turns port 0 into the one the workers share.
  const port = probePort(
    hostname,
    options.config.serve.port ?? SERVE_DEFAULTS.port,
    options.reusePort ?? false,
  );
  const shared = SharedCounts.create();
  const workers: Worker[] = [];
  const listening: PromiseWithResolvers<void>[] = [];
  const stopped: PromiseWithResolvers<ServerStats>[] = [];
  const finished = Promise.withResolvers<ServerStats>();
  finished.promise.catch(() => {}); // a caller that never awaits it must not see an unhandled rejection
  let settled = false;
  /** Scrapes waiting for the workers' counts, by number: takes each worker's answer. */
  const scrapes = new Map<number, (stats: ServerStats | undefined) => void>();
  let lastScrape = 0;

  /** A worker died or its server failed: stop them all, and let nobody wait for them. */
  const fail = (error: Error) => {
    if (settled) return;
    settled = true;
    for (const worker of workers) worker.terminate();
    for (const pending of [...listening, ...stopped]) pending.reject(error);
    finished.reject(error);
  };

  for (let id = 1; id <= options.count; id++) {
    const worker = new Worker(options.entry, { type: "module", name: `echo-server worker ${id}` });
    const ready = Promise.withResolvers<void>();
    const done = Promise.withResolvers<ServerStats>();
    ready.promise.catch(() => {});
    done.promise.catch(() => {});
    workers.push(worker);
    listening.push(ready);
    stopped.push(done);
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      // The workers' log lines are written by this thread: one writer keeps them whole and in order.
      if (message.type === "log") writeLogLines(message.text, message.lines);
      else if (message.type === "listening") ready.resolve();
      else if (message.type === "stopped") done.resolve(message.stats);
      else if (message.type === "stats") scrapes.get(message.seq)?.(message.stats);
      else if (message.listen) fail(new ListenError(message.message));
      else fail(new Error(`worker ${id}: ${message.message}`));
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      fail(new Error(`worker ${id} crashed: ${event.message}`));
    };
    const start: ToWorker = {
      type: "start",
      id,
      config: {
        ...options.config,
        // Worker 1 alone echoes UDP: a reply limit per source stays one exact limit.
        serve: {
          ...options.config.serve,
          hostname,
          port,
          udp: id === 1 && options.config.serve.udp,
        },
      },
      shared: shared.buffer,
    };
    worker.postMessage(start);
  }
  await Promise.all(listening.map((ready) => ready.promise));
  log.info("{count} workers share {hostname} port {port}", {
    count: options.count,
    hostname,
    port,
  });

  async function shutdown(): Promise<ServerStats> {
    if (!settled) {
      settled = true;
      const stop: ToWorker = { type: "shutdown" };
      for (const worker of workers) worker.postMessage(stop);
      try {
        const summary = total(await Promise.all(stopped.map((done) => done.promise)));
        log.info("stopped: {summary}", { ...summary, summary: describeSummary(summary) });
        finished.resolve(summary);
      } catch (error) {
        finished.reject(error);
      } finally {
        for (const worker of workers) worker.terminate();
      }
    }
    return await finished.promise;
  }

  async function collectStats(timeoutMs: number): Promise<ServerStats> {
    const seq = ++lastScrape;
    const answers: ServerStats[] = [];
    let replies = 0;
    const all = Promise.withResolvers<void>();
    scrapes.set(seq, (stats) => {
      if (stats !== undefined) answers.push(stats);
      if (++replies === workers.length) all.resolve();
    });
    const timer = setTimeout(() =>
      all.reject(
        new Error(
          `${workers.length - replies} of ${workers.length} workers did not report in time`,
        ),
      ), timeoutMs);
    try {
      const ask: ToWorker = { type: "stats", seq };
      for (const worker of workers) worker.postMessage(ask);
      await all.promise;
      return total(answers);
    } finally {
      clearTimeout(timer);
      scrapes.delete(seq);
    }
  }

  return {
    addr: { transport: "tcp", hostname, port },
    finished: finished.promise,
    shutdown,
    stats: () => ({
      open: shared.open,
      served: 0,
      bytesIn: 0,
      bytesOut: 0,
      refusals: shared.refusals,
    }),
    reconfigure: (live) => {
      // Checked here, so that a bad limit changes no worker rather than fail in each.
      checkGuardOptions(live.guard);
      if (settled) return;
      const message: ToWorker = { type: "reconfigure", options: live };
      for (const worker of workers) worker.postMessage(message);
    },
    updateTls: (material) => {
      if (options.config.serve.tls === undefined) throw new Error("the server does not serve TLS");
      // Checked here, so that a bad pair changes no worker rather than fail in each.
      const problem = checkTlsMaterial(material);
      if (problem !== undefined) throw new Error(problem.text);
      if (settled) return;
      const message: ToWorker = { type: "tls", material };
      for (const worker of workers) worker.postMessage(message);
    },
    reconfigureFaults: (specs) => {
      // Read here, so that a bad spec changes no worker rather than fail in each.
      parseFaultSpecs(specs);
      if (settled) return;
      const message: ToWorker = { type: "faults", specs };
      for (const worker of workers) worker.postMessage(message);
    },
    collectStats: (timeoutMs = SCRAPE_TIMEOUT_MS) => collectStats(timeoutMs),
    setLogging: (logging) => {
      if (settled) return;
      const message: ToWorker = { type: "logging", logging };
      for (const worker of workers) worker.postMessage(message);
    },
    [Symbol.asyncDispose]: async () => {
      await shutdown();
    },
  };
}

function probePort(hostname: string, port: number, reusePort: boolean): number {
  const probe = listenTcp({ hostname, port, reusePort });
  probe.close();
  return probe.addr.port;
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
  let id: number | undefined;
  const forwardLogs = (text: string, lines: number) =>
    scope.postMessage({ type: "log", text, lines });
  // Report a crash to the main thread as one line, instead of a stack trace on stderr.
  const report = (error: unknown) =>
    scope.postMessage({
      type: "failed",
      message: error instanceof Error ? error.message : String(error),
      listen: false,
    });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    report(event.error);
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    report(event.reason);
  });
  scope.onmessage = async (event) => {
    const message = event.data;
    if (message.type === "shutdown") {
      const stats = server === undefined ? undefined : await server.shutdown();
      if (stats !== undefined) scope.postMessage({ type: "stopped", stats });
      return;
    }
    if (message.type === "stats") {
      scope.postMessage({ type: "stats", seq: message.seq, stats: server?.stats() });
      return;
    }
    if (message.type === "reconfigure") {
      server?.reconfigure(message.options);
      log.info("reloaded limits applied");
      return;
    }
    if (message.type === "tls") {
      try {
        server?.updateTls(message.material);
        log.info("reloaded certificate in use");
      } catch (error) {
        // Checked by the main thread already: only this worker's listener can say no now.
        log.error("certificate not reloaded: {reason}", {
          reason: error instanceof Error ? error.message : String(error),
        });
      }
      return;
    }
    if (message.type === "faults") return server?.reconfigureFaults?.(message.specs);
    if (message.type === "logging") {
      await setupLogging({ ...message.logging, worker: id }, forwardLogs);
      return;
    }
    id = message.id;
    await setupLogging({ ...message.config.logging, worker: message.id }, forwardLogs);
    const guard = new Guard({ ...message.config.guard, shared: new SharedCounts(message.shared) });
    try {
      server = serve({ ...message.config.serve, guard, reusePort: true });
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      scope.postMessage({ type: "failed", message: text, listen: error instanceof ListenError });
      return;
    }
    server.finished.catch(report);
    scope.postMessage({ type: "listening", port: server.addr.port });
  };
}
