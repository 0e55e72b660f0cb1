/**
 * The PEM files the command line names (`--cert`, `--key`, `--ca`): read, and
 * checked enough that a wrong file is one line that names the flag and the
 * file, not an error from deep inside a TLS handshake.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { ServeTlsOptions } from "../transport/tls.ts";
import { checkTlsMaterial } from "../transport/tls_material.ts";
import { describeFileError } from "../text/address.ts";

/**
 * Reads the file that `--flag` names.
 *
 * @throws {Error} `cannot read --cert /etc/x.pem: no such file`, and the like.
 */
export function readFlagFile(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new Error(`cannot read --${flag} ${path}: ${describeFileError(error)}`, { cause: error });
  }
}

/**
 * Reads `--cert` and `--key`, and `--client-ca` when given, and checks that
 * they serve TLS together.
 *
 * @throws {Error} naming the flag and the file that is wrong, or
 *   `--cert and --key do not match`.
 */
export function readServerTls(
  certPath: string,
  keyPath: string,
  clientCaPath?: string,
): ServeTlsOptions {
  const material: ServeTlsOptions = {
    cert: readFlagFile("cert", certPath),
    key: readFlagFile("key", keyPath),
  };
  if (clientCaPath !== undefined) material.clientCa = readFlagFile("client-ca", clientCaPath);
  const problem = checkTlsMaterial(material);
  if (problem === undefined) return material;
  switch (problem.kind) {
    case "cert":
      throw new Error(`--cert ${certPath}: no PEM certificate in it`);
    case "key":
      throw new Error(`--key ${keyPath}: no PEM private key in it (PKCS#8, RSA or EC)`);
    case "mismatch":
      throw new Error(`--cert and --key do not match (${certPath}, ${keyPath})`);
    case "clientCa":
      throw new Error(`--client-ca ${clientCaPath}: no PEM certificate in it`);
    case "other":
      throw new Error(
        `cannot serve TLS with --cert ${certPath} and --key ${keyPath}: ${problem.text}`,
      );
  }
}

/**
 * Reads `--ca`: one or more PEM certificates to trust.
 *
 * @throws {Error} when the file cannot be read or holds no PEM certificate.
 */
export function readCaFile(path: string): string {
  const text = readFlagFile("ca", path);
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`--ca ${path}: no PEM certificate in it`);
  }
  return text;
}

/**
 * Reads `client`'s `--cert` and `--key` and checks that they go together:
 * a PEM certificate, a PEM private key, the key the certificate's.
 *
 * @throws {Error} naming the flag and the file that is wrong, or
 *   `--cert and --key do not match`.
 */
export function readClientCert(certPath: string, keyPath: string): { cert: string; key: string } {
  const cert = readFlagFile("cert", certPath);
  const key = readFlagFile("key", keyPath);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new Error(`--cert ${certPath}: no PEM certificate in it`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`--key ${keyPath}: no PEM private key in it (PKCS#8, RSA or EC)`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new Error(`--cert and --key do not match (${certPath}, ${keyPath})`);
  }
  return { cert, key };
}
