/**
 * The churn mode: each slot connects, echoes one message, closes, and starts
 * over, so the figure that matters is connections per second.
 *
 * @module
 */
import { exchange } from "./exchange.ts";
import { answered, failedBy, Link } from "./failures.ts";
import { READ_MAX, type Run, SLOTS } from "./run.ts";

/** Wait before a churn slot retries a failed connect, so it does not spin. */
const RETRY_MS = 10;

/**
 * Runs one churn slot until the run stops. `first`, when a connection, was
 * opened before the clock started together with every other slot's, `firstMs`
 * its connect time: its echo takes the first place in the schedule and is
 * timed as that connect plus the echo, leaving out the wait for the other
 * connects; `null` when that connect failed, `undefined` when the slot
 * connects only now (a ramp). `phase` and `interval` pace an open loop as in
 * pingpong.
 */
export async function churn(
  run: Run,
  first: Deno.Conn | null | undefined,
  firstMs: number,
  index: number,
  phase: number,
  interval: number,
): Promise<void> {
  const buf = new Uint8Array(Math.min(run.size, READ_MAX) + 1);
  const link = new Link();
  let slot = index % SLOTS;
  let due = run.startedAt + phase + (first ? interval : 0);
  let conn = first ?? null;
  let start = performance.now() - firstMs;
  let failedBefore = first === null;
  /** As in pingpong, over all of this slot's connections. */
  let asked = false;
  let fed = false;
  let failed = first === null && !run.stopping;
  while (!run.stopping) {
    if (conn === null) {
      // After a failed connect or a refusal, pause so that the slot does not spin.
      if (failedBefore) await run.until(performance.now() + RETRY_MS);
      if (run.stopping) break;
      start = interval > 0 ? await run.paced(due) : performance.now();
      if (run.stopping) break;
      conn = await run.connect(run.teardown.signal);
      if (conn === null) {
        failedBefore = true;
        failed ||= !run.stopping;
        continue;
      }
      if (interval > 0) due += interval;
    }
    link.clear();
    asked = true;
    const outcome = await exchange(run, conn, link, buf, slot);
    if (answered(outcome)) run.finish(conn);
    else run.release(conn);
    conn = null;
    const done = performance.now();
    if (outcome === "echoed") {
      run.messages++;
      if (!run.stopping) run.perConnection[index]++;
      run.window.record((done - start) * 1000);
    }
    if (answered(outcome)) {
      run.lastEchoAt = done;
      if (!run.stopping) fed = true;
    }
    if (failedBy(outcome)) failed = true;
    failedBefore = outcome === "refused";
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
  }
  if (asked && !fed && !failed) run.starved++;
  if (conn !== null) run.release(conn);
}
