/**
 * Stream faults end to end, on both engines: a server with `faults`, and a
 * raw `Deno.connect` client that measures what each fault promises (the
 * latency, the bandwidth, the size of what it reads, the bytes before a FIN
 * or a reset, the silence of a stall, the share of connections selected).
 */
import { equal, ok } from "node:assert/strict";
import { type IoEngine, serve } from "../server.ts";
import { listenUnix } from "../transport/unix.ts";
import { opensslMissing, testCerts } from "./certs.ts";
import { parseCidr } from "../admission/cidr.ts";
import {
  pattern,
  readN,
  readToEnd,
  readUntilGone,
  sameBytes,
  testEngines,
  within,
  writeAll,
} from "./helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;

function faulty(io: IoEngine, ...faults: string[]) {
  return serve({ ...local, io, faults, drainTimeoutMs: 1000 });
}

/** Writes `bytes` and ignores the write failing once the server has ended the connection. */
async function sendIgnoringEnd(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, bytes);
  } catch {
    // The server closed or reset on purpose: the test looks at what was read.
  }
}

testEngines(
  "fault delay=20ms,jitter=5ms: every one of 100 echoes takes 15 ms more at least, order kept",
  async (io) => {
    await using server = faulty(io, "delay=20ms,jitter=5ms");
    using conn = await Deno.connect(server.addr);
    const times: number[] = [];
    for (let i = 0; i < 100; i++) {
      const message = pattern(64, i);
      const start = performance.now();
      await writeAll(conn, message);
      ok(sameBytes(await readN(conn, 64), message), `echo ${i} intact and in order`);
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    ok(times[0] >= 14.5, `the fastest echo took ${times[0].toFixed(1)} ms, under 20 - 5`);
    const median = times[50];
    ok(median <= 45, `the median echo took ${median.toFixed(1)} ms, far over 20 ± 5`);
  },
);

testEngines("fault rate=2MiB/s: 2 MiB come back at 2 MiB/s within 10 %", async (io) => {
  const rate = 2 * 1024 * 1024;
  await using server = faulty(io, `rate=${rate}`);
  using conn = await Deno.connect(server.addr);
  // Timed from the first byte sent: the pacing starts then (timing from the first byte received
  // would count what a late reader finds queued in the kernel as speed).
  const start = performance.now();
  const sending = sendIgnoringEnd(conn, pattern(rate));
  const echoed = await readN(conn, rate);
  const seconds = (performance.now() - start) / 1000;
  await sending;
  equal(echoed.length, rate);
  const measured = rate / seconds;
  ok(
    measured <= rate * 1.1 && measured >= rate * 0.9,
    `echoed at ${(measured / 1048576).toFixed(2)} MiB/s, not 2 MiB/s ± 10 %`,
  );
});

testEngines("fault read-rate=2MiB/s: the server reads 2 MiB at 2 MiB/s within 10 %", async (io) => {
  const rate = 2 * 1024 * 1024;
  await using server = faulty(io, `read-rate=2MiB/s`);
  using conn = await Deno.connect(server.addr);
  const start = performance.now(); // from the first byte sent, as above
  const sending = sendIgnoringEnd(conn, pattern(rate));
  await readN(conn, rate);
  const measured = rate / ((performance.now() - start) / 1000);
  await sending;
  ok(
    measured <= rate * 1.1 && measured >= rate * 0.9,
    `read at ${(measured / 1048576).toFixed(2)} MiB/s, not 2 MiB/s ± 10 %`,
  );
});

testEngines(
  "fault slice=3,slice-delay=5ms: the echo comes in pieces of at most 3 bytes",
  async (io) => {
    await using server = faulty(io, "slice=3,slice-delay=5ms");
    using conn = await Deno.connect(server.addr);
    const message = pattern(30);
    await writeAll(conn, message);
    const got = new Uint8Array(30);
    let filled = 0;
    let largest = 0;
    let reads = 0;
    await within(
      (async () => {
        while (filled < 30) {
          const n = await conn.read(got.subarray(filled));
          if (n === null) break;
          largest = Math.max(largest, n);
          filled += n;
          reads++;
        }
      })(),
      "the sliced echo",
    );
    ok(sameBytes(got, message), "every byte back, in order");
    ok(largest <= 3, `a read of ${largest} bytes: slices are 3 at most`);
    ok(reads >= 10, `${reads} reads for 30 bytes in slices of 3`);
  },
);

testEngines("fault close-after=100000: exactly 100,000 bytes, then a FIN", async (io) => {
  await using server = faulty(io, "close-after=100000");
  using conn = await Deno.connect(server.addr);
  const sent = pattern(300_000);
  const [, { bytes, end }] = await Promise.all([sendIgnoringEnd(conn, sent), readUntilGone(conn)]);
  equal(end, "eof");
  equal(bytes.length, 100_000);
  ok(sameBytes(bytes, sent.subarray(0, 100_000)));
});

testEngines("fault reset-after=100000: exactly 100,000 bytes, then a reset", async (io) => {
  await using server = faulty(io, "reset-after=100000");
  using conn = await Deno.connect(server.addr);
  const sent = pattern(300_000);
  const [, { bytes, end }] = await Promise.all([sendIgnoringEnd(conn, sent), readUntilGone(conn)]);
  equal(end, "reset");
  equal(bytes.length, 100_000);
  ok(sameBytes(bytes, sent.subarray(0, 100_000)));
  equal(server.stats().faults?.["reset-after"], 1);
});

testEngines(
  "fault reset-after=200ms: a connection waiting to read is reset when the time is up",
  async (io) => {
    await using server = faulty(io, "reset-after=200ms");
    using conn = await Deno.connect(server.addr);
    await writeAll(conn, pattern(10));
    const start = performance.now();
    const { bytes, end } = await readUntilGone(conn);
    equal(end, "reset");
    equal(bytes.length, 10);
    ok(performance.now() - start >= 150, "not before its time");
  },
);

testEngines(
  "fault stall-after=1000: 1,000 bytes echoed, then silence on an open connection",
  async (io) => {
    await using server = faulty(io, "stall-after=1000");
    using conn = await Deno.connect(server.addr);
    await writeAll(conn, pattern(1000));
    equal((await readN(conn, 1000)).length, 1000);
    await writeAll(conn, pattern(1000));
    const buffer = new Uint8Array(16);
    const read = conn.read(buffer).then((n) => (n === null ? "eof" : `${n} bytes`), String);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quiet = new Promise<string>((resolve) =>
      timer = setTimeout(() => resolve("silent"), 500)
    );
    equal(await Promise.race([read, quiet]), "silent", "nothing, not even an end, for 500 ms");
    clearTimeout(timer);
    conn.close();
    await read;
  },
);

testEngines("fault corrupt=1: each echoed chunk has exactly one bit flipped", async (io) => {
  await using server = faulty(io, "corrupt=1");
  using conn = await Deno.connect(server.addr);
  const message = pattern(100);
  await writeAll(conn, message);
  const echoed = await readN(conn, 100);
  let bits = 0;
  for (let i = 0; i < 100; i++) {
    let diff = echoed[i] ^ message[i];
    while (diff !== 0) {
      bits += diff & 1;
      diff >>= 1;
    }
  }
  ok(bits >= 1 && bits <= 2, `${bits} bits flipped in 100 bytes echoed in one or two chunks`);
});

testEngines("fault slow-close=300ms: the server closes 300 ms after the client did", async (io) => {
  await using server = faulty(io, "slow-close=300ms");
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, pattern(5));
  await readN(conn, 5);
  const start = performance.now();
  await conn.closeWrite();
  await readToEnd(conn);
  ok(performance.now() - start >= 280, "the FIN came no sooner than asked");
});

testEngines(
  "fault refuse=1,share=0.5: about half of 400 connections are reset at once",
  async (io) => {
    await using server = faulty(io, "refuse=1,share=0.5");
    let reset = 0;
    const one = async () => {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect(server.addr);
      } catch (error) {
        // Reset before the connect could even say it was made: at once indeed.
        if (error instanceof Deno.errors.ConnectionReset) return void reset++;
        throw error;
      }
      using _conn = conn;
      const { bytes, end } = await Promise.all([
        sendIgnoringEnd(conn, pattern(1)),
        (async () => {
          await conn.closeWrite().catch(() => {});
          return await readUntilGone(conn);
        })(),
      ]).then(([, outcome]) => outcome);
      if (end === "reset" && bytes.length === 0) reset++;
    };
    for (let batch = 0; batch < 20; batch++) await Promise.all(Array.from({ length: 20 }, one));
    ok(reset >= 120 && reset <= 280, `${reset} of 400 reset: not 30-70 %`);
    equal(server.stats().faults?.refuse, reset);
  },
);

Deno.test("fault close-after over a Unix socket: exactly the bytes asked for, then the end", async () => {
  const path = await Deno.makeTempFile({ suffix: ".sock" });
  await Deno.remove(path);
  await using server = serve({ listener: await listenUnix(path), faults: ["close-after=10"] });
  using conn = await Deno.connect({ transport: "unix", path });
  const [, { bytes, end }] = await Promise.all([
    sendIgnoringEnd(conn, pattern(100)),
    readUntilGone(conn),
  ]);
  equal(end, "eof");
  equal(bytes.length, 10);
  equal(server.stats().faulted, 1);
});

testEngines("no fault asked for: no fault counts at all", async (io) => {
  await using server = serve({ ...local, io });
  using conn = await Deno.connect(server.addr);
  await writeAll(conn, pattern(10));
  await readN(conn, 10);
  equal(server.stats().faults, undefined);
});

const noOpenssl = await opensslMissing();

testEngines(
  `fault over TLS: delay=50ms adds its latency, close-after=1000 ends after exactly 1,000 bytes${
    noOpenssl === undefined ? "" : ` (ignored: ${noOpenssl})`
  }`,
  async (io) => {
    const { cert, key, ca } = await testCerts();
    await using server = serve({
      ...local,
      io,
      tls: { cert, key },
      faults: ["delay=50ms,close-after=1000"],
      drainTimeoutMs: 1000,
    });
    using conn = await Deno.connectTls({ ...local, port: server.addr.port, caCerts: [ca] });
    const start = performance.now();
    await writeAll(conn, pattern(10));
    equal((await readN(conn, 10)).length, 10);
    ok(performance.now() - start >= 49, "the echo over TLS waited its delay");
    const [, { bytes, end }] = await Promise.all([
      sendIgnoringEnd(conn, pattern(5000, 1)),
      readUntilGone(conn),
    ]);
    equal(end, "eof");
    equal(bytes.length, 990, "1,000 in all, the first 10 included");
  },
  { ignore: noOpenssl !== undefined },
);

testEngines(
  `fault over TLS: reset-after=10 closes with close_notify after exactly 10 bytes, TLS having no reset${
    noOpenssl === undefined ? "" : ` (ignored: ${noOpenssl})`
  }`,
  async (io) => {
    const { cert, key, ca } = await testCerts();
    await using server = serve({ ...local, io, tls: { cert, key }, faults: ["reset-after=10"] });
    using conn = await Deno.connectTls({ ...local, port: server.addr.port, caCerts: [ca] });
    const [, { bytes, end }] = await Promise.all([
      sendIgnoringEnd(conn, pattern(100)),
      readUntilGone(conn),
    ]);
    equal(bytes.length, 10);
    equal(end, "eof", "a TLS connection cannot be reset: it is closed");
  },
  { ignore: noOpenssl !== undefined },
);

testEngines(
  "fault from= behind the PROXY protocol selects by the client the header names",
  async (io) => {
    await using server = serve({
      ...local,
      io,
      proxyProtocol: { trustedProxies: [parseCidr("127.0.0.1")] },
      faults: ["close-after=2,from=10.1.2.3"],
    });
    const viaProxy = async (client: string) => {
      using conn = await Deno.connect(server.addr);
      const header = `PROXY TCP4 ${client} 127.0.0.1 5000 ${server.addr.port}\r\n`;
      await writeAll(conn, new TextEncoder().encode(header + "hello"));
      await conn.closeWrite();
      return (await readToEnd(conn)).length;
    };
    equal(await viaProxy("10.1.2.3"), 2, "the client named gets the fault");
    equal(await viaProxy("10.9.9.9"), 5, "another is spared");
  },
);
