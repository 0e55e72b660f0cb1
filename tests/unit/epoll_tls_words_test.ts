/**
 * The epoll engine's TLS in words: why OpenSSL cannot be used (one line
 * naming the fix), and its reasons for a failed handshake in the default
 * engine's words.
 */
import { strictEqual } from "node:assert/strict";
import { opensslUnavailable } from "../../epoll/openssl.ts";
import { describeHandshakeFailure } from "../../epoll/tls_words.ts";

Deno.test("a libssl.so.3 that does not open is one line naming the fix", () => {
  const why = opensslUnavailable(() => {
    throw new Error("Could not open library: libssl.so.3: cannot open shared object file");
  });
  strictEqual(
    why,
    "--io epoll serves TLS through the system's OpenSSL 3 (libssl.so.3), which did not open (Could not open library: libssl.so.3: cannot open shared object file): install it (Debian: apt-get install libssl3), or use --io deno",
  );
  strictEqual(why?.includes("\n"), false);
  strictEqual(opensslUnavailable(() => undefined), undefined);
});

Deno.test("OpenSSL's handshake failures read as the default engine's", () => {
  const cases: [string | undefined, { code: number; text: string } | undefined, string][] = [
    ["wrong version number", undefined, "the client does not speak TLS (plain text?)"],
    ["http request", undefined, "the client does not speak TLS (plain text?)"],
    [undefined, undefined, "the client closed the connection during the TLS handshake"],
    [
      "unexpected eof while reading",
      undefined,
      "the client closed the connection during the TLS handshake",
    ],
    ["tlsv1 alert unknown ca", undefined, "the client does not trust the certificate (UnknownCA)"],
    [
      "sslv3 alert bad certificate",
      undefined,
      "the client does not trust the certificate (BadCertificate)",
    ],
    [
      "tlsv1 alert protocol version",
      undefined,
      "the client ended the TLS handshake (ProtocolVersion)",
    ],
    [
      "peer did not return a certificate",
      undefined,
      "the client sent no certificate",
    ],
    [
      "certificate verify failed",
      { code: 10, text: "certificate has expired" },
      "the client's certificate is not trusted (expired)",
    ],
    [
      "certificate verify failed",
      { code: 65, text: "something new" },
      "the client's certificate is not trusted (something new)",
    ],
    ["no shared cipher", undefined, "no cipher suite in common with the client"],
    ["something new", undefined, "something new"],
  ];
  for (const [reason, verify, words] of cases) {
    strictEqual(describeHandshakeFailure(reason, verify), words, `${reason}`);
  }
});
