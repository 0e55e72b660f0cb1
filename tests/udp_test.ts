/**
 * UDP echo end to end: real sockets on loopback against `serve({ udp })`.
 * A "no reply" is checked with a bounded wait after a positive control: a
 * reply that the server sends only after it has handled the datagram that
 * must go unanswered (one loop, in arrival order).
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { Guard, parseCidr, serve } from "../server.ts";
import { pattern, readN, sameBytes } from "./helpers.ts";
import { Inbox, tryInbox } from "./udp_helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;
/** Enough for a reply on loopback that is coming at all; only waited when none is due. */
const NONE_MS = 200;
const REPLY_MS = 5_000;

for (const size of [1, 100, 1_472, 8_192, 65_507]) {
  Deno.test(`UDP: a datagram of ${size} bytes comes back exactly`, async () => {
    await using server = serve({ ...local, udp: true });
    await using inbox = new Inbox();
    const sent = pattern(size, size);
    await inbox.send(sent, server.addr.port);
    const reply = await inbox.next(REPLY_MS);
    ok(reply !== null, "no reply");
    equal(reply.length, size);
    ok(sameBytes(reply, sent), "reply differs from what was sent");
  });
}

Deno.test("UDP: shares the TCP port, echoes both, and counts datagrams in the stats", async () => {
  await using server = serve({ ...local, udp: true });
  await using inbox = new Inbox();
  for (let i = 0; i < 10; i++) await inbox.send(`datagram ${i}`, server.addr.port);
  for (let i = 0; i < 10; i++) {
    const reply = await inbox.next(REPLY_MS);
    ok(reply !== null, `no reply to datagram ${i}`);
    deepStrictEqual(new TextDecoder().decode(reply), `datagram ${i}`);
  }
  using conn = await Deno.connect(server.addr);
  await conn.write(new TextEncoder().encode("tcp"));
  equal(new TextDecoder().decode(await readN(conn, 3)), "tcp");
  const datagrams = server.stats().datagrams;
  equal(datagrams?.echoed, 10);
  equal(datagrams?.bytesEchoed, 100);
  equal(datagrams?.received, 10);
});

Deno.test("UDP: without the option, the server holds no UDP port", async () => {
  await using server = serve(local);
  const port = server.addr.port;
  Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port }).close();
  equal(server.stats().datagrams, undefined);
});

Deno.test("UDP: shutdown closes the socket, and its port is free again", async () => {
  const server = serve({ ...local, udp: true });
  const port = server.addr.port;
  const stats = await server.shutdown();
  equal(stats.datagrams?.echoed, 0);
  const again = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
  again.close();
});

Deno.test("system: UDP: a datagram from the server's own port number is not answered", async () => {
  // Two echo servers on one port number would answer each other for ever.
  await using server = serve({ ...local, udp: true });
  await using twin = new Inbox("127.0.0.2", server.addr.port);
  await using control = new Inbox();
  await twin.send("loop?", server.addr.port);
  await control.send("control", server.addr.port);
  ok(await control.next(REPLY_MS) !== null, "no reply to the control");
  equal(await twin.next(NONE_MS), null);
  equal(server.stats().datagrams?.dropped["service-port"], 1);
});

const SERVICE_PORT = 7;
const servicePortProbe = tryInbox("127.0.0.1", SERVICE_PORT);
const serviceReason = typeof servicePortProbe === "string" ? servicePortProbe : null;
if (typeof servicePortProbe !== "string") await servicePortProbe[Symbol.asyncDispose]();

Deno.test({
  name: `system: UDP: a datagram from service port ${SERVICE_PORT} is not answered${
    serviceReason === null ? "" : ` (ignored: cannot bind it: ${serviceReason})`
  }`,
  ignore: serviceReason !== null,
  fn: async () => {
    await using server = serve({ ...local, udp: true });
    await using echoService = new Inbox("127.0.0.1", SERVICE_PORT);
    await using control = new Inbox();
    await echoService.send("loop?", server.addr.port);
    await control.send("control", server.addr.port);
    // The control's reply leaves after the service port's datagram was handled.
    ok(await control.next(REPLY_MS) !== null, "no reply to the control");
    equal(await echoService.next(NONE_MS), null);
    equal(server.stats().datagrams?.dropped["service-port"], 1);
    equal(server.stats().datagrams?.echoed, 1);
  },
});

Deno.test("system: UDP: replies are limited per source address; another address is unaffected", async () => {
  // A rate so slow that no token comes back during the test: exactly `burst` replies.
  await using server = serve({ ...local, udp: { rate: 0.01, burst: 5 } });
  await using flooder = new Inbox("127.0.0.1");
  await using sameAddress = new Inbox("127.0.0.1");
  await using other = new Inbox("127.0.0.2");
  for (let i = 0; i < 20; i++) await flooder.send(`flood ${i}`, server.addr.port);
  // Another port of the same address shares its bucket, now empty.
  await sameAddress.send("same address", server.addr.port);
  await other.send("control", server.addr.port);
  ok(await other.next(REPLY_MS) !== null, "the other address got no reply");
  for (let i = 0; i < 5; i++) ok(await flooder.next(REPLY_MS) !== null, `reply ${i} missing`);
  equal(await flooder.next(NONE_MS), null);
  equal(sameAddress.queued, 0);
  const datagrams = server.stats().datagrams;
  equal(datagrams?.echoed, 6);
  equal(datagrams?.dropped.rate, 16);
});

Deno.test("system: UDP: --deny applies to datagrams", async () => {
  const guard = new Guard({ deny: [parseCidr("127.0.0.2/32")] });
  await using server = serve({ ...local, guard, udp: true });
  await using denied = new Inbox("127.0.0.2");
  await using allowed = new Inbox("127.0.0.1");
  await denied.send("let me in", server.addr.port);
  await allowed.send("control", server.addr.port);
  ok(await allowed.next(REPLY_MS) !== null, "no reply to the allowed address");
  equal(await denied.next(NONE_MS), null);
  equal(server.stats().datagrams?.dropped.denied, 1);
  // A datagram is not a connection: the guard's connection refusals stay untouched.
  equal(server.stats().refusals.denied, 0);
});

Deno.test("system: UDP: --allow applies to datagrams", async () => {
  const guard = new Guard({ allow: [parseCidr("127.0.0.1/32")] });
  await using server = serve({ ...local, guard, udp: true });
  await using outside = new Inbox("127.0.0.3");
  await using inside = new Inbox("127.0.0.1");
  await outside.send("let me in", server.addr.port);
  await inside.send("control", server.addr.port);
  ok(await inside.next(REPLY_MS) !== null);
  equal(await outside.next(NONE_MS), null);
  equal(server.stats().datagrams?.dropped.denied, 1);
});

/** A UDP socket held on a port whose TCP twin is free (ephemeral TCP ports come and go). */
async function holdUdpPortFreeForTcp(): Promise<Inbox> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const held = new Inbox();
    try {
      Deno.listen({ hostname: "127.0.0.1", port: held.port }).close();
      return held;
    } catch {
      await held[Symbol.asyncDispose]();
    }
  }
  throw new Error("no port was free for both UDP and TCP");
}

Deno.test("UDP: a UDP port held by another is a ListenError, and the TCP port is let go", async () => {
  await using holder = await holdUdpPortFreeForTcp();
  const port = holder.port;
  throws(() => serve({ hostname: "127.0.0.1", port, udp: true }), {
    name: "ListenError",
    message: `cannot listen for UDP on 127.0.0.1:${port}: address already in use`,
  });
  // The TCP listener opened first was closed again.
  Deno.listen({ hostname: "127.0.0.1", port }).close();
});

Deno.test("UDP: bad reply limits are refused before any port is kept", () => {
  throws(() => serve({ ...local, udp: { rate: 0 } }), {
    message: "invalid rate 0: must be a positive finite number",
  });
  throws(() => serve({ ...local, udp: { burst: 0.5 } }), {
    message: "invalid burst 0.5: must be a positive integer",
  });
});

Deno.test("UDP: a listener without a port (a Unix socket) cannot have a UDP twin", async () => {
  const path = await Deno.makeTempFile({ prefix: "echo-udp-", suffix: ".sock" });
  await Deno.remove(path);
  const listener = Deno.listen({ transport: "unix", path });
  try {
    throws(() => serve({ listener, udp: true }), {
      name: "ListenError",
      message: `cannot echo UDP beside ${path}: it has no port`,
    });
  } finally {
    await Deno.remove(path).catch(() => {});
  }
});
