/**
 * The load on the libc epoll engine (`io: "epoll"`): every connection a
 * state machine on one {@linkcode Reactor} (`epoll_peer.ts`,
 * `epoll_stream.ts`), so that a message costs two libc calls and no
 * `Promise`. TCP, with or without PROXY headers, or TLS through OpenSSL
 * (`epoll_tls.ts`); the options check refuses Unix sockets and UDP.
 *
 * @module
 */
import { epollUnavailable } from "../epoll/libc.ts";
import { Reactor } from "../epoll/reactor.ts";
import { decodeSockaddr } from "../epoll/sockaddr.ts";
import type { TlsClient } from "../epoll/tls_client.ts";
import type { ProxyEndpoint } from "../proxy/header.ts";
import { type Clock, CONNECT_TIMEOUT_MAX_MS, CONNECT_TIMEOUT_MIN_MS } from "./deno_load.ts";
import { EpollPeer, type PeerHost } from "./epoll_peer.ts";
import { resolveSockaddr } from "./epoll_socket.ts";
import { EpollStream } from "./epoll_stream.ts";
import { tlsClientOf } from "./epoll_tls.ts";
import type { BenchOptions } from "./options.ts";
import { benchTarget } from "./report.ts";
import type { Run } from "./run.ts";

/** What the load asks of each connection, whichever its mode. */
interface Peer {
  readonly done: boolean;
  dial(): void;
  begin(): void;
  stop(): void;
  abort(): void;
}

/** The connections of one epoll load, and what they tell it. */
class EpollLoad implements PeerHost {
  readonly run: Run;
  readonly reactor: Reactor;
  readonly address: Uint8Array;
  readonly server: ProxyEndpoint;
  readonly tls: TlsClient | undefined;
  started = false;
  readonly peers: Peer[] = [];
  /** First connects still pending, and connections that succeeded. */
  dialing = 0;
  opened = 0;
  #active = 0;
  readonly dialed = Promise.withResolvers<void>();
  readonly finished = Promise.withResolvers<void>();

  constructor(run: Run, reactor: Reactor, address: Uint8Array, tls: TlsClient | undefined) {
    this.run = run;
    this.tls = tls;
    this.reactor = reactor;
    this.address = address;
    const ip = decodeSockaddr(address);
    this.server = { address: ip?.hostname ?? "0.0.0.0", port: ip?.port ?? 0 };
  }

  add(peer: Peer): void {
    this.peers.push(peer);
    this.#active++;
  }

  connected(ok: boolean): void {
    if (ok) this.opened++;
    if (--this.dialing === 0) {
      this.dialed.resolve();
      this.reactor.settled();
    }
  }

  ended(): void {
    if (--this.#active === 0) {
      this.finished.resolve();
      this.reactor.settled();
    }
  }
}

/**
 * Runs the load of `o` on the epoll engine until the run stops and the
 * echoes in flight are drained (or their time is up), as `loadDeno` does.
 * Rejects with one sentence when the engine cannot run here.
 */
export async function loadEpoll(run: Run, o: BenchOptions, clock: Clock): Promise<void> {
  const why = epollUnavailable();
  if (why !== undefined) throw new Error(why);
  const address = await resolveSockaddr(o.host, o.port);
  const tls = tlsClientOf(o);
  const reactor = new Reactor();
  reactor.retain();
  const load = new EpollLoad(run, reactor, address, tls);
  const n = o.connections;
  const interval = o.rate === undefined ? 0 : (1000 * n) / o.rate;
  const ramp = o.rampMs ?? 0;
  for (let i = 0; i < n; i++) {
    const phase = Math.max((i * interval) / n, (i * ramp) / n);
    load.add(
      o.mode === "stream"
        ? new EpollStream(load, i)
        : new EpollPeer(load, i, o.mode === "churn", phase, interval),
    );
  }
  const stopped = run.stopped.then(() => {
    for (const peer of load.peers) peer.stop();
  });
  try {
    if (ramp > 0) {
      load.started = true;
      clock.start();
      const t0 = run.startedAt;
      load.peers.forEach((peer, i) => run.wakeAt(t0 + (i * ramp) / n, () => openLate(run, peer)));
    } else {
      await dialAll(load, o);
      load.started = true;
      clock.start();
      for (const peer of load.peers) peer.begin();
    }
    await Promise.race([load.finished.promise, run.stopped]);
    run.stop();
    await stopped;
    let drain: ReturnType<typeof setTimeout> | undefined;
    const drained = new Promise<void>((resolve) => drain = setTimeout(resolve, run.drainMs));
    await Promise.race([load.finished.promise, drained]);
    clearTimeout(drain);
  } finally {
    run.closing = true;
    run.stop();
    for (const peer of load.peers) peer.abort();
    reactor.release();
    await reactor.stopped;
    tls?.free();
  }
}

/** A connection of a ramp, due now: it opens, unless the run has stopped. */
function openLate(run: Run, peer: Peer): void {
  if (run.stopping) peer.abort();
  else peer.dial();
}

/**
 * Opens every connection before the clock starts, within the connect
 * timeout of the Deno engine. Rejects with `cannot connect to …` when not
 * one could be (refusals aside).
 */
async function dialAll(load: EpollLoad, o: BenchOptions): Promise<void> {
  const run = load.run;
  const timeout = Math.min(CONNECT_TIMEOUT_MAX_MS, Math.max(CONNECT_TIMEOUT_MIN_MS, o.durationMs));
  load.dialing = load.peers.length;
  for (const peer of load.peers) peer.dial();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, timeout));
  await Promise.race([load.dialed.promise, late, run.stopped]);
  clearTimeout(timer);
  if (load.dialing > 0 && !run.stopping) {
    run.noteError(`${load.dialing} connects timed out after ${timeout / 1000} s`);
  }
  if (load.opened === 0 && run.refused === 0 && !run.stopping) {
    throw new Error(`cannot connect to ${benchTarget(o)}: ${run.firstError ?? "no connection"}`);
  }
}
