/**
 * The few libc calls the epoll engine makes, opened once through
 * `Deno.dlopen`, with the Linux constants they take and `errno` read where
 * libc keeps it. Everything here is Linux-only and needs `--allow-ffi`;
 * {@linkcode epollUnavailable} says, in one sentence, why it cannot run.
 *
 * @module
 */

// Results are declared i32 even where C returns ssize_t: Deno returns 64-bit
// results as BigInt, and a byte count here never exceeds the 64 KiB buffer.
const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  // The same call on Deno's blocking-task threads, so that an idle engine
  // sleeps in the kernel while the event loop runs timers and signals.
  epoll_wait_off_thread: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
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
  SO_REUSEPORT: 15,
  IPPROTO_TCP: 6,
  TCP_NODELAY: 1,
  SHUT_WR: 1,
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
} as const;

/** The `errno` values the engine tells apart. */
export const E = {
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

/** The engine's view of libc: the calls, and `errno` after one of them failed. */
export interface System {
  /** The functions. */
  readonly libc: Libc;
  /** `errno` of this thread, as the last failed call on it left it. */
  errno(): number;
}

let system: System | undefined;

/**
 * Opens libc, once per isolate. Check {@linkcode epollUnavailable} first: this
 * throws where FFI is not allowed or libc is not glibc's.
 */
export function openLibc(): System {
  if (system !== undefined) return system;
  const { symbols } = Deno.dlopen("libc.so.6", SYMBOLS);
  const location = symbols.__errno_location();
  if (location === null) throw new Error("libc gave no errno location");
  // The main thread's errno lives at one address for the thread's life.
  const view = new Deno.UnsafePointerView(location);
  system = { libc: symbols, errno: () => view.getInt32() };
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
