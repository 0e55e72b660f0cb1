/**
 * A trusted proxy's connection before and after its PROXY header: reading the
 * header within a time limit, and the connection that presents the client
 * the header names as its peer.
 *
 * @module
 */
import { closeQuietly, type Connection } from "../transport/contract.ts";
import { type EchoDone, type EchoOptions, isPeerGone } from "../transport/echo.ts";
import { describeError } from "../text/address.ts";
import { formatExactDuration } from "../text/duration.ts";
import { parseProxyHeader, PROXY_HEADER_MAX_BYTES, type ProxyEndpoint } from "./header.ts";

/** What came of reading a header: the client it names and the bytes after it, or why not. */
export type HeaderOutcome =
  | { ok: true; source: ProxyEndpoint | undefined; version: 1 | 2; rest: Uint8Array }
  | { ok: false; reason: string };

/** The first read's buffer: a v1 header and a usual v2 one fit. */
const READ_START = 512;

/**
 * Reads the PROXY header at the start of `conn` within `timeoutMs`, closing
 * the connection when the time is up. Never rejects: a failure is an outcome
 * with its reason in words.
 */
export async function readProxyHeader(conn: Connection, timeoutMs: number): Promise<HeaderOutcome> {
  let buffer = new Uint8Array(READ_START);
  let filled = 0;
  let timedOut = false;
  // Closing the socket ends the pending read: the simplest way to time it out.
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, timeoutMs);
  try {
    while (true) {
      if (filled === buffer.length) {
        // The parser refuses anything longer, so this bound is never the reason to stop.
        const grown = new Uint8Array(Math.min(buffer.length * 4, PROXY_HEADER_MAX_BYTES));
        grown.set(buffer);
        buffer = grown;
      }
      let n: number | null;
      try {
        const into = buffer.subarray(filled);
        n = await (isUnreading(conn) ? conn.readPlain(into) : conn.read(into));
      } catch (error) {
        if (timedOut) break;
        return { ok: false, reason: `reading the PROXY header failed: ${describeError(error)}` };
      }
      if (timedOut) break;
      if (n === null) {
        return {
          ok: false,
          reason: filled === 0
            ? "closed before sending a PROXY header"
            : `closed after ${filled} bytes of an incomplete PROXY header`,
        };
      }
      filled += n;
      const parsed = parseProxyHeader(buffer.subarray(0, filled));
      if (parsed.kind === "invalid") return { ok: false, reason: parsed.reason };
      if (parsed.kind === "done") {
        return {
          ok: true,
          source: parsed.source,
          version: parsed.version,
          rest: buffer.slice(parsed.consumed, filled),
        };
      }
    }
  } finally {
    clearTimeout(timer);
  }
  return {
    ok: false,
    reason: `no complete PROXY header within ${formatExactDuration(timeoutMs)}${
      filled > 0 ? ` (${filled} bytes came)` : ""
    }`,
  };
}

/**
 * A connection after its PROXY header: its peer is the client the header
 * named, and its first reads return the bytes that came with the header.
 */
export class ProxiedConnection implements Connection {
  /** The client the header named, or the proxy itself where it named none. */
  readonly remoteAddr: Deno.Addr;
  readonly #conn: Connection;
  /** Bytes read with the header and not yet returned; undefined once drained. */
  #rest: Uint8Array | undefined;

  /** See `Connection.closeGently`: the socket's, where it has one. */
  readonly closeGently?: (graceMs: number) => void;
  /** See `Connection.closeWrite`: the socket's, where it has one. */
  readonly closeWrite?: () => Promise<void>;

  /** Presents `conn` as a connection from `remoteAddr` whose first bytes are `rest`. */
  constructor(conn: Connection, remoteAddr: Deno.Addr, rest: Uint8Array) {
    this.#conn = conn;
    this.remoteAddr = remoteAddr;
    this.#rest = rest.length > 0 ? rest : undefined;
    // Only where the socket has them: the server asks whether a connection can end gently.
    const { closeGently, closeWrite } = conn;
    if (closeGently !== undefined) this.closeGently = (graceMs) => closeGently.call(conn, graceMs);
    if (closeWrite !== undefined) this.closeWrite = () => closeWrite.call(conn);
    const { reset } = conn;
    if (reset !== undefined) this.reset = () => reset.call(conn);
    this.identified = conn.identified;
  }

  /** See `Connection.reset`: the socket's, where it has one. */
  readonly reset?: () => void;
  /** See `Connection.identified`: the socket's (mutual TLS after the header). */
  readonly identified?: Promise<void>;

  /** See `Connection.clientSubject`: the socket's, once its TLS handshake is done. */
  get clientSubject(): string | undefined {
    return this.#conn.clientSubject;
  }

  /** Reads the bytes that came with the header first, then straight from the socket. */
  read(p: Uint8Array): Promise<number | null> {
    const rest = this.#rest;
    if (rest === undefined) return this.#conn.read(p);
    const n = Math.min(p.length, rest.length);
    p.set(rest.subarray(0, n));
    this.#rest = n === rest.length ? undefined : rest.subarray(n);
    return Promise.resolve(n);
  }

  /** Writes to the socket. */
  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  /** Closes the socket. */
  close(): void {
    this.#conn.close();
  }

  /** Turns Nagle's algorithm off, where the socket has it. */
  setNoDelay(noDelay?: boolean): void {
    this.#conn.setNoDelay?.(noDelay);
  }

  /** The bytes that came with the header, handed over once, and the socket itself. */
  protected takeRest(): { rest: Uint8Array | undefined; conn: Connection } {
    const rest = this.#rest;
    this.#rest = undefined;
    return { rest, conn: this.#conn };
  }
}

/**
 * A {@linkcode ProxiedConnection} over a socket that runs its own echo (the
 * epoll engine's): it writes back the bytes that came with the header, then
 * lets the socket echo the rest, so that the PROXY protocol keeps the
 * engine's fast path.
 */
class ProxiedEchoingConnection extends ProxiedConnection {
  /** See `Connection.echo`. */
  echo(options: EchoOptions, done: EchoDone): void {
    const { rest, conn } = this.takeRest();
    if (rest === undefined) return conn.echo?.(options, done);
    const counters = options.counters ?? { bytesIn: 0, bytesOut: 0 };
    counters.bytesIn += rest.length;
    options.onChunk?.(rest.length);
    (async () => {
      for (let chunk = rest; chunk.length > 0;) {
        const written = await conn.write(chunk);
        counters.bytesOut += written;
        chunk = chunk.subarray(written);
      }
    })().then(
      () => {
        try {
          conn.echo?.({ ...options, counters }, done);
        } catch (error) {
          // The socket could not start its echo (its loop stopped, say): the end is this.
          done.echoEnded("error", error);
        }
      },
      (error: unknown) => done.echoEnded(isPeerGone(error) ? "reset" : "error", error),
    );
  }
}

/**
 * A socket with a protocol of its own after the header (the epoll engine's
 * TLS): it takes back the bytes read past the header, which are that
 * protocol's, to read them first itself.
 */
interface Unreading {
  /** Reads the plain bytes in front of that protocol: the header. */
  readPlain(p: Uint8Array): Promise<number | null>;
  unread(bytes: Uint8Array): void;
}

function isUnreading(conn: Connection): conn is Connection & Unreading {
  return typeof (conn as Partial<Unreading>).unread === "function";
}

/**
 * Presents `conn` as a connection from `remoteAddr` whose first bytes are
 * `rest`; one that can echo by itself stays able to. A socket that takes
 * bytes back (TLS after the header) gets `rest` back instead.
 */
export function proxiedConnection(
  conn: Connection,
  remoteAddr: Deno.Addr,
  rest: Uint8Array,
): ProxiedConnection {
  if (isUnreading(conn)) {
    conn.unread(rest);
    rest = new Uint8Array(0);
  }
  return conn.echo === undefined
    ? new ProxiedConnection(conn, remoteAddr, rest)
    : new ProxiedEchoingConnection(conn, remoteAddr, rest);
}
