/**
 * The options of the TCP client's calls (`connect`, `send`, `end`, `pipe` in
 * client.ts) and what `pipe` resolves with, apart from the client itself.
 *
 * @module
 */
import type { ClientTlsOptions } from "./dial.ts";

/** Where `connect` (client.ts) goes when its options leave it out; the command line shows and uses the same. */
export const CONNECT_DEFAULTS = {
  /** The server on this machine. */
  host: "127.0.0.1",
  /** The port `serve` listens on by default. */
  port: 8000,
} as const;

/** Options for `connect` (client.ts). */
export interface ConnectOptions {
  /** Host name or address of the server. @default {CONNECT_DEFAULTS.host} */
  host?: string;
  /** Port of the server. @default {CONNECT_DEFAULTS.port} */
  port?: number;
  /** Speak TLS, verifying the certificate (`true`: against the roots Deno trusts). */
  tls?: boolean | ClientTlsOptions;
  /** Connect to this Unix domain socket instead of `host` and `port` (not with `tls`). */
  path?: string;
  /** Aborts the connection attempt, TLS handshake included, e.g. `AbortSignal.timeout(5000)`. */
  signal?: AbortSignal;
}

/** Options for `EchoClient.end`. */
export interface ReadOptions {
  /** Gives up, e.g. `AbortSignal.timeout(5000)`; the connection is closed. */
  signal?: AbortSignal;
}

/** Options for `EchoClient.send`. */
export interface SendOptions extends ReadOptions {
  /**
   * Rejects with a `ClientError` instead of resolving with a reply
   * that is not the echo: kind `refused` when the server closes right after
   * the odd bytes (a refusal line, such as `serve --reject-message` writes),
   * `mismatch` otherwise. @default {false}
   */
  verify?: boolean;
}

/** Options for `EchoClient.pipe`. */
export interface PipeOptions {
  /** How long sent bytes may wait for their echo, in milliseconds. */
  timeoutMs: number;
  /**
   * How long, once the input ended and all of it came back, the server's
   * close may take, in milliseconds; then `pipe` stops waiting for it.
   * @default {timeoutMs}
   */
  closeWaitMs?: number;
}

/** How `EchoClient.pipe` ended, every byte having come back. */
export interface PipeResult {
  /** Whether the server closed the connection (false: it was still open after `closeWaitMs`). */
  closed: boolean;
}
