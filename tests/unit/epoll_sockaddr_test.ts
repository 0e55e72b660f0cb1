import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { decodeSockaddr, encodeSockaddr, SOCKADDR_BYTES } from "../../epoll/sockaddr.ts";
import { E, errorFor, OsError } from "../../epoll/libc.ts";

Deno.test("sockaddr_in: family, big-endian port, address, zero padding", () => {
  const bytes = encodeSockaddr("10.1.2.3", 0x1f40);
  deepStrictEqual([...(bytes ?? [])], [2, 0, 0x1f, 0x40, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("sockaddr_in6: family 10, port, flow info 0, address, scope 0", () => {
  const bytes = encodeSockaddr("2001:db8::7", 443) ?? new Uint8Array();
  strictEqual(bytes.length, SOCKADDR_BYTES);
  deepStrictEqual([...bytes.subarray(0, 8)], [10, 0, 1, 187, 0, 0, 0, 0]);
  deepStrictEqual([...bytes.subarray(8, 12)], [0x20, 0x01, 0x0d, 0xb8]);
  strictEqual(bytes[23], 7);
  deepStrictEqual([...bytes.subarray(24)], [0, 0, 0, 0]);
});

Deno.test("names are not addresses, except localhost", () => {
  strictEqual(encodeSockaddr("example.com", 80), undefined);
  strictEqual(encodeSockaddr("", 80), undefined);
  deepStrictEqual(decodeSockaddr(encodeSockaddr("localhost", 80) ?? new Uint8Array(28)), {
    hostname: "127.0.0.1",
    port: 80,
  });
});

Deno.test("decoding gives what encoding took, for both families and the edges of the port range", () => {
  for (
    const hostname of ["0.0.0.0", "255.255.255.255", "::", "::1", "fe80::1:2", "::ffff:10.0.0.7"]
  ) {
    for (const port of [0, 1, 65535]) {
      deepStrictEqual(decodeSockaddr(encodeSockaddr(hostname, port) ?? new Uint8Array(28)), {
        hostname,
        port,
      });
    }
  }
});

Deno.test("consecutive peers from different IPv4 addresses are told apart", () => {
  const a = decodeSockaddr(encodeSockaddr("127.0.0.2", 1) ?? new Uint8Array(28));
  const b = decodeSockaddr(encodeSockaddr("127.0.0.3", 2) ?? new Uint8Array(28));
  const c = decodeSockaddr(encodeSockaddr("127.0.0.2", 3) ?? new Uint8Array(28));
  deepStrictEqual([a?.hostname, b?.hostname, c?.hostname], ["127.0.0.2", "127.0.0.3", "127.0.0.2"]);
});

Deno.test("an unknown address family decodes to undefined", () => {
  const unix = new Uint8Array(28);
  unix[0] = 1; // AF_UNIX
  strictEqual(decodeSockaddr(unix), undefined);
});

Deno.test("errno values become Deno's errors, so both engines' words agree", () => {
  strictEqual(errorFor("recv", E.ECONNRESET).name, "ConnectionReset");
  strictEqual(errorFor("send", E.EPIPE).name, "BrokenPipe");
  strictEqual(errorFor("bind", E.EADDRINUSE).name, "AddrInUse");
  strictEqual(errorFor("bind", E.EACCES).name, "PermissionDenied");
  const other = errorFor("accept4", E.EMFILE);
  strictEqual(other instanceof OsError && other.code, "EMFILE");
  strictEqual(new OsError("x", 9999).code, "E9999");
});
