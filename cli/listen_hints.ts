/**
 * What `serve` adds to "address already in use": whether the port is this
 * server's own metrics port, or is held by a listener that shares it
 * (`--reuse-port`), as another instance started for an upgrade would.
 *
 * @module
 */
import { ListenError } from "../transport/contract.ts";
import { formatAddress, unbracket } from "../text/address.ts";
import { hasUnstableNet } from "../text/unstable.ts";

/** Where `serve` tried to listen, and its metrics endpoint. */
export interface ListenPlan {
  /** `--host`. */
  host: string;
  /** `--port`. */
  port: number;
  /** `--reuse-port`. */
  reusePort: boolean;
  /** Where the metrics endpoint listens, when it does (with the real port). */
  metrics?: { hostname: string; port: number };
}

const IN_USE = /address already in use$/;

/**
 * `error` with a hint when it is "address already in use" on the echo port
 * and the reason can be told: the metrics endpoint took that port first, or
 * a listener that shares its port (SO_REUSEPORT) holds it while this one
 * was started without `--reuse-port`. Any other error comes back as it is.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { ListenError } from "../transport/contract.ts";
 * import { explainEchoListenError } from "./listen_hints.ts";
 * const error = new ListenError("cannot listen on 127.0.0.1:9100: address already in use");
 * const plan = { host: "127.0.0.1", port: 9100, reusePort: false, metrics: { hostname: "127.0.0.1", port: 9100 } };
 * equal(
 *   (explainEchoListenError(error, plan) as Error).message,
 *   "cannot listen on 127.0.0.1:9100: address already in use: the --metrics endpoint of this server took it (127.0.0.1:9100); give --metrics another port",
 * );
 * ```
 */
export function explainEchoListenError(error: unknown, plan: ListenPlan): unknown {
  if (!(error instanceof ListenError) || !IN_USE.test(error.message)) return error;
  const metrics = plan.metrics;
  if (metrics !== undefined && metrics.port === plan.port && overlap(metrics.hostname, plan.host)) {
    return new ListenError(
      `${error.message}: the --metrics endpoint of this server took it (${
        formatAddress(metrics.hostname, metrics.port)
      }); give --metrics another port`,
      { cause: error },
    );
  }
  return withReusePortHint(error, plan.host, plan.port, plan.reusePort);
}

/**
 * `error` (a metrics endpoint's "address already in use") with the
 * `--reuse-port` hint when a listener that shares its port holds it.
 */
export function explainMetricsListenError(
  error: unknown,
  metrics: { hostname: string; port: number },
  reusePort: boolean,
): unknown {
  if (!(error instanceof ListenError) || !IN_USE.test(error.message)) return error;
  return withReusePortHint(error, metrics.hostname, metrics.port, reusePort);
}

function withReusePortHint(
  error: ListenError,
  host: string,
  port: number,
  reusePort: boolean,
): ListenError {
  if (reusePort || port === 0 || !heldBySharingListener(host, port)) return error;
  return new ListenError(
    `${error.message}: the listener there shares its port (it was started with --reuse-port, as for an upgrade): start this one with --reuse-port too to share it`,
    { cause: error },
  );
}

/**
 * Whether the port that could not be had is held by listeners that share it
 * (SO_REUSEPORT, same user): then a listener that asks to share it gets it.
 * The probe listens for an instant, so in that instant the kernel could hand
 * it one of the holder's new connections, which its close then resets: a
 * price paid only on a start that has failed already, on a port in use.
 */
function heldBySharingListener(host: string, port: number): boolean {
  // Without the unstable API, reusePort would end the process instead of throwing.
  if (!hasUnstableNet()) return false;
  try {
    Deno.listen({ hostname: unbracket(host), port, reusePort: true }).close();
    return true;
  } catch {
    return false;
  }
}

/** Whether two listening hosts can clash: the same, or either of them every address. */
function overlap(a: string, b: string): boolean {
  const any = (host: string) => ["0.0.0.0", "::", "[::]"].includes(host);
  return unbracket(a) === unbracket(b) || any(a) || any(b);
}
