/**
 * The small parts of the metrics endpoint's HTTP that are not the
 * connection handling: a reply and its status line, the plain-text replies,
 * and the body of a `PUT` (for `PUT /faults`).
 *
 * @module
 */
import type { Head } from "./request_head.ts";

/** What the handler answers. */
export interface HttpReply {
  /** The status code. */
  status: number;
  /** Headers besides `content-length` and `connection`, lower-case names. */
  headers: Readonly<Record<string, string>>;
  /** The body; left out of the answer to `HEAD`. */
  body: string;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  411: "Length Required",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/**
 * The status line of a reply.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { statusLine } from "./http_reply.ts";
 * equal(statusLine(404), "HTTP/1.1 404 Not Found");
 * ```
 */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}`;
}

/** A plain-text reply. */
export function plain(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): HttpReply {
  return { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers }, body };
}

/** The 405 for `method`; `puts` says whether `PUT` is served. */
export function notAllowed(method: string, puts = false): HttpReply {
  return plain(405, `method ${method} not allowed\n`, {
    allow: puts ? "GET, HEAD, PUT" : "GET, HEAD",
  });
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads the body of a `PUT` whose head is `head`: `start` holds what came
 * with the head; the rest is read from `conn`. Resolves with the body as
 * text, or with the reply that refuses it (no length, too long, cut short,
 * not UTF-8).
 */
export async function readBody(
  conn: Deno.Conn,
  start: Uint8Array,
  head: Head,
  limits: { maxBodyBytes?: number },
): Promise<string | HttpReply> {
  const length = head.contentLength ?? (head.hasBody ? undefined : 0);
  if (length === undefined) return plain(411, "a PUT needs a content-length\n");
  if (!Number.isSafeInteger(length)) return plain(400, "bad content-length\n");
  const max = limits.maxBodyBytes ?? 0;
  if (length > max) return plain(413, `the body may have ${max} bytes at most\n`);
  const body = new Uint8Array(length);
  let filled = Math.min(length, start.length);
  body.set(start.subarray(0, filled));
  while (filled < length) {
    const n = await conn.read(body.subarray(filled));
    if (n === null) return plain(400, `the body ended after ${filled} of ${length} bytes\n`);
    filled += n;
  }
  try {
    return decoder.decode(body);
  } catch {
    return plain(400, "the body is not UTF-8 text\n");
  }
}
