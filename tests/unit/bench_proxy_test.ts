/** The load tester's PROXY headers: source addresses spread over a range, in turn. */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { checkProxyOptions, ProxyHeaders } from "../../bench/proxy.ts";
import { parseProxyHeader } from "../../proxy/header.ts";

const server = { address: "127.0.0.1", port: 8000 };

/** The source addresses of the next `n` headers. */
function sources(headers: ProxyHeaders, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const parsed = parseProxyHeader(headers.next(1000 + i, server));
    if (parsed.kind !== "done" || parsed.source === undefined) throw new Error("no source");
    return parsed.source.address;
  });
}

Deno.test("bench PROXY sources: every address of an IPv4 block in turn, then again", () => {
  const all = sources(new ProxyHeaders(2, "10.1.0.0/24"), 257);
  strictEqual(new Set(all).size, 256);
  deepStrictEqual(all.slice(0, 2), ["10.1.0.0", "10.1.0.1"]);
  deepStrictEqual(all.slice(255), ["10.1.0.255", "10.1.0.0"]);
  deepStrictEqual(sources(new ProxyHeaders(1, "10.1.0.7/32"), 3), [
    "10.1.0.7",
    "10.1.0.7",
    "10.1.0.7",
  ]);
});

Deno.test("bench PROXY sources: carries across bytes, and a /0 stays exact", () => {
  const headers = new ProxyHeaders(1, "0.0.0.0/0");
  const at = sources(headers, 257);
  deepStrictEqual(at.slice(255, 257), ["0.0.0.255", "0.0.1.0"]);
});

Deno.test("bench PROXY sources: IPv6 blocks wider than a /64 give one source per /64", () => {
  deepStrictEqual(sources(new ProxyHeaders(2, "2001:db8:1::/48"), 3), [
    "2001:db8:1::",
    "2001:db8:1:1::",
    "2001:db8:1:2::",
  ]);
  deepStrictEqual(sources(new ProxyHeaders(1, "2001:db8::100/120"), 2), [
    "2001:db8::100",
    "2001:db8::101",
  ]);
});

Deno.test("bench PROXY headers: without a range, the connection's own address; else UNKNOWN/LOCAL", () => {
  const own = { address: "127.0.0.1", port: 5555 };
  const parsed = parseProxyHeader(new ProxyHeaders(1).next(5555, server, own));
  deepStrictEqual(parsed, {
    kind: "done",
    version: 1,
    consumed: "PROXY TCP4 127.0.0.1 127.0.0.1 5555 8000\r\n".length,
    source: own,
    destination: server,
  });
  deepStrictEqual(parseProxyHeader(new ProxyHeaders(2).next(0, undefined)), {
    kind: "done",
    version: 2,
    consumed: 16,
  });
});

Deno.test("bench PROXY options: checked, each wrong one named", () => {
  checkProxyOptions({});
  checkProxyOptions({ proxy: 1 });
  throws(() => checkProxyOptions({ proxy: 3 as 1 }), { message: "proxy must be 1 or 2, got 3" });
  throws(() => checkProxyOptions({ proxySources: "10.0.0.0/8" }), {
    message: "proxySources needs proxy",
  });
  throws(() => checkProxyOptions({ proxy: 2, proxySources: "10.0.0.0/40" }), {
    message: 'invalid CIDR "10.0.0.0/40": prefix length must be 0-32',
  });
});
