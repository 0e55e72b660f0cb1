/**
 * A stream connection that misbehaves as its faults say: a decorator over
 * any accepted connection (TCP, TLS, Unix, either engine, after the PROXY
 * header), so that the server's echo loop runs over it unchanged. It has no
 * `echo` of its own: the stream echo (`echoConnection`) reads and writes
 * through it, and each read and write applies what the faults ask.
 *
 * @module
 */
import { resetTcp } from "../transport/adopt.ts";
import { closeQuietly, type Connection, TransportError } from "../transport/contract.ts";
import { sleepUnless } from "../transport/wait.ts";
import { formatDuration } from "../text/duration.ts";
import { grouped, plural } from "../text/words.ts";
import type { FaultPlan, FaultTable } from "./select.ts";
import type { Amount, FaultName, FaultSettings } from "./spec.ts";
import { DelayQueue } from "./delay_queue.ts";

/**
 * A fault ended the connection; its message is the `closed` line's reason,
 * e.g. `fault: reset after 1,048,576 bytes`.
 */
export class FaultEnd extends TransportError {
  /** Makes the error from its whole message. */
  constructor(message: string) {
    super(message);
    this.name = "FaultEnd";
  }
}

/**
 * How long a reset after a number of bytes waits after the last of them was
 * written: a reset throws away what the kernel has not transmitted yet, and
 * the bytes echoed are to reach a peer that reads them.
 */
const RESET_SETTLE_MS = 20;
/** How long a connection closed with a FIN by a fault reads and drops what still comes. */
const FIN_GRACE_MS = 1000;
/** Pacing works in slices of this share of a second: fine enough for a rate within 2 %. */
const PACE_SLICES_PER_SECOND = 50;

/** The faults that shape a whole connection: counted once each, when it opens. */
const SHAPING = ["delay", "jitter", "rate", "read-rate", "slice", "slice-delay"] as const;

type Ending = "close" | "reset" | "stall";
const ENDINGS = ["close-after", "reset-after", "stall-after"] as const;
const ENDING_OF: Readonly<Record<typeof ENDINGS[number], Ending>> = {
  "close-after": "close",
  "reset-after": "reset",
  "stall-after": "stall",
};

/** A token-less pacer: the time the next byte may move, advanced by what moved. */
/** How far behind its schedule a paced connection may catch up in a burst. */
const CATCH_UP_MS = 250;

class Pacer {
  /** When the next piece may move; from long ago until the first one does. */
  #at = -Infinity;
  constructor(readonly bytesPerSecond: number) {}

  /** The most to move in one go. */
  get piece(): number {
    return Math.max(1, Math.floor(this.bytesPerSecond / PACE_SLICES_PER_SECOND));
  }

  /** How long to wait before moving more. */
  wait(now: number): number {
    // Behind by less than CATCH_UP_MS (timers that fired late on a busy machine): catch up, so that
    // the rate holds on average. Idle for longer: start afresh rather than burst.
    if (now - this.#at > CATCH_UP_MS) this.#at = now;
    return this.#at - now;
  }

  /** `bytes` moved. */
  moved(bytes: number): void {
    this.#at += (bytes * 1000) / this.bytesPerSecond;
  }
}

/**
 * Wraps `conn` with the faults of `plan`, counting what it injects in
 * `table`. The caller has decided that the connection gets them.
 */
export function faultedConnection(
  conn: Connection,
  plan: FaultPlan,
  table: FaultTable,
): Connection {
  table.faulted++;
  return new FaultedConnection(conn, plan.settings, table);
}

/** See {@linkcode faultedConnection}. */
class FaultedConnection implements Connection {
  readonly remoteAddr: Deno.Addr;
  /** See `Connection.closeGently`: the socket's, for the drain timeout. */
  readonly closeGently?: (graceMs: number) => void;
  /** See `Connection.closeWrite`: the socket's, for the drain timeout. */
  readonly closeWrite?: () => Promise<void>;
  /** See `Connection.identified`: the socket's (mutual TLS). */
  readonly identified?: Promise<void>;
  readonly #conn: Connection;
  readonly #s: Readonly<FaultSettings>;
  readonly #table: FaultTable;
  readonly #closing = Promise.withResolvers<void>();
  /** Rejects once a fault has ended the connection: every read and write then fails with it. */
  readonly #ended = Promise.withResolvers<never>();
  readonly #timers: ReturnType<typeof setTimeout>[] = [];
  readonly #writePacer: Pacer | undefined;
  readonly #readPacer: Pacer | undefined;
  readonly #delays: DelayQueue | undefined;
  #end: FaultEnd | undefined;
  #closed = false;
  #stalled = false;
  /** Whether a FIN was sent by a fault: the close then waits for the peer's end, within a grace. */
  #finished: "self" | "drain" | undefined;
  #refuse: boolean;
  #echoed = 0;
  /** Whether the last write took less than it was given: the next one goes on with the same chunk. */
  #short = false;
  /** The read under way on the socket, so that a drain waits for it rather than read beside it. */
  #reading: Promise<unknown> = Promise.resolve();

  constructor(conn: Connection, settings: Readonly<FaultSettings>, table: FaultTable) {
    this.#conn = conn;
    this.#s = settings;
    this.#table = table;
    this.remoteAddr = conn.remoteAddr;
    this.identified = conn.identified;
    this.#ended.promise.catch(() => {});
    const { closeGently, closeWrite } = conn;
    if (closeGently !== undefined) {
      this.closeGently = (ms) => {
        closeGently.call(conn, ms);
        // The socket then closes by itself, which ends a pending read, but a stall reads nothing.
        this.#timers.push(setTimeout(() => this.#closing.resolve(), ms));
      };
    }
    if (closeWrite !== undefined) this.closeWrite = () => closeWrite.call(conn);
    this.#refuse = settings.refuse !== undefined && table.random() < settings.refuse;
    if (settings.rate !== undefined) this.#writePacer = new Pacer(settings.rate);
    if (settings["read-rate"] !== undefined) this.#readPacer = new Pacer(settings["read-rate"]);
    if (settings.delay !== undefined || settings.jitter !== undefined) {
      this.#delays = new DelayQueue(
        (p) => this.#socketRead(p),
        settings.delay ?? 0,
        settings.jitter ?? 0,
        table.random,
        this.#closing.promise,
      );
    }
    for (const name of SHAPING) {
      if (settings[name] !== undefined) table.count(name);
    }
    for (const name of ENDINGS) {
      const after = settings[name];
      if (after !== undefined && "ms" in after) {
        this.#timers.push(setTimeout(() => this.#trigger(name, after), after.ms));
      }
    }
  }

  /** See `Connection.clientSubject`: the socket's, once its handshake is done. */
  get clientSubject(): string | undefined {
    return this.#conn.clientSubject;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#refuse) {
      this.#refuse = false;
      this.#table.count("refuse");
      const how = canReset(this.#conn) ? "reset at once" : `closed at once: ${NO_RESET}`;
      this.#act("reset", new FaultEnd(`fault: refused (${how})`));
    }
    if (this.#end !== undefined) throw this.#end;
    if (this.#stalled) return await this.#silence();
    const n = this.#delays !== undefined
      ? await this.#race(this.#delays.read(p))
      : await this.#race(this.#socketRead(p));
    if (this.#stalled) return await this.#silence();
    const slowClose = this.#s["slow-close"];
    if (n === null && slowClose !== undefined) {
      this.#table.count("slow-close");
      await sleepUnless(slowClose, this.#closing.promise);
    }
    return n;
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#end !== undefined) throw this.#end;
    if (this.#stalled) return await this.#silence();
    const s = this.#s;
    let n = Math.min(p.length, this.#untilEnding());
    if (s.slice !== undefined) {
      if (this.#short && s["slice-delay"] !== undefined) await this.#pause(s["slice-delay"]);
      n = Math.min(n, s.slice);
    }
    const pacer = this.#writePacer;
    if (pacer !== undefined) {
      n = Math.min(n, pacer.piece);
      await this.#pause(pacer.wait(performance.now()));
    }
    let bytes = n === p.length ? p : p.subarray(0, n);
    let flipped = -1;
    if (!this.#short && s.corrupt !== undefined && this.#table.random() < s.corrupt) {
      bytes = bytes.slice();
      flipped = Math.floor(this.#table.random() * n);
      bytes[flipped] ^= 1 << Math.floor(this.#table.random() * 8);
    }
    const written = await this.#race(this.#conn.write(bytes));
    pacer?.moved(written);
    if (flipped >= 0 && flipped < written) this.#table.count("corrupt");
    this.#echoed += written;
    this.#short = written < p.length;
    for (const name of ENDINGS) {
      const after = s[name];
      if (after !== undefined && "bytes" in after && this.#echoed >= after.bytes) {
        this.#trigger(name, after);
      }
    }
    return written;
  }

  /**
   * Closes the socket; after a FIN sent by a fault, only once the peer has
   * closed too or {@linkcode FIN_GRACE_MS} has passed, so that what it still
   * sends does not turn the close into a reset that could cost it its echoes.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#closing.resolve();
    if (this.#finished === "self") return;
    if (this.#finished === "drain") return void this.#drainThenClose();
    this.#conn.close();
  }

  setNoDelay(noDelay?: boolean): void {
    this.#conn.setNoDelay?.(noDelay);
  }

  /** Bytes still to echo before a fault ends or stalls the connection. */
  #untilEnding(): number {
    let least = Infinity;
    for (const name of ENDINGS) {
      const after = this.#s[name];
      if (after !== undefined && "bytes" in after) least = Math.min(least, after.bytes);
    }
    return least - this.#echoed;
  }

  /** A read from the socket, paced by `read-rate`. */
  async #socketRead(p: Uint8Array): Promise<number | null> {
    const pacer = this.#readPacer;
    if (pacer !== undefined) {
      await this.#pause(pacer.wait(performance.now()));
      if (p.length > pacer.piece) p = p.subarray(0, pacer.piece);
    }
    const reading = this.#conn.read(p);
    this.#reading = reading.catch(() => {});
    const n = await reading;
    if (n !== null) pacer?.moved(n);
    return n;
  }

  /** `io`, unless a fault ends the connection first. */
  #race<T>(io: Promise<T>): Promise<T> {
    if (this.#timers.length === 0 && this.#untilEnding() === Infinity && !this.#refuse) return io;
    io.catch(() => {});
    return Promise.race([io, this.#ended.promise]);
  }

  /** Waits `ms` (nothing for 0 or less); fails if a fault ended the connection meanwhile. */
  async #pause(ms: number): Promise<void> {
    if (ms > 0) await sleepUnless(ms, this.#closing.promise);
    if (this.#end !== undefined) throw this.#end;
    if (this.#closed) throw new Deno.errors.BadResource("the connection was closed");
  }

  /** A stalled connection: nothing more is read or echoed, until it is closed or a fault ends it. */
  async #silence(): Promise<never> {
    await Promise.race([this.#closing.promise, this.#ended.promise]);
    throw new Deno.errors.BadResource("the connection was closed");
  }

  #trigger(name: typeof ENDINGS[number], after: Amount): void {
    if (this.#end !== undefined || this.#closed) return;
    const ending = ENDING_OF[name];
    if (ending === "stall") {
      if (this.#stalled) return;
      this.#stalled = true;
      this.#delays?.stop();
      this.#table.count(name);
      return;
    }
    this.#table.count(name);
    const when = "bytes" in after
      ? `after ${plural(after.bytes, "byte", grouped)}`
      : `after ${formatDuration(after.ms)}`;
    const end = new FaultEnd(
      ending === "close"
        ? `fault: closed ${when}`
        : canReset(this.#conn)
        ? `fault: reset ${when}`
        : `fault: closed ${when} (${NO_RESET})`,
    );
    this.#act(ending, end, "bytes" in after ? RESET_SETTLE_MS : 0);
  }

  /**
   * Ends the connection as `how` says (a reset after `settleMs`); every
   * read and write from now on fails with `end`.
   */
  #act(how: "close" | "reset", end: FaultEnd, settleMs = 0): void {
    this.#end = end;
    this.#ended.reject(end);
    this.#delays?.stop();
    const conn = this.#conn;
    if (how === "reset") {
      this.#finished = "self";
      if (settleMs > 0) return void setTimeout(() => resetConnection(conn), settleMs);
      return resetConnection(conn);
    }
    if (conn.closeGently !== undefined) {
      this.#finished = "self";
      return conn.closeGently(FIN_GRACE_MS);
    }
    this.#finished = "drain";
    conn.closeWrite?.().catch(() => {});
  }

  /** After a FIN: reads and drops what the peer still sends, until its end or the grace is over. */
  async #drainThenClose(): Promise<void> {
    const conn = this.#conn;
    const timer = setTimeout(() => closeQuietly(conn), FIN_GRACE_MS);
    try {
      await this.#reading;
      const sink = new Uint8Array(16384);
      while ((await conn.read(sink)) !== null);
    } catch {
      // Reset, or closed by the grace: either way, done.
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  }
}

/** The names of the faults in `settings`, for the `opened` line. */
export function faultNames(settings: Readonly<FaultSettings>): FaultName[] {
  return (Object.keys(settings) as (keyof FaultSettings)[])
    .filter((name): name is FaultName => name !== "share" && name !== "from");
}

/** Resets `conn` where its transport can, and closes it where not. */
/** What a `closed` line adds where a fault asked for a reset that the transport cannot do. */
const NO_RESET = "this transport cannot reset";

/** Whether `conn` can end with a reset: TLS and Unix sockets of Deno's own close instead. */
function canReset(conn: Connection): boolean {
  return conn.reset !== undefined || isDenoTcp(conn);
}

function resetConnection(conn: Connection): void {
  try {
    if (conn.reset !== undefined) return conn.reset();
    if (isDenoTcp(conn)) return void resetTcp(conn).catch(() => closeQuietly(conn));
  } catch {
    // Closed meanwhile (a shutdown): closed it stays.
  }
  closeQuietly(conn);
}

/** Whether `conn` is a TCP connection of Deno's own (the one kind `resetTcp` can reset). */
function isDenoTcp(conn: Connection): conn is Connection & Deno.TcpConn {
  return conn.remoteAddr.transport === "tcp" && "setKeepAlive" in conn;
}
