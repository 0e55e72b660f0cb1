import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { addressKey, type Cidr, cidrContainsIp, parseCidr, parseIp } from "../../admission/cidr.ts";
import { Guard } from "../../admission/guard.ts";

function bytesOf(cidr: Cidr): number[] {
  return [...cidr.bytes];
}

/** The IPv6 block `address/prefix`, built from the canonical address text. */
function block6(address: string, prefix: number): Cidr {
  const ip = parseIp(address);
  ok(ip !== null && ip.v === 6, address);
  return { v: 6, bytes: ip.bytes, prefix };
}

/** Whether `address` lies inside `cidr`, as an allow list decides it. */
function cidrContains(cidr: Cidr, address: string): boolean {
  return new Guard({ allow: [cidr] }).admit(address).ok;
}

Deno.test("parseCidr: IPv4 with prefix", () => {
  const cidr = parseCidr("10.0.0.0/8");
  strictEqual(cidr.v, 4);
  strictEqual(cidr.prefix, 8);
  deepStrictEqual(bytesOf(cidr), [10, 0, 0, 0]);
});

Deno.test("parseCidr: bare addresses are single-host blocks", () => {
  strictEqual(parseCidr("192.0.2.1").prefix, 32);
  strictEqual(parseCidr("::1").prefix, 128);
  strictEqual(parseCidr("2001:db8::1").v, 6);
});

Deno.test("parseCidr: host bits are cleared and whitespace trimmed", () => {
  deepStrictEqual(bytesOf(parseCidr(" 10.1.2.3/8 ")), [10, 0, 0, 0]);
  deepStrictEqual(bytesOf(parseCidr("192.168.255.255/20")), [192, 168, 240, 0]);
  deepStrictEqual(parseCidr("2001:db8:ffff::1/33"), block6("2001:db8:8000::", 33));
});

Deno.test("parseCidr: IPv6 forms", () => {
  deepStrictEqual(parseCidr("2001:DB8:0:0:0:0:0:0/32"), block6("2001:db8::", 32));
  deepStrictEqual(parseCidr("::/0"), block6("::", 0));
  deepStrictEqual(parseCidr("fe80::/10"), block6("fe80::", 10));
  deepStrictEqual(parseCidr("1:2:3:4:5:6:7:8"), block6("1:2:3:4:5:6:7:8", 128));
  deepStrictEqual(parseCidr("1::8"), block6("1:0:0:0:0:0:0:8", 128));
  deepStrictEqual(parseCidr("1:2:3:4:5:6:7::"), block6("1:2:3:4:5:6:7:0", 128));
  deepStrictEqual(parseCidr("::ffff:10.0.0.0/104"), block6("::ffff:a00:0", 104));
  deepStrictEqual(parseCidr("1:2:3:4:5:6:1.2.3.4"), block6("1:2:3:4:5:6:102:304", 128));
});

Deno.test("parseCidr: bad input throws RangeError naming the value", () => {
  const cases: [string, string][] = [
    ["10.0.0.0/33", 'invalid CIDR "10.0.0.0/33": prefix length must be 0-32'],
    ["10.0.0.0/-1", 'invalid CIDR "10.0.0.0/-1": prefix length must be 0-32'],
    ["10.0.0.0/", 'invalid CIDR "10.0.0.0/": prefix length must be 0-32'],
    ["10.0.0.0/08", 'invalid CIDR "10.0.0.0/08": prefix length must be 0-32'],
    ["10.0.0.0/8/9", 'invalid CIDR "10.0.0.0/8/9": prefix length must be 0-32'],
    ["10.0.0.0/abc", 'invalid CIDR "10.0.0.0/abc": prefix length must be 0-32'],
    ["::/129", 'invalid CIDR "::/129": prefix length must be 0-128'],
    ["", 'invalid CIDR "": address is missing'],
    ["/8", 'invalid CIDR "/8": address is missing'],
    ["256.0.0.0/8", 'invalid CIDR "256.0.0.0/8": "256.0.0.0" is not a valid IPv4 address'],
    ["10.0.0/8", 'invalid CIDR "10.0.0/8": "10.0.0" is not a valid IPv4 address'],
    ["10.0.0.0.0", 'invalid CIDR "10.0.0.0.0": "10.0.0.0.0" is not a valid IPv4 address'],
    ["010.0.0.0/8", 'invalid CIDR "010.0.0.0/8": "010.0.0.0" is not a valid IPv4 address'],
    ["example.com", 'invalid CIDR "example.com": "example.com" is not a valid IPv4 address'],
    ["1::2::3/64", 'invalid CIDR "1::2::3/64": "1::2::3" is not a valid IPv6 address'],
    [":::/64", 'invalid CIDR ":::/64": ":::" is not a valid IPv6 address'],
    [
      "1:2:3:4:5:6:7:8:9",
      'invalid CIDR "1:2:3:4:5:6:7:8:9": "1:2:3:4:5:6:7:8:9" is not a valid IPv6 address',
    ],
    [
      "1:2:3:4:5:6:7::8",
      'invalid CIDR "1:2:3:4:5:6:7::8": "1:2:3:4:5:6:7::8" is not a valid IPv6 address',
    ],
    ["1:2:3", 'invalid CIDR "1:2:3": "1:2:3" is not a valid IPv6 address'],
    ["12345::", 'invalid CIDR "12345::": "12345::" is not a valid IPv6 address'],
    ["g::", 'invalid CIDR "g::": "g::" is not a valid IPv6 address'],
    [":1::", 'invalid CIDR ":1::": ":1::" is not a valid IPv6 address'],
    ["1::1.2.3", 'invalid CIDR "1::1.2.3": "1::1.2.3" is not a valid IPv6 address'],
    ["fe80::1%eth0/64", 'invalid CIDR "fe80::1%eth0/64": zone identifiers are not allowed'],
  ];
  for (const [text, message] of cases) {
    throws(() => parseCidr(text), (error: unknown) => {
      ok(error instanceof RangeError, `${text}: expected RangeError`);
      strictEqual(error.message, message);
      return true;
    });
  }
});

Deno.test("parseIp: accepts what Deno reports, rejects the rest", () => {
  deepStrictEqual(parseIp("127.0.0.1"), { v: 4, bytes: new Uint8Array([127, 0, 0, 1]) });
  const loopback = new Uint8Array(16);
  loopback[15] = 1;
  deepStrictEqual(parseIp("::1"), { v: 6, bytes: loopback });
  strictEqual(parseIp("fe80::1%eth0")?.v, 6);
  strictEqual(parseIp("fe80::1%"), null);
  strictEqual(parseIp(""), null);
  strictEqual(parseIp("1.2.3.4 "), null);
  strictEqual(parseIp("[::1]"), null);
});

Deno.test("CIDR matching: IPv4", () => {
  const net = parseCidr("192.168.0.0/16");
  ok(cidrContains(net, "192.168.0.1"));
  ok(cidrContains(net, "192.168.255.255"));
  ok(!cidrContains(net, "192.169.0.0"));
  ok(!cidrContains(net, "10.0.0.1"));
  ok(!cidrContains(net, "not an address"));

  const odd = parseCidr("10.0.0.0/12"); // boundary inside an octet
  ok(cidrContains(odd, "10.15.255.255"));
  ok(!cidrContains(odd, "10.16.0.0"));

  const host = parseCidr("10.0.0.7");
  ok(cidrContains(host, "10.0.0.7"));
  ok(!cidrContains(host, "10.0.0.6"));
});

Deno.test("CIDR matching: /0 matches every address of its family", () => {
  const any4 = parseCidr("0.0.0.0/0");
  ok(cidrContains(any4, "1.2.3.4"));
  ok(cidrContains(any4, "255.255.255.255"));
  ok(cidrContains(any4, "::ffff:1.2.3.4"));
  ok(!cidrContains(any4, "2001:db8::1"));

  const any6 = parseCidr("::/0");
  ok(cidrContains(any6, "2001:db8::1"));
  ok(cidrContains(any6, "::"));
});

Deno.test("CIDR matching: IPv6 including /128", () => {
  const net = parseCidr("2001:db8::/32");
  ok(cidrContains(net, "2001:db8::1"));
  ok(cidrContains(net, "2001:DB8:ffff:ffff:ffff:ffff:ffff:ffff"));
  ok(!cidrContains(net, "2001:db9::"));
  ok(!cidrContains(net, "10.0.0.1"));

  const host = parseCidr("2001:db8::1/128");
  ok(cidrContains(host, "2001:db8::1"));
  ok(cidrContains(host, "2001:db8:0:0:0:0:0:1"));
  ok(!cidrContains(host, "2001:db8::2"));

  ok(cidrContains(parseCidr("::1"), "::1"));
  ok(cidrContains(parseCidr("fe80::/10"), "febf::1%eth0"));
  ok(!cidrContains(parseCidr("fe80::/10"), "fec0::1"));
});

Deno.test("CIDR matching: IPv4-mapped IPv6 matches IPv4 rules and back", () => {
  const net = parseCidr("127.0.0.0/8");
  ok(cidrContains(net, "::ffff:127.0.0.1"));
  ok(cidrContains(net, "::FFFF:7f00:1"));
  ok(!cidrContains(net, "::ffff:128.0.0.1"));
  // Same low 32 bits but not mapped: must not match.
  ok(!cidrContains(net, "::7f00:1"));
  ok(!cidrContains(net, "64:ff9b::127.0.0.1"));

  const mapped = parseCidr("::ffff:0:0/96");
  ok(cidrContains(mapped, "1.2.3.4"));
  ok(cidrContains(mapped, "::ffff:1.2.3.4"));
  ok(!cidrContains(mapped, "::1"));
  ok(cidrContains(parseCidr("::ffff:10.0.0.0/104"), "10.9.9.9"));
  ok(!cidrContains(parseCidr("::ffff:10.0.0.0/104"), "11.0.0.0"));
});

Deno.test("cidrContainsIp: works on a pre-parsed address", () => {
  const ip = parseIp("::ffff:10.1.2.3");
  ok(ip !== null);
  ok(cidrContainsIp(parseCidr("10.0.0.0/8"), ip));
  ok(!cidrContainsIp(parseCidr("11.0.0.0/8"), ip));
});

Deno.test("addressKey: IPv4 as is, mapped IPv6 as IPv4", () => {
  strictEqual(addressKey("10.0.0.1"), "10.0.0.1");
  strictEqual(addressKey("::ffff:10.0.0.1"), "10.0.0.1");
  strictEqual(addressKey("::ffff:a00:1"), "10.0.0.1");
});

Deno.test("addressKey: other IPv6 grouped by /64", () => {
  strictEqual(addressKey("2001:db8:1:2::1"), "2001:db8:1:2::/64");
  strictEqual(addressKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  strictEqual(addressKey("2001:DB8:1:2:0:0:0:7"), "2001:db8:1:2::/64");
  strictEqual(addressKey("2001:db8:1:3::1"), "2001:db8:1:3::/64");
  strictEqual(addressKey("2001:db8::5"), "2001:db8::/64");
  strictEqual(addressKey("::1"), "::/64");
  strictEqual(addressKey("fe80::1%eth0"), "fe80::/64");
  strictEqual(addressKey("0:0:0:1::"), "0:0:0:1::/64");
});

Deno.test("addressKey: unparseable input is its own key", () => {
  strictEqual(addressKey("not:an:address"), "not:an:address");
  strictEqual(addressKey("localhost"), "localhost");
});
