/**
 * The promise-based reads and writes of a TLS socket on the epoll engine,
 * for an echo that runs outside the engine (a fault's): each waits for the
 * handshake and its own readiness, a read and a write at the same time.
 *
 * @module
 */
import { C } from "./libc.ts";
import type { Parked } from "./socket_calls.ts";
import type { TlsSession } from "./tls_session.ts";

/** One socket's waiting read and write. */
export class ParkedTls {
  #writer: Parked<number> | undefined;
  #reader: Parked<number | null> | undefined;

  /** `settled` tells the loop that a promise was settled. */
  constructor(readonly settled: () => void) {}

  /** Parks a read of some bytes into `p`; `null` at the end of the peer's stream. */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#reader !== undefined) return Promise.reject(busy("read"));
    if (p.length === 0) return Promise.resolve(0);
    const { promise, resolve, reject } = Promise.withResolvers<number | null>();
    this.#reader = { bytes: p, resolve, reject };
    return promise;
  }

  /** Parks a write of some prefix of `p`. */
  write(p: Uint8Array): Promise<number> {
    if (this.#writer !== undefined) return Promise.reject(busy("written"));
    if (p.length === 0) return Promise.resolve(0);
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#writer = { bytes: p, resolve, reject };
    return promise;
  }

  /**
   * Moves the waiting read and write on over `session`; returns the
   * readiness they still wait for (0: none).
   *
   * @throws {Error} when the connection failed.
   */
  advance(session: TlsSession): number {
    let wanted = 0;
    const writer = this.#writer;
    if (writer !== undefined) {
      const sent = session.send(writer.bytes, writer.bytes.length);
      if (sent === 0) wanted |= C.EPOLLOUT;
      else {
        this.#writer = undefined;
        this.settled();
        writer.resolve(sent);
      }
    }
    const reader = this.#reader;
    const got = reader === undefined ? 0 : session.receive(reader.bytes);
    if (got === "read" || got === "write") wanted |= got === "read" ? C.EPOLLIN : C.EPOLLOUT;
    else if (reader !== undefined) {
      this.#reader = undefined;
      this.settled();
      reader.resolve(got);
    }
    return wanted;
  }

  /** Fails what waits with `error`. */
  fail(error: unknown): void {
    const [writer, reader] = [this.#writer, this.#reader];
    this.#writer = this.#reader = undefined;
    writer?.reject(error);
    reader?.reject(error);
  }
}

function busy(what: string): Error {
  return new Deno.errors.Busy(`the connection is being ${what} already`);
}
