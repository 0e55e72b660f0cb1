/**
 * OpenSSL's reasons for a failed server handshake, put in the words the
 * default engine's log uses for the same failures (`text/tls.ts`), so that
 * a `closed` line reads the same whichever engine served it.
 *
 * @module
 */
import { describeClientCertificate } from "../text/tls.ts";

/** OpenSSL's alert names, as rustls (and so the default engine's log) names them. */
export const ALERTS: Readonly<Record<string, string>> = {
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
/**
 * OpenSSL's verification codes (`X509_V_ERR_*`) by the names `node:tls`
 * gives them, so that `text/tls.ts` words them as for the default engine.
 */
export const VERIFY_CODES: Readonly<Record<number, string>> = {
  2: "UNABLE_TO_GET_ISSUER_CERT",
  7: "CERT_SIGNATURE_FAILURE",
  9: "CERT_NOT_YET_VALID",
  10: "CERT_HAS_EXPIRED",
  18: "DEPTH_ZERO_SELF_SIGNED_CERT",
  19: "SELF_SIGNED_CERT_IN_CHAIN",
  20: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  21: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  23: "CERT_REVOKED",
  26: "INVALID_PURPOSE",
  27: "CERT_UNTRUSTED",
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
 * verify, OpenSSL's verdict on it (`verify`, its code and its text) and the
 * certificate's subject when known.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeHandshakeFailure } from "./tls_words.ts";
 * equal(describeHandshakeFailure("wrong version number"), "the client does not speak TLS (plain text?)");
 * equal(describeHandshakeFailure("tlsv1 alert unknown ca"), "the client does not trust the certificate (UnknownCA)");
 * equal(describeHandshakeFailure(undefined), "the client closed the connection during the TLS handshake");
 * equal(
 *   describeHandshakeFailure("certificate verify failed", { code: 18, text: "self-signed certificate" }),
 *   "the client's certificate is not trusted (self-signed, and not among those trusted)",
 * );
 * equal(describeHandshakeFailure("peer did not return a certificate"), "the client sent no certificate");
 * ```
 */
export function describeHandshakeFailure(
  reason: string | undefined,
  verify?: { code: number; text: string },
  subject?: string,
): string {
  if (reason === undefined || /unexpected eof/.test(reason)) {
    return "the client closed the connection during the TLS handshake";
  }
  if (/wrong version number|http request|https proxy request|packet length too long/.test(reason)) {
    return "the client does not speak TLS (plain text?)";
  }
  if (/peer did not return a certificate/.test(reason)) return describeClientCertificate("none");
  if (/certificate verify failed/.test(reason)) {
    const problem = verify === undefined
      ? "verify failed"
      : VERIFY_CODES[verify.code] ?? verify.text;
    return describeClientCertificate(problem, subject);
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
