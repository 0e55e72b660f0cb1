/**
 * The PROXY protocol as a {@linkcode Listener} decorator: every connection
 * from a trusted proxy must start with a v1 or v2 header, and is handed on
 * with the client's address the header carries as its `remoteAddr`, so that
 * the acceptor, the admission rules, the logs and the echo handler work on
 * the client, unchanged. Connections from anyone else, and headers that are
 * missing, late or malformed, are closed here and reported.
 *
 * @module
 */
import { type Cidr, cidrContainsIp, parseIp } from "../admission/cidr.ts";
import type { RefusalReason } from "../admission/refusals.ts";
import { logger } from "../log/log.ts";
import {
  closeQuietly,
  type Connection,
  type Listener,
  type Peer,
  peerOf,
} from "../transport/contract.ts";
import { describeError } from "../text/address.ts";
import { type HeaderOutcome, proxiedConnection, readProxyHeader } from "./connection.ts";

/** What {@linkcode proxyListener} uses for the options left out. */
export const PROXY_DEFAULTS = {
  /** How long a trusted proxy may take to send the whole header. */
  headerTimeoutMs: 3_000,
  /** Connections awaiting their header at most (and never more than the server's cap). */
  maxPending: 1_000,
} as const;

/** How the server takes the PROXY protocol: plain data, so that workers get it too. */
export interface ProxyProtocolOptions {
  /**
   * The proxies allowed to send a header; a connection from any other
   * address is closed unread. Peers on a Unix socket are always trusted:
   * the socket file's permissions already decide who may connect.
   */
  trustedProxies: readonly Cidr[];
  /** How long a proxy may take to send the whole header. @default {3000} */
  headerTimeoutMs?: number;
  /**
   * Connections awaiting their header (or handed on and not yet taken) at
   * most; while that many wait, no more are accepted, and newcomers queue
   * in the kernel's backlog. @default {the smaller of 1000 and `maxConns`}
   */
  maxPending?: number;
}

/** The refusals this decorator makes. */
export type ProxyRefusal = Extract<RefusalReason, "proxy-untrusted" | "proxy-header">;

/** What {@linkcode proxyListener} reports to the server it feeds. */
export interface ProxyListenerHooks {
  /** Hears of each connection closed here, with the proxy as its peer and what went wrong. */
  onRefused(reason: ProxyRefusal, peer: Peer, detail: string): void;
  /** The server's cap on open connections; `maxPending` stays below it. */
  maxConns?: number;
}

const log = logger("server");

/**
 * Wraps `inner` so that each connection it yields has passed the PROXY
 * protocol: from a trusted proxy, with a valid header, read within the
 * timeout. Headers are read concurrently, so that a slow proxy connection
 * does not hold up the others, and at most `maxPending` at once. The
 * connection handed on reads first whatever bytes came after the header,
 * then straight from the socket.
 *
 * @throws {RangeError} for a timeout or `maxPending` that is not a positive integer.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { parseCidr } from "../admission/cidr.ts";
 * import { listenTcp } from "../transport/tcp.ts";
 * import { encodeProxyV1 } from "./encode.ts";
 * import { proxyListener } from "./listener.ts";
 *
 * const listener = proxyListener(listenTcp({ hostname: "127.0.0.1", port: 0 }), {
 *   trustedProxies: [parseCidr("127.0.0.1")],
 * }, { onRefused: () => {} });
 * using client = await Deno.connect(listener.addr);
 * await client.write(encodeProxyV1({
 *   source: { address: "203.0.113.7", port: 40000 },
 *   destination: { address: "127.0.0.1", port: listener.addr.port },
 * }));
 * const next = await listener[Symbol.asyncIterator]().next();
 * equal(next.done, false);
 * if (!next.done) {
 *   equal(next.value.remoteAddr.transport === "tcp" && next.value.remoteAddr.hostname, "203.0.113.7");
 *   next.value.close();
 * }
 * listener.close();
 * ```
 */
export function proxyListener<A extends Deno.Addr>(
  inner: Listener<A>,
  options: ProxyProtocolOptions,
  hooks: ProxyListenerHooks,
): Listener<A> {
  return new ProxyListener(inner, options, hooks);
}

class ProxyListener<A extends Deno.Addr> implements Listener<A> {
  readonly addr: A;
  readonly #inner: Listener<A>;
  readonly #trusted: readonly Cidr[];
  readonly #timeoutMs: number;
  readonly #maxHeld: number;
  readonly #onRefused: ProxyListenerHooks["onRefused"];
  /** The inner iteration; a fresh one after a failed accept, as the Listener contract allows. */
  #source: AsyncIterator<Connection> | undefined;
  #pulling = false;
  /** Connections reading their header. */
  readonly #pending = new Set<Connection>();
  /** Connections with their header read, waiting to be taken. */
  readonly #ready: Connection[] = [];
  #failure: { error: unknown } | undefined;
  #ended = false;
  #closed = false;
  #wake: (() => void) | undefined;

  constructor(inner: Listener<A>, options: ProxyProtocolOptions, hooks: ProxyListenerHooks) {
    const timeoutMs = options.headerTimeoutMs ?? PROXY_DEFAULTS.headerTimeoutMs;
    const maxPending = options.maxPending ??
      Math.min(PROXY_DEFAULTS.maxPending, hooks.maxConns ?? PROXY_DEFAULTS.maxPending);
    for (const [name, value] of [["headerTimeoutMs", timeoutMs], ["maxPending", maxPending]]) {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`invalid ${name} ${value}: must be a positive integer`);
      }
    }
    this.addr = inner.addr;
    this.#inner = inner;
    this.#trusted = [...options.trustedProxies];
    this.#timeoutMs = timeoutMs;
    this.#maxHeld = maxPending;
    this.#onRefused = hooks.onRefused;
  }

  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return { next: () => this.#next() };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#inner);
    for (const conn of this.#pending) closeQuietly(conn);
    for (const conn of this.#ready.splice(0)) closeQuietly(conn);
    this.#signal();
  }

  async #next(): Promise<IteratorResult<Connection>> {
    while (true) {
      const conn = this.#ready.shift();
      if (conn !== undefined) return { done: false, value: conn };
      if (this.#failure !== undefined) {
        const { error } = this.#failure;
        this.#failure = undefined;
        throw error;
      }
      if (this.#closed || this.#ended) return { done: true, value: undefined };
      const woken = new Promise<void>((resolve) => this.#wake = resolve);
      this.#pull();
      await woken;
    }
  }

  /** Wakes a waiting {@linkcode ProxyListener.#next} to look again. */
  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * Accepts one more connection while someone waits for one and there is
   * room; a full house leaves newcomers in the kernel's backlog.
   */
  #pull(): void {
    const held = this.#pending.size + this.#ready.length;
    if (this.#pulling || this.#closed || this.#ended || held >= this.#maxHeld) return;
    this.#pulling = true;
    const source = this.#source ??= this.#inner[Symbol.asyncIterator]();
    source.next().then((result) => {
      this.#pulling = false;
      if (result.done) {
        this.#ended = true;
        for (const conn of this.#pending) closeQuietly(conn);
      } else {
        this.#take(result.value);
      }
      this.#signal();
    }, (error: unknown) => {
      this.#pulling = false;
      this.#source = undefined;
      this.#failure = { error };
      this.#signal();
    });
  }

  #take(conn: Connection): void {
    try {
      this.#check(conn);
    } catch (error) {
      // A bug in handling one connection must not end the accepting.
      log.error("could not handle a connection: {error}", { error: describeError(error) });
      this.#pending.delete(conn);
      closeQuietly(conn);
    }
  }

  #check(conn: Connection): void {
    if (this.#closed) return closeQuietly(conn);
    const proxy = peerOf(conn.remoteAddr);
    if (!this.#trusts(conn.remoteAddr)) {
      closeQuietly(conn);
      return this.#refuse("proxy-untrusted", proxy, "not a trusted proxy");
    }
    this.#pending.add(conn);
    readProxyHeader(conn, this.#timeoutMs).then((outcome) => {
      this.#pending.delete(conn);
      if (this.#closed) return closeQuietly(conn);
      if (!outcome.ok) {
        closeQuietly(conn);
        this.#refuse("proxy-header", proxy, outcome.reason);
      } else {
        this.#ready.push(this.#proxied(conn, proxy, outcome));
      }
      this.#signal();
    }).catch((error: unknown) => {
      log.error("could not handle a connection: {error}", { error: describeError(error) });
      this.#pending.delete(conn);
      closeQuietly(conn);
      this.#signal();
    });
  }

  /** The connection as the header presents it: the client as its peer. */
  #proxied(
    conn: Connection,
    proxy: Peer,
    header: Extract<HeaderOutcome, { ok: true }>,
  ): Connection {
    const client = header.source === undefined ? undefined : {
      transport: "tcp" as const,
      hostname: header.source.address,
      port: header.source.port,
    };
    if (log.isEnabledFor("debug")) {
      log.debug("PROXY v{version} header from {proxy}: client {client}", {
        version: header.version,
        proxy: proxy.text,
        client: client === undefined ? "the proxy itself" : peerOf(client).text,
      });
    }
    return proxiedConnection(conn, client ?? conn.remoteAddr, header.rest);
  }

  #trusts(addr: Deno.Addr): boolean {
    if (addr.transport === "unix" || addr.transport === "unixpacket") return true;
    if (addr.transport !== "tcp") return false;
    const ip = parseIp(addr.hostname);
    return ip !== null && this.#trusted.some((cidr) => cidrContainsIp(cidr, ip));
  }

  #refuse(reason: ProxyRefusal, peer: Peer, detail: string): void {
    try {
      this.#onRefused(reason, peer, detail);
    } catch (error) {
      // A failing report must not stop the others, nor the accepting.
      log.error("could not report a refusal: {error}", { error: describeError(error) });
    }
  }
}
