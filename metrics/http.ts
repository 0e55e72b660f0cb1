/**
 * A small HTTP/1.1 server for the metrics endpoint, on a TCP listener of its
 * own, made to keep answering when the process is under stress: it holds at
 * most a few connections (when full, the one waiting longest for a request
 * makes room), each must send its request head within a timeout and is closed
 * after an idle keep-alive, and an accept that fails (out of file
 * descriptors, say) is retried with a pause, never thrown. While descriptors
 * are short it gives back one it keeps in reserve, so that a health check can
 * still be answered where the system allows. `Deno.serve` did none of this:
 * out of descriptors it ended the process.
 *
 * Only what a scraper and a probe send is understood: `GET` or `HEAD`, a
 * path, headers, no body.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { isPeerGone } from "../transport/echo.ts";
import { closeQuietly } from "../transport/contract.ts";
import { sleepUnless } from "../transport/wait.ts";
import { hasUnstableNet } from "../text/unstable.ts";
import { logger } from "../log/log.ts";
import { FailureEpisode } from "../log/episode.ts";
import { isOutOfDescriptors } from "../transport/contract.ts";
import { plural } from "../text/words.ts";
import { headEnd, parseHead } from "./request_head.ts";
import { type HttpReply, notAllowed, plain, readBody, statusLine } from "./http_reply.ts";

/** The limits of {@linkcode HttpServer}; the metrics endpoint uses {@linkcode HTTP_LIMITS}. */
export interface HttpLimits {
  /** Connections held at most; a new one then closes the one waiting longest for a request. */
  maxConnections: number;
  /** How long a connection may take from its first byte of a request to the end of its head. */
  headerTimeoutMs: number;
  /** How long a connection may wait between requests (or for its first) before it is closed. */
  idleTimeoutMs: number;
  /** The longest request head (request line and headers) taken; a longer one gets 431. */
  maxHeadBytes: number;
  /**
   * How long answering one request may take, its writing included: a client
   * that does not read its answers is closed after this.
   */
  answerTimeoutMs: number;
  /**
   * The longest body a `PUT` may have; without it, `PUT` is answered 405 like
   * any method but `GET` and `HEAD`. A `PUT` connection closes after its answer.
   */
  maxBodyBytes?: number;
}

/** The limits the metrics endpoint runs with (the README's "Metrics and health" lists them). */
export const HTTP_LIMITS: HttpLimits = {
  maxConnections: 32,
  headerTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  maxHeadBytes: 8 * 1024,
  answerTimeoutMs: 10_000,
};

/** A request as the handler sees it. */
export interface HttpRequest {
  /** `GET` or `HEAD`, or `PUT` where `maxBodyBytes` lets it in; others are answered 405. */
  method: "GET" | "HEAD" | "PUT";
  /** The path, without the query. */
  path: string;
  /** A `PUT`'s body, as UTF-8 text. */
  body?: string;
}

export type { HttpReply } from "./http_reply.ts";

/** Answers one request; a rejection is answered 500 and logged. */
export type HttpHandler = (request: HttpRequest) => Promise<HttpReply> | HttpReply;

/** What {@linkcode HttpServer} counts, for the endpoint's own metrics and tests. */
export interface HttpCounts {
  /** Accepts that failed (each retried). */
  acceptErrors: number;
  /** Connections closed at `maxConnections`: to make room, or new ones when none could give way. */
  evicted: number;
  /** Connections closed by the header, idle or answer timeout. */
  timedOut: number;
}

const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1000;
/** How often the timeouts are checked: they are seconds long, so a quarter second is precise enough. */
const SWEEP_MS = 250;
/** How long `close()` lets answers under way finish before it closes their connections too. */
const CLOSE_GRACE_MS = 1000;

const log = logger("server");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One connection: where it stands, for the sweep and for eviction. */
interface Client {
  readonly conn: Deno.Conn;
  /** When it last finished a response (or opened): the idle timeout counts from here. */
  idleSince: number;
  /** When the current request's first byte came; undefined between requests. */
  headSince: number | undefined;
  /** Since when a response has been made or written: not evicted then, but bounded in time. */
  busySince: number | undefined;
}

/**
 * Serves HTTP/1.1 on `listener` with `handler` until {@linkcode HttpServer.close}.
 */
export class HttpServer implements AsyncDisposable {
  readonly #listener: Deno.Listener;
  readonly #handler: HttpHandler;
  readonly #limits: HttpLimits;
  /** In the order they opened or last finished a request: the first is evicted first. */
  readonly #clients = new Set<Client>();
  readonly #closing = Promise.withResolvers<void>();
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #accepting: Promise<void>;
  readonly #serving = new Set<Promise<void>>();
  #reserve: Deno.DatagramConn | undefined;
  #closed = false;
  readonly counts: HttpCounts = { acceptErrors: 0, evicted: 0, timedOut: 0 };

  /** Starts accepting on `listener` at once. */
  constructor(listener: Deno.Listener, handler: HttpHandler, limits: HttpLimits = HTTP_LIMITS) {
    this.#listener = listener;
    this.#handler = handler;
    this.#limits = limits;
    this.#reserve = takeReserve();
    this.#sweep = setInterval(() => this.#sweepOnce(), SWEEP_MS);
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Stops accepting, closes idle connections, lets answers under way finish
   * for up to a second, then closes the rest.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.resolve();
      clearInterval(this.#sweep);
      closeQuietly(this.#listener);
      if (this.#reserve !== undefined) closeQuietly(this.#reserve);
      this.#reserve = undefined;
      // Idle ones at once; a busy one closes itself after its response.
      for (const client of this.#clients) {
        if (client.busySince === undefined) closeQuietly(client.conn);
      }
    }
    await this.#accepting;
    // An answer its client does not read would keep the process from exiting: not long.
    if (await sleepUnless(CLOSE_GRACE_MS, Promise.all(this.#serving).then(() => {}))) {
      for (const client of this.#clients) closeQuietly(client.conn);
    }
    await Promise.all(this.#serving);
  }

  /** Closes it; see {@linkcode HttpServer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #acceptLoop(): Promise<void> {
    let backoffMs = 0;
    const failures = new FailureEpisode({
      began: (error) =>
        log.warning("metrics: accept failed: {error}; retrying with backoff", {
          error: describeError(error),
        }),
      ended: (count, seconds) =>
        log.info("metrics: accepting again after {seconds} s ({accepts})", {
          seconds: Math.round(seconds * 10) / 10,
          accepts: plural(count, "failed accept"),
        }),
    });
    try {
      while (!this.#closed) {
        let conn: Deno.Conn;
        try {
          conn = await this.#listener.accept();
        } catch (error) {
          if (this.#closed) return;
          // Reset while it waited in the backlog: that one is gone, the next may come at once.
          if (isPeerGone(error)) continue;
          this.counts.acceptErrors++;
          failures.failed(error);
          // Out of descriptors: give one back, so that this accept can succeed now.
          if (isOutOfDescriptors(error) && this.#reserve !== undefined) {
            closeQuietly(this.#reserve);
            this.#reserve = undefined;
            continue;
          }
          backoffMs = Math.min(
            Math.max(backoffMs * 2, ACCEPT_BACKOFF_MIN_MS),
            ACCEPT_BACKOFF_MAX_MS,
          );
          await sleepUnless(backoffMs, this.#closing.promise);
          continue;
        }
        backoffMs = 0;
        const serving = this.#serve(conn);
        this.#serving.add(serving);
        serving.finally(() => this.#serving.delete(serving));
      }
    } finally {
      failures.stop();
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    if (!this.#makeRoom()) {
      // Every connection held is being answered: this one waits for nobody.
      this.counts.evicted++;
      return closeQuietly(conn);
    }
    const client: Client = {
      conn,
      idleSince: performance.now(),
      headSince: undefined,
      busySince: undefined,
    };
    this.#clients.add(client);
    try {
      await this.#requests(client);
    } catch (error) {
      // A client that resets or is closed by a timeout ends here; anything else is worth a line.
      if (!isPeerGone(error) && !(error instanceof Deno.errors.BadResource)) {
        log.debug("metrics: connection ended: {error}", { error: describeError(error) });
      }
    } finally {
      this.#clients.delete(client);
      closeQuietly(conn);
      // A descriptor has come back: take the reserve again if it was given away.
      this.#reserve ??= this.#closed ? undefined : takeReserve();
    }
  }

  /** Reads requests and answers them, until the client or a limit ends the connection. */
  async #requests(client: Client): Promise<void> {
    const buffer = new Uint8Array(this.#limits.maxHeadBytes);
    let filled = 0;
    /** How far the search for the head's end got: a slow client's bytes are looked at once. */
    let scanned = 0;
    while (!this.#closed) {
      const at = headEnd(buffer, filled, scanned);
      if (at === undefined) {
        if (filled === buffer.length) {
          client.busySince = performance.now();
          return await this.#reply(client, plain(431, "request head too large\n"), "GET", false);
        }
        // The end may straddle what has come and what comes next: look again from 2 back.
        scanned = Math.max(0, filled - 2);
        const n = await client.conn.read(buffer.subarray(filled));
        if (n === null) return;
        if (filled === 0) client.headSince = performance.now();
        filled += n;
        continue;
      }
      const head = parseHead(decoder.decode(buffer.subarray(0, at.end)));
      const rest = buffer.slice(at.next, filled);
      buffer.set(rest);
      filled = rest.length;
      scanned = 0;
      client.headSince = filled > 0 ? performance.now() : undefined;
      // From here until the response is written, neither evicted nor timed out by the idle sweep.
      client.busySince = performance.now();
      if (typeof head === "string") {
        return await this.#reply(client, plain(400, `${head}\n`), "GET", false);
      }
      const puts = this.#limits.maxBodyBytes !== undefined;
      const method = head.method === "HEAD" || (head.method === "PUT" && puts)
        ? head.method
        : "GET";
      // A method it does not serve ends the connection too: such a client is not a scraper.
      if (head.method !== method) {
        return await this.#reply(client, notAllowed(head.method, puts), "GET", false);
      }
      if (method === "PUT") {
        const body = await readBody(client.conn, buffer.subarray(0, filled), head, this.#limits);
        const reply = typeof body === "string"
          ? await this.#answer({ method, path: head.path, body })
          : body;
        return await this.#reply(client, reply, method, false);
      }
      if (head.hasBody) {
        // No request here has a body; not reading one, the connection cannot go on.
        return await this.#reply(
          client,
          plain(400, "no request body is taken here\n"),
          method,
          false,
        );
      }
      const reply = await this.#answer({ method, path: head.path });
      const keep = head.keepAlive && !this.#closed;
      await this.#reply(client, reply, method, keep);
      if (!keep) return;
    }
  }

  async #answer(request: HttpRequest): Promise<HttpReply> {
    try {
      return await this.#handler(request);
    } catch (error) {
      log.error("metrics request failed: {error}", { error: describeError(error) });
      return plain(500, "internal error\n");
    }
  }

  /** Writes `reply`; `keep` says whether the connection stays open for another request. */
  async #reply(client: Client, reply: HttpReply, method: string, keep: boolean): Promise<void> {
    try {
      const body = method === "HEAD" ? new Uint8Array() : encoder.encode(reply.body);
      const length = method === "HEAD" ? encoder.encode(reply.body).length : body.length;
      const lines = [
        statusLine(reply.status),
        ...Object.entries(reply.headers).map(([name, value]) => `${name}: ${value}`),
        `content-length: ${length}`,
        ...(keep ? [] : ["connection: close"]),
        "",
        "",
      ];
      const head = encoder.encode(lines.join("\r\n"));
      const bytes = new Uint8Array(head.length + body.length);
      bytes.set(head);
      bytes.set(body, head.length);
      for (let off = 0; off < bytes.length;) off += await client.conn.write(bytes.subarray(off));
    } finally {
      client.busySince = undefined;
      client.idleSince = performance.now();
      // Last in line for eviction: it has just been served.
      this.#clients.delete(client);
      this.#clients.add(client);
      if (this.#closed) closeQuietly(client.conn);
    }
  }

  /**
   * At the cap, closes the connection that has waited longest for a
   * request; false when every one is being answered, and none can go.
   */
  #makeRoom(): boolean {
    if (this.#clients.size < this.#limits.maxConnections) return true;
    for (const client of this.#clients) {
      if (client.busySince !== undefined) continue;
      this.#clients.delete(client);
      this.counts.evicted++;
      closeQuietly(client.conn);
      return true;
    }
    return false;
  }

  #sweepOnce(): void {
    const now = performance.now();
    for (const client of this.#clients) {
      const late = client.busySince !== undefined
        ? now - client.busySince >= this.#limits.answerTimeoutMs
        : client.headSince !== undefined
        ? now - client.headSince >= this.#limits.headerTimeoutMs
        : now - client.idleSince >= this.#limits.idleTimeoutMs;
      if (!late) continue;
      this.#clients.delete(client);
      this.counts.timedOut++;
      closeQuietly(client.conn);
    }
  }
}

/**
 * One descriptor held in reserve for the moment descriptors run out: a UDP
 * socket on loopback that nothing is sent to (it needs Deno's unstable `net`
 * API, which the program has; without it there is no reserve).
 */
function takeReserve(): Deno.DatagramConn | undefined {
  if (!hasUnstableNet()) return undefined;
  try {
    return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  } catch {
    return undefined; // out of descriptors still: taken again at the next close
  }
}
