/**
 * Admission control end to end: real servers, real sockets, clients bound to
 * distinct loopback addresses where a limit is per address.
 *
 * Tests named `system: …` depend on the machine: binding clients to
 * 127.0.0.2 and up needs a loopback that answers for all of 127.0.0.0/8 (as
 * Linux does, macOS not by default), and the descriptor test needs bash and
 * `ulimit`.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { parseCidr } from "../admission/cidr.ts";
import { Guard } from "../admission/guard.ts";
import { noRefusals } from "../admission/refusals.ts";
import { type IoEngine, serve, type ServeOptions } from "../server.ts";
import {
  Cli,
  connectFrom,
  exchange,
  ioArgs,
  ioPermissions,
  testEngines,
  tryEcho,
  WAIT_MS,
  within,
} from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const local = { hostname: "127.0.0.1", port: 0 } as const;

/** Refusals other than the listed ones must stay at zero. */
function refusals(options: Partial<Record<string, number>>) {
  return { ...noRefusals(), ...options };
}

async function flood(io: IoEngine, options: ServeOptions, count: number) {
  const server = serve({ ...local, io, ...options });
  const conns = await Promise.all(Array.from({ length: count }, () => Deno.connect(server.addr)));
  return { server, conns };
}

testEngines(
  "default limits: 400 connections held open from one address are all echoed",
  async (io) => {
    // A load tester or a balancer without the PROXY protocol shows the server one address.
    const { server, conns } = await flood(io, {}, 400);
    try {
      const replies = await Promise.all(conns.map((conn, i) => tryEcho(conn, `hello ${i}`)));
      deepStrictEqual(replies, conns.map((_, i) => `hello ${i}`));
      strictEqual(server.stats().open, 400);
    } finally {
      for (const conn of conns) conn.close();
    }
    const stats = await server.shutdown();
    strictEqual(stats.served, 400);
    deepStrictEqual(stats.refusals, refusals({}));
  },
);

testEngines(
  "--max-conns 50 wait: 50 of 200 echoed at first, the other 150 as slots free",
  async (io) => {
    const guard = new Guard({ maxConns: 50 });
    const { server, conns } = await flood(io, { guard, whenFull: "wait" }, 200);
    const firstFifty = Promise.withResolvers<void>();
    const held: Deno.Conn[] = [];
    let checked = false;
    const replies = conns.map((conn, i) =>
      tryEcho(conn, `hello ${i}`).then((reply) => {
        strictEqual(reply, `hello ${i}`);
        // Hold the first fifty open; after the check, each leaves once echoed.
        if (checked) return conn.close();
        held.push(conn);
        if (held.length === 50) firstFifty.resolve();
      })
    );
    await within(firstFifty.promise, "the first 50 echoes");
    // The acceptor holds back at the cap: the rest wait in the kernel's backlog.
    strictEqual(server.stats().served, 50);
    strictEqual(guard.open, 50);
    checked = true;
    for (const conn of held) conn.close();
    await Promise.all(replies);
    strictEqual(server.stats().served, 200);
    const summary = await server.shutdown();
    deepStrictEqual(summary.refusals, refusals({}));
  },
);

testEngines("--max-conns 50 refuse: 50 of 200 echoed, 150 closed at once", async (io) => {
  const { server, conns } = await flood(
    io,
    { guard: new Guard({ maxConns: 50 }), whenFull: "refuse" },
    200,
  );
  const replies = await Promise.all(conns.map((conn, i) => tryEcho(conn, `hello ${i}`)));
  strictEqual(replies.filter((r) => r !== null).length, 50);
  strictEqual(replies.filter((r) => r === null).length, 150);
  replies.forEach((reply, i) => ok(reply === null || reply === `hello ${i}`));
  deepStrictEqual(server.stats().refusals, refusals({ cap: 150 }));
  for (const conn of conns) conn.close();
  await server.shutdown();
});

testEngines("system: --max-conns-per-ip caps each client address, not the others", async (io) => {
  await using server = serve({ ...local, io, guard: new Guard({ maxConnsPerIp: 2 }) });
  const port = server.addr.port;
  const a = await Promise.all([1, 2, 3].map(() => connectFrom("127.0.0.2", port)));
  const b = await Promise.all([1, 2].map(() => connectFrom("127.0.0.3", port)));
  const aReplies = await Promise.all(a.map((c) => c.echo("from a")));
  const bReplies = await Promise.all(b.map((c) => c.echo("from b")));
  deepStrictEqual(aReplies.filter((r) => r === "from a").length, 2);
  deepStrictEqual(aReplies.filter((r) => r === null).length, 1);
  deepStrictEqual(bReplies, ["from b", "from b"]);
  deepStrictEqual(server.stats().refusals, refusals({ "per-ip": 1 }));
  for (const c of [...a, ...b]) c.close();
  await Promise.all([...a, ...b].map((c) => c.closed));
});

testEngines("system: --rate and --burst limit new connections per address", async (io) => {
  await using server = serve({ ...local, io, guard: new Guard({ rate: 1, burst: 2 }) });
  const clients = await Promise.all(
    [1, 2, 3].map(() => connectFrom("127.0.0.4", server.addr.port)),
  );
  const replies = await Promise.all(clients.map((c) => c.echo("x")));
  strictEqual(replies.filter((r) => r === "x").length, 2);
  strictEqual(replies.filter((r) => r === null).length, 1);
  const other = await connectFrom("127.0.0.5", server.addr.port);
  strictEqual(await other.echo("y"), "y");
  deepStrictEqual(server.stats().refusals, refusals({ rate: 1 }));
  for (const c of [...clients, other]) c.close();
  await Promise.all([...clients, other].map((c) => c.closed));
});

testEngines("--idle-timeout closes a silent connection and spares an active one", async (io) => {
  await using server = serve({ ...local, io, idleTimeoutMs: 300 });
  // Before the connects: the server's clock starts when it admits, which may come before a
  // connect resolves here (and the second connect takes its time on a busy machine).
  const started = performance.now();
  using silent = await Deno.connect(server.addr);
  using active = await Deno.connect(server.addr);
  let silentClosed = false;
  const silentEnd = silent.read(new Uint8Array(1)).finally(() => silentClosed = true);
  silentEnd.catch(() => {}); // awaited below; a failure before then must not go unhandled
  // The active client talks back to back until the silent one is closed, and then some: on a
  // busy machine a pause between its messages would have to outlast the timeout to matter.
  let ticks = 0;
  while (!silentClosed || ticks < 12) {
    strictEqual(await tryEcho(active, `tick ${ticks}`), `tick ${ticks}`);
    ok(performance.now() - started < WAIT_MS, "the silent connection was never closed");
    ticks++;
  }
  strictEqual(await silentEnd, null);
  ok(performance.now() - started >= 300);
  deepStrictEqual(server.stats().refusals, refusals({ idle: 1 }));
  strictEqual(server.stats().open, 1);
});

testEngines("--max-lifetime closes even a busy connection", async (io) => {
  await using server = serve({ ...local, io, maxLifetimeMs: 200 });
  const started = performance.now(); // before the connect, as above
  using conn = await Deno.connect(server.addr);
  let replies = 0;
  while (await tryEcho(conn, "busy") === "busy") {
    replies++;
    ok(performance.now() - started < WAIT_MS, "the busy connection outlived its lifetime");
    await new Promise((resolve) => setTimeout(resolve, 20)); // its pace, not a wait
  }
  ok(replies > 0);
  ok(performance.now() - started >= 200);
  deepStrictEqual(server.stats().refusals, refusals({ lifetime: 1 }));
});

testEngines(
  "system: --deny wins over --allow, and --reject-message is sent before closing",
  async (io) => {
    const guard = new Guard({
      allow: [parseCidr("127.0.0.0/29")],
      deny: [parseCidr("127.0.0.6/32")],
    });
    await using server = serve({ ...local, io, guard, rejectMessage: "go away" });
    const port = server.addr.port;
    const allowed = await connectFrom("127.0.0.7", port);
    strictEqual(await allowed.echo("in"), "in");
    const denied = await connectFrom("127.0.0.6", port);
    strictEqual(await denied.closed, "go away\n");
    const outside = await connectFrom("127.0.0.9", port);
    strictEqual(await outside.closed, "go away\n");
    deepStrictEqual(server.stats().refusals, refusals({ denied: 2 }));
    allowed.close();
    await allowed.closed;
  },
);

testEngines("system: refusals are logged at most once per reason and address", async (io) => {
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--max-conns-per-ip", "1"], { io });
  const port = await cli.port();
  using held = await Deno.connect({ hostname: "127.0.0.1", port });
  strictEqual(await tryEcho(held, "held"), "held");
  for (let i = 0; i < 5; i++) {
    using refused = await Deno.connect({ hostname: "127.0.0.1", port });
    strictEqual(await tryEcho(refused, "no"), null);
  }
  const other = await connectFrom("127.0.0.8", port);
  strictEqual(await other.echo("fine"), "fine");
  other.close();
  await other.closed;
  cli.kill("SIGTERM");
  held.close();
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0);
  const lines = stderr.split("\n").filter((line) =>
    line.includes("WARN") && line.includes("refused")
  );
  strictEqual(lines.length, 1, stderr);
  ok(/WARN .*refused 127\.0\.0\.1:\d+: per-ip/.test(lines[0]), lines[0]);
});

testEngines(
  "system: out of file descriptors (ulimit -n 64): accepts pause, then recover without losing a client",
  async (io) => {
    // The server runs under a small descriptor limit; 60 clients are more than it can hold.
    const deno = [Deno.execPath(), "run", "--quiet", ...ioPermissions(io)];
    const server = [...deno, "main.ts", "-H", "127.0.0.1", "-p", "0", ...ioArgs(io)];
    await using cli = new Cli(["-c", 'ulimit -n 64 && exec "$@"', "bash", ...server], {
      executable: "bash",
    });
    const port = await cli.port();
    const conns = await Promise.all(
      Array.from({ length: 60 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    const replies = conns.map((conn, i) => tryEcho(conn, `client ${i}`));
    await cli.waitFor(/out of file descriptors with (\d+) connections open/);
    // Every client is served in the end, as earlier ones leave.
    for (let i = 0; i < conns.length; i++) {
      strictEqual(await replies[i], `client ${i}`);
      conns[i].close();
    }
    const again = await Deno.connect({ hostname: "127.0.0.1", port });
    strictEqual(decoder.decode(await exchange(again, encoder.encode("later"))), "later");
    again.close();
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    strictEqual(code, 0);
    strictEqual(stderr.match(/out of file descriptors/g)?.length, 1, stderr);
  },
);

testEngines(
  "connections reset while they wait in the backlog do not pause accepting",
  async (io) => {
    await using server = serve({
      hostname: "127.0.0.1",
      port: 0,
      io,
      guard: new Guard({ maxConns: 1 }),
      whenFull: "wait",
    });
    // The one slot is held, so the next connections wait in the kernel's backlog.
    const holder = await Deno.connect(server.addr);
    strictEqual(await tryEcho(holder, "held"), "held");
    for (let i = 0; i < 20; i++) {
      const rude = net.createConnection({ host: "127.0.0.1", port: server.addr.port });
      rude.on("error", () => {});
      await within(once(rude, "connect"), `connection ${i} to the full server`);
      const closed = once(rude, "close");
      rude.resetAndDestroy(); // SO_LINGER 0: a reset, while it is still queued
      await within(closed, `connection ${i} to close after its reset`);
    }
    using next = await Deno.connect(server.addr);
    holder.close();
    // Each reset connection is one the listener can no longer hand over: not a failure of the
    // listener, so no back-off (which had grown to a second a reset) keeps the next one waiting.
    strictEqual(await tryEcho(next, "after"), "after");
    strictEqual(server.stats().acceptErrors, 0);
  },
);
