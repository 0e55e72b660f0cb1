/**
 * The PROXY protocol header parser and encoders: every valid form, every
 * truncation point, and the malformed headers a strict receiver must refuse.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { encodeProxyHeader, encodeProxyV1, encodeProxyV2 } from "../../proxy/encode.ts";
import {
  parseProxyHeader,
  type ProxyParse,
  V1_MAX_BYTES,
  V2_MAX_PAYLOAD,
  V2_SIGNATURE,
} from "../../proxy/header.ts";

const encoder = new TextEncoder();
const text = (s: string) => encoder.encode(s);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** A v2 header from its parts, with `block` as addresses and TLVs, as a sender would build it. */
function v2(
  versionCommand: number,
  familyProtocol: number,
  block: number[] | Uint8Array,
): Uint8Array {
  const length = block.length;
  return concat(
    V2_SIGNATURE,
    Uint8Array.of(versionCommand, familyProtocol, length >> 8, length & 0xff),
    Uint8Array.from(block),
  );
}

function reasonOf(result: ProxyParse): string {
  if (result.kind !== "invalid") throw new Error(`expected invalid, got ${JSON.stringify(result)}`);
  return result.reason;
}

/** Every proper prefix of a valid header is the start of one: need-more. */
function assertEveryPrefixNeedsMore(header: Uint8Array): void {
  for (let n = 0; n < header.length; n++) {
    deepStrictEqual(parseProxyHeader(header.subarray(0, n)), { kind: "need-more" }, `prefix ${n}`);
  }
}

const IPV4 = {
  source: { address: "203.0.113.7", port: 40000 },
  destination: { address: "10.0.0.1", port: 7 },
};
const IPV6 = {
  source: { address: "2001:db8::7", port: 65535 },
  destination: { address: "::1", port: 0 },
};

Deno.test("PROXY v1: TCP4, with the client's bytes after it left unread", () => {
  const header = text("PROXY TCP4 203.0.113.7 10.0.0.1 40000 7\r\n");
  deepStrictEqual(parseProxyHeader(concat(header, text("GET /"))), {
    kind: "done",
    version: 1,
    consumed: header.length,
    ...IPV4,
  });
  assertEveryPrefixNeedsMore(header);
});

Deno.test("PROXY v1: TCP6, addresses in their usual spelling", () => {
  const header = text("PROXY TCP6 2001:DB8:0:0::7 ::1 65535 0\r\n");
  deepStrictEqual(parseProxyHeader(header), {
    kind: "done",
    version: 1,
    consumed: header.length,
    ...IPV6,
  });
  assertEveryPrefixNeedsMore(header);
  const mapped = parseProxyHeader(text("PROXY TCP6 ::ffff:10.1.2.3 ::1 1 2\r\n"));
  strictEqual(mapped.kind === "done" && mapped.source?.address, "::ffff:10.1.2.3");
});

Deno.test("PROXY v1: UNKNOWN, bare or with the rest of the line ignored", () => {
  for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:: whatever 1 2\r\n"]) {
    const header = text(line);
    deepStrictEqual(parseProxyHeader(concat(header, text("x"))), {
      kind: "done",
      version: 1,
      consumed: header.length,
    });
    assertEveryPrefixNeedsMore(header);
  }
});

Deno.test("PROXY v1: the longest line, 107 bytes, and no longer", () => {
  const long = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const header = text(`PROXY TCP6 ${long} ${long} 65535 65535\r\n`);
  strictEqual(header.length, 104);
  strictEqual(parseProxyHeader(header).kind, "done");
  const unknown = text(`PROXY UNKNOWN ${"x".repeat(V1_MAX_BYTES - 16)}\r\n`);
  strictEqual(unknown.length, V1_MAX_BYTES);
  strictEqual(parseProxyHeader(unknown).kind, "done");
  const tooLong = text(`PROXY UNKNOWN ${"x".repeat(V1_MAX_BYTES - 15)}\r\n`);
  strictEqual(reasonOf(parseProxyHeader(tooLong)), "v1 header: longer than 107 bytes");
  // Without a line end, it is invalid as soon as 107 bytes cannot hold the CRLF.
  const endless = text(`PROXY UNKNOWN ${"x".repeat(200)}`);
  deepStrictEqual(parseProxyHeader(endless.subarray(0, V1_MAX_BYTES - 2)), { kind: "need-more" });
  strictEqual(parseProxyHeader(endless.subarray(0, V1_MAX_BYTES - 1)).kind, "invalid");
});

Deno.test("PROXY v1: malformed lines are invalid, each with its reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", /not a PROXY protocol header/],
    ["PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol ""/],
    ["PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol "TCP5"/],
    ["PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", /unknown protocol "UDP4"/],
    ["PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", /one space apart/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /one space apart/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", /one space apart/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", /one space apart/],
    ["PROXY TCP4 ::1 5.6.7.8 1 2\r\n", /"::1" is not an IPv4 address/],
    ["PROXY TCP6 1.2.3.4 ::1 1 2\r\n", /"1.2.3.4" is not an IPv6 address/],
    ["PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n", /"5.6.7.256" is not an IPv4 address/],
    ["PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", /"01.2.3.4" is not an IPv4 address/],
    ["PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", /is not an IPv6 address/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /"65536" is not a port/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n", /"080" is not a port/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", /"-1" is not a port/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /line feed without carriage return/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", /carriage return without line feed/],
    ["PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", /not printable/],
    ["PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n", /not printable/],
    ["PROXZ", /not a PROXY protocol header/],
  ];
  for (const [line, reason] of cases) {
    const result = parseProxyHeader(text(line));
    strictEqual(result.kind, "invalid", line);
    strictEqual(
      reason.test(reasonOf(result)),
      true,
      `${JSON.stringify(line)}: ${reasonOf(result)}`,
    );
  }
});

Deno.test("PROXY v2: PROXY over TCP/IPv4 and TCP/IPv6, with the client's bytes after it", () => {
  const v4 = v2(0x21, 0x11, [203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0, 7]);
  deepStrictEqual(parseProxyHeader(concat(v4, text("hi"))), {
    kind: "done",
    version: 2,
    consumed: 28,
    ...IPV4,
  });
  assertEveryPrefixNeedsMore(v4);
  const v6block = new Uint8Array(36);
  v6block.set([0x20, 0x01, 0x0d, 0xb8], 0);
  v6block[15] = 7;
  v6block[31] = 1;
  v6block.set([0xff, 0xff, 0, 0], 32);
  const v6 = v2(0x21, 0x21, v6block);
  deepStrictEqual(parseProxyHeader(v6), { kind: "done", version: 2, consumed: 52, ...IPV6 });
  assertEveryPrefixNeedsMore(v6);
});

Deno.test("PROXY v2: TLVs are skipped, and what follows them is the client's", () => {
  // PP2_TYPE_ALPN "h2", then PP2_TYPE_NOOP of 3 bytes, as padding.
  const tlvs = [0x01, 0, 2, 0x68, 0x32, 0x04, 0, 3, 0, 0, 0];
  const header = v2(0x21, 0x11, [203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0, 7, ...tlvs]);
  deepStrictEqual(parseProxyHeader(concat(header, text("x"))), {
    kind: "done",
    version: 2,
    consumed: 16 + 12 + tlvs.length,
    ...IPV4,
  });
  assertEveryPrefixNeedsMore(header);
});

Deno.test("PROXY v2: LOCAL, UNSPEC and Unix addresses carry no client address", () => {
  const local = v2(0x20, 0x00, []);
  deepStrictEqual(parseProxyHeader(local), { kind: "done", version: 2, consumed: 16 });
  assertEveryPrefixNeedsMore(local);
  // LOCAL: the address block is discarded whatever the family byte says.
  const localWithBlock = v2(0x20, 0x11, [1, 2, 3]);
  deepStrictEqual(parseProxyHeader(localWithBlock), { kind: "done", version: 2, consumed: 19 });
  const unspec = v2(0x21, 0x00, []);
  deepStrictEqual(parseProxyHeader(unspec), { kind: "done", version: 2, consumed: 16 });
  const unix = v2(0x21, 0x31, new Uint8Array(216));
  deepStrictEqual(parseProxyHeader(unix), { kind: "done", version: 2, consumed: 232 });
  assertEveryPrefixNeedsMore(unix);
});

Deno.test("PROXY v2: malformed headers are invalid as soon as the wrong byte is seen", () => {
  const cases: Array<[Uint8Array, RegExp]> = [
    [
      Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b),
      /not a PROXY/,
    ],
    [Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x01), /not a PROXY/],
    [v2(0x11, 0x11, new Uint8Array(12)).subarray(0, 13), /unsupported version 1/],
    [v2(0x31, 0x11, new Uint8Array(12)), /unsupported version 3/],
    [v2(0x22, 0x11, new Uint8Array(12)).subarray(0, 13), /unknown command 2/],
    [v2(0x21, 0x41, new Uint8Array(12)).subarray(0, 14), /unknown address family 4/],
    [v2(0x21, 0x13, new Uint8Array(12)).subarray(0, 14), /unknown transport protocol 3/],
    [v2(0x21, 0x12, new Uint8Array(12)).subarray(0, 14), /other than TCP/],
    [v2(0x21, 0x20, new Uint8Array(36)), /other than TCP/],
    [v2(0x21, 0x11, new Uint8Array(11)).subarray(0, 16), /length 11 is too short/],
    [v2(0x21, 0x21, new Uint8Array(35)), /length 35 is too short/],
    [v2(0x21, 0x31, new Uint8Array(215)), /length 215 is too short/],
    [v2(0x21, 0x11, new Uint8Array(V2_MAX_PAYLOAD + 1)).subarray(0, 16), /more than 4096/],
  ];
  for (const [bytes, reason] of cases) {
    const result = parseProxyHeader(bytes);
    strictEqual(
      reason.test(reasonOf(result)),
      true,
      `${[...bytes.subarray(0, 16)]}: ${reasonOf(result)}`,
    );
  }
  // The longest allowed payload is fine.
  const longest = v2(0x21, 0x11, new Uint8Array(V2_MAX_PAYLOAD));
  strictEqual(parseProxyHeader(longest).kind, "done");
});

Deno.test("PROXY: anything else is invalid from its first byte", () => {
  for (const garbage of ["GET / HTTP/1.1\r\n", "hello", "\r\n\r\nX", "\x00", "P\r\n"]) {
    strictEqual(parseProxyHeader(text(garbage)).kind, "invalid", JSON.stringify(garbage));
  }
  deepStrictEqual(parseProxyHeader(new Uint8Array(0)), { kind: "need-more" });
  strictEqual(reasonOf(parseProxyHeader(text("G"))), "not a PROXY protocol header");
});

Deno.test("PROXY encoders: round trips through the parser, v1 and v2", () => {
  const cases = [
    IPV4,
    IPV6,
    {
      source: { address: "0.0.0.0", port: 0 },
      destination: { address: "255.255.255.255", port: 65535 },
    },
    // Mixed families go as IPv6, the IPv4 one mapped.
    { source: { address: "10.1.0.7", port: 1234 }, destination: { address: "::1", port: 7 } },
  ];
  for (const addresses of cases) {
    for (const version of [1, 2] as const) {
      const header = encodeProxyHeader(version, addresses);
      const parsed = parseProxyHeader(concat(header, text("after")));
      if (parsed.kind !== "done") throw new Error(`v${version}: ${JSON.stringify(parsed)}`);
      strictEqual(parsed.version, version);
      strictEqual(parsed.consumed, header.length);
      const mixed = addresses.source.address === "10.1.0.7";
      deepStrictEqual(parsed.source, {
        address: mixed ? "::ffff:10.1.0.7" : addresses.source.address,
        port: addresses.source.port,
      });
      deepStrictEqual(parsed.destination, addresses.destination);
      assertEveryPrefixNeedsMore(header);
    }
  }
  deepStrictEqual(parseProxyHeader(encodeProxyV1()), { kind: "done", version: 1, consumed: 15 });
  deepStrictEqual(parseProxyHeader(encodeProxyV2()), { kind: "done", version: 2, consumed: 16 });
  const withTlvs = encodeProxyV2(IPV4, { tlvs: Uint8Array.of(0x04, 0, 1, 0) });
  deepStrictEqual(parseProxyHeader(withTlvs), { kind: "done", version: 2, consumed: 32, ...IPV4 });
});

Deno.test("PROXY encoders: refuse what no receiver would take", () => {
  const source = { address: "10.0.0.1", port: 1 };
  throws(() => encodeProxyV1({ source, destination: { address: "localhost", port: 7 } }), {
    name: "RangeError",
    message: 'invalid PROXY address "localhost"',
  });
  throws(
    () => encodeProxyV2({ source, destination: { address: "fe80::1%eth0", port: 7 } }),
    RangeError,
  );
  throws(() => encodeProxyV1({ source, destination: { address: "10.0.0.2", port: 65536 } }), {
    message: "invalid PROXY port 65536: expected 0 to 65535",
  });
  throws(() => encodeProxyV2(undefined, { tlvs: new Uint8Array(V2_MAX_PAYLOAD + 1) }), RangeError);
});
