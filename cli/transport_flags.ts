/**
 * The stream transports on the command line: `--cert`/`--key`, `--unix` and
 * the I/O engine (`--io`) for `serve`; `--tls`, `--ca`, `--servername`, `--insecure`, `--cert`,
 * `--key` and `--unix` for `client` and `bench`. Their specifications, the combinations they refuse, and what they
 * read into.
 *
 * @module
 */
import type { ClientTlsOptions } from "../client.ts";
import { IO_ENGINES, type IoEngine, SERVE_DEFAULTS, type ServeTlsOptions } from "../server.ts";
import { choiceFlag, type Flag, switchFlag, textFlag, UsageError } from "./flags.ts";
import { encodeSockaddr } from "../epoll/sockaddr.ts";
import { unbracket } from "../text/address.ts";
import { readCaFile, readClientCert, readServerTls } from "./pem_files.ts";
import { describeMissing, netTo, type PermissionNeed, readOf, unixNeed } from "./permissions.ts";

/** `serve`'s transport flags, for its table. */
export const SERVE_TRANSPORT_FLAGS: {
  readonly cert: Flag<string | undefined>;
  readonly key: Flag<string | undefined>;
  readonly "client-ca": Flag<string | undefined>;
  readonly unix: Flag<string | undefined>;
  readonly io: Flag<IoEngine>;
} = {
  cert: textFlag({
    value: "FILE",
    help: "serve TLS with this certificate chain (PEM); needs --key",
  }),
  key: textFlag({ value: "FILE", help: "the private key of --cert (PEM)" }),
  "client-ca": textFlag({
    value: "FILE",
    help: "with --cert: require a client certificate signed by a CA in FILE (PEM): mutual TLS",
  }),
  unix: textFlag({
    value: "PATH",
    help: "listen on a Unix domain socket instead of TCP (--host, --port unused)",
  }),
  io: choiceFlag({
    choices: IO_ENGINES,
    default: SERVE_DEFAULTS.io,
    help:
      "TCP engine: deno, or epoll (Linux, --allow-ffi; TLS through libssl.so.3; faster, less memory per connection)",
  }),
};

/** The flag values {@linkcode checkServeTransport} looks at. */
export interface ServeTransportValues {
  /** `--cert`. */
  cert?: string;
  /** `--key`. */
  key?: string;
  /** `--client-ca`. */
  "client-ca"?: string;
  /** `--unix`. */
  unix?: string;
  /** `--host`. */
  host: string;
  /** `--io`. */
  io: IoEngine;
  /** `--workers`. */
  workers: number;
  /** `--udp`. */
  udp?: boolean;
  /** `--proxy-protocol`. */
  "proxy-protocol"?: boolean;
  /** `--allow`. */
  allow: readonly unknown[];
  /** `--deny`. */
  deny: readonly unknown[];
}

/**
 * Refuses the combinations of `serve`'s flags that cannot work, with a
 * {@linkcode UsageError} that says why.
 */
export function checkServeTransport(flags: ServeTransportValues): void {
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new UsageError(flags.cert === undefined ? "--key needs --cert" : "--cert needs --key");
  }
  if (flags["client-ca"] !== undefined && flags.cert === undefined) {
    throw new UsageError("--client-ca needs --cert and --key: mutual TLS is TLS first");
  }
  if (flags.cert !== undefined && flags["proxy-protocol"] && flags.io !== "epoll") {
    throw new UsageError(
      "--proxy-protocol with --cert needs --io epoll: the PROXY header comes before the TLS handshake, which only the epoll engine reads in that order",
    );
  }
  if (flags.io === "epoll") checkEpoll(flags);
  if (flags.unix === undefined) return;
  if (flags.cert !== undefined) {
    throw new UsageError("--cert serves TLS over TCP only, not with --unix");
  }
  if (flags.workers > 1) {
    throw new UsageError("--workers applies to TCP ports: a Unix socket has one listener");
  }
  if (flags.udp) throw new UsageError("--udp echoes on a UDP port, not with --unix");
  if ((flags.allow.length > 0 || flags.deny.length > 0) && !flags["proxy-protocol"]) {
    throw new UsageError(
      "--allow and --deny match IP addresses, which clients of a Unix socket have none of (unless --proxy-protocol carries them)",
    );
  }
}

/** `--io epoll` takes an IP address (whether it can run here at all is checked once logging is up). */
function checkEpoll(flags: ServeTransportValues): void {
  // The engine binds what libc is given and resolves no names.
  if (flags.unix === undefined && encodeSockaddr(unbracket(flags.host), 0) === undefined) {
    throw new UsageError(
      `--io epoll takes an IP address for --host (such as 0.0.0.0, ::, 127.0.0.1) or localhost, not "${flags.host}"`,
    );
  }
}

/**
 * Reads `--cert` and `--key`, and `--client-ca`, when given.
 *
 * @throws {Error} naming the flag and the file that cannot serve.
 */
export function serveTls(
  flags: { cert?: string; key?: string; "client-ca"?: string },
): ServeTlsOptions | undefined {
  if (flags.cert === undefined || flags.key === undefined) return undefined;
  return readServerTls(flags.cert, flags.key, flags["client-ca"]);
}

/** The transport flags of `client` and `bench`, for their tables. */
export interface ClientTransportFlags {
  /** `--tls`. */
  readonly tls: Flag<boolean>;
  /** `--ca FILE`. */
  readonly ca: Flag<string | undefined>;
  /** `--servername NAME`. */
  readonly servername: Flag<string | undefined>;
  /** `-k, --insecure`. */
  readonly insecure: Flag<boolean>;
  /** `--cert FILE`: a client certificate. */
  readonly cert: Flag<string | undefined>;
  /** `--key FILE`: its key. */
  readonly key: Flag<string | undefined>;
  /** `--unix PATH`. */
  readonly unix: Flag<string | undefined>;
}

/** `client`'s and `bench`'s transport flags, for their tables. */
export const CLIENT_TRANSPORT_FLAGS: ClientTransportFlags = {
  tls: switchFlag({ help: "speak TLS, verifying the server's certificate" }),
  ca: textFlag({
    value: "FILE",
    help:
      "with --tls: trust the certificates in FILE (PEM) instead of the built-in roots: a CA, or the server's own (self-signed)",
  }),
  servername: textFlag({
    value: "NAME",
    help: "with --tls: the name to verify and send as SNI (default: --host)",
  }),
  insecure: switchFlag({
    short: "k",
    help: "with --tls: do not verify the server's certificate (a quick test only)",
  }),
  cert: textFlag({
    value: "FILE",
    help: "with --tls: present this client certificate (PEM), for mutual TLS; needs --key",
  }),
  key: textFlag({ value: "FILE", help: "the private key of --cert (PEM)" }),
  unix: textFlag({
    value: "PATH",
    help: "connect to a Unix domain socket instead (--host, --port unused)",
  }),
};

/** Where `client` or `bench` connects, beyond host and port. */
export interface ClientTransport {
  /** TLS, when `--tls` was given. */
  tls?: ClientTlsOptions;
  /** The socket path of `--unix`. */
  path?: string;
}

/**
 * The permissions `client` and `bench` need to reach the server: read and
 * write for a `--unix` socket, the net otherwise, read for `--ca`.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { clientNeeds } from "./transport_flags.ts";
 * deepEqual(clientNeeds({ host: "127.0.0.1", port: 7, ca: "ca.pem" }), [
 *   { what: "connecting to 127.0.0.1:7", permissions: [{ name: "net", host: "127.0.0.1:7" }] },
 *   { what: "--ca", permissions: [{ name: "read", path: "ca.pem" }] },
 * ]);
 * ```
 */
export function clientNeeds(
  flags: { host: string; port: number; ca?: string; cert?: string; key?: string; unix?: string },
): PermissionNeed[] {
  const needs: PermissionNeed[] = [];
  if (flags.unix !== undefined) needs.push(unixNeed(flags.unix));
  else {
    const net = netTo(flags.host, flags.port);
    needs.push({ what: `connecting to ${net.host}`, permissions: [net] });
  }
  for (const flag of ["ca", "cert", "key"] as const) {
    const path = flags[flag];
    if (path !== undefined) needs.push({ what: `--${flag}`, permissions: [readOf(path)] });
  }
  return needs;
}

/**
 * Reads `client`'s or `bench`'s transport flags: a {@linkcode UsageError} for
 * a combination that cannot work, a plain error for a missing permission
 * (every one named at once) or for a `--ca`, `--cert` or `--key` file that
 * cannot be used. With `--insecure`, one warning line goes to stderr.
 */
export function clientTransport(
  flags: {
    host: string;
    port: number;
    tls: boolean;
    ca?: string;
    servername?: string;
    insecure?: boolean;
    cert?: string;
    key?: string;
    unix?: string;
    udp?: boolean;
    proxy?: string;
  },
  command = "client",
): ClientTransport {
  if (!flags.tls) {
    const tlsOnly = (["ca", "servername", "insecure", "cert", "key"] as const)
      .find((flag) => flags[flag] !== undefined && flags[flag] !== false);
    if (tlsOnly !== undefined) throw new UsageError(`--${tlsOnly} needs --tls`);
  }
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new UsageError(flags.cert === undefined ? "--key needs --cert" : "--cert needs --key");
  }
  if (flags.insecure && flags.ca !== undefined) {
    throw new UsageError("--insecure verifies nothing, so --ca would be unused: give one of them");
  }
  if (flags.servername !== undefined && (flags.servername === "" || /\s/.test(flags.servername))) {
    throw new UsageError(`invalid --servername "${flags.servername}": expected a host name`);
  }
  if (flags.tls && flags.unix !== undefined) {
    throw new UsageError("--tls runs over TCP only, not with --unix");
  }
  if (flags.tls && flags.proxy !== undefined) {
    throw new UsageError("--proxy sends its header before any TLS handshake: not with --tls");
  }
  if (flags.udp && (flags.tls || flags.unix !== undefined)) {
    throw new UsageError(`--udp cannot be combined with --${flags.tls ? "tls" : "unix"}`);
  }
  const missing = describeMissing(clientNeeds(flags));
  if (missing !== undefined) throw new Error(missing);
  const tls = flags.tls
    ? {
      caCerts: flags.ca === undefined ? undefined : [readCaFile(flags.ca)],
      serverName: flags.servername,
      ...(flags.cert === undefined || flags.key === undefined
        ? {}
        : readClientCert(flags.cert, flags.key)),
      insecure: flags.insecure || undefined,
    }
    : undefined;
  if (flags.insecure) {
    console.error(
      `echo-server ${command}: warning: --insecure: the server's certificate is not verified`,
    );
  }
  return { tls, path: flags.unix };
}
