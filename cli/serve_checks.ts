/**
 * What `serve` checks of its flags once they are all read, the command
 * line's and the config file's together: the combinations that cannot work
 * (a usage error) and the permissions they need (all named at once).
 *
 * @module
 */
import { parseFaultSpec, STREAM_FAULTS } from "../fault/spec.ts";
import { UsageError } from "./flags.ts";
import type { MetricsAddress } from "./metrics_flag.ts";
import { netTo, type PermissionNeed, readOf, unixNeed } from "./permissions.ts";
import { checkServeTransport, type ServeTransportValues } from "./transport_flags.ts";

/** The flag values of `serve` that {@linkcode checkServeFlags} and {@linkcode serveNeeds} look at. */
export interface ServeCheckValues extends ServeTransportValues {
  /** `--port`. */
  port: number;
  /** `--rate`. */
  rate?: number;
  /** `--burst`. */
  burst?: number;
  /** `--trusted-proxy`. */
  "trusted-proxy": readonly unknown[];
  /** `--udp-rate`. */
  "udp-rate"?: number;
  /** `--udp-burst`. */
  "udp-burst"?: number;
  /** `--reuse-port`. */
  "reuse-port": boolean;
  /** `--metrics`. */
  metrics?: MetricsAddress;
  /** `--config`. */
  config?: string;
  /** `--handshake-timeout`, when given. */
  "handshake-timeout"?: number;
  /** `--proxy-header-timeout`, when given. */
  "proxy-header-timeout"?: number;
  /** `--fault-api`. */
  "fault-api"?: boolean;
  /** `--fault`. */
  fault?: readonly string[];
}

/**
 * Refuses the combinations of `serve`'s flags that cannot work, with a
 * {@linkcode UsageError} that names them.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { checkServeFlags } from "./serve_checks.ts";
 * const flags = {
 *   host: "127.0.0.1", port: 0, io: "deno" as const, workers: 1, allow: [], deny: [],
 *   "trusted-proxy": [], "reuse-port": false, burst: 5,
 * };
 * throws(() => checkServeFlags(flags), { message: "--burst needs --rate" });
 * ```
 */
export function checkServeFlags(flags: ServeCheckValues): void {
  if (flags.burst !== undefined && flags.rate === undefined) {
    throw new UsageError("--burst needs --rate");
  }
  // On a Unix socket every peer is trusted: the socket file's permissions decide who connects.
  if (flags["proxy-protocol"] && flags["trusted-proxy"].length === 0 && flags.unix === undefined) {
    throw new UsageError("--proxy-protocol needs at least one --trusted-proxy CIDR");
  }
  if (!flags["proxy-protocol"] && flags["trusted-proxy"].length > 0) {
    throw new UsageError("--trusted-proxy needs --proxy-protocol");
  }
  if (!flags["proxy-protocol"] && flags["proxy-header-timeout"] !== undefined) {
    throw new UsageError("--proxy-header-timeout needs --proxy-protocol");
  }
  if (flags.cert === undefined && flags["handshake-timeout"] !== undefined) {
    throw new UsageError("--handshake-timeout needs --cert");
  }
  if (!flags.udp && (flags["udp-rate"] !== undefined || flags["udp-burst"] !== undefined)) {
    throw new UsageError("--udp-rate and --udp-burst need --udp");
  }
  checkServeTransport(flags);
  if (flags["reuse-port"] && flags.unix !== undefined) {
    throw new UsageError("--reuse-port is for TCP ports, not with --unix");
  }
  if (flags["fault-api"] && flags.metrics === undefined) {
    throw new UsageError("--fault-api needs --metrics: /faults is served there");
  }
  const datagramOnly = flags.udp ? undefined : (flags.fault ?? []).find((text) => {
    const { settings } = parseFaultSpec(text);
    return !STREAM_FAULTS.some((name) => settings[name] !== undefined);
  });
  if (datagramOnly !== undefined) {
    throw new UsageError(
      `--fault ${datagramOnly}: only datagram faults (drop, duplicate, reorder), and no --udp to shape`,
    );
  }
}

/**
 * The permissions `serve`'s flags need: the net for its ports, read and
 * write for `--unix`, read for `--cert`, `--key`, `--client-ca`, `--config` and for the
 * workers to load `entry`, FFI for `--io epoll`. With `beforeConfig`, only
 * what the config file cannot change: not where the server listens, which
 * the file may say (`unix`, `host`, `port`).
 */
export function serveNeeds(
  flags: ServeCheckValues,
  entry: URL,
  beforeConfig = false,
): PermissionNeed[] {
  const needs: PermissionNeed[] = [];
  if (flags.unix !== undefined) needs.push(unixNeed(flags.unix));
  else if (!beforeConfig) {
    needs.push({
      what: `serving on ${netTo(flags.host, flags.port).host}`,
      permissions: [netTo(flags.host, flags.port)],
    });
  }
  if (flags.metrics !== undefined) {
    needs.push({
      what: "--metrics",
      permissions: [netTo(flags.metrics.hostname, flags.metrics.port)],
    });
  }
  for (const flag of ["cert", "key", "client-ca", "config"] as const) {
    const path = flags[flag];
    if (path !== undefined) needs.push({ what: `--${flag}`, permissions: [readOf(path)] });
  }
  // Each worker loads the program again; from a file, that takes read permission.
  if (flags.workers > 1 && entry.protocol === "file:") {
    needs.push({ what: "--workers", permissions: [{ name: "read", path: entry }] });
  }
  if (flags.io === "epoll") needs.push({ what: "--io epoll", permissions: [{ name: "ffi" }] });
  return needs;
}
