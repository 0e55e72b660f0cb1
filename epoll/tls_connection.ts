/**
 * One accepted TLS socket of the epoll engine: OpenSSL (`openssl.ts`) reads
 * and writes the socket itself, and the reactor's readiness drives it, the
 * handshake as well as the echo. Like the plain {@linkcode EpollConnection},
 * it runs the echo itself ({@linkcode EpollTlsConnection.echo}), with no
 * `Promise` per read, and takes no more from a peer than the peer takes back:
 * while an echo waits for `EPOLLOUT`, nothing more is read.
 *
 * Until its handshake starts (the first `echo`, `read` or `write`) the
 * connection is a plain socket: `readPlain` returns the bytes in front of the
 * handshake, which is how the PROXY decorator reads its header, and `unread`
 * gives back those read past it, for OpenSSL to read first. `read` and
 * `write` are for an echo that runs outside (a fault's): they run the
 * handshake first.
 *
 * @module
 */
import type { EchoCounters, EchoDone, EchoOptions } from "../transport/echo.ts";
import { isPeerGone } from "../transport/echo.ts";
import { type Connection, peerOf, TransportError } from "../transport/contract.ts";
import { formatExactDuration } from "../text/duration.ts";
import { C } from "./libc.ts";
import { discardInput, type Lingerer, Lingering, lingerOver } from "./linger.ts";
import { S } from "./openssl.ts";
import { TlsSession, type TlsShared } from "./tls_session.ts";
import { PlainStart } from "./tls_plain.ts";
import type { Reactor, Readiness } from "./reactor.ts";
import { setNoDelayOn } from "./socket_calls.ts";
import { ParkedTls } from "./tls_parked.ts";
import type { IpPort } from "./sockaddr.ts";

/** The phases: not yet TLS (a plain socket), handshaking, open; broken after a fatal TLS error. */
const [RAW, HANDSHAKE, OPEN, BROKEN] = [0, 1, 2, 3] as const;
type Phase = typeof RAW | typeof HANDSHAKE | typeof OPEN | typeof BROKEN;

const IN = C.EPOLLIN;
const OUT = C.EPOLLOUT;
/** `SSL_read`s per readiness event, so that one busy peer does not hold the loop. */
const MAX_READS = 8;
/** A connection that is not echoing counts nothing. */
const NO_COUNTERS: EchoCounters = { bytesIn: 0, bytesOut: 0 };

/** Every gently closing TLS connection of this isolate, asked in turn by one timer. */
const lingering = new Lingering();

/** An accepted, non-blocking TCP socket that speaks TLS, on a {@linkcode Reactor}. */
export class EpollTlsConnection implements Connection, Readiness, Lingerer {
  readonly #reactor: Reactor;
  readonly #shared: TlsShared;
  #fd: number;
  readonly #hostname: string;
  readonly #port: number;
  #phase: Phase = RAW;
  /** OpenSSL's side, from the start of the handshake. */
  #session: TlsSession | undefined;
  #interest = -1;
  /** The plain bytes before the handshake (a PROXY header), when asked for. */
  #raw: PlainStart | undefined;
  #echo: EchoDone | undefined;
  #counters: EchoCounters = NO_COUNTERS;
  #onChunk: ((bytes: number) => void) | undefined;
  /** Read, and not yet taken by `SSL_write`: a copy, retried on `EPOLLOUT`. */
  #pending: Uint8Array | undefined;
  /** The reads and writes of an echo that runs outside, made by the first. */
  #parked: ParkedTls | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #linger: { until: number } | undefined;
  /** See `Connection.clientSubject`. */
  clientSubject?: string;
  /** See `Connection.identified`: with mutual TLS, settles when the handshake ends, or the connection. */
  readonly identified?: Promise<void>;
  #identify: (() => void) | undefined;

  /** Takes ownership of `fd`; the connection closes it. */
  constructor(reactor: Reactor, fd: number, peer: IpPort, shared: TlsShared) {
    this.#reactor = reactor;
    this.#fd = fd;
    this.#hostname = peer.hostname;
    this.#port = peer.port;
    this.#shared = shared;
    if (shared.clientCertificates) {
      ({ promise: this.identified, resolve: this.#identify } = Promise.withResolvers<void>());
    }
    reactor.retain();
  }

  /** The peer, as `accept4` gave it. */
  get remoteAddr(): Deno.NetAddr {
    return { transport: "tcp", hostname: this.#hostname, port: this.#port };
  }

  /** Turns Nagle's algorithm off (or on) under the records. */
  setNoDelay(noDelay = true): void {
    setNoDelayOn(this.#reactor.sys, this.#open(), noDelay);
  }

  /**
   * Runs the handshake, then echoes every byte back until the peer ends its
   * stream (`eof`: close_notify, or a FIN) or goes away (`reset`); a failed
   * or late handshake ends it with a {@linkcode TransportError}.
   */
  echo(options: EchoOptions, done: EchoDone): void {
    this.#idle();
    this.#start();
    this.#echo = done;
    this.#counters = options.counters ?? { bytesIn: 0, bytesOut: 0 };
    this.#onChunk = options.onChunk;
    this.#advanceOrFail();
  }

  /** Reads some bytes over TLS, after the handshake; `null` at the end of the peer's stream. */
  read(p: Uint8Array): Promise<number | null> {
    return this.#outside((io) => io.read(p));
  }

  /** Writes some prefix of `p` over TLS, after the handshake; resolves with how many bytes. */
  write(p: Uint8Array): Promise<number> {
    return this.#outside((io) => io.write(p));
  }

  /** Before the handshake: the plain bytes in front of it (a PROXY header). */
  readPlain(p: Uint8Array): Promise<number | null> {
    try {
      return this.#plain().read(p);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Gives back bytes read before the handshake and not meant for that reader: OpenSSL reads them first. */
  unread(bytes: Uint8Array): void {
    this.#plain().giveBack(bytes);
  }

  /**
   * Closes the connection: after its handshake, close_notify first (one
   * try; the socket is not waited for). A pending write or echo then fails.
   */
  close(): void {
    const fd = this.#open();
    this.#session?.notify(this.#phase === OPEN);
    const { sys, buffer, bufferLength } = this.#reactor;
    // Unread input would make the close a reset, which can destroy what was just written.
    sys.recv(fd, buffer, bufferLength, 0);
    this.#fd = -1;
    clearTimeout(this.#timer);
    if (this.#linger !== undefined) lingering.delete(this);
    this.#linger = undefined;
    this.#pending = undefined;
    this.#reactor.close(fd);
    if (this.#session?.free() === true) this.#shared.churn++;
    this.#session = undefined;
    const closed = () => new Deno.errors.BadResource("the connection was closed");
    const echo = this.#echo;
    this.#echo = undefined;
    this.#raw?.fail(closed);
    this.#raw = undefined;
    this.#parked?.fail(closed());
    if (echo !== undefined) queueMicrotask(() => echo.echoEnded("error", closed()));
    this.#identify?.();
    this.#reactor.release();
  }

  /**
   * See `Connection.closeGently`: close_notify, then a FIN; what the peer
   * still sends is read and dropped; closed once the peer has everything,
   * or after `graceMs`. Bytes read and not yet echoed are dropped.
   */
  closeGently(graceMs: number): void {
    const fd = this.#open();
    if (this.#linger !== undefined) return;
    this.#pending = undefined;
    this.#session?.notify(this.#phase === OPEN);
    const shut = this.#reactor.sys.shutdown(fd, C.SHUT_WR);
    this.#linger = { until: performance.now() + Math.max(0, graceMs) };
    if (shut < 0) return this.close();
    try {
      this.#watch(IN);
    } catch {
      // The loop has stopped: the timer's check closes it.
    }
    lingering.add(this);
  }

  /** See {@linkcode Lingerer.lingerCheck}. */
  lingerCheck(now: number): boolean {
    const linger = this.#linger;
    if (linger === undefined || this.#fd < 0) return true;
    if (!lingerOver(this.#reactor, this.#fd, linger.until, now)) return false;
    this.close();
    return true;
  }

  /** See {@linkcode Readiness.ready}. */
  ready(): void {
    if (this.#linger !== undefined) return this.#discard();
    if (this.#phase !== RAW) return this.#advance();
    if (this.#raw?.ready() !== true) this.#watch(0);
  }

  /** See {@linkcode Readiness.fail}: ends whatever is in progress with `error`. */
  fail(error: unknown): void {
    if (this.#session !== undefined) this.#phase = BROKEN;
    clearTimeout(this.#timer);
    const echo = this.#echo;
    this.#echo = undefined;
    this.#pending = undefined;
    this.#reactor.settled();
    try {
      this.#watch(0);
    } catch {
      // The loop has stopped: nothing to take it out of.
    }
    this.#raw?.fail(() => error);
    this.#parked?.fail(error);
    echo?.echoEnded(isPeerGone(error) ? "reset" : "error", error);
  }

  /** {@linkcode EpollTlsConnection.#advance} outside the loop, which would otherwise hear what it throws. */
  #advanceOrFail(): void {
    try {
      this.#advance();
    } catch (error) {
      this.fail(error);
    }
  }

  /** Does what the phase and the waiting work call for; throws what ends it (see `fail`). */
  #advance(): void {
    if (this.#phase === HANDSHAKE && !this.#handshake()) return;
    const session = this.#session;
    if (this.#phase !== OPEN || session === undefined) return;
    if (this.#pending !== undefined && !this.#flush(session)) return;
    if (this.#echo !== undefined) return this.#pump(session);
    this.#watch(this.#parked?.advance(session) ?? 0);
  }

  /** A read or a write of an echo that runs outside: the handshake first, then on readiness. */
  #outside<T>(op: (io: ParkedTls) => Promise<T>): Promise<T> {
    try {
      this.#open();
      if (this.#echo !== undefined || this.#linger !== undefined) {
        throw new Deno.errors.Busy("the connection is being echoed or closed");
      }
      this.#start();
      const promise = op(this.#parked ??= new ParkedTls(() => this.#reactor.settled()));
      this.#advanceOrFail();
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The echo's loop: read what has come, write it straight back, until nothing more or the peer is full. */
  #pump(session: TlsSession): void {
    const calls = this.#shared.lib.ssl;
    const ssl = session.ssl;
    const { buffer } = this.#reactor;
    const counters = this.#counters;
    for (let reads = 0; reads < MAX_READS; reads++) {
      const n = calls.SSL_read(ssl, buffer, buffer.length);
      if (n <= 0) return this.#readStopped(session, calls.SSL_get_error(ssl, n));
      counters.bytesIn += n;
      const sent = session.send(buffer, n);
      counters.bytesOut += sent;
      if (sent < n) this.#pending = buffer.slice(sent, n);
      this.#onChunk?.(n);
      if (this.#echo === undefined) return;
      if (sent < n) return this.#watch(OUT);
      // What else came is in the kernel's buffer, and epoll says so: no recv just to find EAGAIN.
      if (calls.SSL_has_pending(ssl) !== 1) return this.#watch(IN);
    }
    // More waits in OpenSSL's buffer, which no event announces: a writable socket reports at once.
    this.#watch(IN | OUT);
  }

  /** `SSL_read` gave nothing: wait, or end the echo. */
  #readStopped(session: TlsSession, error: number): void {
    if (error === S.SSL_ERROR_WANT_READ) return this.#watch(IN);
    if (error === S.SSL_ERROR_WANT_WRITE) return this.#watch(OUT);
    if (error === S.SSL_ERROR_ZERO_RETURN) return this.#echoEnd();
    throw session.failure(error, "SSL_read");
  }

  /** Writes the pending bytes; true once they are all out. */
  #flush(session: TlsSession): boolean {
    const pending = this.#pending;
    if (pending === undefined) return true;
    const sent = session.send(pending, pending.length);
    this.#counters.bytesOut += sent;
    if (sent < pending.length) {
      this.#pending = pending.subarray(sent);
      this.#watch(OUT);
      return false;
    }
    this.#pending = undefined;
    return true;
  }

  /** The peer ended its stream: its echo is back, so the echo is over. */
  #echoEnd(): void {
    const echo = this.#echo;
    if (echo === undefined) return;
    this.#echo = undefined;
    this.#reactor.settled();
    this.#watch(0);
    echo.echoEnded("eof");
  }

  /** Starts TLS on first use: the handshake, and its deadline. */
  #start(): void {
    if (this.#phase !== RAW) return;
    const { lib, context, handshakeTimeoutMs } = this.#shared;
    this.#session = new TlsSession(lib, context, this.#open(), this.#raw?.take());
    this.#raw = undefined;
    this.#phase = HANDSHAKE;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#phase !== HANDSHAKE || this.#fd < 0) return;
      this.fail(
        this.#handshakeError(`no handshake within ${formatExactDuration(handshakeTimeoutMs)}`),
      );
    }, handshakeTimeoutMs);
  }

  /** Moves the handshake on; true once it is done. */
  #handshake(): boolean {
    const session = this.#session;
    if (session === undefined) return false;
    let step;
    try {
      step = session.handshake();
    } catch (error) {
      throw this.#handshakeError(error instanceof Error ? error.message : String(error));
    }
    if (step !== "done") {
      this.#watch(step === "read" ? IN : OUT);
      return false;
    }
    this.#phase = OPEN;
    this.#shared.churn++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.clientSubject = session.clientSubject();
    this.#identify?.();
    return true;
  }

  /** Closing gently: reads and drops what the peer still sends. */
  #discard(): void {
    const got = discardInput(this.#reactor, this.#fd);
    if (got === "ended") this.#watch(0);
    else if (got === "failed") this.close();
  }

  #watch(events: number): void {
    this.#interest = this.#reactor.rewatch(this.#fd, this.#interest, events, this);
  }

  /** Throws unless the connection is open and neither echoing, read or written outside, nor closing. */
  #idle(): void {
    this.#open();
    if (this.#echo !== undefined || this.#parked !== undefined || this.#linger !== undefined) {
      throw new Deno.errors.Busy("the connection is already being echoed, read, written or closed");
    }
  }

  #handshakeError(why: string): TransportError {
    return new TransportError(`TLS handshake with ${peerOf(this.remoteAddr).text} failed: ${why}`);
  }

  #plain(): PlainStart {
    if (this.#phase !== RAW) throw new Deno.errors.Busy("the handshake has started");
    const fd = this.#open();
    const { sys } = this.#reactor;
    return this.#raw ??= new PlainStart(sys, fd, (events) => this.#watch(events), () => {
      this.#reactor.settled();
    });
  }

  #open(): number {
    if (this.#fd < 0) throw new Deno.errors.BadResource("the connection is closed");
    return this.#fd;
  }
}
