/**
 * What the client-certificate, mutual-TLS and reload tests share besides
 * certs.ts: more certificates made at run time by `openssl` (the
 * self-signed `openssl req -x509` kind, client certificates signed by the
 * test CA and by nobody), and Python's `ssl` module as the independent
 * peer, a client or an echo server.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { commandOutput, within } from "./helpers.ts";
import { openssl, type TestCerts, testCerts } from "./certs.ts";

/** A certificate and its key, as files and PEM. */
export interface CertPair {
  /** The certificate file. */
  certPath: string;
  /** Its key file. */
  keyPath: string;
  /** PEM of `certPath`. */
  cert: string;
  /** PEM of `keyPath`. */
  key: string;
  /** Its SHA-256 fingerprint, as node:tls gives it (`AB:CD:…`). */
  fingerprint: string;
  /** Its subject, as the server logs it (`CN=…,O=…`). */
  subject: string;
}

/** The certificates of certs.ts, and more. */
export interface PeerCerts extends TestCerts {
  /** Self-signed by `openssl req -x509 … -subj /CN=localhost -addext subjectAltName=…`: `CA:TRUE`. */
  selfSigned: CertPair;
  /** Another of the same kind: a renewal, for the reload tests. */
  renewed: CertPair;
  /** A client certificate signed by the test CA (`CN=echo client,O=Example`). */
  client: CertPair;
  /** A client certificate that no CA here signed (self-signed). */
  stranger: CertPair;
}

let made: Promise<PeerCerts> | undefined;

/** Makes the certificates once per test process (needs `openssl`; see certs.ts). */
export function peerCerts(): Promise<PeerCerts> {
  return made ??= make();
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"];
const SERVER_NAMES = "subjectAltName=DNS:localhost,IP:127.0.0.1";

async function make(): Promise<PeerCerts> {
  const certs = await testCerts();
  const at = (name: string) => `${certs.dir}/${name}`;
  const selfSigned = async (name: string, subject: string, names?: string) => {
    const extra = names === undefined ? [] : ["-addext", names];
    await openssl(["req", "-x509", ...EC, "-keyout", at(`${name}.key`), "-out", at(`${name}.pem`)]
      .concat(["-subj", subject, ...extra]));
    return pair(at(`${name}.pem`), at(`${name}.key`));
  };
  await openssl(["req", ...EC, "-keyout", at("client.key"), "-out", at("client.csr")].concat([
    "-subj",
    "/CN=echo client/O=Example",
  ]));
  Deno.writeTextFileSync(at("client.ext"), "extendedKeyUsage=clientAuth\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    at("client.csr"),
    "-CA",
    certs.caPath,
    "-CAkey",
    at("ca.key"),
    "-CAcreateserial",
    "-out",
    at("client.pem"),
    "-days",
    "2",
    "-extfile",
    at("client.ext"),
  ]);
  return {
    ...certs,
    selfSigned: await selfSigned("self-signed", "/CN=localhost", SERVER_NAMES),
    renewed: await selfSigned("renewed", "/CN=localhost", SERVER_NAMES),
    client: pair(at("client.pem"), at("client.key")),
    stranger: await selfSigned("stranger", "/CN=stranger"),
  };
}

function pair(certPath: string, keyPath: string): CertPair {
  const cert = Deno.readTextFileSync(certPath);
  const x509 = new X509Certificate(cert);
  return {
    certPath,
    keyPath,
    cert,
    key: Deno.readTextFileSync(keyPath),
    fingerprint: x509.fingerprint256,
    subject: x509.subject.split("\n").join(","),
  };
}

/** What a Python `ssl` client saw: the echo, or the error it got. */
export interface PythonResult {
  /** What came back for the message, decoded; empty when the server closed instead. */
  echo: string;
  /** The exception's type and message, or empty when none. */
  error: string;
  /** The SHA-256 fingerprint of the server's certificate, uppercase hex with colons. */
  fingerprint: string;
}

const PYTHON_CLIENT = `
import hashlib, json, socket, ssl, sys
port, ca, cert, key, message = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
out = {"echo": "", "error": "", "fingerprint": ""}
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            digest = hashlib.sha256(der).hexdigest().upper()
            out["fingerprint"] = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
            tls.sendall(message.encode())
            got = b""
            while len(got) < len(message):
                chunk = tls.recv(4096)
                if not chunk:
                    break
                got += chunk
            out["echo"] = got.decode()
except Exception as error:
    out["error"] = type(error).__name__ + ": " + str(error)
print(json.dumps(out))
`;

/**
 * Connects with Python's `ssl` (verifying the server against `ca`, as
 * `localhost`), presenting `client` when given, sends `message` and reads
 * its echo; resolves with what it saw.
 */
export async function pythonClient(
  port: number,
  ca: string,
  message: string,
  client?: CertPair,
): Promise<PythonResult> {
  const { success, stdout, stderr } = await commandOutput("python3", {
    args: [
      "-c",
      PYTHON_CLIENT,
      String(port),
      ca,
      client?.certPath ?? "",
      client?.keyPath ?? "",
      message,
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const text = new TextDecoder().decode(stdout);
  if (!success) throw new Error(`python3 failed: ${new TextDecoder().decode(stderr)}`);
  return JSON.parse(text) as PythonResult;
}

const PYTHON_SERVER = `
import os, socket, ssl, sys, threading
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
def echo(raw):
    try:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                tls.sendall(data)
    except (ssl.SSLError, OSError):
        pass
# Ends when the test closes its stdin (or the test process goes).
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
while True:
    conn, _ = listener.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
`;

/** A TLS echo server in Python's `ssl`, on a free loopback port; disposing it stops it. */
export interface PythonServer extends AsyncDisposable {
  /** The port it listens on. */
  port: number;
}

/** Starts a Python `ssl` echo server serving `pair`; it ends when its stdin closes. */
export async function pythonEchoServer(pair: CertPair): Promise<PythonServer> {
  const child = new Deno.Command("python3", {
    args: ["-c", PYTHON_SERVER, pair.certPath, pair.keyPath],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    await reader.cancel().catch(() => {});
    await within(child.status, "the Python TLS server to exit");
  };
  try {
    const first = await within(reader.read(), "the Python TLS server's port");
    const port = Number(first.value?.trim());
    if (!(port > 0)) throw new Error(`the Python TLS server said ${JSON.stringify(first.value)}`);
    return { port, [Symbol.asyncDispose]: stop };
  } catch (error) {
    child.kill("SIGKILL");
    await stop();
    throw error;
  }
}

/** Why the tests that need Python cannot run here, or undefined when `python3` runs. */
export async function pythonMissing(): Promise<string | undefined> {
  try {
    const { success } = await commandOutput("python3", {
      args: ["-c", "import ssl"],
      stdout: "null",
      stderr: "null",
    });
    return success ? undefined : "python3 has no ssl module";
  } catch {
    return "python3 is not installed";
  }
}
