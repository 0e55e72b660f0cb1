import { equal, ok } from "node:assert/strict";
import { describeClientCertificate, describeTlsError } from "../../text/tls.ts";
import { fromNodeError } from "../../client/tls_conn.ts";

/** An error as node:tls makes them: a message and a code, and what else it carries. */
const nodeError = (message: string, code: string, extra: object = {}) =>
  Object.assign(new Error(message), { code }, extra);

Deno.test("describeTlsError: node:tls's verification codes, as the client says them", () => {
  const says = (code: string) => describeTlsError(nodeError("x", code), "client");
  equal(
    says("UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
    "certificate not trusted (issued by an unknown authority)",
  );
  equal(
    says("SELF_SIGNED_CERT_IN_CHAIN"),
    "certificate not trusted (issued by an unknown authority)",
  );
  equal(
    says("DEPTH_ZERO_SELF_SIGNED_CERT"),
    "certificate not trusted (self-signed, and not among those trusted)",
  );
  equal(says("CERT_HAS_EXPIRED"), "certificate not trusted (expired)");
  equal(says("CERT_NOT_YET_VALID"), "certificate not trusted (not valid yet)");
});

Deno.test("describeTlsError: node's wrong-name error names the names the certificate is for", () => {
  const wrongName = nodeError("Hostname/IP does not match", "ERR_TLS_CERT_ALTNAME_INVALID", {
    host: "example.com",
    cert: { subjectaltname: "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" },
  });
  equal(
    describeTlsError(wrongName, "client"),
    "certificate not valid for example.com (it is for localhost, 127.0.0.1, ::1)",
  );
  const commonNameOnly = nodeError("x", "ERR_TLS_CERT_ALTNAME_INVALID", {
    host: "h",
    cert: { subject: { CN: "only-cn" } },
  });
  equal(
    describeTlsError(commonNameOnly, "client"),
    "certificate not valid for h (it is for only-cn)",
  );
  const ipv6 = nodeError("x", "ERR_TLS_CERT_ALTNAME_INVALID", {
    host: "h",
    cert: { subjectaltname: "IP Address:2001:DB8:0:0:1:0:0:1, IP Address:FE80:0:0:0:0:0:0:0" },
  });
  equal(
    describeTlsError(ipv6, "client"),
    "certificate not valid for h (it is for 2001:db8::1:0:0:1, fe80::)",
  );
});

Deno.test("describeTlsError: mutual TLS refusals, from either end", () => {
  const alert = nodeError("received fatal alert: CertificateRequired", "ERR_SSL_TLSV13_ALERT");
  equal(describeTlsError(alert, "client"), "the server requires a client certificate");
  equal(
    describeTlsError(new Error("peer sent no certificates"), "server"),
    "the client sent no certificate",
  );
  equal(describeClientCertificate("none"), "the client sent no certificate");
  equal(
    describeClientCertificate(nodeError("x", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "CN=a,O=b"),
    "the client's certificate (CN=a,O=b) is not trusted (issued by an unknown authority)",
  );
  equal(
    describeClientCertificate("SOMETHING_NEW"),
    "the client's certificate is not trusted (SOMETHING_NEW)",
  );
});

Deno.test("fromNodeError: Node's socket errors as Deno's, the rest as they are", () => {
  const reset = fromNodeError(nodeError("read ECONNRESET", "ECONNRESET"));
  ok(reset instanceof Deno.errors.ConnectionReset);
  ok(
    fromNodeError(nodeError("getaddrinfo ENOTFOUND x", "ENOTFOUND")) instanceof
      Deno.errors.NotFound,
  );
  const other = nodeError("odd", "EODD");
  equal(fromNodeError(other), other);
  equal(fromNodeError("text"), "text");
});
