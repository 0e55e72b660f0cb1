/**
 * The HTTP endpoint beside the echo server, on a listener of its own:
 * `/metrics` (Prometheus text), `/healthz` (200 while the process runs) and
 * `/readyz` (200 while the server accepts, 503 once it is stopping). It is
 * served by `metrics/http.ts`, whose limits keep it answering under load.
 *
 * @module
 */
import { describeError, formatAddress } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { ListenError } from "../transport/contract.ts";
import { EXPOSITION_CONTENT_TYPE, formatMetrics, type MetricFamily } from "./exposition.ts";
import { HTTP_LIMITS, type HttpCounts, type HttpRequest, HttpServer } from "./http.ts";
import { type HttpReply, notAllowed, plain } from "./http_reply.ts";
import { answerFaults, FAULT_API_MAX_BODY, type FaultApi } from "./fault_api.ts";

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
  /** The families to report, gathered afresh for each scrape; `endpoint` is this endpoint's own counts. */
  collect(endpoint: HttpCounts): Promise<MetricFamily[]>;
  /** Whether the server accepts connections now (`/readyz`). */
  ready(): boolean;
  /** With `--fault-api`: `GET` and `PUT /faults` read and change the faults. @default {no /faults} */
  faults?: FaultApi;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** What its HTTP server counted: failed accepts, evictions, timeouts. */
  readonly counts: HttpCounts;
  /** Stops it, letting a scrape under way finish. */
  close(): Promise<void>;
}

const log = logger("server");

/**
 * Starts the endpoint and logs `metrics on http://HOST:PORT`.
 *
 * @throws {ListenError} when it cannot listen.
 */
export function serveMetrics(options: MetricsEndpointOptions): MetricsEndpoint {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({
      hostname: options.hostname,
      port: options.port,
      ...(options.reusePort ? { reusePort: true } : {}),
    });
  } catch (error) {
    throw new ListenError(
      `cannot serve metrics on ${formatAddress(options.hostname, options.port)}: ${
        describeError(error)
      }`,
      { cause: error },
    );
  }
  const addr = listener.addr;
  const server: HttpServer = new HttpServer(
    listener,
    (request) => handle(request, options, server.counts),
    options.faults === undefined
      ? HTTP_LIMITS
      : { ...HTTP_LIMITS, maxBodyBytes: FAULT_API_MAX_BODY },
  );
  log.info("metrics on http://{address}", { address: formatAddress(addr.hostname, addr.port) });
  let closing: Promise<void> | undefined;
  const close = () => closing ??= server.close();
  return { addr, counts: server.counts, close, [Symbol.asyncDispose]: close };
}

async function handle(
  request: HttpRequest,
  options: MetricsEndpointOptions,
  counts: HttpCounts,
): Promise<HttpReply> {
  if (request.path === "/faults" && options.faults !== undefined) {
    return answerFaults(request, options.faults);
  }
  if (request.method === "PUT") return notAllowed("PUT");
  switch (request.path) {
    case "/metrics": {
      let text: string;
      try {
        text = formatMetrics(await options.collect(counts));
      } catch (error) {
        // A scrape that cannot be answered whole fails, rather than report partial sums.
        log.warning("metrics scrape failed: {error}", { error: describeError(error) });
        return plain(503, `scrape failed: ${describeError(error)}\n`);
      }
      return { status: 200, headers: { "content-type": EXPOSITION_CONTENT_TYPE }, body: text };
    }
    case "/healthz":
      return plain(200, "ok\n");
    case "/readyz":
      return options.ready() ? plain(200, "ready\n") : plain(503, "draining\n");
    default:
      return plain(404, "not found: try /metrics, /healthz or /readyz\n");
  }
}
