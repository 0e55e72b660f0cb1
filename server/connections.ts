/**
 * The connection table: every admitted connection from its echo's start to
 * its end, the server's byte counts, the idle and lifetime sweep, and the
 * drain at shutdown.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { formatDuration } from "../text/duration.ts";
import { plural } from "../text/words.ts";
import { logger } from "../log/log.ts";
import { logLine } from "../log/line.ts";
import {
  echoConnection,
  type EchoCounters,
  type EchoDone,
  type EchoEnd,
} from "../transport/echo.ts";
import {
  closeQuietly,
  type Connection,
  type Peer,
  peerOf,
  TransportError,
} from "../transport/contract.ts";
import type { ServerStats } from "./stats.ts";
import { type CloseReason, noCloses, noDurations, observeDuration } from "./closes.ts";
import { sleepUnless } from "../transport/wait.ts";
import type { Slot } from "./acceptor.ts";
import type { FaultTable } from "../fault/select.ts";
import { faultedConnection, FaultEnd } from "../fault/stream.ts";

/** Why the server closed a connection itself, in the words its log line uses. */
export type ServerClose = "idle timeout" | "lifetime reached" | "shutdown" | "listener lost";

/** What the {@linkcode ConnectionTable} enforces and whom it tells. */
export interface ConnectionTableOptions {
  /** Close a connection that has sent nothing for this long; 0 turns it off. */
  idleTimeoutMs: number;
  /** Close any connection open for this long; 0 turns it off. */
  maxLifetimeMs: number;
  /** Hears of each connection a limit closes, before it is closed. */
  onLimit(reason: "idle" | "lifetime", peer: Peer, id: number): void;
  /** The faults asked for (`--fault`), when any may be: each connection is offered to them. */
  faults?: FaultTable;
}

/** One admitted connection; it is also the echo's byte counter and hears its end. */
class Entry implements EchoCounters, EchoDone {
  bytesIn = 0;
  bytesOut = 0;
  seenBytesIn = 0;
  lastActiveAt: number;
  /** Set when the server closes it: the reason to report. */
  closedBy: ServerClose | undefined = undefined;
  /** The peer, until the `opened` line is logged (it waits for a client certificate). */
  unannounced: Peer | undefined = undefined;
  /** The fault specs it got (`--fault`), as its `opened` line names them. */
  faults: string | undefined = undefined;

  constructor(
    readonly id: number,
    readonly conn: Connection,
    readonly openedAt: number,
    readonly slot: Slot,
    /** The table's one handler for every entry's end (one function, not one closure each). */
    readonly onEnded: (entry: Entry, end: EchoEnd | "error", error?: unknown) => void,
  ) {
    this.lastActiveAt = openedAt;
  }

  /** The peer, named again when a line needs it: an idle connection keeps only its socket's address. */
  get peer(): Peer {
    return peerOf(this.conn.remoteAddr);
  }

  echoEnded(end: EchoEnd | "error", error?: unknown): void {
    this.onEnded(this, end, error);
  }
}

const END_TEXT: Readonly<Record<EchoEnd, string>> = {
  eof: "client closed",
  reset: "reset by peer",
};

/** The metrics' reason for each way an echo ends by itself or the server closes it. */
const END_REASON: Readonly<Record<EchoEnd, CloseReason>> = { eof: "client-closed", reset: "reset" };
const CLOSE_REASON: Readonly<Record<ServerClose, CloseReason>> = {
  "idle timeout": "idle",
  "lifetime reached": "lifetime",
  shutdown: "shutdown",
  "listener lost": "listener-lost",
};

/**
 * How long a connection cut at the drain timeout may still take to deliver
 * what was echoed to it (see `Connection.closeGently`).
 */
export const CUT_GRACE_MS = 1000;

const log = logger("server");
const connLog = logger("conn");

/**
 * Logs a connection's `opened` line, once: with the subject of the
 * certificate its client presented, when there is one (mutual TLS).
 */
function announce(entry: Entry, peer: Peer): void {
  entry.unannounced = undefined;
  const { clientSubject } = entry.conn;
  const { faults } = entry;
  if (clientSubject === undefined && faults === undefined) {
    logLine(connLog, "info", "#{id} opened from {peer}", { id: entry.id, peer: peer.text });
    return;
  }
  const named = clientSubject === undefined ? "" : ", client certificate {clientSubject}";
  const faulted = faults === undefined ? "" : "; faults: {faults}";
  logLine(connLog, "info", `#{id} opened from {peer}${named}${faulted}`, {
    id: entry.id,
    peer: peer.text,
    ...(clientSubject === undefined ? {} : { clientSubject }),
    ...(faults === undefined ? {} : { faults }),
  });
}

/** The open connections of one server, and its counts of those already closed. */
export class ConnectionTable {
  readonly #open = new Set<Entry>();
  readonly #onLimit: ConnectionTableOptions["onLimit"];
  readonly #idleTimeoutMs: number;
  readonly #maxLifetimeMs: number;
  readonly #faults: FaultTable | undefined;
  readonly #sweep: ReturnType<typeof setInterval> | undefined;
  #nextId = 0;
  #served = 0;
  #closedBytesIn = 0;
  #closedBytesOut = 0;
  readonly #closed = noCloses();
  readonly #durations = noDurations();
  readonly #onEnded = (entry: Entry, end: EchoEnd | "error", error?: unknown) =>
    this.#ended(entry, end, error);
  /** Set while draining: resolved when the last connection has closed. */
  #emptied: PromiseWithResolvers<void> | undefined;
  /** The connections cut with a FIN at the drain timeout, and when each is closed for good. */
  readonly #cutTimers = new Map<Entry, ReturnType<typeof setTimeout>>();

  /** Starts the sweep, when a limit is set; {@linkcode ConnectionTable.stop} ends it. */
  constructor(options: ConnectionTableOptions) {
    this.#onLimit = options.onLimit;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#maxLifetimeMs = options.maxLifetimeMs;
    this.#faults = options.faults;
    const limitMs = Math.min(
      this.#idleTimeoutMs > 0 ? this.#idleTimeoutMs : Infinity,
      this.#maxLifetimeMs > 0 ? this.#maxLifetimeMs : Infinity,
    );
    // One sweep for all connections instead of a timer each: the hot path only
    // counts bytes, and the sweep notices who stopped counting.
    this.#sweep = Number.isFinite(limitMs)
      ? setInterval(() => this.#sweepOnce(), Math.min(1000, Math.max(10, limitMs / 4)))
      : undefined;
  }

  /**
   * Echoes an admitted connection in a task of its own, so that the accept
   * loop never waits for one; `slot.release()` is called once it is closed.
   */
  add(conn: Connection, peer: Peer, slot: Slot): void {
    const faults = this.#faults;
    const plan = faults?.pick(peer.host);
    if (plan !== undefined && faults !== undefined) conn = faultedConnection(conn, plan, faults);
    const entry = new Entry(++this.#nextId, conn, performance.now(), slot, this.#onEnded);
    this.#open.add(entry);
    this.#served++;
    entry.faults = plan?.specs.join("; ");
    // A client that presents a certificate is named by it: the line waits for the handshake.
    if (conn.identified === undefined) announce(entry, peer);
    else {
      entry.unannounced = peer;
      void conn.identified.then(() => {
        if (entry.unannounced !== undefined) announce(entry, peer);
      });
    }
    try {
      conn.setNoDelay?.(true);
    } catch {
      // The peer may already be gone; the echo will find out and say so.
    }
    this.#run(entry);
  }

  /** Connections open now, admitted since the start, and bytes both ways. */
  counts(): Omit<ServerStats, "refusals"> {
    let bytesIn = this.#closedBytesIn;
    let bytesOut = this.#closedBytesOut;
    for (const entry of this.#open) {
      bytesIn += entry.bytesIn;
      bytesOut += entry.bytesOut;
    }
    return {
      open: this.#open.size,
      served: this.#served,
      bytesIn,
      bytesOut,
      closed: { ...this.#closed },
      durations: { counts: [...this.#durations.counts], sum: this.#durations.sum },
    };
  }

  /** Closes every open connection, reporting `reason` as why. */
  closeAll(reason: ServerClose): void {
    for (const entry of this.#open) this.#close(entry, reason);
  }

  /**
   * Ends every open connection at the drain timeout: gently where the
   * connection can (what was echoed still reaches the peer, within
   * {@linkcode CUT_GRACE_MS}), closed at once otherwise.
   */
  #cutAll(): void {
    for (const entry of this.#open) {
      if (entry.closedBy !== undefined) continue;
      entry.closedBy = "shutdown";
      this.#cut(entry.conn, entry);
    }
  }

  /**
   * Ends one connection at the drain timeout: by its own gentle close; or a
   * FIN after what is queued, the peer then taking its echoes and closing
   * (the echo ends, and the connection with it), closed for good after
   * {@linkcode CUT_GRACE_MS} if not; or at once.
   */
  #cut(conn: Connection, entry: Entry): void {
    try {
      if (conn.closeGently !== undefined) return conn.closeGently(CUT_GRACE_MS);
      if (conn.closeWrite !== undefined) {
        // Settles once writing is shut, which a write still waiting for the peer holds up.
        conn.closeWrite().catch(() => {});
        this.#cutTimers.set(entry, setTimeout(() => closeQuietly(conn), CUT_GRACE_MS));
        return;
      }
    } catch {
      // Not gently, then.
    }
    closeQuietly(conn);
  }

  /**
   * Lets the open connections finish for up to `timeoutMs`, then closes the
   * rest; resolves once none is left.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (this.#open.size === 0) return;
    this.#emptied = Promise.withResolvers<void>();
    log.info("draining {connections} for up to {timeout}", {
      connections: plural(this.#open.size, "connection"),
      open: this.#open.size,
      timeout: formatDuration(timeoutMs),
    });
    if (await sleepUnless(timeoutMs, this.#emptied.promise)) this.#cutAll();
    await this.#emptied.promise;
  }

  /** Ends the sweep. */
  stop(): void {
    clearInterval(this.#sweep);
  }

  /** Echoes one connection to its end, whatever that is, then accounts for it. */
  #run(entry: Entry): void {
    // Checked once per connection, so that a disabled debug line costs nothing per chunk.
    const onChunk = connLog.isEnabledFor("debug")
      ? (bytes: number) =>
        logLine(connLog, "debug", "#{id} got {bytes} bytes", { id: entry.id, bytes })
      : undefined;
    const options = { counters: entry, onChunk };
    try {
      if (entry.conn.echo !== undefined) return entry.conn.echo(options, entry);
    } catch (error) {
      return entry.echoEnded("error", error);
    }
    echoConnection(entry.conn, options).then(
      (end) => entry.echoEnded(end),
      (error: unknown) => entry.echoEnded("error", error),
    );
  }

  /** Accounts for a connection whose echo has ended, and closes it. */
  #ended(entry: Entry, end: EchoEnd | "error", error: unknown): void {
    let reason: string;
    let closeReason: CloseReason;
    if (entry.closedBy !== undefined) {
      // The server ended it (a pending read then fails; a peer cut gently may close first):
      // report why.
      reason = entry.closedBy;
      closeReason = CLOSE_REASON[entry.closedBy];
    } else if (end !== "error") {
      reason = END_TEXT[end];
      closeReason = END_REASON[end];
    } else {
      reason = error instanceof TransportError ? error.message : `error: ${describeError(error)}`;
      closeReason = error instanceof FaultEnd ? "fault" : "error";
    }
    const cut = this.#cutTimers.get(entry);
    if (cut !== undefined) {
      clearTimeout(cut);
      this.#cutTimers.delete(entry);
    }
    // A handshake that failed leaves the opened line unsaid: it comes first, without a name.
    if (entry.unannounced !== undefined) announce(entry, entry.unannounced);
    closeQuietly(entry.conn);
    entry.slot.release();
    this.#open.delete(entry);
    this.#closedBytesIn += entry.bytesIn;
    this.#closedBytesOut += entry.bytesOut;
    const seconds = (performance.now() - entry.openedAt) / 1000;
    this.#closed[closeReason]++;
    observeDuration(this.#durations, seconds);
    logLine(
      connLog,
      "info",
      "#{id} closed: {reason}; {bytesIn} B in, {bytesOut} B out, {duration}",
      {
        id: entry.id,
        peer: entry.peer.text,
        reason,
        bytesIn: entry.bytesIn,
        bytesOut: entry.bytesOut,
        duration: formatDuration(seconds * 1000),
      },
    );
    if (this.#open.size === 0) this.#emptied?.resolve();
  }

  /** Closes a connection from the server's side, recording why. */
  #close(entry: Entry, reason: ServerClose): void {
    if (entry.closedBy !== undefined) return;
    entry.closedBy = reason;
    closeQuietly(entry.conn);
  }

  #sweepOnce(): void {
    const now = performance.now();
    // forEach, not for…of: a sweep runs too seldom to be optimised, and then
    // for…of leaves an iterator result behind for each of thousands of entries.
    this.#open.forEach((entry) => {
      if (entry.bytesIn !== entry.seenBytesIn) {
        entry.seenBytesIn = entry.bytesIn;
        entry.lastActiveAt = now;
      }
      if (entry.closedBy !== undefined) return;
      if (this.#maxLifetimeMs > 0 && now - entry.openedAt >= this.#maxLifetimeMs) {
        this.#onLimit("lifetime", entry.peer, entry.id);
        this.#close(entry, "lifetime reached");
      } else if (this.#idleTimeoutMs > 0 && now - entry.lastActiveAt >= this.#idleTimeoutMs) {
        this.#onLimit("idle", entry.peer, entry.id);
        this.#close(entry, "idle timeout");
      }
    });
  }
}
