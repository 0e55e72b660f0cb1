/**
 * One stream connection of the epoll engine: writes the pattern flat out
 * within a window of unechoed bytes while it reads and verifies the echo,
 * driven by readiness, with no `Promise` per write or read. Counted as
 * `stream.ts` counts: latency per period-long write, from its end to the
 * end of its echo; failures by the same rules.
 *
 * @module
 */
import { C } from "../epoll/libc.ts";
import { TlsClientSession } from "../epoll/tls_client.ts";
import type { Readiness } from "../epoll/reactor.ts";
import { failureOf, SEND_FLAGS } from "../epoll/socket_calls.ts";
import { describeError } from "../text/address.ts";
import { connectResult, sendProxyHeader, startConnect } from "./epoll_socket.ts";
import type { PeerHost } from "./epoll_peer.ts";
import { connectFailure, handshakeStep } from "./epoll_tls.ts";
import { BANNER_MAX, EOF, NO_REPLY, refusal } from "./failures.ts";
import { hex, int } from "./numbers.ts";
import { PERIOD } from "./pattern.ts";
import { READ_MAX } from "./run.ts";

/** Unechoed bytes past which a connection writes no more, as stream.ts (see there why 256 KiB). */
const WINDOW = 256 * 1024;
/** Latency marks kept per connection; more in flight go unsampled. */
const MARKS = 256;
const READABLE = C.EPOLLIN | C.EPOLLRDHUP;

/** One stream connection; see the module's documentation. */
export class EpollStream implements Readiness {
  readonly #host: PeerHost;
  readonly #index: number;
  readonly #phase: number;
  #fd = -1;
  /** The connection's TLS session, from its TCP connect to its close; `null` for plain TCP. */
  #tls: TlsClientSession | null = null;
  #interest = 0;
  #connecting = false;
  #connected = false;
  #streaming = false;
  #done = false;
  #sent = 0;
  #received = 0;
  #intactReads = 0;
  #badReads = 0;
  #asked = false;
  #fed = false;
  #failed = false;
  readonly #markAt = new Float64Array(MARKS);
  readonly #markTime = new Float64Array(MARKS);
  #head = 0;
  #tail = 0;
  #nextMark = PERIOD;

  /** Connection `index`, which starts at its own point of the pattern. */
  constructor(host: PeerHost, index: number) {
    this.#host = host;
    this.#index = index;
    this.#phase = (index * 7919) % PERIOD;
  }

  /** Whether the connection is done for good. */
  get done(): boolean {
    return this.#done;
  }

  /** Starts connecting. */
  dial(): void {
    this.#connecting = true;
    try {
      this.#fd = startConnect(this.#host.reactor.sys, this.#host.address);
      this.#interest = C.EPOLLOUT;
      this.#host.reactor.add(this.#fd, C.EPOLLOUT, this);
    } catch (error) {
      this.#connectFailed(error);
    }
  }

  /** The load begins: writing starts. */
  begin(): void {
    if (!this.#connected || this.#streaming || this.#done) return;
    this.#streaming = true;
    this.#write();
  }

  /** Called by the reactor with the event bits. */
  ready(events: number): void {
    if (this.#connecting) return this.#onConnect();
    if ((events & (READABLE | C.EPOLLHUP | C.EPOLLERR)) !== 0) this.#read(events);
    if (!this.#done && (events & C.EPOLLOUT) !== 0) this.#write();
  }

  /** The handler threw, or the loop failed. */
  fail(error: unknown): void {
    this.#end(error);
  }

  /** Sending has stopped: a connection with every echo in is done. */
  stop(): void {
    if (this.#streaming && this.#received >= this.#sent) this.#finish();
  }

  /** The run is being torn down: what is still unechoed is counted, and the connection ends. */
  abort(): void {
    if (this.#done) return;
    const run = this.#host.run;
    if (this.#received === 0 && this.#sent > 0) {
      run.timedOut++;
      run.noteError(NO_REPLY);
    } else if (this.#received < this.#sent) {
      run.short++;
      run.noteError(
        `a stream echo was still incomplete when the drain time (${
          run.drainMs / 1000
        } s) ran out (${int(this.#sent - this.#received)} bytes written and not echoed)`,
      );
    }
    this.#finish();
  }

  #onConnect(): void {
    const host = this.#host;
    const headers = host.run.proxyHeaders;
    const error = this.#tls !== null ? undefined : connectResult(host.reactor.sys, this.#fd) ??
      (headers && sendProxyHeader(host.reactor.sys, this.#fd, headers, host.server));
    if (error !== undefined) return this.#connectFailed(error);
    if (host.tls !== undefined) {
      this.#tls ??= new TlsClientSession(host.tls, this.#fd);
      const step = handshakeStep(this.#tls);
      if (step instanceof Error) return this.#connectFailed(step);
      if (step !== 0) return this.#watch(step);
    }
    this.#connecting = false;
    this.#connected = true;
    host.run.opened++;
    host.run.peersOpen++;
    this.#watch(READABLE);
    if (host.started) this.begin();
    else host.connected(true);
  }

  #connectFailed(error: unknown): void {
    const run = this.#host.run;
    this.#connecting = false;
    if (!this.#host.started) this.#host.connected(false);
    if (!run.stopping) {
      connectFailure(run, error);
      this.#failed = true;
    }
    this.#finish();
  }

  /** Writes while the window has room and the socket takes it. */
  #write(): void {
    const run = this.#host.run;
    const sys = this.#host.reactor.sys;
    const bytes = run.pattern.bytes;
    // Whole 64 KiB writes while the window has room, as stream.ts: writes cut to the room
    // left went out a few KiB at a time.
    while (!run.stopping && this.#sent - this.#received <= WINDOW) {
      // The pattern runs READ_MAX + 1 bytes past its period: a 64 KiB view fits from any offset.
      const length = READ_MAX;
      const start = (this.#phase + this.#sent) % PERIOD;
      const view = bytes.subarray(start, start + length);
      const n = this.#tls === null
        ? sys.send(this.#fd, view, BigInt(length), SEND_FLAGS)
        : this.#tls.send(view, length);
      if (n < 0) {
        const error = failureOf(sys, this.#fd, "send", -n, 0);
        if (error !== undefined) return this.#end(error);
        return this.#watch(READABLE | C.EPOLLOUT);
      }
      this.#asked = true;
      this.#sent += n;
      run.bytesSent += n;
      if (this.#sent >= this.#nextMark) {
        const next = (this.#tail + 1) % MARKS;
        if (next !== this.#head) {
          this.#markAt[this.#tail] = this.#sent;
          this.#markTime[this.#tail] = performance.now();
          this.#tail = next;
        }
        this.#nextMark = this.#sent + PERIOD;
      }
    }
    this.#watch(READABLE);
    if (run.stopping && this.#received >= this.#sent) this.#finish();
  }

  #read(events: number): void {
    const run = this.#host.run;
    const reactor = this.#host.reactor;
    const buf = reactor.buffer;
    const n = this.#tls === null
      ? reactor.sys.recv(this.#fd, buf, reactor.bufferLength, 0)
      : this.#tls.recv(buf);
    if (n === 0) return this.#end(EOF);
    if (n < 0) {
      const error = failureOf(reactor.sys, this.#fd, "recv", -n, events);
      if (error !== undefined) this.#end(error);
      return;
    }
    run.bytesReceived += n;
    if (!run.stopping) this.#fed = true;
    const at = (this.#phase + this.#received) % PERIOD;
    if (this.#received + n <= this.#sent && run.pattern.matches(buf, n, at)) {
      this.#intactReads++;
    } else {
      run.corrupted++;
      this.#badReads++;
      if (this.#intactReads > 0 || this.#received > BANNER_MAX) {
        run.noteError(this.#mismatch(buf, n, at));
      }
    }
    this.#received += n;
    if (this.#head !== this.#tail && this.#received >= this.#markAt[this.#head]) {
      const now = performance.now();
      run.lastEchoAt = now;
      do {
        run.window.record((now - this.#markTime[this.#head]) * 1000);
        run.messages++;
        if (!run.stopping) run.perConnection[this.#index]++;
        this.#head = (this.#head + 1) % MARKS;
      } while (this.#head !== this.#tail && this.#received >= this.#markAt[this.#head]);
    }
    if (run.stopping && this.#received >= this.#sent) return this.#finish();
    if (this.#sent - this.#received <= WINDOW && (this.#interest & C.EPOLLOUT) === 0) this.#write();
  }

  /** Where a corrupted read first differs from what was written. */
  #mismatch(buf: Uint8Array, n: number, at: number): string {
    const bytes = this.#host.run.pattern.bytes;
    const m = Math.min(n, Math.max(0, this.#sent - this.#received));
    for (let i = 0; i < m; i++) {
      if (buf[i] !== bytes[at + i]) {
        return `a corrupted echo: stream byte ${int(this.#received + i)} was ${
          hex(buf[i])
        }, expected ${hex(bytes[at + i])}`;
      }
    }
    return `a corrupted echo: more bytes came back than were written (${
      int(this.#received + n)
    } of ${int(this.#sent)})`;
  }

  /** The server ended the connection, or it failed: a refusal, or a reset. */
  #end(error: unknown): void {
    if (this.#done) return;
    const run = this.#host.run;
    if (error === EOF && run.stopping && this.#received >= this.#sent) return this.#finish();
    this.#failed = true;
    if (this.#intactReads === 0 && this.#received <= BANNER_MAX) {
      run.refused++;
      run.corrupted -= this.#badReads;
      run.noteError(refusal(error, null));
    } else {
      run.resets++;
      if (this.#received < this.#sent) run.short++;
      run.noteError(
        error === EOF
          ? "the server closed the connection mid-stream"
          : `the connection failed mid-stream: ${describeError(error)}`,
      );
    }
    this.#finish();
  }

  #watch(events: number): void {
    if (events === this.#interest || this.#fd < 0) return;
    this.#interest = events;
    this.#host.reactor.modify(this.#fd, events);
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#tls?.end();
    this.#tls = null;
    if (this.#fd >= 0) this.#host.reactor.close(this.#fd);
    this.#fd = -1;
    if (this.#connected) this.#host.run.peersOpen--;
    this.#connected = false;
    if (this.#asked && !this.#fed && !this.#failed) this.#host.run.starved++;
    this.#host.ended();
  }
}
