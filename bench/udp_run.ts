/**
 * The state of one `bench --udp` run: its counters and histograms, and each
 * socket's flow: what it sent, what is still due, and how each echo is
 * classified (echoed, late, duplicated, reordered, short, corrupted).
 *
 * @module
 */
import type { UdpTarget } from "../client/udp.ts";
import { describeError } from "../text/address.ts";
import { checkBody, readHeader, writeDatagram } from "./datagram.ts";
import { Histogram } from "./histogram.ts";
import type { BenchOptions } from "./options.ts";
import { Pattern } from "./pattern.ts";
import { Wakeups } from "./schedule.ts";

/** Room for any datagram. */
const RECEIVE_BUFFER = 65_536;

/** The state of one run that every socket updates. */
export class UdpRun {
  /** The server. */
  readonly target: UdpTarget;
  /** Datagram size in bytes. */
  readonly size: number;
  /** Closed loop: datagrams in flight per socket at most. */
  readonly window: number;
  /** How long a datagram may go unanswered before its window slot is freed. */
  readonly lossWaitMs: number;
  /** What the datagrams' bodies are cut from. */
  readonly pattern: Pattern;
  /** One per socket. */
  readonly flows: Flow[] = [];
  /** Latency of the current progress interval; merged into `total` at each tick. */
  readonly latency: Histogram = new Histogram();
  /** Latency of the intervals already reported. */
  readonly total: Histogram = new Histogram();
  /** The open loop's timer for every sleeping socket. */
  readonly wakeups: Wakeups = new Wakeups();
  /** No new datagrams once set. */
  stopping = false;
  /** Set when the sockets are being closed: receive errors from then on are expected. */
  closing = false;
  /** Resolves when the run stops. */
  readonly stopped: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  /** When sending began (performance.now() clock). */
  startedAt = 0;
  /** When sending stopped. */
  stoppedAt = 0;
  /** When the last echo came back. */
  lastEchoAt = 0;
  /** Datagrams sent. */
  sent = 0;
  /** Datagrams echoed exactly, each once. */
  echoed = 0;
  /** Of `echoed`, those past their loss wait. */
  late = 0;
  /** Echoes of datagrams already echoed. */
  duplicated = 0;
  /** Echoes that came after a later datagram's. */
  reordered = 0;
  /** Echoes that differ from what was sent, or that were never sent. */
  corrupted = 0;
  /** Echoes cut short. */
  short = 0;
  /** Payload bytes sent. */
  bytesSent = 0;
  /** Payload bytes echoed exactly. */
  bytesReceived = 0;
  /** Sockets that could not be opened. */
  socketsFailed = 0;
  /** Sockets that stopped on a send error. */
  flowsFailed = 0;
  /** The first error noted, in words. */
  firstError: string | null = null;
  /** Nothing on this machine listens on the target's UDP port: the run stopped at once. */
  refused = false;
  /** Stopped by the caller's signal before the duration was up. */
  interrupted = false;
  /** Called when the last datagram in a window is answered or given up on, during the drain. */
  onQuiet: (() => void) | undefined;

  /** Prepares a run of `o` against `target`; no socket is opened yet. */
  constructor(o: BenchOptions, target: UdpTarget) {
    this.target = target;
    this.size = o.size;
    this.window = o.window ?? 1;
    this.lossWaitMs = Math.min(1_000, Math.max(200, o.durationMs));
    this.pattern = new Pattern(o.size);
  }

  /** Stops sending and wakes every waiting socket. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stoppedAt = performance.now();
    this.wakeups.wakeAll();
    for (const flow of this.flows) flow.wake();
    this.stopped.resolve();
  }

  /** Keeps the first error for the report. */
  noteError(error: unknown): void {
    this.firstError ??= typeof error === "string" ? error : describeError(error);
  }

  /** Datagrams still within their loss wait, over every socket. */
  get inFlight(): number {
    let n = 0;
    for (const flow of this.flows) n += flow.waiting.size;
    return n;
  }
}

/** One socket: what it sent, what is still due, and its receive loop. */
export class Flow {
  /** Its number, carried in every datagram it sends. */
  readonly id: number;
  /** Its socket, and so its source port. */
  readonly socket: Deno.DatagramConn;
  readonly #run: UdpRun;
  readonly #out: Uint8Array;
  /** Sent, not yet echoed, within the loss wait: sequence number → time to measure from. */
  readonly waiting = new Map<number, number>();
  /** Sent, not yet echoed, past the loss wait. */
  readonly overdue = new Map<number, number>();
  /** The sequence number of the next datagram. */
  nextSeq = 0;
  #highest = -1;
  #wake: (() => void) | undefined;

  /** Flow `id` of `run`, sending from `socket`. */
  constructor(run: UdpRun, id: number, socket: Deno.DatagramConn) {
    this.#run = run;
    this.id = id;
    this.socket = socket;
    this.#out = new Uint8Array(run.size);
  }

  /** Resolves on the next echo, give-up or stop. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#wake = resolve);
  }

  /** Wakes the sender waiting in {@linkcode Flow.changed}. */
  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Sends the next datagram, timed from `from`; false when the socket failed. */
  async send(from: number): Promise<boolean> {
    const run = this.#run;
    const seq = this.nextSeq++;
    writeDatagram(this.#out, run.pattern, this.id, seq);
    // Entered before sending: the echo may come back before send() resolves.
    this.waiting.set(seq, from);
    try {
      await this.socket.send(this.#out, run.target);
    } catch (error) {
      this.waiting.delete(seq);
      if (!run.closing) {
        run.flowsFailed++;
        run.noteError(`sending a datagram failed: ${describeError(error)}`);
      }
      return false;
    }
    run.sent++;
    run.bytesSent += run.size;
    return true;
  }

  /** Receives until the socket closes. */
  async receive(): Promise<void> {
    const run = this.#run;
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    while (true) {
      let data: Uint8Array;
      let from: Deno.Addr;
      try {
        [data, from] = await this.socket.receive(buffer);
      } catch (error) {
        if (!run.closing) run.noteError(`receiving failed: ${describeError(error)}`);
        return;
      }
      // Only the server's port answers; anything else is not an echo.
      if (from.transport === "udp" && from.port === run.target.port) this.#echo(data);
    }
  }

  #echo(data: Uint8Array): void {
    const run = this.#run;
    const now = performance.now();
    const header = readHeader(data);
    if (header === null || header.flow !== this.id || header.seq >= this.nextSeq) {
      run.corrupted++;
      run.noteError(`a datagram of ${data.length} bytes came back that this socket never sent`);
      return;
    }
    const seq = header.seq;
    let from = this.waiting.get(seq);
    let late = false;
    if (from !== undefined) {
      this.waiting.delete(seq);
    } else {
      from = this.overdue.get(seq);
      if (from === undefined) {
        run.duplicated++;
        return;
      }
      this.overdue.delete(seq);
      late = true;
    }
    const verdict = checkBody(data, run.pattern, this.id, seq, run.size);
    if (verdict !== "echoed") {
      run[verdict]++;
      run.noteError(`datagram ${seq} came back ${verdict}: ${data.length} of ${run.size} bytes`);
    } else {
      if (seq < this.#highest) run.reordered++;
      else this.#highest = seq;
      run.echoed++;
      if (late) run.late++;
      run.bytesReceived += data.length;
      run.latency.record((now - from) * 1000);
      run.lastEchoAt = now;
    }
    this.wake();
    if (this.waiting.size === 0) run.onQuiet?.();
  }

  /** Moves what has waited longer than the loss wait to `overdue`; true when any moved. */
  expire(now: number): boolean {
    const wait = this.#run.lossWaitMs;
    let moved = false;
    // Sent in order, so the oldest come first.
    for (const [seq, from] of this.waiting) {
      if (now - from < wait) break;
      this.waiting.delete(seq);
      this.overdue.set(seq, from);
      moved = true;
    }
    return moved;
  }
}
