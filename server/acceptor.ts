/**
 * The accept loop: takes each connection from the listener, puts it to the
 * admission rules, and hands the admitted ones on. It never stops on its own
 * account: a failed accept is retried with a growing pause, and running out
 * of file descriptors also holds the cap at what is open until descriptors
 * come back (`server/shortage.ts`).
 *
 * @module
 */
import { plural } from "../text/words.ts";
import { describeError } from "../text/address.ts";
import type { Guard } from "../admission/guard.ts";
import type { RefusalReason } from "../admission/refusals.ts";
import { logger } from "../log/log.ts";
import {
  closeQuietly,
  type Connection,
  isOutOfDescriptors,
  type Listener,
  type Peer,
  peerOf,
} from "../transport/contract.ts";
import { sleepUnless } from "../transport/wait.ts";
import { isPeerGone } from "../transport/echo.ts";
import { DescriptorShortage } from "./shortage.ts";

/** An admitted connection's place in the guard's counts: the admission itself. */
export interface Slot {
  /** Gives the place back; again does nothing. */
  release(): void;
}

/** What to do with a new connection while `maxConns` are open. */
export type WhenFull = "wait" | "refuse";

/** How the accept loop ended: asked to stop, or the listener closed under it. */
export type AcceptEnd = "stopped" | "listener closed";

/** What an {@linkcode Acceptor} works with. */
export interface AcceptorOptions {
  /** The admission rules. */
  guard: Guard;
  /** At the guard's cap: stop accepting until there is room, or accept and refuse. */
  whenFull: WhenFull;
  /** Written to refused connections before they are closed. */
  rejectLine?: Uint8Array;
  /** Takes an admitted connection; `slot.release()` gives its place back once it is closed. */
  onAdmitted(conn: Connection, peer: Peer, slot: Slot): void;
  /** Hears of each connection refused, before it is closed. */
  onRefused(reason: RefusalReason, peer: Peer): void;
}

const ACCEPT_BACKOFF_MIN_MS = 5;
/** How long a refused connection may take to take its `--reject-message` before it is closed. */
const REJECT_WRITE_MS = 1000;
const ACCEPT_BACKOFF_MAX_MS = 1000;

const log = logger("server");

/** The accept loop over one listener; {@linkcode Acceptor.run} it once. */
export class Acceptor {
  readonly #listener: Listener;
  readonly #guard: Guard;
  readonly #waitAtCap: boolean;
  #rejectLine: Uint8Array | undefined;
  readonly #onAdmitted: AcceptorOptions["onAdmitted"];
  readonly #onRefused: AcceptorOptions["onRefused"];
  readonly #stopping = Promise.withResolvers<void>();
  readonly #shortage: DescriptorShortage;
  #stopped = false;
  #acceptErrors = 0;

  /** Prepares to accept from `listener`; nothing happens before {@linkcode Acceptor.run}. */
  constructor(listener: Listener, options: AcceptorOptions) {
    this.#listener = listener;
    this.#guard = options.guard;
    this.#waitAtCap = options.whenFull === "wait";
    this.#rejectLine = options.rejectLine;
    this.#onAdmitted = options.onAdmitted;
    this.#onRefused = options.onRefused;
    this.#shortage = new DescriptorShortage(options.guard);
  }

  /** Accepts until {@linkcode Acceptor.stop} or until the listener closes by itself. */
  async run(): Promise<AcceptEnd> {
    let connections = this.#listener[Symbol.asyncIterator]();
    let failures = 0;
    let backoffMs = 0;
    try {
      while (!this.#stopped) {
        let next: IteratorResult<Connection>;
        try {
          next = await connections.next();
        } catch (error) {
          if (this.#stopped) break;
          if (isPeerGone(error)) {
            // A connection reset while it waited in the backlog: that one is gone, the
            // listener is fine, and the next one may be accepted at once.
            connections = this.#listener[Symbol.asyncIterator]();
            continue;
          }
          this.#acceptErrors++;
          // A shortage is an episode of its own, which says when it began and ended.
          if (isOutOfDescriptors(error)) this.#shortage.failed(error);
          else if (failures++ === 0) {
            log.error("accept failed: {error}; retrying with backoff", {
              error: describeError(error),
            });
          }
          // Pause, growing, and retry, so that the loop neither spins nor gives up.
          backoffMs = Math.min(
            Math.max(backoffMs * 2, ACCEPT_BACKOFF_MIN_MS),
            ACCEPT_BACKOFF_MAX_MS,
          );
          await sleepUnless(backoffMs, this.#stopping.promise);
          await this.#roomToAccept();
          // The failed iteration is over; a fresh one accepts again.
          connections = this.#listener[Symbol.asyncIterator]();
          continue;
        }
        if (next.done) return this.#stopped ? "stopped" : "listener closed";
        if (failures > 0) {
          log.info("accepting again after {accepts}", {
            failures,
            accepts: plural(failures, "failed accept"),
          });
        }
        backoffMs = failures = 0;
        this.#take(next.value);
        // Checked here first: most accepts find room, and need no promise to say so.
        if (this.#waitAtCap && this.#guard.full) await this.#roomToAccept();
      }
      return "stopped";
    } finally {
      // Connections still waiting for a slot are closed, not admitted, from now on.
      this.#stopped = true;
      this.#stopping.resolve();
      this.#shortage.stop();
    }
  }

  /** Accepts that failed since the start (each retried), for metrics. */
  get acceptErrors(): number {
    return this.#acceptErrors;
  }

  /** Stops accepting and closes the listener; {@linkcode Acceptor.run} then ends. */
  stop(): void {
    this.#stopped = true;
    this.#stopping.resolve();
    closeQuietly(this.#listener);
  }

  /** Writes `line` to the connections refused from now on (none when undefined), for a reload. */
  setRejectLine(line: Uint8Array | undefined): void {
    this.#rejectLine = line;
  }

  #take(conn: Connection): void {
    try {
      this.#admit(conn);
    } catch (error) {
      // A bug in handling one connection must not end the accept loop.
      log.error("could not handle a connection: {error}", { error: describeError(error) });
      closeQuietly(conn);
    }
  }

  #admit(conn: Connection): void {
    // With workers the cap is shared: another worker may have taken the last
    // slot while this one sat in accept. In wait mode that connection waits
    // here for a slot, as it would have in the backlog, instead of being refused.
    if (this.#waitAtCap && this.#guard.full) return void this.#admitWhenRoom(conn);
    const peer = peerOf(conn.remoteAddr);
    const admission = this.#guard.admit(peer.host, { waitAtCap: this.#waitAtCap });
    if (admission.ok) return this.#onAdmitted(conn, peer, admission);
    if (admission.reason === "cap" && this.#waitAtCap) return void this.#admitWhenRoom(conn);
    this.#onRefused(admission.reason, peer);
    if (this.#rejectLine === undefined) return closeQuietly(conn);
    // Bounded: over TLS the write waits for a handshake that a silent client never sends.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, REJECT_WRITE_MS));
    Promise.race([conn.write(this.#rejectLine), late]).catch(() => {}).finally(() => {
      clearTimeout(timer);
      closeQuietly(conn);
    });
  }

  async #admitWhenRoom(conn: Connection): Promise<void> {
    await this.#roomToAccept();
    if (this.#stopped) closeQuietly(conn);
    else this.#take(conn);
  }

  /** In `wait` mode at the cap, pauses until a connection closes, or until stopped. */
  async #roomToAccept(): Promise<void> {
    if (!this.#waitAtCap || !this.#guard.full) return;
    try {
      await Promise.race([this.#guard.whenNotFull(), this.#stopping.promise]);
    } catch (error) {
      log.error("waiting for a free slot failed: {error}", { error: describeError(error) });
    }
  }
}
