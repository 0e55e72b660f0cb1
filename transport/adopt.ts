/**
 * A TCP connection accepted by Deno (`Deno.listen`), handed to Node's stream
 * machinery (`node:net`) so that `node:tls` can run a server-side handshake
 * on it. Deno has no server-side TLS upgrade of its own, its TLS listener
 * keeps a socket open for good when it is closed before the handshake (a
 * silent client), and `node:net`'s listener stops accepting for good once
 * descriptors run out; accepting with Deno and encrypting with Node avoids
 * all three.
 *
 * It takes internals of Deno 2.9, all kept to this module and checked by its
 * tests: the resource id on a `Deno.TcpConn` (a symbol property), and the
 * `tcp_wrap` binding's `openFromRid`, which opens a duplicate of that
 * socket's descriptor as a Node handle. Closing the `Deno.TcpConn` would shut
 * the socket down (tokio does that when a stream's writing half is dropped),
 * so Deno's descriptor is given back another way ({@linkcode Adopted.shed}):
 * `Deno.startTls` takes the connection out of Deno's hands whole, without a
 * shutdown, and, given a CA certificate that cannot be parsed, fails before
 * it sends anything, dropping its descriptor. One descriptor is left, Node's.
 * Where that does not work, the connection keeps both descriptors, and
 * Deno's is closed after Node's at the end.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";

/** The parts of Deno's `tcp_wrap` binding used here. */
interface TcpWrapBinding {
  TCP: new (type: number) => { openFromRid(rid: number): number } & NodeHandle;
  constants: { SOCKET: number };
}

let binding: TcpWrapBinding | undefined;

/**
 * Why a connection cannot be handed to `node:net` in this Deno, or
 * `undefined` when it can.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { adoptionUnavailable } from "./adopt.ts";
 * equal(adoptionUnavailable(), undefined);
 * ```
 */
export function adoptionUnavailable(): string | undefined {
  try {
    loadBinding();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function loadBinding(): TcpWrapBinding {
  if (binding !== undefined) return binding;
  const found = (process as unknown as { binding(name: string): Partial<TcpWrapBinding> })
    .binding("tcp_wrap");
  const proto = found.TCP?.prototype as { openFromRid?: unknown } | undefined;
  if (found.constants?.SOCKET === undefined || typeof proto?.openFromRid !== "function") {
    throw new Error(
      `this Deno (${Deno.version.deno}) cannot hand a TCP connection to node:tls; TLS needs Deno 2.9`,
    );
  }
  binding = found as TcpWrapBinding;
  return binding;
}

/** The resource id Deno keeps on a connection, under a symbol of its own. */
function ridOf(conn: Deno.TcpConn): number {
  const symbol = Object.getOwnPropertySymbols(conn).find((key) =>
    key.description === "Deno.internal.rid"
  );
  const rid = symbol === undefined
    ? undefined
    : (conn as unknown as Record<symbol, unknown>)[symbol];
  if (typeof rid !== "number") throw new Error("this Deno keeps no resource id on a connection");
  return rid;
}

/** A connection in Node's hands, and Deno's own hold on it until {@linkcode Adopted.shed}. */
export interface Adopted {
  /**
   * The socket, for `node:tls`, made when first asked for: a socket reads
   * from the moment it is made, and what it read before `node:tls` took it
   * over would be lost to the handshake.
   */
  readonly socket: net.Socket;
  /**
   * Drops Deno's descriptor of the connection without shutting it down,
   * where this Deno allows (see the module's documentation); the socket
   * goes on. It costs about a tenth of a millisecond, so a caller does it
   * for connections that last, not for each of a churn.
   */
  shed(): Promise<void>;
  /**
   * Stops reading from the connection at the socket's handle, under
   * `node:tls` as well: pausing a TLS socket in Deno 2.9 stops what it
   * hands to JavaScript, not what it reads from the network, so a peer that
   * sends without reading its echoes would fill the process's memory with
   * data decrypted and held (hundreds of MB a second, measured).
   */
  stopReading(): void;
  /** Reads again after {@linkcode Adopted.stopReading}. */
  startReading(): void;
  /** Turns Nagle's algorithm off (or on) for the connection. */
  setNoDelay(noDelay: boolean): void;
  /** Destroys the socket (or its handle), then closes what Deno still holds of the connection. */
  close(): void;
}

/** The part of a Node socket's handle used here besides opening it. */
interface NodeHandle {
  readStart(): number;
  readStop(): number;
  setNoDelay(on: boolean): number;
  close(): void;
}

/** Set if Deno ever starts TLS on a certificate it cannot parse: no connection is shed again. */
let shedBroken = false;

/** A CA certificate that Deno cannot parse: `Deno.startTls` fails on it before it sends a byte. */
const UNPARSABLE_CA = "-----BEGIN CERTIFICATE-----\n!\n-----END CERTIFICATE-----\n";

/**
 * A `node:net` socket on the same TCP connection as `conn`, for `node:tls`.
 * The descriptor is duplicated at once (so that running out of descriptors
 * shows here, where the caller can wait and try again, `conn` untouched);
 * the socket is made when first asked for. Until {@linkcode Adopted.shed},
 * the connection has two descriptors, Deno's and Node's.
 *
 * @throws {Error} when this Deno cannot do it, or the descriptor cannot be
 *   duplicated (an `EMFILE` carries its `code`).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { adoptTcp } from "./adopt.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const adopted = adoptTcp(await listener.accept());
 * await adopted.shed();
 * const echoed = new Promise((resolve) => adopted.socket.once("data", (data) => resolve(String(data))));
 * await client.write(new TextEncoder().encode("hi"));
 * equal(await echoed, "hi");
 * adopted.close();
 * client.close();
 * listener.close();
 * ```
 */
export function adoptTcp(conn: Deno.TcpConn): Adopted {
  const { TCP, constants } = loadBinding();
  const handle = new TCP(constants.SOCKET);
  const status = handle.openFromRid(ridOf(conn));
  if (status !== 0) {
    // The binding says -1 when the descriptor could not be duplicated: usually EMFILE.
    throw Object.assign(
      new Error("cannot hand the connection to node:tls (out of file descriptors?)"),
      { code: "EMFILE" },
    );
  }
  let socket: net.Socket | undefined;
  let held = true;
  let shedding: Promise<void> | undefined;
  return {
    get socket(): net.Socket {
      return socket ??= new net.Socket(
        { handle, readable: true, writable: true } as net.SocketConstructorOpts,
      );
    },
    stopReading: () => void handle.readStop(),
    startReading: () => void handle.readStart(),
    setNoDelay: (noDelay) => void handle.setNoDelay(noDelay),
    shed: () =>
      shedding ??= (async () => {
        if (shedBroken || !held) return;
        // Not shed (the connection busy, or closed meanwhile): it keeps both, as it can.
        if (await shedByDeno(conn)) held = false;
      })(),
    close: () => {
      if (socket !== undefined) socket.destroy();
      else handle.close();
      if (!held) return;
      held = false;
      try {
        conn.close();
      } catch {
        // Already closed, or taken by a shed under way (which then drops it).
      }
    },
  };
}

/** Lets Deno drop its descriptor of `conn` without a shutdown; true when it did. */
async function shedByDeno(conn: Deno.TcpConn): Promise<boolean> {
  let started: Deno.TlsConn | undefined;
  try {
    started = await Deno.startTls(conn, { caCerts: [UNPARSABLE_CA] });
  } catch {
    // Expected: Deno took the connection, then failed on the certificate and dropped it.
  }
  if (started !== undefined) {
    // Never seen: a client handshake has begun on the connection, which cannot serve now.
    shedBroken = true;
    started.close();
    throw new Error(`Deno ${Deno.version.deno} started TLS with a certificate it cannot parse`);
  }
  try {
    // Still in Deno's table if it was not dropped (the connection was busy, or closed meanwhile).
    conn.setNoDelay(true);
    return false;
  } catch {
    return true;
  }
}

/**
 * Ends a connection accepted by Deno with a reset (`SO_LINGER` 0 semantics)
 * instead of a FIN, as a fault asks. Deno's close always shuts writing down
 * first (a FIN), so the reset is made on the descriptor Node's binding
 * duplicates: with `--allow-ffi`, `connect(AF_UNSPEC)` on it disconnects the
 * socket with a reset at once, whatever is pending on Deno's side; without,
 * Deno's descriptor is shed ({@linkcode Adopted.shed}) and Node's handle
 * resets on close, which works while no read is pending on the connection,
 * and is a FIN then a reset otherwise. Where nothing of it works, it closes.
 */
export async function resetTcp(conn: Deno.TcpConn): Promise<void> {
  let handle: InstanceType<TcpWrapBinding["TCP"]> & ResettableHandle;
  try {
    const { TCP, constants } = loadBinding();
    handle = new TCP(constants.SOCKET) as typeof handle;
    if (handle.openFromRid(ridOf(conn)) !== 0) throw new Error("no descriptor to duplicate");
  } catch {
    return conn.close();
  }
  if (disconnect(handle)) {
    handle.close();
    return closeDeno(conn);
  }
  const held = shedBroken || !(await shedByDeno(conn).catch(() => false));
  // Its callback is not called in Deno 2.9: the reset itself is done once the call returns.
  if (handle.reset(() => {}) !== 0) handle.close();
  if (held) closeDeno(conn);
}

/** What {@linkcode resetTcp} uses of a Node handle besides opening it. */
interface ResettableHandle {
  reset(done: () => void): number;
  fdForIpc(): number;
}

/** `struct sockaddr` with `sa_family = AF_UNSPEC`: `connect` with it dissolves a TCP connection. */
const UNSPEC = new Uint8Array(16);
const LIBC = {
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;
let libc: Deno.DynamicLibrary<typeof LIBC>["symbols"] | null | undefined;

/** Disconnects the socket of `handle` with a reset through libc's `connect`; false without `--allow-ffi`. */
function disconnect(handle: ResettableHandle): boolean {
  if (libc === undefined) {
    libc = null;
    try {
      if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
        libc = Deno.dlopen("libc.so.6", LIBC).symbols;
      }
    } catch {
      // No libc to open (not Linux): the other way, then.
    }
  }
  if (libc === null) return false;
  // Taken from the handle: once asked for, the descriptor is the asker's to close.
  const fd = handle.fdForIpc();
  const done = libc.connect(fd, UNSPEC, UNSPEC.length) === 0;
  libc.close(fd);
  return done;
}

function closeDeno(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch {
    // Already closed: the aim is reached.
  }
}
