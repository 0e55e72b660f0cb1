/**
 * The load on Deno's own sockets (`io: "deno"`): a `Promise` loop per
 * connection (`pingpong.ts`, `stream.ts`, `churn.ts`).
 *
 * @module
 */
import { churn } from "./churn.ts";
import type { BenchOptions } from "./options.ts";
import { pingpong } from "./pingpong.ts";
import { benchTarget } from "./report.ts";
import type { Run } from "./run.ts";
import type { Timer } from "./schedule.ts";
import { stream } from "./stream.ts";

/**
 * How long the first connections may take before the run gives up on them:
 * the duration, within 1–10 s.
 */
export const CONNECT_TIMEOUT_MIN_MS = 1_000;
/** See {@linkcode CONNECT_TIMEOUT_MIN_MS}. */
export const CONNECT_TIMEOUT_MAX_MS = 10_000;

/** When the measured part starts and ends: the engine's deadline, warm-up and series. */
export interface Clock {
  /** The load begins now (sets `run.startedAt`). */
  start(): void;
}

/**
 * Runs the load of `o` on Deno's sockets until the run stops and the echoes
 * in flight are drained (or their time is up). Without a ramp every
 * connection is opened before the clock starts; with one, connection `i`
 * opens at `i / n` of the ramp after it and starts at once.
 */
export async function loadDeno(run: Run, o: BenchOptions, clock: Clock): Promise<void> {
  const ramp = o.rampMs ?? 0;
  const n = o.connections;
  // Latency is measured per connection from its scheduled send time; with no
  // rate the interval is 0 and each message goes as soon as the last came back.
  const interval = o.rate === undefined ? 0 : (1000 * n) / o.rate;
  const phaseOf = (i: number) => Math.max(i * interval / n, (i * ramp) / n);
  const loop = (c: Deno.Conn | null, i: number, dialMs: number): Promise<void> => {
    if (o.mode === "churn") return churn(run, c, dialMs, i, phaseOf(i), interval);
    if (c === null) return Promise.resolve();
    if (o.mode === "stream") return stream(run, c, i);
    return pingpong(run, c, i, phaseOf(i), interval);
  };
  let loops: Promise<void>[];
  if (ramp > 0) {
    clock.start();
    if (o.mode === "pingpong") run.fairness.start();
    const t0 = run.startedAt;
    loops = Array.from({ length: n }, async (_, i) => {
      await run.until(t0 + (i * ramp) / n);
      if (run.stopping) return;
      if (o.mode === "churn") return await churn(run, undefined, 0, i, phaseOf(i), interval);
      const conn = await run.connect(run.teardown.signal);
      await loop(conn, i, 0);
    });
  } else {
    loops = await dialAll(run, o).then(({ dialed, dialMs }) => {
      clock.start();
      if (o.mode === "pingpong") run.fairness.start();
      return dialed.map((c, i) => loop(c, i, dialMs[i]));
    });
  }
  const all = Promise.all(loops);
  try {
    await Promise.race([all, run.stopped]);
    run.stop();
    // Give in-flight echoes a bounded time to come back; what is still missing
    // then is a short echo.
    let drain: Timer | undefined;
    const drained = new Promise<void>((resolve) => {
      drain = setTimeout(resolve, run.drainMs);
    });
    await Promise.race([all, drained]);
    clearTimeout(drain);
  } finally {
    run.fairness.stop();
    run.closeAll();
    await all;
    await run.ended();
  }
}

/**
 * Opens every connection before the clock starts. Rejects with `cannot
 * connect to …` when not one could be (refusals aside, which are counted).
 */
async function dialAll(
  run: Run,
  o: BenchOptions,
): Promise<{ dialed: (Deno.Conn | null)[]; dialMs: Float64Array }> {
  const timeout = Math.min(CONNECT_TIMEOUT_MAX_MS, Math.max(CONNECT_TIMEOUT_MIN_MS, o.durationMs));
  const dialTimer = setTimeout(
    () => run.dialing.abort(new Error(`timed out after ${timeout / 1000} s`)),
    timeout,
  );
  // How long each first connect took: churn times its first echo by it.
  const dialMs = new Float64Array(o.connections);
  const dialed = await Promise.all(
    Array.from({ length: o.connections }, async (_, i) => {
      const t = performance.now();
      const conn = await run.connect(run.dialing.signal);
      dialMs[i] = performance.now() - t;
      return conn;
    }),
  );
  clearTimeout(dialTimer);
  // Not one connected (refusals aside, which the report counts): nothing to load.
  if (dialed.every((c) => c === null) && run.refused === 0 && !run.stopping) {
    throw new Error(`cannot connect to ${benchTarget(o)}: ${run.firstError ?? "no connection"}`);
  }
  return { dialed, dialMs };
}
