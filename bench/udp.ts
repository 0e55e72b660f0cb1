/**
 * `bench --udp`: datagrams from many sockets, each its own source port, in a
 * closed loop (a window of datagrams in flight per socket) or an open loop
 * (`rate`). Every datagram carries its socket and sequence number and a
 * stretch of the pattern that depends on both, so that each echo is checked
 * byte for byte and lost, duplicated and reordered datagrams are counted.
 *
 * A datagram without an echo for `lossWaitMs` frees its window slot, so a
 * lost datagram cannot stall its socket; if its echo comes after all, it
 * counts as echoed (and late). What has no echo when the run has waited that
 * long after sending stopped is lost.
 *
 * @module
 */
import { openUdpSocket, resolveUdp, udpPortUnbound, udpRefused } from "../client/udp.ts";
import { describeError, formatAddress } from "../text/address.ts";
import type { BenchOptions } from "./options.ts";
import { startProgress } from "./progress.ts";
import { type BenchReport, latencyOf, reportedOptions } from "./report.ts";
import { type Timer, TIMER_SLACK_MS } from "./schedule.ts";
import type { UdpFigures } from "./udp_report.ts";
import { Flow, UdpRun } from "./udp_run.ts";

/**
 * How long a run waits for its first echo before it asks whether anything
 * listens on the server's port (as `client --udp` does).
 */
const REFUSED_GRACE_MS = 200;

/**
 * Runs a UDP bench of `o` (already validated, `o.udp` set) and resolves with
 * its report. Rejects when the host does not resolve or not one socket opens.
 */
export async function runUdpBench(o: BenchOptions): Promise<BenchReport> {
  const target = await resolveUdp(o.host, o.port);
  const run = new UdpRun(o, target);
  for (let i = 0; i < o.connections; i++) {
    try {
      run.flows.push(new Flow(run, i, openUdpSocket(target)));
    } catch (error) {
      run.socketsFailed++;
      run.noteError(`cannot open a UDP socket: ${describeError(error)}`);
    }
  }
  if (run.flows.length === 0) throw new Error(run.firstError ?? "cannot open a UDP socket");
  const external = o.signal;
  const onAbort = () => {
    // After the duration the run is stopping already: that is its normal end.
    if (!run.stopping) run.interrupted = true;
    run.stop();
  };
  external?.addEventListener("abort", onAbort, { once: true });
  const receiving = run.flows.map((flow) => flow.receive());
  const timers: Timer[] = [];
  try {
    run.startedAt = performance.now();
    if (external?.aborted) onAbort();
    timers.push(setTimeout(() => run.stop(), o.durationMs));
    // No echo yet after a grace: if nothing listens on the port here, that is the answer, at once.
    timers.push(setTimeout(() => {
      if (run.echoed === 0 && udpPortUnbound(target) === true) {
        run.refused = true;
        run.noteError(udpRefused(formatAddress(target.hostname, target.port)));
        run.stop();
      }
    }, Math.min(REFUSED_GRACE_MS, o.durationMs)));
    timers.push(setInterval(() => sweep(run), Math.max(10, run.lossWaitMs / 4)));
    if (o.onProgress !== undefined) {
      timers.push(startProgress(
        run.startedAt,
        () => ({
          messages: run.echoed,
          bytesReceived: run.bytesReceived,
          open: run.flows.length,
          errors: run.socketsFailed + run.flowsFailed,
          mismatches: run.corrupted + run.short,
          mode: "pingpong",
        }),
        run.latency,
        run.total,
        o.onProgress,
      ));
    }
    const interval = o.rate === undefined ? 0 : 1000 * run.flows.length / o.rate;
    await Promise.race([
      Promise.all(
        run.flows.map((flow, i) =>
          interval > 0
            ? openLoop(run, flow, i * interval / run.flows.length, interval)
            : closedLoop(run, flow)
        ),
      ),
      run.stopped.promise,
    ]);
    run.stop();
    await drain(run);
  } finally {
    external?.removeEventListener("abort", onAbort);
    for (const timer of timers) clearTimeout(timer);
    run.closing = true;
    run.stop();
    for (const flow of run.flows) flow.socket.close();
    await Promise.all(receiving);
  }
  return summarize(run, o);
}

/** Closed loop: keep `window` datagrams in flight, sending as echoes come back or are given up. */
async function closedLoop(run: UdpRun, flow: Flow): Promise<void> {
  while (!run.stopping) {
    if (flow.waiting.size >= run.window) {
      await flow.changed();
      continue;
    }
    if (!await flow.send(performance.now())) return;
  }
}

/** Open loop: one datagram every `interval` ms from `phase` on, each timed from its schedule. */
async function openLoop(run: UdpRun, flow: Flow, phase: number, interval: number): Promise<void> {
  let due = run.startedAt + phase;
  while (!run.stopping) {
    if (due - performance.now() > TIMER_SLACK_MS) await run.wakeups.at(due);
    if (run.stopping) return;
    const from = Math.min(due, performance.now());
    due += interval;
    if (!await flow.send(from)) return;
  }
}

/** Gives up on datagrams past their loss wait, freeing window slots. */
function sweep(run: UdpRun): void {
  const now = performance.now();
  for (const flow of run.flows) if (flow.expire(now)) flow.wake();
  if (run.stopping && run.inFlight === 0) run.onQuiet?.();
}

/** After sending stopped: waits until every datagram is echoed or given up on. */
async function drain(run: UdpRun): Promise<void> {
  // Refused datagrams are not coming back: nothing to wait for.
  if (run.inFlight === 0 || run.refused) return;
  const quiet = Promise.withResolvers<void>();
  run.onQuiet = () => {
    if (run.inFlight === 0) quiet.resolve();
  };
  // The sweep gives up on the last of them within a loss wait; this bounds it all the same.
  const limit = setTimeout(quiet.resolve, run.lossWaitMs * 1.5);
  try {
    await quiet.promise;
  } finally {
    clearTimeout(limit);
    run.onQuiet = undefined;
  }
}

function summarize(run: UdpRun, o: BenchOptions): BenchReport {
  run.total.merge(run.latency);
  const end = Math.max(run.stoppedAt, run.lastEchoAt);
  const elapsedS = Math.max(end - run.startedAt, 0) / 1000;
  const per = (x: number) => elapsedS > 0 ? x / elapsedS : 0;
  let lost = 0;
  for (const flow of run.flows) lost += flow.waiting.size + flow.overdue.size;
  if (run.echoed === 0) {
    run.noteError(
      "no datagram came back: over UDP nothing says why (is the server started with --udp?)",
    );
  }
  // Every socket was refused: each counts as a refused connection does over TCP.
  const refused = run.refused ? run.flows.length : 0;
  const errors = run.socketsFailed + run.flowsFailed + refused;
  const mismatches = run.corrupted + run.short;
  const msgsPerS = per(run.echoed);
  const h = run.total;
  const udp: UdpFigures = {
    sockets: run.flows.length,
    window: run.window,
    sent: run.sent,
    echoed: run.echoed,
    lost,
    late: run.late,
    duplicated: run.duplicated,
    reordered: run.reordered,
    lossWaitMs: run.lossWaitMs,
    ...(run.refused ? { refused: true } : {}),
  };
  return {
    options: { ...reportedOptions(o), udp: true, window: run.window },
    elapsedS,
    messages: run.echoed,
    bytesSent: run.bytesSent,
    bytesReceived: run.bytesReceived,
    msgsPerS,
    rateAchievedFraction: o.rate === undefined ? null : msgsPerS / o.rate,
    mbPerS: per(run.bytesReceived) / 1e6,
    connectionsOpened: run.flows.length,
    connectionsFailed: run.socketsFailed + refused,
    refused,
    connectionsPerS: 0,
    errors,
    resets: run.flowsFailed,
    mismatches,
    corrupted: run.corrupted,
    short: run.short,
    timedOut: 0,
    starved: 0,
    firstError: run.firstError,
    interrupted: run.interrupted,
    // Loss is UDP's nature and is reported, not failed on; a wrong byte is a failure.
    ok: errors === 0 && mismatches === 0 && run.echoed > 0,
    latencyUs: latencyOf(h),
    udp,
  };
}
