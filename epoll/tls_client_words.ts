/**
 * OpenSSL's reasons for a failed client handshake, put in the words the
 * default engine's client uses for the same failures (`text/tls.ts`), so
 * that a bench's report reads the same whichever engine dialled.
 *
 * @module
 */
import { describeTlsError } from "../text/tls.ts";
import { ALERTS, VERIFY_CODES } from "./tls_words.ts";

/** `X509_V_ERR_HOSTNAME_MISMATCH`, `X509_V_ERR_IP_ADDRESS_MISMATCH`. */
const NAME_MISMATCH = new Set([62, 64]);

/**
 * What a failed client handshake (or a TLS failure after it) was, in words,
 * from OpenSSL's reason (`certificate verify failed`), the verification
 * result (`verify`, a number), the name checked and the names the
 * certificate is for.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { describeClientFailure } from "./tls_client_words.ts";
 * equal(
 *   describeClientFailure("certificate verify failed", 20, "localhost"),
 *   "certificate not trusted (issued by an unknown authority)",
 * );
 * equal(
 *   describeClientFailure("certificate verify failed", 62, "example.com", ["localhost"]),
 *   "certificate not valid for example.com (it is for localhost)",
 * );
 * equal(describeClientFailure("tlsv13 alert certificate required"), "the server requires a client certificate");
 * equal(describeClientFailure("wrong version number"), "the server does not speak TLS");
 * ```
 */
export function describeClientFailure(
  reason: string,
  verify?: number,
  name?: string,
  names: readonly string[] = [],
): string {
  if (/certificate verify failed/.test(reason) && verify !== undefined) {
    if (NAME_MISMATCH.has(verify)) {
      return `certificate not valid for ${name ?? "this name"} (it is for ${
        names.join(", ") || "other names"
      })`;
    }
    const code = VERIFY_CODES[verify];
    if (code !== undefined) {
      return describeTlsError(Object.assign(new Error(reason), { code }), "client");
    }
    return `certificate not trusted (verify error ${verify})`;
  }
  const alert = /alert (.+)$/.exec(reason);
  if (alert !== null) {
    const message = `received fatal alert: ${ALERTS[alert[1]] ?? alert[1].replace(/ /g, "")}`;
    return describeTlsError(new Error(message), "client");
  }
  if (/wrong version number|packet length too long|record layer failure/.test(reason)) {
    return "the server does not speak TLS";
  }
  if (/unexpected message/.test(reason)) {
    return "the server does not speak TLS (it sent the handshake back: an echo server without TLS?)";
  }
  return `TLS failed: ${reason}`;
}
