/**
 * What SIGHUP does to a running `serve`: with `--config`, the file's limits
 * are read again (see `reload.ts`); with TLS, the certificate, key and
 * client CA files are read again and, when they serve, handed to the
 * server's listener (or every worker's) for the handshakes to come. A file
 * that is wrong is logged with the reason and changes nothing; connections
 * already open go on either way.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { logger, type LoggingOptions, setupLogging } from "../log/log.ts";
import type { EchoServer, LiveOptions, ServeTlsOptions } from "../server.ts";
import type { WorkerPool } from "../server/workers.ts";
import type { FlagTable, FlagValues } from "./flags.ts";
import type { GivenFlags } from "./parse.ts";
import { watchReloads } from "./reload.ts";
import { checkServeFlags, type ServeCheckValues } from "./serve_checks.ts";
import { serveTls } from "./transport_flags.ts";

/** What SIGHUP may change of the limits: for new connections, and the caps at once. */
const RELOADABLE_LIMITS = [
  "max-conns",
  "max-conns-per-ip",
  "rate",
  "burst",
  "allow",
  "deny",
  "reject-message",
  "log-level",
  "fault",
] as const;

/** The certificate files, which SIGHUP reads again when the server serves TLS. */
const RELOADABLE_TLS = ["cert", "key", "client-ca"] as const;

/** The values of `serve`'s flags that a reload reads. */
export interface ReloadValues extends ServeCheckValues {
  /** `--max-conns`. */
  "max-conns": number;
  /** `--max-conns-per-ip`. */
  "max-conns-per-ip"?: number;
  /** `--allow`. */
  allow: NonNullable<LiveOptions["guard"]["allow"]>;
  /** `--deny`. */
  deny: NonNullable<LiveOptions["guard"]["deny"]>;
  /** `--reject-message`. */
  "reject-message"?: string;
  /** `--log-level`. */
  "log-level": LoggingOptions["level"];
  /** `--log-format`. */
  "log-format": LoggingOptions["format"];
  /** `--config`. */
  config?: string;
  /** `--fault`. */
  fault?: readonly string[];
}

/** What {@linkcode watchServeReloads} needs. */
export interface ServeReloadOptions<S extends FlagTable> {
  /** The running server: one (on a port or a socket), or the workers. */
  server: EchoServer<Deno.Addr> | WorkerPool;
  /** `serve`'s flag table. */
  table: S;
  /** The values in force at start (the file's and the command line's). */
  flags: FlagValues<S> & ReloadValues;
  /** What the command line gave; it wins over the file at every reload. */
  cliGiven: GivenFlags;
  /** What the file and the command line gave at start, as text. */
  fileGiven?: GivenFlags;
  /** The certificate, key and client CA served now; none for plain TCP. */
  tls: ServeTlsOptions | undefined;
  /** Where the reloaded fault specs go. */
  faults?: { put(specs: readonly string[]): void };
}

const log = logger("server");

/**
 * Listens for SIGHUP when there is something to reload (a `--config` file,
 * or TLS), and reloads it; dispose the result to stop. Without either,
 * returns undefined and SIGHUP keeps its default.
 */
export function watchServeReloads<S extends FlagTable>(
  options: ServeReloadOptions<S>,
): Disposable | undefined {
  const { server, flags } = options;
  let tls = options.tls;
  /** Reads the files of `values` again; serves them when they differ, and says so. */
  const reloadTls = (values: ReloadValues): (() => void) | undefined => {
    if (tls === undefined) return undefined;
    const next = serveTls(values);
    if (next === undefined) {
      throw new Error("--cert and --key cannot be removed while serving TLS: restart without them");
    }
    return () => {
      const before = tls;
      if (same(before, next)) {
        log.info("SIGHUP: certificate files read again, unchanged: {certificate}", {
          certificate: describeCertificate(next.cert),
        });
        return;
      }
      server.updateTls(next);
      tls = next;
      const clientCa = before?.clientCa === next.clientCa
        ? ""
        : next.clientCa === undefined
        ? "client certificates no longer required"
        : before?.clientCa === undefined
        ? "client certificates required from now on"
        : "new client CA in use";
      if (before?.cert === next.cert && before.key === next.key) {
        log.info("SIGHUP: {clientCa}", { clientCa });
        return;
      }
      log.info("SIGHUP: serving a new certificate: {certificate}{more}", {
        certificate: describeCertificate(next.cert),
        more: clientCa === "" ? "" : `; ${clientCa}`,
      });
    };
  };
  if (flags.config === undefined) {
    if (tls === undefined) return undefined;
    const onHangup = () => {
      try {
        reloadTls(flags)?.();
      } catch (error) {
        log.error("SIGHUP: certificate not reloaded, nothing changed: {reason}", {
          reason: error instanceof Error ? error.message : String(error),
        });
      }
    };
    Deno.addSignalListener("SIGHUP", onHangup);
    return { [Symbol.dispose]: () => Deno.removeSignalListener("SIGHUP", onHangup) };
  }
  return watchReloads({
    path: flags.config,
    table: options.table,
    args: options.cliGiven,
    initial: flags,
    initialGiven: options.fileGiven,
    // The file's values go through `serve`'s own table: they have the shape of `flags`.
    check: (values) => checkServeFlags(values as FlagValues<S> & ReloadValues),
    reloadable: [...RELOADABLE_LIMITS, ...(tls === undefined ? [] : RELOADABLE_TLS)],
    apply: async (nextValues, beforeValues) => {
      const next = nextValues as FlagValues<S> & ReloadValues;
      const before = beforeValues as FlagValues<S> & ReloadValues;
      // Read and checked first: a file that is wrong leaves the limits as they were too.
      const serveNewTls = reloadTls(next);
      server.reconfigure({
        guard: {
          maxConns: next["max-conns"],
          maxConnsPerIp: next["max-conns-per-ip"],
          rate: next.rate,
          burst: next.burst,
          allow: next.allow,
          deny: next.deny,
        },
        rejectMessage: next["reject-message"],
      });
      serveNewTls?.();
      if (next.fault !== undefined) options.faults?.put(next.fault);
      if (next["log-level"] === before["log-level"]) return;
      const relogging = { level: next["log-level"], format: flags["log-format"] };
      await setupLogging(relogging);
      // With --workers, each worker isolate has its own logging to set up again.
      (server as Partial<WorkerPool>).setLogging?.(relogging);
    },
  });
}

/** The same certificate, key and client CA. */
function same(a: ServeTlsOptions | undefined, b: ServeTlsOptions): boolean {
  return a !== undefined && a.cert === b.cert && a.key === b.key && a.clientCa === b.clientCa;
}

/** A certificate's subject and end of validity, e.g. `CN=localhost, valid until Jan 6 …`. */
function describeCertificate(pem: string): string {
  try {
    const certificate = new X509Certificate(pem);
    const subject = certificate.subject.split("\n").join(",");
    return `${subject}, valid until ${certificate.validTo.replace(/\s+/g, " ")}`;
  } catch {
    return "(its subject cannot be read)";
  }
}
