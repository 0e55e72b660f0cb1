/**
 * A UDP client for echo servers: send a datagram, get that datagram back.
 * UDP has no connection, and its refusal (ICMP "port unreachable") reaches
 * only connected sockets, which Deno's are not: a server that does not echo
 * UDP or drops the datagram (a rate limit, a deny rule) looks the same as one
 * that is not there, a reply that does not come within the time allowed.
 * Only for an address of this machine can {@linkcode udpPortUnbound} tell
 * that nothing listens there.
 *
 * @module
 */
import { lookup } from "node:dns/promises";
import { describeError, formatAddress, unbracket } from "../text/address.ts";
import { hasUnstableNet, UNSTABLE_NET_OFF } from "../text/unstable.ts";
import { quoteBytes } from "../text/words.ts";
import { ClientError } from "./errors.ts";

/** The largest UDP payload over IPv4 (65,535 − 8 − 20), and so the largest message. */
export const MAX_UDP_MESSAGE = 65_507;

/** Where a datagram goes: an IP address (never a name) and a port. */
export interface UdpTarget extends Deno.NetAddr {
  /** Always `udp`. */
  readonly transport: "udp";
}

/**
 * Turns `host` (an IP address, `[::1]`, or a name such as `localhost`) and
 * `port` into an address a datagram socket can send to, resolving a name once
 * through the system's resolver (so `/etc/hosts` counts).
 *
 * @throws {ClientError} of kind `connect` when the name does not resolve.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { resolveUdp } from "./udp.ts";
 * deepEqual(await resolveUdp("[::1]", 7007), { transport: "udp", hostname: "::1", port: 7007 });
 * ```
 */
export async function resolveUdp(host: string, port: number): Promise<UdpTarget> {
  const bare = unbracket(host);
  if (/^[\d.]+$/.test(bare) || bare.includes(":")) {
    return { transport: "udp", hostname: bare, port };
  }
  try {
    const { address } = await lookup(bare);
    return { transport: "udp", hostname: address, port };
  } catch (error) {
    const notFound = (error as { code?: unknown }).code === "ENOTFOUND";
    throw new ClientError(
      "connect",
      `cannot resolve ${bare}: ${notFound ? "host not found" : describeError(error)}`,
      { cause: error },
    );
  }
}

/**
 * A datagram socket on an ephemeral port of the family `target` needs
 * (`0.0.0.0` for IPv4, `::` for IPv6).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { openUdpSocket } from "./udp.ts";
 * const socket = openUdpSocket({ transport: "udp", hostname: "127.0.0.1", port: 7 });
 * equal((socket.addr as Deno.NetAddr).hostname, "0.0.0.0");
 * socket.close();
 * ```
 */
export function openUdpSocket(target: UdpTarget): Deno.DatagramConn {
  // Without it Deno.listenDatagram is missing, and the error would only say "not a function".
  if (!hasUnstableNet()) throw new Error(UNSTABLE_NET_OFF);
  const hostname = target.hostname.includes(":") ? "::" : "0.0.0.0";
  return Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
}

/**
 * Whether nothing on this machine receives datagrams sent to `target`:
 * `true` when `target` is an address of this machine and no socket is bound
 * to its port (the kernel answers such a datagram with ICMP "port
 * unreachable", the refusal of UDP); `false` when one is; `undefined` when it
 * cannot be told, as for another machine's address.
 *
 * Deno's datagram sockets are unconnected, and the kernel reports ICMP errors
 * only to connected ones, so the refusal is asked of the kernel another way:
 * a socket that binds the same address and port without sharing it (no
 * SO_REUSEADDR) is refused exactly when another socket holds them there or on
 * every address. It is closed at once; a server starting in that instant
 * would find the port busy, a price paid only when datagrams went unanswered.
 * A port forwarded by the firewall (Docker, Kubernetes) without a local
 * socket also reads as unbound: call this after a datagram had time to be
 * answered, not before sending.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { udpPortUnbound } from "./udp.ts";
 * const held = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
 * const port = (held.addr as Deno.NetAddr).port;
 * equal(udpPortUnbound({ transport: "udp", hostname: "127.0.0.1", port }), false);
 * held.close();
 * equal(udpPortUnbound({ transport: "udp", hostname: "127.0.0.1", port }), true);
 * ```
 */
export function udpPortUnbound(target: UdpTarget): boolean | undefined {
  if (!hasUnstableNet() || target.port === 0) return undefined;
  try {
    Deno.listenDatagram({ transport: "udp", hostname: target.hostname, port: target.port }).close();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return false;
    // Not an address of this machine, or no permission to bind: nothing can be told.
    return undefined;
  }
}

/**
 * The sentence for a datagram refused: nothing on this machine listens on
 * the UDP port of `address`.
 */
export function udpRefused(address: string): string {
  return `cannot reach ${address} over UDP: refused (nothing listens on that UDP port of this machine)`;
}

/** Options for {@linkcode connectUdp}. */
export interface UdpConnectOptions {
  /** Host name or address of the server. @default {"127.0.0.1"} */
  host?: string;
  /** Port of the server. @default {8000} */
  port?: number;
}

/** Options for {@linkcode UdpEchoClient.send}. */
export interface UdpSendOptions {
  /** Gives up waiting for the reply, e.g. `AbortSignal.timeout(5000)`. */
  signal?: AbortSignal;
  /** Rejects with a `mismatch` {@linkcode ClientError} when the reply is not the datagram sent. */
  verify?: boolean;
}

/**
 * One UDP socket talking to one echo server. Make one with
 * {@linkcode connectUdp}. Only datagrams from the server's address count as
 * replies; a reply that comes after its `send` gave up is thrown away before
 * the next datagram goes out.
 */
export class UdpEchoClient implements AsyncDisposable {
  /** The server, as `host:port`. */
  readonly address: string;
  /** The server, as datagrams are sent to it (an IP address, never a name). */
  readonly target: UdpTarget;
  readonly #socket: Deno.DatagramConn;
  readonly #target: UdpTarget;
  /** Replies received and not yet taken by a `send`. */
  readonly #replies: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #failure: unknown;
  #closed = false;
  #queue: Promise<unknown> = Promise.resolve();

  /** Talks to `target` over `socket`, which it then owns. */
  constructor(socket: Deno.DatagramConn, target: UdpTarget) {
    this.#socket = socket;
    this.#target = target;
    this.target = target;
    this.address = formatAddress(target.hostname, target.port);
    this.#receive();
  }

  /**
   * Sends `data` as one datagram (at most {@linkcode MAX_UDP_MESSAGE} bytes)
   * and resolves with the next datagram the server sends back. Calls made at
   * once go one after another.
   */
  send(data: Uint8Array | string, options: UdpSendOptions = {}): Promise<Uint8Array> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const exchange = this.#queue.then(() => this.#exchange(bytes, options));
    this.#queue = exchange.catch(() => {});
    return exchange;
  }

  async #exchange(bytes: Uint8Array, options: UdpSendOptions): Promise<Uint8Array> {
    if (this.#closed) throw new ClientError("closed", `socket to ${this.address} is closed`);
    if (bytes.length > MAX_UDP_MESSAGE) {
      throw new RangeError(
        `a datagram holds at most ${MAX_UDP_MESSAGE} bytes, not ${bytes.length}`,
      );
    }
    options.signal?.throwIfAborted();
    this.#replies.length = 0; // late replies to earlier datagrams
    try {
      await this.#socket.send(bytes, this.#target);
    } catch (error) {
      throw new ClientError(
        "failed",
        `sending to ${this.address} failed: ${describeError(error)}`,
        { cause: error },
      );
    }
    const reply = await this.#next(options.signal);
    if (options.verify && !sameBytes(reply, bytes)) {
      throw new ClientError(
        "mismatch",
        `echo differs: sent ${quoteBytes(bytes)}, got ${quoteBytes(reply)}`,
      );
    }
    return reply;
  }

  /** The next reply, or the signal's reason. */
  async #next(signal: AbortSignal | undefined): Promise<Uint8Array> {
    // It may have fired while the datagram was being sent; its event would not come again.
    signal?.throwIfAborted();
    const aborted = Promise.withResolvers<never>();
    const onAbort = () => aborted.reject(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (true) {
        const reply = this.#replies.shift();
        if (reply !== undefined) return reply;
        if (this.#failure !== undefined) throw this.#failure;
        if (this.#closed) throw new ClientError("closed", `socket to ${this.address} is closed`);
        await Promise.race([new Promise<void>((resolve) => this.#wake = resolve), aborted.promise]);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Receives for as long as the socket is open, keeping what the server sends. */
  async #receive(): Promise<void> {
    const buffer = new Uint8Array(MAX_UDP_MESSAGE + 29);
    try {
      while (!this.#closed) {
        const [data, from] = await this.#socket.receive(buffer);
        if (!this.#fromServer(from)) continue;
        this.#replies.push(data.slice());
        this.#wake?.();
      }
    } catch (error) {
      if (!this.#closed) {
        this.#failure = new ClientError(
          "failed",
          `receiving from ${this.address} failed: ${describeError(error)}`,
          { cause: error },
        );
      }
    } finally {
      this.#wake?.();
    }
  }

  #fromServer(from: Deno.Addr): boolean {
    if (from.transport !== "udp" || from.port !== this.#target.port) return false;
    // An IPv6 socket reports IPv4 peers as ::ffff:a.b.c.d.
    return from.hostname === this.#target.hostname ||
      from.hostname === `::ffff:${this.#target.hostname}`;
  }

  /** Closes the socket; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
    this.#wake?.();
  }

  /** Lets `await using` close the socket. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Opens a UDP socket towards an echo server. Nothing is sent yet, so this
 * succeeds whether or not a server is there; the first `send` tells.
 *
 * @throws {ClientError} of kind `connect` when the host does not resolve.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { connectUdp } from "./udp.ts";
 * import { serve } from "../server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0, udp: true });
 * await using client = await connectUdp({ port: server.addr.port });
 * const reply = await client.send("Hello, server", { verify: true, signal: AbortSignal.timeout(5000) });
 * equal(new TextDecoder().decode(reply), "Hello, server");
 * ```
 */
export async function connectUdp(options: UdpConnectOptions = {}): Promise<UdpEchoClient> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 8000;
  const target = await resolveUdp(host, port);
  let socket: Deno.DatagramConn;
  try {
    socket = openUdpSocket(target);
  } catch (error) {
    throw new ClientError(
      "connect",
      `cannot open a UDP socket towards ${formatAddress(target.hostname, port)}: ${
        describeError(error)
      }`,
      { cause: error },
    );
  }
  return new UdpEchoClient(socket, target);
}
