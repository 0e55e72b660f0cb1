/**
 * A request head as the metrics endpoint's HTTP server reads it: where it
 * ends in the bytes received, and the request line and the headers that
 * matter for a scraper or a probe.
 *
 * @module
 */

/**
 * Where the request head ends in the first `filled` bytes: the index of the
 * line feed that ends its last line, and of the first byte after the blank
 * line that follows (`\n\n` or `\n\r\n`); undefined while it is incomplete.
 * The search starts at `from`, where an earlier one left off.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { headEnd } from "./request_head.ts";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.0\r\n\r\nrest");
 * deepEqual(headEnd(bytes, bytes.length), { end: 15, next: 18 });
 * deepEqual(headEnd(bytes, 16), undefined);
 * ```
 */
export function headEnd(
  buffer: Uint8Array,
  filled: number,
  from = 0,
): { end: number; next: number } | undefined {
  for (let i = from; i + 1 < filled; i++) {
    if (buffer[i] !== 10) continue;
    if (buffer[i + 1] === 10) return { end: i, next: i + 2 };
    if (buffer[i + 1] === 13 && i + 2 < filled && buffer[i + 2] === 10) {
      return { end: i, next: i + 3 };
    }
  }
  return undefined;
}

/** A request head, as {@linkcode parseHead} reads it. */
export interface Head {
  /** The method, e.g. `GET`. */
  method: string;
  /** The path, without the query. */
  path: string;
  /** Whether the connection stays open after the answer (HTTP/1.1's default, or asked for). */
  keepAlive: boolean;
  /** Whether a body follows (a length above 0, or a transfer encoding). */
  hasBody: boolean;
  /** The body's length, when `content-length` gives it (and no transfer encoding is named). */
  contentLength?: number;
}

/**
 * Parses a request head (without its blank line): the request line and the
 * headers that matter here.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { parseHead } from "./request_head.ts";
 * deepEqual(parseHead("GET /metrics?x=1 HTTP/1.1\r\nHost: a"), {
 *   method: "GET", path: "/metrics", keepAlive: true, hasBody: false,
 * });
 * deepEqual(parseHead("GET / HTTP/1.0\r"), { method: "GET", path: "/", keepAlive: false, hasBody: false });
 * ```
 */
export function parseHead(text: string): Head | string {
  const [requestLine, ...headerLines] = text.replace(/\r$/, "").split(/\r?\n/);
  const request = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(requestLine);
  if (request === null) return "bad request line";
  const [, method, target, minor] = request;
  let keepAlive = minor === "1";
  let hasBody = false;
  let contentLength: number | undefined;
  let chunked = false;
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon <= 0) return "bad header line";
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "connection") {
      if (/\bclose\b/.test(value)) keepAlive = false;
      else if (/\bkeep-alive\b/.test(value)) keepAlive = true;
    } else if (name === "transfer-encoding" || (name === "content-length" && value !== "0")) {
      hasBody = true;
      if (name === "transfer-encoding") chunked = true;
      else contentLength = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    }
  }
  // The absolute form (`GET http://host:port/metrics`), which proxies send, names the same path.
  const absolute = /^https?:\/\/[^/?]*([/?].*)?$/i.exec(target);
  const path = (absolute === null ? target : absolute[1] ?? "/").split("?")[0] || "/";
  const length = chunked || contentLength === undefined ? {} : { contentLength };
  return { method, path, keepAlive, hasBody, ...length };
}
