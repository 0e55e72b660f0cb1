/**
 * `bench --workers N`: the load split over N isolates (`worker.ts`), for
 * loads one core cannot generate, and one report of them all: counts and
 * rates summed, latency histograms merged (whole and per second), the
 * per-connection spread over every connection.
 *
 * @module
 */
import type { Measured } from "./engine.ts";
import { Histogram } from "./histogram.ts";
import type { BenchOptions, BenchProgress } from "./options.ts";
import { type BenchReport, latencyOf, reportedOptions } from "./report.ts";
import { type SecondFigures, spreadOf } from "./series.ts";

/** What the main isolate posts to a worker. */
export type ToWorker =
  | { type: "run"; options: Omit<BenchOptions, "signal" | "onProgress"> }
  | { type: "stop" };

/** What a worker posts back. */
export type FromWorker =
  | { type: "progress"; progress: BenchProgress }
  | {
    type: "done";
    report: BenchReport;
    histogram: number[];
    seconds: number[][];
    perConnection: number[];
  }
  | { type: "error"; message: string };

type Done = Extract<FromWorker, { type: "done" }>;

/** The module each worker runs. */
const WORKER_MODULE = new URL("./worker.ts", import.meta.url);

/**
 * Why workers cannot start in this process, as one sentence, or `undefined`
 * when they can: their module must be there (it is not beside the
 * single-file bundle) and readable.
 */
export function workersUnavailable(): string | undefined {
  if (WORKER_MODULE.protocol !== "file:") return undefined;
  const path = decodeURIComponent(WORKER_MODULE.pathname);
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    return `--workers loads ${path} in each worker: run deno with --allow-read`;
  }
  try {
    Deno.statSync(path);
  } catch {
    return `--workers needs the bench's worker module, ${path}, which this build of echo-server does not have: run main.ts from the source`;
  }
  return undefined;
}

/** `n` into `parts` integers as equal as can be, the larger first. */
function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

/**
 * Runs `o` on `workers` workers (at most one per connection) and merges
 * their results. Rejects with the first worker's error, after stopping the
 * others.
 */
export async function measureOnWorkers(o: BenchOptions, workers: number): Promise<Measured> {
  const shares = split(o.connections, Math.min(workers, o.connections));
  const latest: (BenchProgress | undefined)[] = shares.map(() => undefined);
  const spawned: Worker[] = [];
  const onAbort = () => spawned.forEach((w) => w.postMessage({ type: "stop" } satisfies ToWorker));
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const results = await Promise.all(shares.map((connections, i) => {
      const { promise, resolve, reject } = Promise.withResolvers<Done>();
      const worker = new Worker(WORKER_MODULE, {
        type: "module",
        name: `echo-server bench worker ${i + 1}`,
      });
      spawned.push(worker);
      worker.onmessage = (event: MessageEvent<FromWorker>) => {
        const m = event.data;
        if (m.type === "done") resolve(m);
        else if (m.type === "error") reject(new Error(m.message));
        else {
          latest[i] = m.progress;
          // Worker 1's tick speaks for all: each second, the sum of the latest figures.
          if (i === 0) o.onProgress?.(sumProgress(latest));
        }
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        reject(new Error(`bench worker ${i + 1} failed: ${event.message}`));
      };
      const { signal: _signal, onProgress: _onProgress, ...plain } = o;
      const options = {
        ...plain,
        connections,
        rate: o.rate === undefined ? undefined : (o.rate * connections) / o.connections,
      };
      worker.postMessage({ type: "run", options } satisfies ToWorker);
      return promise;
    }));
    return merge(o, results);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    for (const worker of spawned) worker.terminate();
  }
}

function sumProgress(all: readonly (BenchProgress | undefined)[]): BenchProgress {
  const got = all.filter((p) => p !== undefined);
  const sum = (f: (p: BenchProgress) => number) => got.reduce((s, p) => s + f(p), 0);
  return {
    elapsedS: Math.max(...got.map((p) => p.elapsedS)),
    messages: sum((p) => p.messages),
    msgsPerS: sum((p) => p.msgsPerS),
    mbPerS: sum((p) => p.mbPerS),
    // The workers' p99s cannot be merged without their histograms: the worst stands for them.
    p99Us: Math.max(...got.map((p) => p.p99Us)),
    openConnections: sum((p) => p.openConnections),
    connectionsPerS: sum((p) => p.connectionsPerS ?? 0),
    mode: got[0]?.mode,
    errors: sum((p) => p.errors),
    mismatches: sum((p) => p.mismatches),
  };
}

/** One report of the workers' results. */
function merge(o: BenchOptions, results: readonly Done[]): Measured {
  const histogram = new Histogram();
  for (const r of results) histogram.merge(Histogram.fromSparse(r.histogram));
  const perConnection = Uint32Array.from(results.flatMap((r) => r.perConnection));
  const reports = results.map((r) => r.report);
  const sum = (f: (r: BenchReport) => number) => reports.reduce((s, r) => s + f(r), 0);
  const seconds: number[][] = [];
  const series: SecondFigures[] = [];
  const length = Math.max(...results.map((r) => r.seconds.length));
  for (let i = 0; i < length; i++) {
    const h = new Histogram();
    const at = results.filter((r) => i < r.seconds.length);
    for (const r of at) h.merge(Histogram.fromSparse(r.seconds[i]));
    seconds.push(h.toSparse());
    const figures = at.map((r) => r.report.series?.[i]).filter((s) => s !== undefined);
    const add = (f: (s: SecondFigures) => number) => figures.reduce((s, x) => s + f(x), 0);
    series.push({
      t: Math.max(...figures.map((s) => s.t)),
      msgsPerS: add((s) => s.msgsPerS),
      mbPerS: add((s) => s.mbPerS),
      connectionsPerS: add((s) => s.connectionsPerS),
      open: add((s) => s.open),
      errors: add((s) => s.errors),
      p50: h.percentile(50),
      p99: h.percentile(99),
      p99_9: h.percentile(99.9),
      max: h.max,
    });
  }
  const msgsPerS = sum((r) => r.msgsPerS);
  const report: BenchReport = {
    options: reportedOptions(o),
    elapsedS: Math.max(...reports.map((r) => r.elapsedS)),
    messages: sum((r) => r.messages),
    bytesSent: sum((r) => r.bytesSent),
    bytesReceived: sum((r) => r.bytesReceived),
    msgsPerS,
    rateAchievedFraction: o.rate === undefined ? null : msgsPerS / o.rate,
    mbPerS: sum((r) => r.mbPerS),
    connectionsOpened: sum((r) => r.connectionsOpened),
    connectionsFailed: sum((r) => r.connectionsFailed),
    refused: sum((r) => r.refused),
    connectionsPerS: sum((r) => r.connectionsPerS),
    errors: sum((r) => r.errors),
    resets: sum((r) => r.resets),
    mismatches: sum((r) => r.mismatches),
    corrupted: sum((r) => r.corrupted),
    short: sum((r) => r.short),
    timedOut: sum((r) => r.timedOut),
    starved: sum((r) => r.starved),
    firstError: reports.find((r) => r.firstError !== null)?.firstError ?? null,
    interrupted: reports.some((r) => r.interrupted),
    ok: reports.every((r) => r.ok),
    latencyUs: latencyOf(histogram),
    perConnection: spreadOf(perConnection),
    series,
    workers: results.length,
  };
  return { report, histogram, seconds, perConnection };
}
