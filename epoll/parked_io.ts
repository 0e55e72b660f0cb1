/**
 * The promise-based `read` and `write` of an epoll connection, for the few
 * uses that are not the echo (a PROXY header, a refusal line): a call that
 * cannot finish at once waits, parked, for the socket's readiness. Kept
 * apart from the connection, and made only when first used, so that an
 * echoing connection carries none of it.
 *
 * @module
 */
import { C } from "./libc.ts";
import type { System } from "./libc.ts";
import { type Parked, settle, tryRecv, trySend } from "./socket_calls.ts";

/** The readiness a parked read waits for. */
export const READING = C.EPOLLIN | C.EPOLLRDHUP;

/** One connection's reads and writes that had to wait. */
export class ParkedIo {
  readonly #sys: System;
  readonly #fd: number;
  /** Registers the connection for these events (0: for none). */
  readonly #watch: (events: number) => void;
  /** Tells the loop that a promise settled. */
  readonly #settled: () => void;
  #reader: Parked<number | null> | undefined;
  #writer: Parked<number> | undefined;

  /** For the socket `fd`; `watch` and `settled` are the connection's. */
  constructor(sys: System, fd: number, watch: (events: number) => void, settled: () => void) {
    this.#sys = sys;
    this.#fd = fd;
    this.#watch = watch;
    this.#settled = settled;
  }

  /** True while a read or a write waits. */
  get waiting(): boolean {
    return this.#reader !== undefined || this.#writer !== undefined;
  }

  /** Reads into `p`; resolves with the byte count, or `null` once the peer shut its side down. */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#reader !== undefined) {
      return Promise.reject(new Deno.errors.Busy("the connection is already being read"));
    }
    return this.#first(p, tryRecv, (parked) => this.#reader = parked);
  }

  /** Writes some prefix of `p`; resolves with how many bytes the kernel took. */
  write(p: Uint8Array): Promise<number> {
    if (this.#writer !== undefined) {
      return Promise.reject(new Deno.errors.Busy("the connection is already being written"));
    }
    return this.#first(p, trySend, (parked) => this.#writer = parked);
  }

  /** The socket is ready: what waits tries again, and the registration follows what is left. */
  ready(): void {
    if (
      this.#reader !== undefined && settle(this.#reader, (p) => tryRecv(this.#sys, this.#fd, p))
    ) {
      this.#reader = undefined;
      this.#settled();
    }
    if (
      this.#writer !== undefined && settle(this.#writer, (p) => trySend(this.#sys, this.#fd, p))
    ) {
      this.#writer = undefined;
      this.#settled();
    }
    this.#rewatch();
  }

  /** Ends whatever waits with `error` (the connection closed, or its loop failed). */
  fail(error: () => unknown): void {
    const { reader, writer } = { reader: this.#reader, writer: this.#writer };
    this.#reader = this.#writer = undefined;
    reader?.reject(error());
    writer?.reject(error());
  }

  /** Tries once; parks what cannot finish yet, with `park` keeping it. */
  #first<T>(
    p: Uint8Array,
    attempt: (sys: System, fd: number, p: Uint8Array) => T | undefined,
    park: (parked: Parked<T> | undefined) => void,
  ): Promise<T> {
    try {
      const n = attempt(this.#sys, this.#fd, p);
      if (n !== undefined) return Promise.resolve(n);
    } catch (error) {
      return Promise.reject(error);
    }
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    park({ bytes: p, resolve, reject });
    try {
      this.#rewatch();
    } catch (error) {
      park(undefined);
      return Promise.reject(error);
    }
    return promise;
  }

  /** Watches for what the parked read and write need; nothing at all once neither is left. */
  #rewatch(): void {
    this.#watch(
      (this.#reader !== undefined ? READING : 0) | (this.#writer !== undefined ? C.EPOLLOUT : 0),
    );
  }
}
