/**
 * What a scrape reports: a server's counters (one server's, or the sum over
 * workers) turned into metric families, and the process's own figures.
 * Everything is read at scrape time from counts the server keeps anyway.
 *
 * @module
 */
import { REFUSAL_REASONS, type RefusalReason } from "../admission/refusals.ts";
import { CLOSE_REASONS, DURATION_BOUNDS_S, noCloses, noDurations } from "../server/closes.ts";
import type { ServerStats } from "../server/stats.ts";
import { droppedLogLines } from "../log/log.ts";
import type { MetricFamily } from "./exposition.ts";
import { FAULT_NAMES } from "../fault/spec.ts";
import type { HttpCounts } from "./http.ts";

/**
 * The refusal reasons reported as refusals; `idle` and `lifetime` close an
 * admitted connection, so they are reported in
 * `echo_connections_closed_total` instead.
 */
const REFUSED: readonly RefusalReason[] = REFUSAL_REASONS.filter(
  (reason) => reason !== "idle" && reason !== "lifetime",
);

/** What a scrape adds to the server's counts, where known. */
export interface ExtraCounts {
  /** Log lines dropped because the log sink could not keep up, when logging counts them. */
  logLinesDropped?: number;
  /** The metrics endpoint's own counts, when it is the one asking. */
  metricsEndpoint?: HttpCounts;
}

function counter(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: "counter", samples: [{ value }] };
}

function gauge(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: "gauge", samples: [{ value }] };
}

/**
 * The metric families of a server's counters.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { noRefusals } from "../admission/refusals.ts";
 * import { serverFamilies } from "./collect.ts";
 * const families = serverFamilies({
 *   open: 1, served: 4, bytesIn: 10, bytesOut: 10, refusals: { ...noRefusals(), denied: 2 },
 * });
 * const refused = families.find((f) => f.name === "echo_connections_refused_total");
 * equal(refused?.samples.length, 6);
 * ```
 */
export function serverFamilies(stats: ServerStats, extra: ExtraCounts = {}): MetricFamily[] {
  const closed = stats.closed ?? noCloses();
  const durations = stats.durations ?? noDurations();
  const families: MetricFamily[] = [
    counter(
      "echo_connections_accepted_total",
      "Connections admitted and echoed (TCP, TLS or Unix socket) since start.",
      stats.served,
    ),
    gauge("echo_connections_open", "Connections open now.", stats.open),
    {
      name: "echo_connections_refused_total",
      help: "Connections refused before echoing anything, by reason.",
      type: "counter",
      samples: REFUSED.map((reason) => ({ labels: { reason }, value: stats.refusals[reason] })),
    },
    {
      name: "echo_connections_closed_total",
      help: "Admitted connections closed, by why they ended.",
      type: "counter",
      samples: CLOSE_REASONS.map((reason) => ({ labels: { reason }, value: closed[reason] })),
    },
    counter("echo_bytes_received_total", "Bytes read from clients.", stats.bytesIn),
    counter("echo_bytes_sent_total", "Bytes written back to clients.", stats.bytesOut),
    {
      name: "echo_connection_duration_seconds",
      help: "How long closed connections were open, in seconds.",
      type: "histogram",
      samples: [{
        bounds: DURATION_BOUNDS_S,
        counts: durations.counts,
        sum: durations.sum,
      }],
    },
    counter(
      "echo_accept_errors_total",
      "Accepts that failed (e.g. out of file descriptors); each is retried.",
      stats.acceptErrors ?? 0,
    ),
  ];
  const datagrams = stats.datagrams;
  if (datagrams !== undefined) {
    families.push(
      counter("echo_datagrams_received_total", "UDP datagrams received.", datagrams.received),
      counter("echo_datagrams_echoed_total", "UDP datagrams sent back.", datagrams.echoed),
      counter(
        "echo_datagrams_sent_bytes_total",
        "UDP payload bytes sent back.",
        datagrams.bytesEchoed,
      ),
      {
        name: "echo_datagrams_dropped_total",
        help: "UDP datagrams not answered, by reason.",
        type: "counter",
        samples: Object.entries(datagrams.dropped).map(([reason, value]) => ({
          labels: { reason },
          value,
        })),
      },
      counter(
        "echo_datagrams_failed_total",
        "UDP replies the system refused to send.",
        datagrams.failed,
      ),
    );
  }
  const faults = stats.faults;
  if (faults !== undefined) {
    families.push(
      {
        name: "echo_faults_total",
        help:
          "Faults injected on purpose (--fault), by fault: once per connection for the shaping ones, per event for the others.",
        type: "counter",
        samples: FAULT_NAMES.map((fault) => ({ labels: { fault }, value: faults[fault] })),
      },
      counter(
        "echo_faulted_total",
        "Connections and datagram sources that got any fault on purpose.",
        stats.faulted ?? 0,
      ),
    );
  }
  const endpoint = extra.metricsEndpoint;
  if (endpoint !== undefined) {
    families.push(
      counter(
        "echo_metrics_accept_errors_total",
        "Accepts of the metrics endpoint that failed (e.g. out of file descriptors); each is retried.",
        endpoint.acceptErrors,
      ),
      {
        name: "echo_metrics_connections_closed_total",
        help: "Metrics endpoint connections it closed itself, by why: over its cap, or a timeout.",
        type: "counter",
        samples: [
          { labels: { reason: "cap" }, value: endpoint.evicted },
          { labels: { reason: "timeout" }, value: endpoint.timedOut },
        ],
      },
    );
  }
  if (extra.logLinesDropped !== undefined) {
    families.push(counter(
      "echo_log_lines_dropped_total",
      "Log lines dropped because the log sink did not keep up.",
      extra.logLinesDropped,
    ));
  }
  return families;
}

/**
 * The process's figures: resident memory, the start time, and open file
 * descriptors where `/proc/self/fd` may be read (left out otherwise, never
 * an error: without `--allow-read` the metric is simply missing).
 */
export function processFamilies(): MetricFamily[] {
  const families: MetricFamily[] = [
    gauge(
      "process_resident_memory_bytes",
      "Resident memory size in bytes.",
      Deno.memoryUsage().rss,
    ),
    gauge(
      "process_start_time_seconds",
      "Start time of the process since the Unix epoch, in seconds.",
      Math.round(performance.timeOrigin) / 1000,
    ),
  ];
  const fds = openFds();
  if (fds !== undefined) families.push(gauge("process_open_fds", "Open file descriptors.", fds));
  return families;
}

const FD_DIR = "/proc/self/fd";
/** Cleared once reading {@link FD_DIR} failed: it will not work later either. */
let fdsReadable = true;

/**
 * Counts `/proc/self/fd`, or undefined where there is none or reading it is
 * not permitted: Deno lets only `--allow-all` read `/proc/self`, even with
 * `--allow-read`.
 */
function openFds(): number | undefined {
  if (!fdsReadable) return undefined;
  try {
    // Asking first: reading without permission would prompt on a terminal.
    if (Deno.permissions.querySync({ name: "read", path: FD_DIR }).state !== "granted") {
      fdsReadable = false;
      return undefined;
    }
    let count = 0;
    for (const _ of Deno.readDirSync(FD_DIR)) count++;
    // The directory handle being read is itself one of the entries.
    return Math.max(0, count - 1);
  } catch (error) {
    // Out of descriptors is passing; no permission or no /proc is not.
    fdsReadable = !(error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotFound);
    return undefined;
  }
}

/** A server as a scrape sees it: one server's counts, or the workers' summed on request. */
export interface StatsSource {
  /** The counts as they are now. */
  stats(): ServerStats;
  /** With workers: every worker's counts, added up. */
  collectStats?(): Promise<ServerStats>;
}

/**
 * Everything one scrape reports about `server` and this process, with the
 * log lines this process dropped (with workers, the main thread writes and
 * counts every worker's lines) unless `extra` says otherwise.
 *
 * @example
 * ```ts
 * import { ok } from "node:assert/strict";
 * import { serve } from "../server/serve.ts";
 * import { collectServer } from "./collect.ts";
 * await using server = serve({ hostname: "127.0.0.1", port: 0 });
 * const names = (await collectServer(server)).map((family) => family.name);
 * ok(names.includes("echo_connections_open"));
 * ok(names.includes("process_resident_memory_bytes"));
 * ```
 */
export async function collectServer(
  server: StatsSource,
  extra: () => ExtraCounts = () => ({ logLinesDropped: droppedLogLines() }),
): Promise<MetricFamily[]> {
  const stats = server.collectStats === undefined ? server.stats() : await server.collectStats();
  return [...serverFamilies(stats, extra()), ...processFamilies()];
}
