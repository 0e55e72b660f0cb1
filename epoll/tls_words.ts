/**
 * OpenSSL's reasons for a failed server handshake, put in the words the
 * default engine's log uses for the same failures (`text/tls.ts`), so that
 * a `closed` line reads the same whichever engine served it.
 *
 * @module
 */

/** OpenSSL's alert names, as rustls (and so the default engine's log) names them. */
const ALERTS: Readonly<Record<string, string>> = {
  "unknown ca": "UnknownCA",
  "bad certificate": "BadCertificate",
  "certificate unknown": "CertificateUnknown",
  "unsupported certificate": "UnsupportedCertificate",
  "certificate revoked": "CertificateRevoked",
  "certificate expired": "CertificateExpired",
  "access denied": "AccessDenied",
  "handshake failure": "HandshakeFailure",
  "protocol version": "ProtocolVersion",
  "decrypt error": "DecryptError",
  "internal error": "InternalError",
  "certificate required": "CertificateRequired",
};
/** The alerts that say the client does not accept the server's certificate. */
const CERTIFICATE_ALERTS = new Set([
  "UnknownCA",
  "BadCertificate",
  "CertificateUnknown",
  "UnsupportedCertificate",
  "CertificateRevoked",
  "CertificateExpired",
  "AccessDenied",
]);

/**
 * What a failed handshake was, in words, from OpenSSL's reason (`reason`,
 * e.g. `wrong version number`; `undefined` when the socket failed, or the
 * client left, without one) and, where the client's certificate did not
 * verify, OpenSSL's verdict on it (`verify`).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeHandshakeFailure } from "./tls_words.ts";
 * equal(describeHandshakeFailure("wrong version number"), "the client does not speak TLS (plain text?)");
 * equal(describeHandshakeFailure("tlsv1 alert unknown ca"), "the client does not trust the certificate (UnknownCA)");
 * equal(describeHandshakeFailure(undefined), "the client closed the connection during the TLS handshake");
 * equal(
 *   describeHandshakeFailure("certificate verify failed", "unable to get local issuer certificate"),
 *   "client certificate not trusted (unable to get local issuer certificate)",
 * );
 * ```
 */
export function describeHandshakeFailure(reason: string | undefined, verify?: string): string {
  if (reason === undefined || /unexpected eof/.test(reason)) {
    return "the client closed the connection during the TLS handshake";
  }
  if (/wrong version number|http request|https proxy request|packet length too long/.test(reason)) {
    return "the client does not speak TLS (plain text?)";
  }
  if (/peer did not return a certificate/.test(reason)) {
    return "the client presented no certificate (mutual TLS requires one)";
  }
  if (/certificate verify failed/.test(reason)) {
    return `client certificate not trusted (${verify ?? "verify failed"})`;
  }
  if (/no shared cipher/.test(reason)) return "no cipher suite in common with the client";
  if (/unsupported protocol/.test(reason)) {
    return "the client offers no TLS version the server speaks (1.2 or 1.3)";
  }
  const alert = /alert (.+)$/.exec(reason);
  if (alert !== null) {
    const name = ALERTS[alert[1]] ?? alert[1];
    return CERTIFICATE_ALERTS.has(name)
      ? `the client does not trust the certificate (${name})`
      : `the client ended the TLS handshake (${name})`;
  }
  return reason;
}
