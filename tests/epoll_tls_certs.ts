/**
 * The certificates the epoll TLS tests need beyond `certs.ts`'s: a client
 * certificate signed by the test CA (`CN=client-1,O=Example`), one signed by
 * a CA the server does not trust, and a second CA with a server
 * certificate for `localhost` it signs (what a reload switches to). Made once per
 * test process with `openssl`, in `certs.ts`'s directory.
 *
 * @module
 */
import { openssl, type TestCerts, testCerts } from "./certs.ts";

/** The extra files, as paths and PEM text. */
export interface MoreCerts {
  /** `certs.ts`'s certificates. */
  base: TestCerts;
  /** A client certificate signed by the test CA, and its key. */
  clientCertPath: string;
  clientKeyPath: string;
  /** A client certificate signed by another CA, and its key. */
  rogueCertPath: string;
  rogueKeyPath: string;
  /** A second CA, and a server certificate for localhost and 127.0.0.1 that it signs, and its key. */
  nextCaPath: string;
  nextCa: string;
  nextCertPath: string;
  nextKeyPath: string;
  /** PEM of the above. */
  nextCert: string;
  nextKey: string;
}

let made: Promise<MoreCerts> | undefined;

/** Makes them once per test process. */
export function moreCerts(): Promise<MoreCerts> {
  return made ??= make();
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function make(): Promise<MoreCerts> {
  const base = await testCerts();
  const at = (name: string) => `${base.dir}/${name}`;
  // The server's key is in the directory, beside its CA's: the client is signed by that CA.
  await signed("client", "/CN=client-1/O=Example", at("ca.pem"), at("ca.key"), at);
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    at("rogue-ca.key"),
    "-out",
    at("rogue-ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=rogue CA",
  ]);
  await signed("rogue", "/CN=rogue", at("rogue-ca.pem"), at("rogue-ca.key"), at);
  // A second CA, and a server certificate for localhost that it signs.
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    at("next-ca.key"),
    "-out",
    at("next-ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=next CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await signed(
    "next",
    "/CN=localhost",
    at("next-ca.pem"),
    at("next-ca.key"),
    at,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  return {
    base,
    clientCertPath: at("client.pem"),
    clientKeyPath: at("client.key"),
    rogueCertPath: at("rogue.pem"),
    rogueKeyPath: at("rogue.key"),
    nextCertPath: at("next.pem"),
    nextKeyPath: at("next.key"),
    nextCaPath: at("next-ca.pem"),
    nextCa: Deno.readTextFileSync(at("next-ca.pem")),
    nextCert: Deno.readTextFileSync(at("next.pem")),
    nextKey: Deno.readTextFileSync(at("next.key")),
  };
}

/** A certificate `name`.pem with `subject` and `extensions` (a client's by default), signed by the CA at `ca`/`caKey`. */
async function signed(
  name: string,
  subject: string,
  ca: string,
  caKey: string,
  at: (name: string) => string,
  extensions = "extendedKeyUsage=clientAuth\n",
): Promise<void> {
  await openssl([
    "req",
    ...EC,
    "-keyout",
    at(`${name}.key`),
    "-out",
    at(`${name}.csr`),
    "-subj",
    subject,
  ]);
  Deno.writeTextFileSync(at(`${name}.ext`), extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    at(`${name}.csr`),
    "-CA",
    ca,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    at(`${name}.pem`),
    "-days",
    "2",
    "-extfile",
    at(`${name}.ext`),
  ]);
}
