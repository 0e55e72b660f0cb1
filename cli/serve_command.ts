/**
 * The `serve` command: its flags, read into the server's and the guard's
 * options, and the signal handling around a running server.
 *
 * @module
 */
import { parseCidr } from "../admission/cidr.ts";
import { DATAGRAM_DEFAULTS } from "../admission/datagrams.ts";
import { Guard, GUARD_DEFAULTS } from "../admission/guard.ts";
import {
  droppedLogLines,
  LOG_FORMATS,
  LOG_LEVELS,
  logger,
  LOGGING_DEFAULTS,
  setupLogging,
} from "../log/log.ts";
import {
  epollUnavailable,
  listenEpollUnix,
  listenUnix,
  PROXY_DEFAULTS,
  serve,
  SERVE_DEFAULTS,
  type WhenFull,
} from "../server.ts";
import { migrateReqOn } from "../server/reuse_port.ts";
import { startWorkers } from "../server/workers.ts";
import { workersFlag } from "./workers_flag.ts";
import { LiveFaults, SERVE_FAULT_FLAGS, serveFaults } from "./fault_flags.ts";
import { hasUnstableNet, needsUnstableNet } from "../text/unstable.ts";
import { formatExactDuration } from "../text/duration.ts";
import { runCommand } from "./command.ts";
import { onStopSignals, SAME_SIGNAL_MS } from "./stop_signals.ts";
import {
  choiceFlag,
  durationFlag,
  type FlagValues,
  HELP_FLAG,
  hostFlag,
  intFlag,
  listFlag,
  numberFlag,
  portFlag,
  switchFlag,
  textFlag,
} from "./flags.ts";
import { formatFlags, type GivenFlags, scanFlags } from "./parse.ts";
import { METRICS_FLAG } from "./metrics_flag.ts";
import { collectServer, type StatsSource } from "../metrics/collect.ts";
import { serveMetrics } from "../metrics/endpoint.ts";
import { blameConfig, readConfig } from "./reload.ts";
import { watchServeReloads } from "./serve_reload.ts";
import { explainEchoListenError, explainMetricsListenError } from "./listen_hints.ts";
import { throwIfMissing } from "./permissions.ts";
import { checkServeFlags, serveNeeds } from "./serve_checks.ts";
import { SERVE_TRANSPORT_FLAGS, serveTls } from "./transport_flags.ts";

const WHEN_FULL = ["wait", "refuse"] as const satisfies readonly WhenFull[];

/** The flags of `serve`, with the defaults of {@linkcode serve} and {@linkcode Guard}. */
export const SERVE_FLAGS = {
  host: hostFlag({
    default: SERVE_DEFAULTS.hostname,
    help: "address to listen on (:: for IPv6)",
  }),
  port: portFlag({
    min: 0,
    default: SERVE_DEFAULTS.port,
    help: "port to listen on; 0 picks a free one",
  }),
  "reuse-port": switchFlag({
    help: "share the port with another instance started so, for an upgrade (SO_REUSEPORT)",
  }),
  ...SERVE_TRANSPORT_FLAGS,
  "shutdown-delay": durationFlag({
    value: "DURATION",
    default: 0,
    help:
      "on SIGINT/SIGTERM, first keep serving and accepting this long with /readyz at 503, so that a balancer stops sending new clients before the listener closes",
  }),
  "drain-timeout": durationFlag({
    value: "DURATION",
    default: SERVE_DEFAULTS.drainTimeoutMs,
    help: "then, how long open connections may finish after the listener closed",
  }),
  "max-conns": intFlag({
    value: "N",
    min: 1,
    default: GUARD_DEFAULTS.maxConns,
    help: "open connections at most, server-wide",
  }),
  "when-full": choiceFlag({
    choices: WHEN_FULL,
    default: SERVE_DEFAULTS.whenFull,
    help: "at --max-conns: queue newcomers in the backlog, or close them",
  }),
  "max-conns-per-ip": intFlag({
    value: "N",
    min: 1,
    help: "open connections at most per client address (IPv6: per /64; default: off)",
  }),
  rate: numberFlag({
    value: "N",
    help: "new connections per second per client address (default: off)",
  }),
  burst: intFlag({
    value: "N",
    min: 1,
    help: "connections a client address may open at once under --rate (default: the rate)",
  }),
  "idle-timeout": durationFlag({
    value: "DURATION",
    default: SERVE_DEFAULTS.idleTimeoutMs,
    help: "close a connection that sends nothing for this long; 0 = never",
  }),
  "handshake-timeout": {
    ...durationFlag({
      value: "DURATION",
      positive: true,
      help:
        "with --cert: close a connection whose TLS handshake is not done by then (at most --idle-timeout)",
    }),
    shownDefault: formatExactDuration(SERVE_DEFAULTS.handshakeTimeoutMs),
  },
  "max-lifetime": durationFlag({
    value: "DURATION",
    default: SERVE_DEFAULTS.maxLifetimeMs,
    help: "close any connection open this long; 0 = never",
  }),
  allow: listFlag({ value: "CIDR", help: "admit only these addresses (repeatable)" }, parseCidr),
  deny: listFlag(
    { value: "CIDR", help: "refuse these addresses; wins over --allow (repeatable)" },
    parseCidr,
  ),
  "proxy-protocol": switchFlag({
    help:
      "take each client's address from a PROXY protocol v1/v2 header sent by a --trusted-proxy (with --cert: before the TLS handshake, on --io epoll)",
  }),
  "trusted-proxy": listFlag(
    { value: "CIDR", help: "a proxy that may send PROXY headers; others are closed (repeatable)" },
    parseCidr,
  ),
  // Defaults shown, not set: given without what it is for, the flag is a usage error.
  "proxy-header-timeout": {
    ...durationFlag({
      value: "DURATION",
      positive: true,
      help:
        "with --proxy-protocol: close a proxy's connection whose PROXY header is not complete by then",
    }),
    shownDefault: formatExactDuration(PROXY_DEFAULTS.headerTimeoutMs),
  },
  "reject-message": textFlag({
    value: "TEXT",
    help: "a line written to refused connections before closing them",
  }),
  udp: switchFlag({ help: "also echo UDP datagrams on the same host and port" }),
  "udp-rate": {
    ...numberFlag({ value: "N", help: "UDP replies per second per source address" }),
    shownDefault: String(DATAGRAM_DEFAULTS.rate),
  },
  "udp-burst": intFlag({
    value: "N",
    min: 1,
    help: "UDP replies a source address may get at once (default: the rate)",
  }),
  ...SERVE_FAULT_FLAGS,
  workers: workersFlag,
  metrics: METRICS_FLAG,
  "log-level": choiceFlag({
    value: "LEVEL",
    choices: LOG_LEVELS,
    // The text log writes warning as WARN: what it prints is accepted back.
    aliases: { warn: "warning" },
    default: LOGGING_DEFAULTS.level,
    help: `one of ${LOG_LEVELS.join(", ")} (or warn), in any letter case`,
  }),
  "log-format": choiceFlag({
    value: "FORMAT",
    choices: LOG_FORMATS,
    default: LOGGING_DEFAULTS.format,
    help: "text, or json for one JSON object per line",
  }),
  config: textFlag({
    value: "FILE",
    help: "JSON file of flag values (keys: the long flags); SIGHUP re-reads its limits",
  }),
  help: HELP_FLAG,
};

const SERVE_USAGE = `Usage: echo-server [serve] [FLAGS]

Echoes every byte each client sends, until the client closes. SIGINT or SIGTERM
turns /readyz to 503, keeps accepting for --shutdown-delay, then stops accepting
and lets open connections finish for --drain-timeout; a second signal (after the
first ${SAME_SIGNAL_MS} ms) skips what is left of the delay, and one during the drain exits
at once. With --config, SIGHUP re-reads the file: its limits (max-conns,
max-conns-per-ip, rate, burst, allow, deny, reject-message, log-level) and fault
apply at once, open connections stay open, and a bad file changes nothing. With
--cert, SIGHUP also re-reads the --cert, --key and --client-ca files: new
handshakes use them, open connections go on, and a bad pair changes nothing.
Durations: 500ms, 10s, 2m, 1h or plain seconds.

Flags:
${formatFlags(SERVE_FLAGS)}
`;

/**
 * Runs `serve` with `args` until a signal stops the server, and resolves with
 * the exit code. `entry` is the module each worker loads (main.ts).
 */
export function serveCommand(args: readonly string[], entry: URL): Promise<number> {
  return runCommand({
    name: "serve",
    usage: SERVE_USAGE,
    flags: SERVE_FLAGS,
    run: (values) => runServe(values, entry, args),
  }, args);
}

async function runServe(
  given: FlagValues<typeof SERVE_FLAGS>,
  entry: URL,
  args: readonly string[],
): Promise<number> {
  const logging = (f: typeof given) => ({ level: f["log-level"], format: f["log-format"] });
  const cliGiven = scanFlags(args, SERVE_FLAGS);
  let fileGiven: GivenFlags | undefined;
  let flags = given;
  if (given.config !== undefined) {
    // The file cannot be read without them: whatever else the command line needs is said too.
    await setupLogging(logging(given));
    throwIfMissing(serveNeeds(given, entry, true));
    // The file's values go through the same flag table; the command line's win.
    ({ values: flags, given: fileGiven } = await readConfig(given.config, SERVE_FLAGS, cliGiven));
    blameConfig(checkServeFlags, flags, given, given.config);
  } else checkServeFlags(flags);
  await setupLogging(logging(flags));
  throwIfMissing(serveNeeds(flags, entry));
  const limits = {
    maxConns: flags["max-conns"],
    maxConnsPerIp: flags["max-conns-per-ip"],
    rate: flags.rate,
    burst: flags.burst,
    allow: flags.allow,
    deny: flags.deny,
  };
  const options = {
    hostname: flags.host,
    port: flags.port,
    drainTimeoutMs: flags["drain-timeout"],
    whenFull: flags["when-full"],
    idleTimeoutMs: flags["idle-timeout"],
    handshakeTimeoutMs: flags["handshake-timeout"],
    maxLifetimeMs: flags["max-lifetime"],
    io: flags.io,
    rejectMessage: flags["reject-message"],
    proxyProtocol: flags["proxy-protocol"]
      ? { trustedProxies: flags["trusted-proxy"], headerTimeoutMs: flags["proxy-header-timeout"] }
      : undefined,
    udp: flags.udp && { rate: flags["udp-rate"], burst: flags["udp-burst"] },
    faults: serveFaults(flags),
  };
  const log = logger("server");
  const unstable = [
    flags.workers > 1 && "--workers",
    flags.udp && "--udp",
    flags["reuse-port"] && "--reuse-port",
  ].filter((flag) => flag !== false);
  // Before any listener: without the API, Deno would end the process with its own message.
  if (unstable.length > 0 && !hasUnstableNet()) throw new Error(needsUnstableNet(unstable));
  const noEpoll = flags.io === "epoll" ? epollUnavailable() : undefined;
  if (noEpoll !== undefined) throw new Error(noEpoll);
  const tls = serveTls(flags);
  // The metrics port is taken before the echo listener, so that a taken port fails the start
  // before "listening on" (which an upgrade waits for) is logged.
  // A scrape that comes while the workers still start waits for them.
  const starting = Promise.withResolvers<StatsSource>();
  starting.promise.catch(() => {}); // a failed start is reported by the command itself
  let started = false;
  // Not ready from the first signal on, before the listener closes, so that balancers stop first.
  let draining = false;
  const faults = new LiveFaults(flags.fault);
  const metricsAt = flags.metrics;
  const metrics = metricsAt && hinted(() =>
    serveMetrics({
      ...metricsAt,
      reusePort: flags["reuse-port"],
      collect: async (endpoint) =>
        collectServer(
          await starting.promise,
          () => ({ logLinesDropped: droppedLogLines(), metricsEndpoint: endpoint }),
        ),
      ready: () => started && !draining,
      faults: flags["fault-api"] ? faults : undefined,
    }), (error) => explainMetricsListenError(error, metricsAt, flags["reuse-port"]));
  const server = await startServer().catch(async (error: unknown) => {
    starting.reject(error);
    await metrics?.close();
    throw explainEchoListenError(error, {
      host: flags.host,
      port: flags.port,
      reusePort: flags["reuse-port"],
      metrics: metrics?.addr,
    });
  });
  starting.resolve(server);
  started = true;
  faults.attach(server);
  async function startServer() {
    const listen = flags.io === "epoll" ? listenEpollUnix : listenUnix;
    const unix = flags.unix === undefined ? undefined : await listen(flags.unix);
    return flags.workers > 1
      ? await startWorkers({
        entry,
        count: flags.workers,
        config: { serve: { ...options, tls }, guard: limits, logging: logging(flags) },
        reusePort: flags["reuse-port"],
      })
      : unix !== undefined
      ? serve({ ...options, guard: new Guard(limits), listener: unix })
      : serve({ ...options, tls, guard: new Guard(limits), reusePort: flags["reuse-port"] });
  }
  if (flags["reuse-port"] && migrateReqOn() === false) {
    log.warning(
      "--reuse-port: net.ipv4.tcp_migrate_req is 0, so connections queued on this listener when it closes (an upgrade) are reset; sysctl -w net.ipv4.tcp_migrate_req=1 hands them to the new instance",
    );
  }
  using _reloads = watchServeReloads({
    server,
    table: SERVE_FLAGS,
    flags,
    cliGiven,
    fileGiven,
    tls,
    faults,
  });
  using _signals = onStopSignals({
    shutdownDelayMs: flags["shutdown-delay"],
    notReady: () => draining = true,
    drain: () => server.shutdown().catch(() => {}), // a failure surfaces through server.finished
  });
  try {
    await server.finished;
    return 0;
  } finally {
    await metrics?.close();
  }
}

/** What `make` returns, or its error as `explain` puts it. */
function hinted<T>(make: () => T, explain: (error: unknown) => unknown): T {
  try {
    return make();
  } catch (error) {
    throw explain(error);
  }
}
