/**
 * The HTTP endpoint beside the echo server, with `Deno.serve` on a listener
 * of its own: `/metrics` (Prometheus text), `/healthz` (200 while the process
 * runs) and `/readyz` (200 while the server accepts, 503 once it drains).
 *
 * @module
 */
import { describeError, formatAddress } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { ListenError } from "../server/listener.ts";
import { EXPOSITION_CONTENT_TYPE, formatMetrics, type MetricFamily } from "./exposition.ts";

/** Where the endpoint listens and what it reports. */
export interface MetricsEndpointOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 picks a free one, which the `metrics on` line shows. */
  port: number;
  /**
   * Share the port with another instance (SO_REUSEPORT), as the echo port is
   * shared during an upgrade: the new instance's endpoint must not fail for
   * the old one's. Needs Deno's unstable net API. @default {false}
   */
  reusePort?: boolean;
  /** The families to report, gathered afresh for each scrape. */
  collect(): Promise<MetricFamily[]>;
  /** Whether the server accepts connections now (`/readyz`). */
  ready(): boolean;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** Stops it, letting a scrape under way finish. */
  close(): Promise<void>;
}

const log = logger("server");

const TEXT = { "content-type": "text/plain; charset=utf-8" };

/**
 * Starts the endpoint and logs `metrics on http://HOST:PORT`.
 *
 * @throws {ListenError} when it cannot listen.
 */
export function serveMetrics(options: MetricsEndpointOptions): MetricsEndpoint {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.hostname,
      port: options.port,
      ...(options.reusePort ? { reusePort: true } : {}),
      onListen: () => {}, // the log line below says it, in the server's format
      onError: (error) => {
        log.error("metrics request failed: {error}", { error: describeError(error) });
        return new Response("internal error\n", { status: 500, headers: TEXT });
      },
    }, (request) => handle(request, options));
  } catch (error) {
    throw new ListenError(
      `cannot serve metrics on ${formatAddress(options.hostname, options.port)}: ${
        describeError(error)
      }`,
      { cause: error },
    );
  }
  const addr = server.addr;
  log.info("metrics on http://{address}", { address: formatAddress(addr.hostname, addr.port) });
  let closing: Promise<void> | undefined;
  const close = () => closing ??= server.shutdown();
  return { addr, close, [Symbol.asyncDispose]: close };
}

async function handle(request: Request, options: MetricsEndpointOptions): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", {
      status: 405,
      headers: { ...TEXT, allow: "GET, HEAD" },
    });
  }
  switch (new URL(request.url).pathname) {
    case "/metrics": {
      let text: string;
      try {
        text = formatMetrics(await options.collect());
      } catch (error) {
        // A scrape that cannot be answered whole fails, rather than report partial sums.
        log.warning("metrics scrape failed: {error}", { error: describeError(error) });
        return new Response(`scrape failed: ${describeError(error)}\n`, {
          status: 503,
          headers: TEXT,
        });
      }
      return new Response(text, { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
    }
    case "/healthz":
      return new Response("ok\n", { headers: TEXT });
    case "/readyz":
      return options.ready()
        ? new Response("ready\n", { headers: TEXT })
        : new Response("draining\n", { status: 503, headers: TEXT });
    default:
      return new Response("not found: try /metrics, /healthz or /readyz\n", {
        status: 404,
        headers: TEXT,
      });
  }
}
