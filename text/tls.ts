/**
 * TLS failures in words: what Deno's TLS engine (rustls) reports, put as what
 * went wrong between the two ends, for the client's errors and the server's
 * log alike.
 *
 * @module
 */
import { quoteBytes } from "./words.ts";
import { describeError } from "./address.ts";

/** Which end is speaking: the other end is "the server" for a client, and the reverse. */
export type TlsSide = "client" | "server";

/** Alerts an end sends when it does not accept the other's certificate. */
const CERTIFICATE_ALERTS = new Set([
  "BadCertificate",
  "UnsupportedCertificate",
  "CertificateRevoked",
  "CertificateExpired",
  "CertificateUnknown",
  "UnknownCA",
  "AccessDenied",
]);

/** rustls's certificate errors, as people say them. */
const CERTIFICATE_PROBLEMS: Readonly<Record<string, string>> = {
  UnknownIssuer: "issued by an unknown authority",
  Expired: "expired",
  NotValidYet: "not valid yet",
  Revoked: "revoked",
  BadSignature: "bad signature",
  UnhandledCriticalExtension: "unknown critical extension",
};

/**
 * OpenSSL's verification codes, which `node:tls` gives (`error.code`), as
 * people say them; the same words as rustls's above where they mean the same.
 */
const VERIFY_PROBLEMS: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "issued by an unknown authority",
  UNABLE_TO_GET_ISSUER_CERT: "issued by an unknown authority",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "issued by an unknown authority",
  SELF_SIGNED_CERT_IN_CHAIN: "issued by an unknown authority",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed, and not among those trusted",
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not valid yet",
  CERT_REVOKED: "revoked",
  CERT_SIGNATURE_FAILURE: "bad signature",
  CERT_UNTRUSTED: "not trusted for this use",
  INVALID_PURPOSE: "not for this use",
};

/** Alerts that say what a server wants of a client's certificate, in words. */
const CLIENT_CERTIFICATE_ALERTS: Readonly<Record<string, string>> = {
  CertificateRequired: "the server requires a client certificate",
};

/**
 * Puts a TLS failure seen by `side` into a few words, e.g.
 * `certificate not trusted (issued by an unknown authority)` or
 * `the client does not speak TLS`; errors that are not TLS's go through
 * {@linkcode describeError}.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeTlsError } from "./tls.ts";
 * const unknown = new Deno.errors.InvalidData("invalid peer certificate: UnknownIssuer");
 * equal(describeTlsError(unknown, "client"), "certificate not trusted (issued by an unknown authority)");
 * const plain = new Deno.errors.InvalidData("received corrupt message of type InvalidContentType");
 * equal(describeTlsError(plain, "server"), "the client does not speak TLS (plain text?)");
 * const alert = new Deno.errors.InvalidData("received fatal alert: UnknownCA");
 * equal(describeTlsError(alert, "server"), "the client does not trust the certificate (UnknownCA)");
 * ```
 */
export function describeTlsError(error: unknown, side: TlsSide): string {
  const peer = side === "client" ? "the server" : "the client";
  if (error instanceof Deno.errors.UnexpectedEof) {
    return `${peer} closed the connection during the TLS handshake`;
  }
  if (!(error instanceof Error)) return describeError(error);
  const message = error.message;
  const code = "code" in error && typeof error.code === "string" ? error.code : undefined;
  if (code !== undefined && code in VERIFY_PROBLEMS) {
    return `certificate not trusted (${VERIFY_PROBLEMS[code]})`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return describeWrongName(error);
  const name = /certificate not valid for name "([^"]*)"; certificate is only valid for (.*)$/
    .exec(message);
  if (name !== null) {
    const valid = [...name[2].matchAll(/(?:DnsName\("([^"]*)"\)|IpAddress\(([^)]*)\))/g)]
      .map((m) => m[1] ?? m[2]);
    return `certificate not valid for ${name[1]} (it is for ${valid.join(", ") || "other names"})`;
  }
  const peerCertificate = /^invalid peer certificate: (\w+)/.exec(message);
  if (peerCertificate !== null) {
    const problem = peerCertificate[1];
    return `certificate not trusted (${CERTIFICATE_PROBLEMS[problem] ?? problem})`;
  }
  const alert = /^received fatal alert: (\w+)/.exec(message);
  if (alert !== null) {
    if (side === "client" && alert[1] in CLIENT_CERTIFICATE_ALERTS) {
      return CLIENT_CERTIFICATE_ALERTS[alert[1]];
    }
    return CERTIFICATE_ALERTS.has(alert[1])
      ? `${peer} does not trust the certificate (${alert[1]})`
      : `${peer} ended the TLS handshake (${alert[1]})`;
  }
  if (/peer sent no certificates/.test(message)) return NO_CLIENT_CERTIFICATE;
  if (/corrupt message of type InvalidContentType/.test(message)) {
    return side === "server"
      ? `${peer} does not speak TLS (plain text?)`
      : `${peer} does not speak TLS`;
  }
  if (/got ClientHello when expecting ServerHello/.test(message)) {
    return `${peer} does not speak TLS (it sent the handshake back: an echo server without TLS?)`;
  }
  return describeError(error);
}

/** A server asking for a client certificate got none: the same words, whichever way it heard. */
const NO_CLIENT_CERTIFICATE = "the client sent no certificate";

/**
 * Why a server did not accept a client's certificate (mutual TLS), from the
 * verification code `node:tls` gives (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, or
 * an error carrying it), or `none` when the client sent none; the
 * certificate's subject named when known.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeClientCertificate } from "./tls.ts";
 * equal(
 *   describeClientCertificate("DEPTH_ZERO_SELF_SIGNED_CERT", "CN=me"),
 *   "the client's certificate (CN=me) is not trusted (self-signed, and not among those trusted)",
 * );
 * equal(describeClientCertificate("none"), "the client sent no certificate");
 * ```
 */
export function describeClientCertificate(problem: unknown, subject?: string): string {
  if (problem === "none") return NO_CLIENT_CERTIFICATE;
  const code = typeof problem === "string"
    ? problem
    : problem instanceof Error && "code" in problem
    ? String(problem.code)
    : describeError(problem);
  const named = subject === undefined ? "" : ` (${subject})`;
  return `the client's certificate${named} is not trusted (${VERIFY_PROBLEMS[code] ?? code})`;
}

/**
 * Node's error for a certificate that is not for the name asked
 * (`ERR_TLS_CERT_ALTNAME_INVALID`), as rustls's is put: the name, and the
 * names the certificate is for.
 */
function describeWrongName(error: Error): string {
  const { host, cert } = error as Error & {
    host?: string;
    cert?: { subjectaltname?: string; subject?: { CN?: string } };
  };
  const names = (cert?.subjectaltname ?? "").split(", ").filter((name) => name !== "")
    .map((name) => name.replace(/^(DNS|IP Address):/, ""))
    .map((name) => name.includes(":") ? compressIpv6(name) : name);
  if (names.length === 0 && cert?.subject?.CN !== undefined) names.push(cert.subject.CN);
  return `certificate not valid for ${host ?? "this name"} (it is for ${
    names.join(", ") || "other names"
  })`;
}

/** `0:0:0:0:0:0:0:1` as `::1`: the longest run of zero groups folded. */
function compressIpv6(address: string): string {
  const groups = address.toLowerCase().split(":").map((group) => group.replace(/^0+(?=.)/, ""));
  let best = { at: -1, length: 1 };
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.at < 0) return groups.join(":");
  const head = groups.slice(0, best.at).join(":");
  const tail = groups.slice(best.at + best.length).join(":");
  return `${head}::${tail}`;
}

/**
 * Whether `bytes` begin with a TLS alert record (content type 21, version
 * 3.x): what a TLS server answers to a client that does not speak TLS.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { isTlsAlert } from "./tls.ts";
 * equal(isTlsAlert(new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32])), true);
 * equal(isTlsAlert(new TextEncoder().encode("busy\n")), false);
 * ```
 */
export function isTlsAlert(bytes: Uint8Array): boolean {
  return bytes.length >= 7 && bytes[0] === 0x15 && bytes[1] === 0x03;
}

/**
 * What a server sent instead of an echo, as an error message shows it: a TLS
 * alert is named as such, anything else quoted.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeBanner } from "./tls.ts";
 * equal(describeBanner(new TextEncoder().encode("busy\n")), '"busy\\n"');
 * ```
 */
export function describeBanner(bytes: Uint8Array): string {
  return isTlsAlert(bytes) ? "a TLS alert (the server speaks TLS)" : quoteBytes(bytes);
}
