/**
 * The few libc calls the epoll engine makes, opened once through
 * `Deno.dlopen`, with the Linux constants they take. Everything here is
 * Linux-only and needs `--allow-ffi`; {@linkcode epollUnavailable} says, in
 * one sentence, why it cannot run.
 *
 * Every call goes through a {@linkcode System} wrapper that returns the
 * call's result, or `-errno` when it failed. Invariant: nothing runs between
 * a libc call and the read of `errno` but one element load, in the wrapper's
 * next statement. `errno` is read there, not later, because V8 and Deno run
 * code of their own on the thread between two statements of ours (interrupts
 * for GC and for installing optimized code, futex waits in Rust's locks,
 * which leave `EAGAIN`): read later, a failed `recv`'s `ECONNRESET` was
 * sometimes `EAGAIN` (see BENCHMARKS.md, "The epoll engine under stress").
 *
 * @module
 */

// Results are declared i32 even where C returns ssize_t: Deno returns 64-bit
// results as BigInt, and a byte count here never exceeds the 64 KiB buffer.
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // Variadic in C; its third argument is a pointer here, passed as any other on x86_64 and aarch64.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // The same call on Deno's blocking-task threads, so that an idle engine
  // sleeps in the kernel while the event loop runs timers and signals. Its
  // errno is that other thread's, out of reach: a failure there is only a failure.
  epoll_wait_off_thread: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
  // The bench's client side (bench/epoll_socket.ts): a non-blocking connect, its end read with SO_ERROR.
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // Gives the heap's free pages back to the system (epoll/tls_listener.ts).
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * The libc functions the engine calls, as Deno types them. A `usize`
 * parameter takes a BigInt: Deno's fast path reads 64-bit parameters as
 * BigInts, and optimized code that passes a number there is thrown away at
 * its first call ("not a BigInt"), optimized again and thrown away again,
 * which tripled the engine's own CPU time per message in a pingpong.
 */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Linux constants (the same on x86_64 and aarch64). */
export const C = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_ERROR: 4,
  SO_LINGER: 13,
  SO_REUSEPORT: 15,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  SHUT_WR: 1,
  MSG_PEEK: 0x2,
  MSG_TRUNC: 0x20,
  MSG_NOSIGNAL: 0x4000,
  EPOLL_CLOEXEC: 0o2000000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLL_CTL_MOD: 3,
  EPOLLIN: 0x1,
  EPOLLOUT: 0x4,
  EPOLLERR: 0x8,
  EPOLLHUP: 0x10,
  EPOLLRDHUP: 0x2000,
  EFD_NONBLOCK: 0o4000,
  EFD_CLOEXEC: 0o2000000,
  /** `ioctl`: bytes in the receive queue, not yet read. */
  SIOCINQ: 0x541bn,
  /** `ioctl`: bytes in the send queue not yet acknowledged by the peer (a queued FIN counts one). */
  SIOCOUTQ: 0x5411n,
  /** `ioctl`: bytes in the send queue not yet transmitted at all (a FIN not yet sent counts one). */
  SIOCOUTQNSD: 0x894bn,
} as const;

/** The `errno` values the engine tells apart. */
export const E = {
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  EPIPE: 32,
  ENONET: 64,
  EPROTO: 71,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
} as const;

const CODES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(E).map(([name, value]) => [value, name]),
);

/** The errno's name, `E<number>` for one the engine does not name. */
function codeOf(errno: number): string {
  return CODES[errno] ?? `E${errno}`;
}

/**
 * libc as the engine calls it: each method makes one call and returns its
 * result, or `-errno` when it failed (see the module's documentation for
 * why `errno` is read here and nowhere else). Byte counts are BigInts where
 * C takes a `size_t` (see {@linkcode Libc}).
 */
export class System {
  /** The functions themselves, for the one call whose `errno` is another thread's. */
  readonly libc: Libc;
  /** This thread's `errno`, as a typed array over libc's: reading it is a load, not a call. */
  readonly #errno: Int32Array;
  /** Scratch space for the `int` that `getsockopt` and `ioctl` report, and its length. */
  readonly #int = new Uint8Array(4);
  readonly #intView = new Int32Array(this.#int.buffer);
  readonly #intLength = new Uint32Array(1);
  readonly #intLengthBytes = new Uint8Array(this.#intLength.buffer);

  /** Wraps `libc`, whose `errno` for this thread is at `errnoCell`. */
  constructor(libc: Libc, errnoCell: Int32Array) {
    this.libc = libc;
    this.#errno = errnoCell;
  }

  /** `socket(2)`: a descriptor, or `-errno`. */
  socket(domain: number, type: number, protocol: number): number {
    const r = this.libc.socket(domain, type, protocol);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `setsockopt(2)`: 0, or `-errno`. */
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number {
    const r = this.libc.setsockopt(fd, level, name, value, value.length);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `getsockopt(2)` of an `int` option: its value (0 or more), or `-errno`. */
  getsockoptInt(fd: number, level: number, name: number): number {
    this.#intLength[0] = 4;
    const r = this.libc.getsockopt(fd, level, name, this.#int, this.#intLengthBytes);
    if (r < 0) return -this.#errno[0];
    return this.#intView[0];
  }

  /** `bind(2)`: 0, or `-errno`. */
  bind(fd: number, address: Uint8Array): number {
    const r = this.libc.bind(fd, address, address.length);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `listen(2)`: 0, or `-errno`. */
  listen(fd: number, backlog: number): number {
    const r = this.libc.listen(fd, backlog);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `getsockname(2)` into `address`, whose length `length` holds in and out: 0, or `-errno`. */
  getsockname(fd: number, address: Uint8Array, length: Uint8Array): number {
    const r = this.libc.getsockname(fd, address, length);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `accept4(2)`: a descriptor, or `-errno`. */
  accept4(fd: number, address: Uint8Array, length: Uint8Array, flags: number): number {
    const r = this.libc.accept4(fd, address, length, flags);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `recv(2)`: bytes read (0 at the end of the stream), or `-errno`. */
  recv(fd: number, buffer: Uint8Array, length: bigint, flags: number): number {
    const r = this.libc.recv(fd, buffer, length, flags);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `send(2)`: bytes taken, or `-errno`. */
  send(fd: number, buffer: Uint8Array, length: bigint, flags: number): number {
    const r = this.libc.send(fd, buffer, length, flags);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `shutdown(2)`: 0, or `-errno`. */
  shutdown(fd: number, how: number): number {
    const r = this.libc.shutdown(fd, how);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `close(2)`: 0, or `-errno` (the descriptor is released either way on Linux). */
  close(fd: number): number {
    const r = this.libc.close(fd);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `ioctl(2)` that reports an `int` (`SIOCINQ`, `SIOCOUTQ`): its value, or `-errno`. */
  ioctlInt(fd: number, request: bigint): number {
    const r = this.libc.ioctl(fd, request, this.#int);
    if (r < 0) return -this.#errno[0];
    return this.#intView[0];
  }

  /** `eventfd(2)`: a descriptor, or `-errno`. */
  eventfd(initial: number, flags: number): number {
    const r = this.libc.eventfd(initial, flags);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `write(2)`: bytes written, or `-errno`. */
  write(fd: number, buffer: Uint8Array, length: bigint): number {
    const r = this.libc.write(fd, buffer, length);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `read(2)`: bytes read, or `-errno`. */
  read(fd: number, buffer: Uint8Array, length: bigint): number {
    const r = this.libc.read(fd, buffer, length);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `epoll_create1(2)`: a descriptor, or `-errno`. */
  epollCreate(flags: number): number {
    const r = this.libc.epoll_create1(flags);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `epoll_ctl(2)`: 0, or `-errno`. */
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number {
    const r = this.libc.epoll_ctl(epfd, op, fd, event);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `epoll_wait(2)` on this thread: events ready, or `-errno`. */
  epollWait(epfd: number, events: Uint8Array, max: number, timeoutMs: number): number {
    const r = this.libc.epoll_wait(epfd, events, max, timeoutMs);
    return r < 0 ? -this.#errno[0] : r;
  }

  /** `connect(2)`: 0, or `-errno` (`-EINPROGRESS` on a non-blocking socket still connecting). */
  connect(fd: number, address: Uint8Array): number {
    const r = this.libc.connect(fd, address, address.length);
    return r < 0 ? -this.#errno[0] : r;
  }
}

let system: System | undefined;

/**
 * Opens libc, once per isolate (each worker opens its own, on its thread,
 * where its `errno` lives). Check {@linkcode epollUnavailable} first: this
 * throws where FFI is not allowed or libc is not glibc's.
 */
export function openLibc(): System {
  if (system !== undefined) return system;
  const { symbols } = Deno.dlopen("libc.so.6", SYMBOLS);
  const location = symbols.__errno_location();
  if (location === null) throw new Error("libc gave no errno location");
  // A thread's errno lives at one address for the thread's life.
  const cell = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(location, 4));
  system = new System(symbols, cell);
  return system;
}

/**
 * Why the epoll engine cannot run in this process, as one sentence naming
 * the fix, or `undefined` when it can.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { epollUnavailable } from "./libc.ts";
 * const why = epollUnavailable();
 * ok(why === undefined || why.startsWith("--io epoll"));
 * ```
 */
export function epollUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") {
    return `--io epoll runs on Linux only (this is ${Deno.build.os}): use --io deno`;
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "--io epoll calls libc directly and needs --allow-ffi, unscoped (a grant for a path does not cover libc.so.6): run deno with --allow-ffi, or use --io deno";
  }
  try {
    openLibc();
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return `--io epoll needs glibc's libc.so.6, which did not open (${why}): use --io deno`;
  }
  return undefined;
}

/**
 * An operating-system error from a libc call: `code` is the errno's name
 * (`EMFILE`, `ECONNRESET`), as Deno's own errors carry it.
 */
export class OsError extends Error {
  /** The errno's name, e.g. `EMFILE`; `E<number>` for one the engine does not name. */
  readonly code: string;
  /** The errno. */
  readonly errno: number;

  /**
   * Makes the error for `call` failing with `errno`.
   *
   * @param call what failed, e.g. `accept4`
   * @param errno the errno it left
   */
  constructor(call: string, errno: number) {
    const code = codeOf(errno);
    super(`${call} failed: ${code} (os error ${errno})`);
    this.name = "OsError";
    this.code = code;
    this.errno = errno;
  }
}

/**
 * The error Deno's own sockets raise for `errno`, so that the words the
 * server logs and the way the echo classifies an end are the same for both
 * engines.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { E, errorFor } from "./libc.ts";
 * ok(errorFor("recv", E.ECONNRESET) instanceof Deno.errors.ConnectionReset);
 * ```
 */
export function errorFor(call: string, errno: number): Error {
  const message = `${call}: ${codeOf(errno)} (os error ${errno})`;
  switch (errno) {
    case E.ECONNRESET:
      return new Deno.errors.ConnectionReset(message);
    case E.ECONNABORTED:
      return new Deno.errors.ConnectionAborted(message);
    case E.EPIPE:
      return new Deno.errors.BrokenPipe(message);
    case E.ENOTCONN:
      return new Deno.errors.NotConnected(message);
    case E.ETIMEDOUT:
      return new Deno.errors.TimedOut(message);
    case E.EADDRINUSE:
      return new Deno.errors.AddrInUse(message);
    case E.EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(message);
    case E.EACCES:
      return new Deno.errors.PermissionDenied(message);
    default:
      return new OsError(call, errno);
  }
}
