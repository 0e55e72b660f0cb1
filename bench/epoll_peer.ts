/**
 * One pingpong connection or churn slot of the epoll engine: a state
 * machine driven by the reactor's readiness events and the run's wake-ups,
 * with no `Promise` per message. The rules are the Deno engine's
 * (`pingpong.ts`, `churn.ts`, `exchange.ts`): every byte verified, latency
 * from the (scheduled) send, and failures counted by `failures.ts`.
 *
 * @module
 */
import { C, E } from "../epoll/libc.ts";
import { type TlsClient, TlsClientSession } from "../epoll/tls_client.ts";
import type { Reactor, Readiness } from "../epoll/reactor.ts";
import { failureOf, SEND_FLAGS } from "../epoll/socket_calls.ts";
import { describeBanner } from "../text/tls.ts";
import type { ProxyEndpoint } from "../proxy/header.ts";
import { connectResult, sendProxyHeader, startConnect } from "./epoll_socket.ts";
import { connectFailure, handshakeStep } from "./epoll_tls.ts";
import { EOF, failedBy, Link, lost, mismatch } from "./failures.ts";
import { type Run, SLOTS } from "./run.ts";
import { TIMER_SLACK_MS } from "./schedule.ts";

/** What an epoll connection needs from the load that drives it. */
export interface PeerHost {
  /** The run whose counters the connection updates. */
  readonly run: Run;
  /** The loop that reports readiness. */
  readonly reactor: Reactor;
  /** The server's address, as libc takes it. */
  readonly address: Uint8Array;
  /** The server's address, as a PROXY header names it. */
  readonly server: ProxyEndpoint;
  /** The TLS client every connection handshakes with; `undefined` for plain TCP. */
  readonly tls: TlsClient | undefined;
  /** Whether the load has begun: a connection then begins as soon as it connects. */
  readonly started: boolean;
  /** A first connect ended (`ok`: it connected). */
  connected(ok: boolean): void;
  /** The connection is done for good. */
  ended(): void;
}

/** Not connected and not waiting: before the first dial, or done. */
const IDLE = 0;
const CONNECTING = 1;
/** Connected, waiting for the load to begin or for the next send time. */
const WAITING = 2;
const EXCHANGING = 3;
const DONE = 4;
/** Readiness that can end an exchange: data, the peer's end, an error. */
const READABLE = C.EPOLLIN | C.EPOLLRDHUP | C.EPOLLHUP | C.EPOLLERR;
/** Wait before a churn slot retries a failed connect, so it does not spin (as churn.ts). */
const RETRY_MS = 10;

/** One pingpong connection or churn slot; see the module's documentation. */
export class EpollPeer implements Readiness {
  readonly #host: PeerHost;
  readonly #run: Run;
  readonly #index: number;
  readonly #churn: boolean;
  readonly #interval: number;
  readonly #size: number;
  readonly #sizeBig: bigint;
  readonly #link = new Link();
  #state = IDLE;
  #fd = -1;
  /** The connection's TLS session, from its TCP connect to its close; `null` for plain TCP. */
  #tls: TlsClientSession | null = null;
  #interest = 0;
  #connected = false;
  #slot: number;
  #due = 0;
  #start = 0;
  /** When the connect in progress began, and how long the last one took. */
  #dialAt = 0;
  #connectMs = 0;
  #sent = 0;
  #got = 0;
  #intact = true;
  #why = "";
  /** As in pingpong.ts: sent a message; had an echo before the run stopped; ended in an error. */
  #asked = false;
  #fed = false;
  #failed = false;
  /** Churn: the last connect failed or was refused, so the next waits RETRY_MS. */
  #retry = false;

  /** Connection `index`, first due `phase` ms after the start, then every `interval` (0: closed loop). */
  constructor(host: PeerHost, index: number, churn: boolean, phase: number, interval: number) {
    this.#host = host;
    this.#run = host.run;
    this.#index = index;
    this.#churn = churn;
    this.#interval = interval;
    this.#size = host.run.size;
    this.#sizeBig = BigInt(host.run.size);
    this.#slot = index % SLOTS;
    this.#due = phase;
  }

  /** Whether the connection is done for good. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /** Starts connecting; churn times its first echo from here. */
  dial(): void {
    this.#state = CONNECTING;
    this.#dialAt = this.#start = performance.now();
    try {
      this.#fd = startConnect(this.#host.reactor.sys, this.#host.address);
      this.#interest = C.EPOLLOUT;
      this.#host.reactor.add(this.#fd, C.EPOLLOUT, this);
    } catch (error) {
      this.#connectFailed(error);
    }
  }

  /** The load begins (`startedAt` is set): the first message goes, at once or at its time. */
  begin(): void {
    if (this.#state !== WAITING) return;
    this.#due += this.#run.startedAt;
    this.#next(performance.now());
  }

  /** Called by the reactor with the event bits. */
  ready(events: number): void {
    if (this.#state === EXCHANGING) {
      if ((events & C.EPOLLOUT) !== 0 && this.#sent < this.#size) this.#push();
      if ((events & READABLE) !== 0) this.#take(this.#read(), events);
    } else if (this.#state === CONNECTING) {
      this.#onConnect();
    } else if (this.#state === WAITING) {
      // Between messages the server has nothing to send: this is its close, or bytes added
      // (over TLS, it may be a session ticket, which leaves nothing to read).
      const n = this.#read();
      if (n === -E.EAGAIN && this.#tls !== null && (events & READABLE & ~C.EPOLLIN) === 0) return;
      this.#state = EXCHANGING;
      this.#sent = this.#size;
      this.#got = 0;
      this.#intact = true;
      this.#take(n, events);
    }
  }

  /** The handler threw (TLS failed), or the loop failed: this connection ends, counted as failed. */
  fail(error: unknown): void {
    if (this.#state === DONE) return;
    // A TLS alert instead of the echo: counted as any end before the echo is.
    if (this.#state === EXCHANGING && this.#tls !== null) return this.#lost(error);
    this.#failed = true;
    this.#run.resets++;
    this.#run.noteError(error);
    this.#finish();
  }

  /** Sending has stopped: between messages the run's wake-ups fire; an exchange ends with its echo. */
  stop(): void {}

  /**
   * The run is being torn down: an exchange still waiting for its echo is
   * counted (timed out, or short) as the Deno engine counts it, and the
   * connection ends.
   */
  abort(): void {
    if (this.#state === DONE) return;
    if (this.#state === EXCHANGING) {
      lost(this.#run, this.#link, EOF, this.#sent, this.#got, this.#intact);
    }
    this.#finish();
  }

  #onConnect(): void {
    const run = this.#run;
    const sys = this.#host.reactor.sys;
    const headers = run.proxyHeaders;
    const error = this.#tls !== null ? undefined : connectResult(sys, this.#fd) ??
      (headers && sendProxyHeader(sys, this.#fd, headers, this.#host.server));
    if (error !== undefined) return this.#connectFailed(error);
    if (this.#host.tls !== undefined) {
      this.#tls ??= new TlsClientSession(this.#host.tls, this.#fd);
      const step = handshakeStep(this.#tls);
      if (step instanceof Error) return this.#connectFailed(step);
      if (step !== 0) return this.#watch(step);
    }
    this.#connected = true;
    run.opened++;
    run.peersOpen++;
    this.#link.clear();
    this.#watch(READABLE & ~(C.EPOLLHUP | C.EPOLLERR));
    this.#retry = false;
    this.#connectMs = performance.now() - this.#dialAt;
    if (this.#churn && this.#host.started) {
      if (run.stopping) return this.#finish();
      return this.#send();
    }
    this.#state = WAITING;
    if (this.#host.started) this.begin();
    else this.#host.connected(true);
  }

  #connectFailed(error: unknown): void {
    const run = this.#run;
    this.#close();
    if (!this.#host.started) this.#host.connected(false);
    if (run.stopping) return this.#finish();
    connectFailure(run, error);
    this.#failed = true;
    if (!this.#churn) return this.#finish();
    this.#retry = true;
    this.#state = IDLE;
    this.#next(performance.now());
  }

  /** What comes after an echo (or a failed connect): the next message, now or at its time, or the end. */
  #next(now: number): void {
    const run = this.#run;
    if (run.stopping) return this.#finish();
    if (this.#retry) {
      this.#retry = false;
      run.wakeAt(now + RETRY_MS, this.#wake);
      return;
    }
    if (this.#interval > 0 && this.#due - now > TIMER_SLACK_MS) {
      run.wakeAt(this.#due, this.#wake);
      return;
    }
    this.#go(now);
  }

  readonly #wake = (): void => {
    // The server may have closed the connection while it slept: it ended then.
    if (this.#state === DONE) return;
    if (this.#run.stopping) return this.#finish();
    this.#go(performance.now());
  };

  /** Sends now: latency is timed from the scheduled time, or from now when the timer woke early. */
  #go(now: number): void {
    const start = this.#interval > 0 ? Math.min(this.#due, now) : now;
    if (this.#interval > 0) this.#due += this.#interval;
    if (!this.#churn) {
      this.#start = start;
      return this.#send();
    }
    if (this.#connected) {
      // A slot's first connection, opened before the clock started with every other
      // slot's: timed as its own connect plus the echo, as churn.ts does.
      this.#start = start - this.#connectMs;
      return this.#send();
    }
    this.dial();
    this.#start = start;
  }

  #send(): void {
    const run = this.#run;
    this.#state = EXCHANGING;
    this.#asked = true;
    this.#got = 0;
    this.#intact = true;
    const view = run.slotView[this.#slot];
    const n = this.#tls === null
      ? this.#host.reactor.sys.send(this.#fd, view, this.#sizeBig, SEND_FLAGS)
      : this.#tls.send(view, this.#size);
    if (n === this.#size) {
      this.#sent = n;
      run.bytesSent += n;
      return;
    }
    this.#sent = 0;
    if (n > 0) {
      this.#sent = n;
      run.bytesSent += n;
    } else {
      const error = failureOf(this.#host.reactor.sys, this.#fd, "send", -n, 0);
      if (error !== undefined) return this.#lost(error);
    }
    this.#watch(this.#interest | C.EPOLLOUT);
  }

  /** Writes more of a message the socket did not take at once. */
  #push(): void {
    const run = this.#run;
    const rest = run.slotView[this.#slot].subarray(this.#sent);
    const n = this.#tls === null
      ? this.#host.reactor.sys.send(this.#fd, rest, BigInt(rest.length), SEND_FLAGS)
      : this.#tls.send(rest, rest.length);
    if (n < 0) {
      const error = failureOf(this.#host.reactor.sys, this.#fd, "send", -n, 0);
      if (error !== undefined) this.#lost(error);
      return;
    }
    this.#sent += n;
    run.bytesSent += n;
    if (this.#sent === this.#size) this.#watch(this.#interest & ~C.EPOLLOUT);
  }

  /** Reads into the reactor's buffer: the byte count, 0 at the end, or `-errno`. */
  #read(): number {
    const reactor = this.#host.reactor;
    return this.#tls === null
      ? reactor.sys.recv(this.#fd, reactor.buffer, reactor.bufferLength, 0)
      : this.#tls.recv(reactor.buffer);
  }

  /** Verifies the `n` bytes (or the end, or the error) a read gave. */
  #take(n: number, events: number): void {
    const run = this.#run;
    const reactor = this.#host.reactor;
    const buf = reactor.buffer;
    if (n === 0) return this.#lost(EOF);
    if (n < 0) {
      const error = failureOf(reactor.sys, this.#fd, "recv", -n, events);
      if (error !== undefined) this.#lost(error);
      return;
    }
    run.bytesReceived += n;
    const size = this.#size;
    const at = run.slotAt[this.#slot];
    const got = this.#got;
    if (n > size - got) {
      // More bytes than were sent: the echo added some. The message is done, corrupted.
      if (this.#intact) this.#why = mismatch(run, buf, n, at, got);
      this.#intact = false;
      this.#got = size;
      return this.#complete();
    }
    if (this.#intact && !run.pattern.matches(buf, n, at + got)) {
      this.#intact = false;
      this.#why = mismatch(run, buf, n, at, got);
      if (got === 0 && this.#link.echoes === 0) {
        this.#link.banner ??= describeBanner(buf.subarray(0, n));
      }
    }
    this.#got = got + n;
    if (this.#got === size && this.#sent === size) this.#complete();
  }

  #complete(): void {
    const run = this.#run;
    let now = performance.now();
    if (this.#churn) {
      // Churn's latency is connect, echo and close.
      this.#close();
      now = performance.now();
    }
    if (this.#intact) {
      run.messages++;
      if (!run.stopping) run.perConnection[this.#index]++;
      run.window.record((now - this.#start) * 1000);
    } else {
      run.corrupted++;
      run.noteError(this.#why);
    }
    this.#link.echoes++;
    run.lastEchoAt = now;
    if (!run.stopping) this.#fed = true;
    this.#slot = this.#slot + 1 === SLOTS ? 0 : this.#slot + 1;
    this.#state = this.#churn ? IDLE : WAITING;
    this.#next(now);
  }

  /** The exchange ended before its echo was whole: counted, and the connection closed. */
  #lost(error: unknown): void {
    const outcome = lost(this.#run, this.#link, error, this.#sent, this.#got, this.#intact);
    if (failedBy(outcome)) this.#failed = true;
    this.#close();
    if (!this.#churn || this.#run.closing) return this.#finish();
    this.#retry = outcome === "refused";
    this.#state = IDLE;
    this.#next(performance.now());
  }

  #watch(events: number): void {
    if (events === this.#interest) return;
    this.#interest = events;
    this.#host.reactor.modify(this.#fd, events);
  }

  #close(): void {
    if (this.#fd < 0) return;
    this.#tls?.end();
    this.#tls = null;
    this.#host.reactor.close(this.#fd);
    this.#fd = -1;
    if (this.#connected) this.#run.peersOpen--;
    this.#connected = false;
  }

  #finish(): void {
    if (this.#state === DONE) return;
    this.#close();
    this.#state = DONE;
    if (this.#asked && !this.#fed && !this.#failed) this.#run.starved++;
    this.#host.ended();
  }
}
