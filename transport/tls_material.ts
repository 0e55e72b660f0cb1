/**
 * Whether a certificate and key can serve TLS, told before anything
 * listens, so that a command can say which file is wrong.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { describeError } from "../text/address.ts";
import type { TlsMaterial } from "./contract.ts";

/**
 * What a TLS listener serves, as PEM text: the certificate and key, and for
 * mutual TLS the CAs a client's certificate must be signed by. One shape
 * with the contract's {@linkcode TlsMaterial}, which a reload hands over.
 */
export type ServeTlsOptions = TlsMaterial;

/** What is wrong with a certificate and key, as {@linkcode checkTlsMaterial} finds it. */
export type TlsMaterialProblem =
  | { kind: "cert"; text: string }
  | { kind: "key"; text: string }
  | { kind: "mismatch"; text: string }
  | { kind: "clientCa"; text: string }
  | { kind: "other"; text: string };

/**
 * Tells what, if anything, keeps `cert` and `key` from serving TLS: no PEM
 * certificate, no PEM key, a key that is not the certificate's; and a
 * `clientCa` with no PEM certificate in it. Deno checks
 * them only when it listens, so this listens once on a free loopback port
 * and closes at once; it lets a command say which file is wrong before it
 * starts anything. Where listening there is not allowed (a scoped
 * `--allow-net`), it cannot tell, and says nothing.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { checkTlsMaterial } from "./tls_material.ts";
 * equal(checkTlsMaterial({ cert: "not PEM", key: "not PEM" })?.kind, "cert");
 * ```
 */
export function checkTlsMaterial(material: ServeTlsOptions): TlsMaterialProblem | undefined {
  if (material.clientCa !== undefined) {
    try {
      new X509Certificate(material.clientCa);
    } catch {
      return { kind: "clientCa", text: "the client CA file holds no PEM certificate" };
    }
  }
  try {
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: material.cert, key: material.key })
      .close();
    return undefined;
  } catch (error) {
    // Not allowed to listen there (a scoped --allow-net): it cannot be checked so, and is not wrong.
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    return materialProblem(error);
  }
}

/** Deno's complaint about a certificate or key, in words; `other` for any other error. */
function materialProblem(error: unknown): TlsMaterialProblem {
  const message = error instanceof Error ? error.message : String(error);
  if (/no certificates found/i.test(message)) {
    return { kind: "cert", text: "the certificate holds no PEM certificate" };
  }
  if (/no keys found/i.test(message)) {
    return { kind: "key", text: "the key holds no PEM private key (PKCS#8, RSA or EC)" };
  }
  if (/KeyMismatch|keys may not be consistent/i.test(message)) {
    return { kind: "mismatch", text: "the key does not match the certificate" };
  }
  return { kind: "other", text: describeError(error) };
}
