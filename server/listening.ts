/**
 * The `listening on` line: where the server listens and what it serves
 * there beyond plain TCP on Deno's sockets, in words and as log fields.
 *
 * @module
 */
import { logger } from "../log/log.ts";
import { describeAddr } from "../transport/contract.ts";

/** What the line speaks of, from the server's options (`ServeOptions`). */
export interface ListeningOptions {
  /** Set when the server serves TLS. */
  tls?: unknown;
  /** The I/O engine; only `epoll` is named. */
  io?: string;
  /** Set when connections start with a PROXY protocol header. */
  proxyProtocol?: unknown;
  /**
   * Set when the listener was passed in: then TLS is not known to be ours,
   * and the engine is the one the listener names.
   */
  listener?: { readonly engine?: string };
}

const log = logger("server");

/**
 * What a listener serves beyond plain TCP on Deno's sockets, as the
 * `listening on` line names it: `TLS`, `Unix socket`, `PROXY protocol`, the
 * `epoll` engine; and the same facts as log fields, each there when it holds.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { listeningFacts } from "./listening.ts";
 * deepEqual(
 *   listeningFacts({ transport: "tcp", hostname: "127.0.0.1", port: 1 }, { io: "epoll", proxyProtocol: { trustedProxies: [] } }),
 *   { words: ["PROXY protocol", "epoll"], fields: { proxyProtocol: true, io: "epoll" } },
 * );
 * ```
 */
export function listeningFacts(
  addr: Deno.Addr,
  options: ListeningOptions,
): { words: string[]; fields: Record<string, string | boolean> } {
  const words: string[] = [];
  const fields: Record<string, string | boolean> = {};
  // A listener passed in is TLS when its connections are; only ours is known to be.
  if (options.tls !== undefined && options.listener === undefined) {
    words.push("TLS");
    fields.tls = true;
  }
  if (addr.transport === "unix") {
    words.push("Unix socket");
    fields.unix = true;
  }
  if (options.proxyProtocol !== undefined) {
    words.push("PROXY protocol");
    fields.proxyProtocol = true;
  }
  // The default engine goes unnamed, the other always named: which one runs is never a guess.
  const io = options.listener === undefined ? options.io : options.listener.engine;
  if (io === "epoll") {
    words.push("epoll");
    fields.io = "epoll";
  }
  return { words, fields };
}

/** `listening on 127.0.0.1:8443 (TLS)`, with a field per fact in JSON lines. */
export function logListening(addr: Deno.Addr, options: ListeningOptions): void {
  const { words, fields } = listeningFacts(addr, options);
  const address = describeAddr(addr);
  if (words.length === 0) log.info("listening on {address}", { address });
  else log.info("listening on {address} ({what})", { address, what: words.join(", "), ...fields });
}
