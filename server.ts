/**
 * The acceptor: listens, admits or refuses each new connection, and hands the
 * admitted ones to the echo handler in a detached task of their own.
 *
 * @module
 */
import { describeError, formatAddress } from "./text/address.ts";
import { echoConnection, type EchoCounters, type EchoEnd } from "./server/echo.ts";
import { formatDuration } from "./text/duration.ts";
import { Guard } from "./admission/guard.ts";
import type { RefusalReason } from "./admission/refusals.ts";
import { LogThrottle } from "./log/throttle.ts";
import { addressKey } from "./admission/cidr.ts";
import { logger } from "./log/log.ts";
import { plural } from "./text/words.ts";
import { type ServerStats, summary as describeSummary } from "./server/stats.ts";

export type { ServerStats };

/** What to do with a new connection while `maxConns` are open. */
export type WhenFull = "wait" | "refuse";

/** What {@linkcode serve} uses for the options left out; the command line shows and uses the same. */
export const SERVE_DEFAULTS = {
  /** Listen on every IPv4 address. */
  hostname: "0.0.0.0",
  /** The port to listen on. */
  port: 8000,
  /** How long open connections may finish after a shutdown. */
  drainTimeoutMs: 10_000,
  /** At the cap, queue newcomers in the backlog. */
  whenFull: "wait",
  /** Close a connection silent this long. */
  idleTimeoutMs: 300_000,
  /** No limit on a connection's lifetime. */
  maxLifetimeMs: 0,
} as const satisfies Required<
  Pick<
    ServeOptions,
    "hostname" | "port" | "drainTimeoutMs" | "whenFull" | "idleTimeoutMs" | "maxLifetimeMs"
  >
>;

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /** Address to listen on; `::` listens on IPv6 too. @default {"0.0.0.0"} */
  hostname?: string;
  /** Port to listen on; 0 picks a free one (see {@linkcode EchoServer.addr}). @default {8000} */
  port?: number;
  /** How long open connections may finish after {@linkcode EchoServer.shutdown}. @default {10000} */
  drainTimeoutMs?: number;
  /** The admission limits. @default {new Guard()} */
  guard?: Guard;
  /**
   * At the guard's cap: `wait` stops accepting until a connection closes, so
   * newcomers queue in the kernel's backlog; `refuse` accepts and closes them.
   * @default {"wait"}
   */
  whenFull?: WhenFull;
  /** Close a connection that has sent nothing for this long; 0 turns it off. @default {300000} */
  idleTimeoutMs?: number;
  /** Close any connection open for this long; 0 turns it off. @default {0} */
  maxLifetimeMs?: number;
  /** A line written to refused connections before they are closed. */
  rejectMessage?: string;
  /** Let several listeners share the port (for workers; unstable `net`). @default {false} */
  reusePort?: boolean;
}

/** A running echo server. */
export interface EchoServer extends AsyncDisposable {
  /** The address it listens on, with the real port when 0 was asked for. */
  readonly addr: { transport: "tcp"; hostname: string; port: number };
  /**
   * Settles when the server has stopped: resolves after a shutdown, rejects
   * when the listener died under it.
   */
  readonly finished: Promise<ServerStats>;
  /** Stops accepting, lets connections drain, closes the rest; resolves with the final stats. */
  shutdown(): Promise<ServerStats>;
  /** The counters as they are now. */
  stats(): ServerStats;
}

/** The server could not listen: the message says where and why. */
export class ListenError extends Error {
  /** @param message the whole sentence, e.g. `cannot listen on 0.0.0.0:8000: address already in use` */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenError";
  }
}

/** One admitted connection; it is also the echo's byte counter. */
interface Connection extends EchoCounters {
  readonly id: number;
  readonly conn: Deno.TcpConn;
  readonly peer: string;
  readonly openedAt: number;
  readonly release: () => void;
  /** Set when the server closes it (shutdown, timeouts): the reason to report. */
  endReason: string | undefined;
  seenBytesIn: number;
  lastActiveAt: number;
}

const ACCEPT_BACKOFF_MIN_MS = 5;
const ACCEPT_BACKOFF_MAX_MS = 1000;
const END_TEXT: Readonly<Record<string, string>> = {
  eof: "client closed",
  reset: "reset by peer",
};

const log = logger("server");
const connLog = logger("conn");

/**
 * Starts an echo server and returns at once; it serves until
 * {@linkcode EchoServer.shutdown}. Throws {@linkcode ListenError} when it
 * cannot listen.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const conn = await Deno.connect(server.addr);
 * await conn.write(new TextEncoder().encode("hi"));
 * const reply = new Uint8Array(2);
 * await conn.read(reply);
 * conn.close();
 * ```
 */
export function serve(options: ServeOptions = {}): EchoServer {
  const hostname = options.hostname ?? SERVE_DEFAULTS.hostname;
  const port = options.port ?? SERVE_DEFAULTS.port;
  const drainTimeoutMs = options.drainTimeoutMs ?? SERVE_DEFAULTS.drainTimeoutMs;
  const guard = options.guard ?? new Guard();
  const whenFull = options.whenFull ?? SERVE_DEFAULTS.whenFull;
  const idleTimeoutMs = options.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs;
  const maxLifetimeMs = options.maxLifetimeMs ?? SERVE_DEFAULTS.maxLifetimeMs;
  const rejectLine = options.rejectMessage === undefined
    ? undefined
    : new TextEncoder().encode(options.rejectMessage + "\n");

  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname, port, reusePort: options.reusePort });
  } catch (error) {
    throw new ListenError(
      `cannot listen on ${formatAddress(hostname, port)}: ${describeError(error)}`,
      { cause: error },
    );
  }
  const addr = {
    transport: "tcp" as const,
    hostname: listener.addr.hostname,
    port: listener.addr.port,
  };
  const where = formatAddress(addr.hostname, addr.port);
  log.info("listening on {address}", { address: where });

  const open = new Set<Connection>();
  const throttle = new LogThrottle();
  let nextId = 0;
  let served = 0;
  let closedBytesIn = 0;
  let closedBytesOut = 0;
  let state: "serving" | "draining" | "stopped" = "serving";
  const stopping = Promise.withResolvers<void>();
  const drained = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<ServerStats>();
  finished.promise.catch(() => {}); // callers that never await it must not see an unhandled rejection

  function stats(): ServerStats {
    let bytesIn = closedBytesIn;
    let bytesOut = closedBytesOut;
    for (const c of open) {
      bytesIn += c.bytesIn;
      bytesOut += c.bytesOut;
    }
    return { open: open.size, served, bytesIn, bytesOut, refusals: guard.refusals };
  }

  /**
   * Logs a refusal or a close by a limit at warning, at most once per reason
   * and address every 10 s, so that the log cannot become the flood.
   */
  function warnLimited(reason: RefusalReason, peer: Deno.NetAddr, id?: number): void {
    const suppressed = throttle.hit(`${reason} ${addressKey(peer.hostname)}`);
    if (suppressed === null) return;
    const what = id === undefined
      ? "refused {peer}: {reason}"
      : "closed #{id} from {peer}: {reason}";
    log.warning(what + (suppressed > 0 ? " ({suppressed} more since the last line)" : ""), {
      id,
      peer: formatAddress(peer.hostname, peer.port),
      reason,
      suppressed,
    });
  }

  function refuse(conn: Deno.TcpConn, peer: Deno.NetAddr, reason: RefusalReason): void {
    warnLimited(reason, peer);
    if (rejectLine === undefined) return closeQuietly(conn);
    conn.write(rejectLine).catch(() => {}).finally(() => closeQuietly(conn));
  }

  function handle(conn: Deno.TcpConn): void {
    // With workers the cap is shared: another worker may have taken the last
    // slot while this one sat in accept. In wait mode that connection waits
    // here for a slot, as it would have in the backlog, instead of being refused.
    if (whenFull === "wait" && guard.full) return void admitWhenRoom(conn);
    const peer = conn.remoteAddr as Deno.NetAddr;
    const admission = guard.admit(peer.hostname, { waitAtCap: whenFull === "wait" });
    if (!admission.ok) {
      if (admission.reason === "cap" && whenFull === "wait") return void admitWhenRoom(conn);
      return refuse(conn, peer, admission.reason);
    }
    const now = performance.now();
    const c: Connection = {
      id: ++nextId,
      conn,
      peer: formatAddress(peer.hostname, peer.port),
      openedAt: now,
      release: admission.release,
      endReason: undefined,
      bytesIn: 0,
      bytesOut: 0,
      seenBytesIn: 0,
      lastActiveAt: now,
    };
    open.add(c);
    served++;
    connLog.info("#{id} opened from {peer}", { id: c.id, peer: c.peer });
    try {
      conn.setNoDelay(true);
    } catch {
      // The peer may already be gone; the echo will find out and say so.
    }
    // Detached: the accept loop never waits for a connection.
    void run(c);
  }

  /** Echoes one connection to its end, whatever that is, then accounts for it. */
  async function run(c: Connection): Promise<void> {
    // Checked once per connection, so that a disabled debug line costs nothing per chunk.
    const onChunk = connLog.isEnabledFor("debug")
      ? (bytes: number) => connLog.debug("#{id} got {bytes} bytes", { id: c.id, bytes })
      : undefined;
    let end: EchoEnd;
    try {
      end = await echoConnection(c.conn, { counters: c, onChunk });
    } catch (error) {
      // Closing a connection from here makes its pending read fail: report why it was closed.
      end = c.endReason ?? `error: ${describeError(error)}`;
    }
    closeQuietly(c.conn);
    c.release();
    open.delete(c);
    closedBytesIn += c.bytesIn;
    closedBytesOut += c.bytesOut;
    connLog.info("#{id} closed: {reason}; {bytesIn} B in, {bytesOut} B out, {duration}", {
      id: c.id,
      peer: c.peer,
      reason: END_TEXT[end] ?? end,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      duration: formatDuration(performance.now() - c.openedAt),
    });
    if (state === "draining" && open.size === 0) drained.resolve();
  }

  /** Closes a connection from the server's side, recording why. */
  function endConnection(c: Connection, reason: string): void {
    if (c.endReason !== undefined) return;
    c.endReason = reason;
    closeQuietly(c.conn);
  }

  async function admitWhenRoom(conn: Deno.TcpConn): Promise<void> {
    await roomToAccept();
    if (state === "serving") handle(conn);
    else closeQuietly(conn);
  }

  /**
   * In `wait` mode at the cap, pauses until a connection closes (or shutdown).
   * It never throws: leaving the `for await` body by an exception would end
   * the listener's iterator, and the listener with it.
   */
  async function roomToAccept(): Promise<void> {
    if (whenFull !== "wait" || !guard.full) return;
    try {
      await Promise.race([guard.whenNotFull(), stopping.promise]);
    } catch (error) {
      log.error("waiting for a free slot failed: {error}", { error: describeError(error) });
    }
  }

  async function acceptLoop(): Promise<void> {
    let backoffMs = 0;
    let failures = 0;
    while (state === "serving") {
      try {
        for await (const conn of listener) {
          if (failures > 0) {
            log.info("accepting again after {failures} failed accepts", { failures });
            backoffMs = failures = 0;
          }
          try {
            handle(conn);
          } catch (error) {
            // A bug in handling one connection must not end the accept loop.
            log.error("could not handle a connection: {error}", { error: describeError(error) });
            closeQuietly(conn);
          }
          await roomToAccept();
        }
        if (state !== "serving") return;
        throw new Deno.errors.BadResource("the listener closed");
      } catch (error) {
        if (state !== "serving") return;
        if (error instanceof Deno.errors.BadResource) throw error;
        if (failures++ === 0) {
          const code = (error as { code?: string }).code;
          if ((code === "EMFILE" || code === "ENFILE") && guard.open > 0) {
            // The descriptors ran out at this many connections: hold no more
            // than that, so that "wait" mode queues newcomers in the backlog
            // instead of failing accept after accept.
            log.warning(
              "out of file descriptors with {open} connections open: pausing accepts, at most {open} connections from now on",
              { open: guard.lowerCap(guard.open) },
            );
          } else {
            log.error("accept failed: {error}; retrying with backoff", {
              error: describeError(error),
            });
          }
        }
        // Pause, growing, and retry, so that the loop neither spins nor gives up.
        backoffMs = Math.min(Math.max(backoffMs * 2, ACCEPT_BACKOFF_MIN_MS), ACCEPT_BACKOFF_MAX_MS);
        await sleepUnless(backoffMs, stopping.promise);
        await roomToAccept();
      }
    }
  }

  const limitTimeoutMs = Math.min(
    idleTimeoutMs > 0 ? idleTimeoutMs : Infinity,
    maxLifetimeMs > 0 ? maxLifetimeMs : Infinity,
  );
  // One sweep for all connections instead of a timer each: the hot path only
  // counts bytes, and the sweep notices who stopped counting.
  const sweep = Number.isFinite(limitTimeoutMs)
    ? setInterval(() => {
      const now = performance.now();
      for (const c of open) {
        if (c.bytesIn !== c.seenBytesIn) {
          c.seenBytesIn = c.bytesIn;
          c.lastActiveAt = now;
        }
        let reason: "idle" | "lifetime" | undefined;
        if (maxLifetimeMs > 0 && now - c.openedAt >= maxLifetimeMs) reason = "lifetime";
        else if (idleTimeoutMs > 0 && now - c.lastActiveAt >= idleTimeoutMs) reason = "idle";
        if (reason !== undefined && c.endReason === undefined) {
          guard.count(reason);
          warnLimited(reason, c.conn.remoteAddr, c.id);
          endConnection(c, reason === "idle" ? "idle timeout" : "lifetime reached");
        }
      }
    }, Math.min(1000, Math.max(10, limitTimeoutMs / 4)))
    : undefined;

  async function shutdown(): Promise<ServerStats> {
    if (state !== "serving") return await finished.promise;
    state = "draining";
    stopping.resolve();
    closeQuietly(listener);
    await accepting;
    if (open.size === 0) drained.resolve();
    else {
      log.info("draining {connections} for up to {timeout}", {
        connections: plural(open.size, "connection"),
        open: open.size,
        timeout: formatDuration(drainTimeoutMs),
      });
      if (await sleepUnless(drainTimeoutMs, drained.promise)) {
        for (const c of open) endConnection(c, "shutdown");
      }
    }
    await drained.promise;
    state = "stopped";
    clearInterval(sweep);
    const summary = stats();
    log.info("stopped: {summary}", { ...summary, summary: describeSummary(summary) });
    finished.resolve(summary);
    return summary;
  }

  const accepting = acceptLoop().catch((error: unknown) => {
    if (state !== "serving") return;
    state = "stopped";
    stopping.resolve();
    clearInterval(sweep);
    for (const c of open) endConnection(c, "listener lost");
    finished.reject(
      new Error(`stopped listening on ${where}: ${describeError(error)}`, { cause: error }),
    );
  });

  return {
    addr,
    finished: finished.promise,
    shutdown,
    stats,
    [Symbol.asyncDispose]: async () => {
      await shutdown();
    },
  };
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed: the aim is reached.
  }
}

/** Waits `ms`, or less if `early` settles first; resolves true when the time ran out. */
async function sleepUnless(ms: number, early: Promise<void>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([timeout, early.then(() => false)]);
  } finally {
    clearTimeout(timer);
  }
}
