/**
 * The pingpong mode: each connection sends a message, waits for its whole
 * echo, verifies it and sends the next.
 *
 * @module
 */
import { finishEcho } from "./exchange.ts";
import { answered, failedBy, Link, lost, type Outcome } from "./failures.ts";
import { READ_MAX, type Run, SLOTS } from "./run.ts";

/**
 * Runs one pingpong connection until the run stops. Closed loop (`interval`
 * 0): the next message leaves as soon as the echo is back. Open loop: one
 * message every `interval` ms from `phase` ms after the start, each timed from
 * its scheduled send.
 */
export async function pingpong(
  run: Run,
  conn: Deno.Conn,
  index: number,
  phase: number,
  interval: number,
): Promise<void> {
  const size = run.size;
  const buf = new Uint8Array(Math.min(size, READ_MAX) + 1);
  const link = new Link();
  let slot = index % SLOTS;
  let due = run.startedAt + phase;
  let start = performance.now();
  /** Sent a message; had an echo complete before the run stopped; ended in an error. */
  let asked = false;
  let fed = false;
  let failed = false;
  while (!run.stopping) {
    if (interval > 0) {
      start = await run.paced(due);
      if (run.stopping) break;
      due += interval;
    }
    asked = true;
    // exchange(), inlined: this loop is the client's whole per-message cost, and
    // the extra async call measured 3-4 % fewer messages against the C server.
    let outcome: Outcome;
    let sent = 0;
    let n: number | null = null;
    // Open loop: `start` is when the message was due, which a late client has passed;
    // what a starving connection is measured by is when it actually went.
    run.fairness.sent(index, interval > 0 ? performance.now() : start);
    try {
      sent = await conn.write(run.slotView[slot]);
      run.bytesSent += sent;
      if (sent === size) n = await conn.read(buf);
    } catch (err) {
      failed = failedBy(lost(run, link, err, sent, 0, true));
      break;
    }
    if (sent === size && n === size && run.pattern.matches(buf, n, run.slotAt[slot])) {
      run.bytesReceived += n;
      outcome = "echoed";
    } else {
      outcome = await finishEcho(run, conn, link, buf, slot, sent, sent === size ? n : undefined);
      if (!answered(outcome)) {
        failed = failedBy(outcome);
        break;
      }
    }
    const done = performance.now();
    run.fairness.echoed(index);
    link.echoes++;
    if (!run.stopping) fed = true;
    if (outcome === "echoed") {
      run.messages++;
      if (!run.stopping) run.perConnection[index]++;
      run.window.record((done - start) * 1000);
    }
    run.lastEchoAt = done;
    slot = slot + 1 === SLOTS ? 0 : slot + 1;
    const pause = run.fairness.pause(done);
    // Closed loop: the next message leaves now, so its round trip starts now;
    // after a pause of this client's own, not before it.
    if (pause === undefined) start = done;
    else {
      await pause;
      start = performance.now();
    }
  }
  run.fairness.echoed(index);
  if (asked && !fed && !failed) run.starved++;
  // Every echo is in: nothing is left to read, so it can end cleanly.
  if (failed) run.release(conn);
  else run.finish(conn);
}
