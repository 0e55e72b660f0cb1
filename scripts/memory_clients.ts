/**
 * The clients of `scripts/memory.ts`, one kind per function: each opens `n`
 * connections to an echo server, brings them to the state the kind names
 * within a deadline, and hands back a way to end them.
 *
 * - `idle`: connected, one byte echoed, then silent.
 * - `busy`: a 64-byte pingpong on every connection, back to back, until
 *   stopped.
 * - `nonreading`: sends 64 KiB writes and never reads; over plain TCP the
 *   sockets are made with libc (through FFI) so that their receive buffer
 *   can be 4 KiB (`SO_RCVBUF`, set before `connect`, as the issue measured),
 *   which Deno's sockets cannot set; over TLS they are Deno's, with the
 *   kernel's default receive buffer.
 *
 * @module
 */
import { C } from "../epoll/libc.ts";
import { encodeSockaddr } from "../epoll/sockaddr.ts";

/** The kinds of client. */
export const KINDS = ["idle", "busy", "nonreading"] as const;
/** One kind of client. */
export type Kind = typeof KINDS[number];

/** Where the clients connect, and how. */
export interface Target {
  /** The server's loopback port. */
  port: number;
  /** With TLS: the CA certificate (PEM) that signed the server's. */
  caCert?: string;
}

/** Clients that are open and in their state. */
export interface Clients {
  /** Connections that reached the state (the others failed, and are closed). */
  readonly open: number;
  /** Bytes the clients have sent in all. */
  readonly sent: number;
  /** Stops and closes every connection. */
  close(): Promise<void>;
}

const MESSAGE = new Uint8Array(64).map((_, i) => i);
/** Connections opened at a time: enough to be quick, few enough for the backlog (511). */
const BATCH = 200;

/** Throws when `deadline` (a `performance.now()` time) has passed, naming what was being waited for. */
function checkDeadline(deadline: number, what: string): void {
  if (performance.now() > deadline) throw new Error(`timed out ${what}`);
}

/** Opens the clients of `kind`; rejects if they are not in their state by `deadline`. */
export function openClients(
  kind: Kind,
  n: number,
  target: Target,
  deadline: number,
): Promise<Clients> {
  switch (kind) {
    case "idle":
      return openStreams(n, target, deadline, false);
    case "busy":
      return openStreams(n, target, deadline, true);
    case "nonreading":
      return target.caCert === undefined
        ? openRawNonReaders(n, target.port, deadline)
        : openTlsNonReaders(n, target, deadline);
  }
}

function connect(target: Target): Promise<Deno.Conn> {
  const where = { hostname: "127.0.0.1", port: target.port };
  return target.caCert === undefined
    ? Deno.connect(where)
    : Deno.connectTls({ ...where, caCerts: [target.caCert] });
}

/** Sends 64 bytes and waits for exactly them back. */
async function echoOnce(conn: Deno.Conn, bytes: Uint8Array, reply: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  for (let got = 0; got < bytes.length;) {
    const r = await conn.read(reply.subarray(got, bytes.length));
    if (r === null) throw new Error("the server closed a client");
    got += r;
  }
  for (let i = 0; i < bytes.length; i++) {
    if (reply[i] !== bytes[i]) throw new Error("an echo differs from what was sent");
  }
}

/** Idle or busy clients on Deno's sockets: each has echoed once before the next batch opens. */
async function openStreams(
  n: number,
  target: Target,
  deadline: number,
  busy: boolean,
): Promise<Clients> {
  const conns: Deno.Conn[] = [];
  let stopped = false;
  let sent = 0;
  const loops: Promise<void>[] = [];
  for (let start = 0; start < n; start += BATCH) {
    checkDeadline(deadline, `opening ${n} connections (${conns.length} open)`);
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, n - start) }, async () => {
        const conn = await connect(target);
        await echoOnce(conn, MESSAGE.subarray(0, 1), new Uint8Array(1));
        sent++;
        return conn;
      }),
    );
    conns.push(...batch);
  }
  if (busy) {
    for (const conn of conns) {
      loops.push(
        (async () => {
          const reply = new Uint8Array(MESSAGE.length);
          while (!stopped) {
            await echoOnce(conn, MESSAGE, reply);
            sent += MESSAGE.length;
          }
        })().catch((error) => {
          if (!stopped) throw error;
        }),
      );
    }
  }
  return {
    open: conns.length,
    get sent() {
      return sent;
    },
    async close() {
      stopped = true;
      for (const conn of conns) conn.close();
      await Promise.all(loops);
    },
  };
}

const RAW_SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i64" },
  close: { parameters: ["i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `SO_RCVBUF`: the receive buffer the non-readers had (Linux doubles it for its own use). */
const SO_RCVBUF = 8;
const RCVBUF_BYTES = 4096;
const CHUNK = new Uint8Array(65536).map((_, i) => i & 0xff);
const MSG_DONTWAIT = 0x40;
/** Rounds with no byte sent by any client, in a row, after which the echo is taken as stalled. */
const STILL_ROUNDS = 5;

/**
 * Plain-TCP non-readers made with libc: a 4 KiB receive buffer, then 64 KiB
 * writes (`MSG_DONTWAIT`) until no client's socket takes more for
 * {@linkcode STILL_ROUNDS} rounds in a row, i.e. the server's echo to each
 * one is stuck and its reading stopped.
 */
async function openRawNonReaders(n: number, port: number, deadline: number): Promise<Clients> {
  const library = Deno.dlopen("libc.so.6", RAW_SYMBOLS);
  const libc = library.symbols;
  const address = encodeSockaddr("127.0.0.1", port);
  if (address === undefined) throw new Error("no loopback address");
  const rcvbuf = new Uint8Array(new Int32Array([RCVBUF_BYTES]).buffer);
  const fds: number[] = [];
  const closeAll = () => {
    for (const fd of fds) libc.close(fd);
    fds.length = 0;
    library.close();
  };
  let sent = 0;
  try {
    for (let i = 0; i < n; i++) {
      // Blocking connects, paced in batches so that the server's backlog never overflows.
      if (i % BATCH === 0 && i > 0) {
        checkDeadline(deadline, `connecting ${n} non-readers (${i} connected)`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const fd = libc.socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0);
      if (fd < 0) throw new Error(`socket() failed after ${i} connections (ulimit -n?)`);
      fds.push(fd);
      if (libc.setsockopt(fd, C.SOL_SOCKET, SO_RCVBUF, rcvbuf, 4) < 0) {
        throw new Error("setsockopt(SO_RCVBUF) failed");
      }
      if (libc.connect(fd, address, address.length) < 0) {
        throw new Error(`connect() failed after ${i} connections`);
      }
    }
    for (let still = 0; still < STILL_ROUNDS;) {
      checkDeadline(deadline, `waiting for ${n} non-readers to stall (${sent} bytes sent)`);
      let round = 0;
      for (const fd of fds) {
        while (true) {
          const r = Number(
            libc.send(fd, CHUNK, BigInt(CHUNK.length), MSG_DONTWAIT | C.MSG_NOSIGNAL),
          );
          if (r <= 0) break;
          round += r;
        }
      }
      sent += round;
      still = round === 0 ? still + 1 : 0;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  return {
    open: fds.length,
    sent,
    close: () => Promise.resolve(closeAll()),
  };
}

/**
 * TLS non-readers on Deno's sockets: each keeps one 64 KiB write pending at
 * all times; stalled once no write has completed for {@linkcode STILL_ROUNDS}
 * rounds of 100 ms.
 */
async function openTlsNonReaders(n: number, target: Target, deadline: number): Promise<Clients> {
  const conns: Deno.Conn[] = [];
  let sent = 0;
  let stopped = false;
  const writers: Promise<void>[] = [];
  const close = async () => {
    stopped = true;
    for (const conn of conns) conn.close();
    await Promise.all(writers);
  };
  try {
    for (let start = 0; start < n; start += BATCH) {
      checkDeadline(deadline, `opening ${n} TLS non-readers (${conns.length} open)`);
      const batch = await Promise.all(
        Array.from({ length: Math.min(BATCH, n - start) }, () => connect(target)),
      );
      conns.push(...batch);
      for (const conn of batch) {
        writers.push(
          (async () => {
            while (!stopped) sent += await conn.write(CHUNK);
          })().catch((error) => {
            if (!stopped) throw error;
          }),
        );
      }
    }
    for (let still = 0, last = -1; still < STILL_ROUNDS;) {
      checkDeadline(deadline, `waiting for ${n} TLS non-readers to stall (${sent} bytes sent)`);
      still = sent === last ? still + 1 : 0;
      last = sent;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { open: conns.length, sent, close };
}
