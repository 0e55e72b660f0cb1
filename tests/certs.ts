/**
 * Certificates for the TLS tests, made at run time with `openssl` in a
 * temporary directory (no private key is committed): a CA, a server
 * certificate it signs for `localhost`, `127.0.0.1` and `::1`, and a second
 * key that matches nothing. Tests that use them are named `system: …`, and
 * are ignored, saying why, where `openssl` is missing.
 *
 * @module
 */
import { commandOutput } from "./helpers.ts";

/** The files and their PEM text. */
export interface TestCerts {
  /** The directory holding them all; removed when the test process ends. */
  dir: string;
  /** The CA's certificate. */
  caPath: string;
  /** The server's certificate, signed by the CA. */
  certPath: string;
  /** The server certificate's key. */
  keyPath: string;
  /** A key that matches no certificate here. */
  otherKeyPath: string;
  /** PEM of `caPath`. */
  ca: string;
  /** PEM of `certPath`. */
  cert: string;
  /** PEM of `keyPath`. */
  key: string;
}

/** Why the TLS tests cannot run here, or undefined when `openssl` runs. */
export async function opensslMissing(): Promise<string | undefined> {
  try {
    const { success } = await commandOutput("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    });
    return success ? undefined : "openssl version failed";
  } catch {
    return "openssl is not installed";
  }
}

let made: Promise<TestCerts> | undefined;

/** Makes the certificates once per test process. */
export function testCerts(): Promise<TestCerts> {
  return made ??= make();
}

async function make(): Promise<TestCerts> {
  const dir = Deno.makeTempDirSync({ prefix: "echo-tls-" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const at = (name: string) => `${dir}/${name}`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    at("ca.key"),
    "-out",
    at("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=echo-server test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await openssl([
    "req",
    ...ec,
    "-keyout",
    at("server.key"),
    "-out",
    at("server.csr"),
    "-subj",
    "/CN=localhost",
  ]);
  Deno.writeTextFileSync(
    at("server.ext"),
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    at("server.csr"),
    "-CA",
    at("ca.pem"),
    "-CAkey",
    at("ca.key"),
    "-CAcreateserial",
    "-out",
    at("server.pem"),
    "-days",
    "2",
    "-extfile",
    at("server.ext"),
  ]);
  await openssl([
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    at("other.key"),
  ]);
  return {
    dir,
    caPath: at("ca.pem"),
    certPath: at("server.pem"),
    keyPath: at("server.key"),
    otherKeyPath: at("other.key"),
    ca: Deno.readTextFileSync(at("ca.pem")),
    cert: Deno.readTextFileSync(at("server.pem")),
    key: Deno.readTextFileSync(at("server.key")),
  };
}

/** Runs `openssl` with `args`; throws with its stderr when it fails. */
export async function openssl(args: string[]): Promise<void> {
  const { success, stderr } = await commandOutput("openssl", {
    args,
    stdout: "null",
    stderr: "piped",
  });
  if (!success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
}
