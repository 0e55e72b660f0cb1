/**
 * The plain bytes in front of a TLS socket's handshake on the epoll engine:
 * what the PROXY decorator reads as its header, and the bytes it read past
 * the header given back, for OpenSSL to read before the socket's.
 *
 * @module
 */
import { ParkedIo } from "./parked_io.ts";
import type { System } from "./libc.ts";

/** One socket's plain start; made on first use, dropped when the handshake starts. */
export class PlainStart {
  /** The promise-based plain reads, made by the first. */
  #io: ParkedIo | undefined;
  /** Bytes given back, for OpenSSL to read first. */
  #given: Uint8Array | undefined;

  /** Plain reads of `fd`, registering its readiness through `watch`. */
  constructor(
    readonly sys: System,
    readonly fd: number,
    readonly watch: (events: number) => void,
    readonly settled: () => void,
  ) {}

  /** Reads the plain bytes that came first. */
  read(p: Uint8Array): Promise<number | null> {
    this.#io ??= new ParkedIo(this.sys, this.fd, this.watch, this.settled);
    return this.#io.read(p);
  }

  /** Gives back bytes read and not meant for that reader. */
  giveBack(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const before = this.#given;
    this.#given = before === undefined ? bytes.slice() : Uint8Array.from([...before, ...bytes]);
  }

  /**
   * The bytes given back, for the handshake that starts now.
   *
   * @throws {Deno.errors.Busy} while a plain read waits.
   */
  take(): Uint8Array | undefined {
    if (this.#io?.waiting === true) throw new Deno.errors.Busy("the connection is being read");
    return this.#given;
  }

  /** The socket is ready: a waiting read goes on; false when none waits. */
  ready(): boolean {
    if (this.#io === undefined) return false;
    this.#io.ready();
    return true;
  }

  /** Fails a waiting read with what `error` makes. */
  fail(error: () => unknown): void {
    this.#io?.fail(error);
  }
}
