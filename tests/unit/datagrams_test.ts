/**
 * The UDP decisions without sockets: which datagrams the server answers
 * (admission/datagrams.ts, admission/buckets.ts), the bench's datagram layout
 * and checks (bench/datagram.ts), and the report lines (bench/udp_report.ts).
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { TokenBuckets } from "../../admission/buckets.ts";
import { parseCidr } from "../../admission/cidr.ts";
import {
  DATAGRAM_DEFAULTS,
  DatagramPolicy,
  isServicePort,
  SERVICE_PORTS,
} from "../../admission/datagrams.ts";
import { Guard } from "../../admission/guard.ts";
import {
  checkBody,
  checkUdpOptions,
  DATAGRAM_MAX,
  readHeader,
  writeDatagram,
} from "../../bench/datagram.ts";
import { Pattern } from "../../bench/pattern.ts";
import { udpLines, udpWhat } from "../../bench/udp_report.ts";
import { datagramSummary, noDatagrams } from "../../transport/udp.ts";
import { summary, total } from "../../server/stats.ts";
import { noRefusals } from "../../admission/refusals.ts";

Deno.test("datagrams: the ports the issue names are never answered, nor port 0", () => {
  for (const port of [0, 7, 13, 17, 19, 37, 53, 69, 111, 123, 137, 161, 389, 1900, 5353, 11211]) {
    ok(isServicePort(port), `port ${port}`);
    ok(SERVICE_PORTS.includes(port));
  }
  for (const port of [1024, 8000, 40000, 65535]) ok(!isServicePort(port), `port ${port}`);
});

Deno.test("datagrams: a service port, the server's own port, then allow/deny, then the rate", () => {
  let clock = 0;
  const guard = new Guard({ deny: [parseCidr("192.0.2.0/24")] });
  const policy = new DatagramPolicy({ rate: 1, burst: 1, guard, ownPort: 8000, now: () => clock });
  equal(policy.check("10.0.0.1", 53), "service-port");
  equal(policy.check("10.0.0.1", 8000), "service-port");
  equal(policy.check("192.0.2.1", 53), "service-port"); // the cheapest check names it
  equal(policy.check("192.0.2.1", 40000), "denied");
  // None of those spent a token.
  equal(policy.check("10.0.0.1", 40000), "ok");
  equal(policy.check("10.0.0.1", 40001), "rate"); // per address, whatever the port
  clock += 999;
  equal(policy.check("10.0.0.1", 40000), "rate");
  clock += 1;
  equal(policy.check("10.0.0.1", 40000), "ok");
  equal(guard.refusals.denied, 0); // the guard's connection counts are not touched
});

Deno.test("datagrams: the rate limit allows the burst, then the rate; sources are separate", () => {
  let clock = 0;
  const policy = new DatagramPolicy({ rate: 100, burst: 10, now: () => clock });
  const answered = (host: string, n: number) =>
    Array.from({ length: n }, () => policy.check(host, 40000)).filter((v) => v === "ok").length;
  equal(answered("10.0.0.1", 50), 10);
  equal(answered("10.0.0.2", 50), 10);
  clock += 100; // 10 tokens back at 100/s
  equal(answered("10.0.0.1", 50), 10);
  // IPv6 sources share a bucket per /64, as TCP's per-address limits do.
  equal(answered("2001:db8:1:2::1", 6), 6);
  equal(answered("2001:db8:1:2::ffff", 6), 4);
  // IPv4-mapped IPv6 is the IPv4 address.
  equal(answered("::ffff:10.0.0.1", 1), 0);
});

Deno.test("datagrams: defaults, and limits checked as the guard checks them", () => {
  deepStrictEqual(new DatagramPolicy().limit, {
    rate: DATAGRAM_DEFAULTS.rate,
    burst: DATAGRAM_DEFAULTS.burst,
  });
  deepStrictEqual(new DatagramPolicy({ rate: 50 }).limit, { rate: 50, burst: 50 });
  deepStrictEqual(new DatagramPolicy({ burst: 7 }).limit, {
    rate: DATAGRAM_DEFAULTS.rate,
    burst: 7,
  });
  throws(() => new DatagramPolicy({ rate: 0 }), {
    message: "invalid rate 0: must be a positive finite number",
  });
  throws(() => new DatagramPolicy({ burst: 1.5 }), {
    message: "invalid burst 1.5: must be a positive integer",
  });
  throws(() => new DatagramPolicy({ maxSources: 0 }), {
    message: "invalid maxSources 0: must be a positive integer",
  });
});

Deno.test("token buckets: memory stays bounded under a flood of distinct sources", () => {
  const buckets = new TokenBuckets(1_000);
  const limit = { rate: 1, burst: 1 };
  for (let i = 0; i < 100_000; i++) {
    buckets.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, limit, 0);
  }
  equal(buckets.size, 1_000);
  // Buckets that refilled are dropped on the next take.
  buckets.take("192.0.2.1", limit, 10_000);
  equal(buckets.size, 1);
});

Deno.test("bench datagrams: header and body round-trip, and damage is told apart", () => {
  const pattern = new Pattern(1_000);
  const sent = new Uint8Array(1_000);
  writeDatagram(sent, pattern, 12, 345_678);
  deepStrictEqual(readHeader(sent), { flow: 12, seq: 345_678 });
  equal(checkBody(sent, pattern, 12, 345_678, 1_000), "echoed");
  equal(checkBody(sent, pattern, 12, 345_679, 1_000), "corrupted"); // another datagram's body
  equal(checkBody(sent, pattern, 13, 345_678, 1_000), "corrupted"); // another socket's
  equal(checkBody(sent.subarray(0, 999), pattern, 12, 345_678, 1_000), "short");
  equal(checkBody(new Uint8Array([...sent, 0]), pattern, 12, 345_678, 1_000), "corrupted");
  const altered = sent.slice();
  altered[500] ^= 0x80;
  equal(checkBody(altered, pattern, 12, 345_678, 1_000), "corrupted");
  // The smallest datagram is its header alone.
  const header = new Uint8Array(8);
  writeDatagram(header, pattern, 1, 2);
  equal(checkBody(header, pattern, 1, 2, 8), "echoed");
});

Deno.test("bench datagrams: the UDP options are checked", () => {
  const base = { size: 64, mode: "pingpong" };
  checkUdpOptions({ ...base, udp: true });
  checkUdpOptions({ ...base, udp: true, window: 32 });
  checkUdpOptions({ ...base, udp: true, size: DATAGRAM_MAX });
  throws(() => checkUdpOptions({ ...base, udp: true, size: DATAGRAM_MAX + 1 }), RangeError);
  throws(() => checkUdpOptions({ ...base, udp: true, mode: "stream" }), {
    message: "udp runs pingpong only, not stream",
  });
  throws(() => checkUdpOptions({ ...base, udp: true, window: 0 }), RangeError);
  throws(() => checkUdpOptions({ ...base, window: 2 }), { message: "window applies to udp only" });
});

Deno.test("bench report: UDP lines, with a hint about the reply limit when datagrams were lost", () => {
  equal(udpWhat(100, "64 B", 4, false), "udp pingpong, 100 sockets × 64 B, window 4");
  const figures = {
    sockets: 100,
    window: 1,
    sent: 3_381,
    echoed: 3_081,
    lost: 300,
    late: 2,
    duplicated: 1,
    reordered: 3,
    lossWaitMs: 1_000,
  };
  const lines = udpLines(figures);
  equal(lines[0], "  datagrams    3,381 sent, 3,081 echoed (2 late), from 100 sockets");
  equal(lines[1], "  lost         300 (8.87 %)  (1 duplicated, 3 reordered)");
  ok(lines[2].includes("serve --udp-rate, 1,000/s by default"));
  equal(udpLines({ ...figures, lost: 0 }).length, 2);
});

Deno.test("server summary: datagrams are added to the TCP summary and summed over workers", () => {
  const datagrams = { ...noDatagrams(), received: 4, echoed: 2, bytesEchoed: 20 };
  const one = {
    open: 0,
    served: 1,
    bytesIn: 5,
    bytesOut: 5,
    refusals: noRefusals(),
    datagrams: { ...datagrams, dropped: { ...datagrams.dropped, "service-port": 1, rate: 1 } },
  };
  equal(
    summary(one),
    "served 1 connection, echoed 5 bytes; datagrams: 2 echoed (20 bytes), 2 dropped (service-port 1, rate 1)",
  );
  const sum = total([one, { ...one, datagrams: undefined }, one]);
  equal(sum.datagrams?.echoed, 4);
  equal(sum.datagrams?.dropped.rate, 2);
  equal(total([{ ...one, datagrams: undefined }]).datagrams, undefined);
  equal(datagramSummary(noDatagrams()), "datagrams: 0 echoed (0 bytes), 0 dropped");
});
