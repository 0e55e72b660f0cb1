import { equal, throws } from "node:assert/strict";
import { describeBanner, describeTlsError } from "../../text/tls.ts";
import { describeEndpoint, endpointOf } from "../../client/dial.ts";
import { refused } from "../../client/errors.ts";

const invalid = (message: string) => new Deno.errors.InvalidData(message);

Deno.test("describeTlsError: rustls's reasons, as each end would say them", () => {
  equal(
    describeTlsError(
      invalid(
        'invalid peer certificate: certificate not valid for name "example.com"; certificate is only valid for DnsName("localhost"), IpAddress(127.0.0.1) or IpAddress(0::1)',
      ),
      "client",
    ),
    "certificate not valid for example.com (it is for localhost, 127.0.0.1, 0::1)",
  );
  equal(
    describeTlsError(invalid("invalid peer certificate: Expired"), "client"),
    "certificate not trusted (expired)",
  );
  equal(
    describeTlsError(invalid("invalid peer certificate: SomethingNew"), "client"),
    "certificate not trusted (SomethingNew)",
  );
  equal(
    describeTlsError(invalid("received fatal alert: BadCertificate"), "server"),
    "the client does not trust the certificate (BadCertificate)",
  );
  equal(
    describeTlsError(invalid("received fatal alert: HandshakeFailure"), "client"),
    "the server ended the TLS handshake (HandshakeFailure)",
  );
  equal(
    describeTlsError(invalid("received corrupt message of type InvalidContentType"), "client"),
    "the server does not speak TLS",
  );
  equal(
    describeTlsError(
      invalid(
        "received unexpected handshake message: got ClientHello when expecting ServerHello or HelloRetryRequest",
      ),
      "client",
    ),
    "the server does not speak TLS (it sent the handshake back: an echo server without TLS?)",
  );
  equal(
    describeTlsError(new Deno.errors.UnexpectedEof("unexpected end of file"), "server"),
    "the client closed the connection during the TLS handshake",
  );
  equal(
    describeTlsError(new Deno.errors.ConnectionReset("x"), "server"),
    "connection reset by peer",
  );
});

Deno.test("endpointOf and describeEndpoint: TCP, TLS with its options, a Unix socket", () => {
  const tls = endpointOf({ host: "127.0.0.1", port: 8443, tls: { serverName: "localhost" } });
  equal(tls.transport, "tls");
  equal(tls.transport === "tls" && tls.serverName, "localhost");
  equal(endpointOf({ host: "h", port: 1, tls: false }).transport, "tcp");
  equal(describeEndpoint(endpointOf({ host: "::1", port: 7 })), "[::1]:7");
  throws(() => endpointOf({ host: "h", port: 1, tls: true, path: "/x.sock" }), TypeError);
});

Deno.test("refused: a TLS alert in place of the echo says the server speaks TLS", () => {
  const alert = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
  equal(
    refused("127.0.0.1:8443", alert).message,
    "127.0.0.1:8443 answered with a TLS alert: it speaks TLS",
  );
  equal(
    refused("h:1", new TextEncoder().encode("busy\n")).message,
    'h:1 sent "busy\\n" instead of an echo and closed the connection (refused?)',
  );
});

Deno.test("a TLS alert instead of an echo is named as such, anything else is quoted", () => {
  const alert = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
  equal(describeBanner(alert), "a TLS alert (the server speaks TLS)");
  equal(describeBanner(new TextEncoder().encode("busy\n")), '"busy\\n"');
});
