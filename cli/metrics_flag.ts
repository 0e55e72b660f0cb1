/**
 * `serve --metrics HOST:PORT`: where the metrics and health endpoint listens.
 *
 * @module
 */
import { type Flag, PORT_MAX, UsageError } from "./flags.ts";

/** Where the metrics endpoint listens. */
export interface MetricsAddress {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
}

/** The host of `--metrics :PORT`: every IPv4 address, as `--host`'s default. */
export const METRICS_ANY_HOST = "0.0.0.0";

/**
 * Reads `HOST:PORT`, with IPv6 hosts in brackets (`[::1]:9100`); `:PORT`
 * alone means every address ({@linkcode METRICS_ANY_HOST}), as the echo
 * port's default host does.
 *
 * @throws {UsageError} naming `--name` and the bad value.
 *
 * @example
 * ```ts
 * import { deepEqual, throws } from "node:assert/strict";
 * import { parseHostPort } from "./metrics_flag.ts";
 * deepEqual(parseHostPort("127.0.0.1:9100", "metrics"), { hostname: "127.0.0.1", port: 9100 });
 * deepEqual(parseHostPort("[::1]:0", "metrics"), { hostname: "::1", port: 0 });
 * deepEqual(parseHostPort(":9100", "metrics"), { hostname: "0.0.0.0", port: 9100 });
 * throws(() => parseHostPort("9100", "metrics"), {
 *   message: 'invalid --metrics "9100": expected HOST:PORT or :PORT, e.g. 127.0.0.1:9100, [::1]:9100 or :9100',
 * });
 * ```
 */
export function parseHostPort(text: string, name: string): MetricsAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+))?:(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || !(port <= PORT_MAX)) {
    throw new UsageError(
      `invalid --${name} "${text}": expected HOST:PORT or :PORT, e.g. 127.0.0.1:9100, [::1]:9100 or :9100`,
    );
  }
  return { hostname: match[1] ?? match[2] ?? METRICS_ANY_HOST, port };
}

/** `--metrics HOST:PORT`: off unless given; the last one given wins. */
export const METRICS_FLAG: Flag<MetricsAddress | undefined> = {
  type: "string",
  value: "HOST:PORT",
  help:
    "serve /metrics (Prometheus), /healthz and /readyz over HTTP here; :PORT for every address (default: off)",
  read: (given, name) => {
    const last = given.at(-1);
    return last === undefined ? undefined : parseHostPort(last, name);
  },
};
