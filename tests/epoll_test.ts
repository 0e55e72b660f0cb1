/**
 * What is the epoll engine's own (`serve --io epoll`, `listenEpoll`), over
 * real sockets: the command line's refusals, partial writes and `EPOLLOUT`
 * under a peer that does not read, half-closes at the edges of the shared
 * buffer, resets, timers and the drain while the loop is busy, the gentle
 * cut at the drain timeout, `errno` as each call's wrapper reads it, events
 * of a closed descriptor's old generation, and the library's listener with
 * IPv6 and IPv4-mapped peers. Everything the engines
 * share (admission, PROXY, metrics, reload, drain) runs over both engines in
 * the other files; see `testEngines` in helpers.ts.
 */
import net from "node:net";
import { once } from "node:events";
import { deepStrictEqual, match, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { epollUnavailable, listenEpoll, ListenError, serve } from "../server.ts";
import { type Connection, peerOf } from "../transport/contract.ts";
import { C, E, openLibc } from "../epoll/libc.ts";
import { Reactor, type Readiness } from "../epoll/reactor.ts";
import {
  assertRefused,
  Cli,
  exchange,
  ioPermissions,
  pattern,
  readEnd,
  readN,
  readToEnd,
  readUntilGone,
  sameBytes,
  steady,
  until,
  WAIT_MS,
  within,
  writeAll,
} from "./helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;
/** The buffer each epoll loop reads into (`epoll/reactor.ts`): the edge the half-close test probes. */
const SHARED_BUFFER_BYTES = 65536;
/**
 * The most a hot-path read takes (`FIRST_READ_BYTES` in `epoll/connection.ts`): the most
 * a connection holds back unwritten, the rest staying in the kernel.
 */
const FIRST_READ_BYTES = 8192;
const encoder = new TextEncoder();

/**
 * Echoes `count` messages of varying sizes over `conn`, each checked, one
 * round trip at a time; `onEcho` hears of each. Resolves with the bytes
 * sent, or, when `cut` is set, with those echoed before the server closed
 * the connection (an unfinished message is not counted).
 */
async function pingpong(
  conn: Deno.Conn,
  seed: number,
  count: number,
  options: { onEcho?: () => void; cut?: boolean; stop?: () => boolean } = {},
): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < count && !(options.stop?.() ?? false); i++) {
    const message = pattern(1 + (i * 37 + seed * 101) % 3000, seed + i);
    let reply: Uint8Array;
    try {
      reply = await exchange(conn, message);
    } catch (error) {
      const gone = error instanceof Deno.errors.ConnectionReset ||
        error instanceof Deno.errors.BrokenPipe;
      if (options.cut && gone) return bytes;
      throw error;
    }
    if (options.cut && reply.length < message.length) {
      ok(sameBytes(reply, message.subarray(0, reply.length)), `client ${seed}: message ${i}`);
      return bytes;
    }
    ok(sameBytes(reply, message), `client ${seed}: message ${i} differs`);
    bytes += message.length;
    options.onEcho?.();
  }
  return bytes;
}

/** Starts `serve --io epoll` on 127.0.0.1, port 0, with `args`; resolves once it listens. */
async function epollServer(args: string[]): Promise<{ cli: Cli; port: number }> {
  const cli = new Cli(["-H", "127.0.0.1", "-p", "0", ...args], { io: "epoll" });
  return { cli, port: await cli.port() };
}

Deno.test("epoll: this machine can run the engine (Linux, --allow-ffi granted)", () => {
  // Every other test here needs it; the suite runs with --allow-all on Linux.
  strictEqual(epollUnavailable(), undefined);
});

Deno.test("serve --io epoll without --allow-ffi, with or without --workers: one line naming --allow-ffi, exit 1", async () => {
  await Promise.all([[], ["--workers", "2"]].map(async (more) => {
    await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--io", "epoll", ...more], {
      permissions: ["--allow-net", "--allow-read"],
    });
    const { code, stderr } = await cli.finished();
    strictEqual(code, 1, stderr);
    const lines = stderr.trimEnd().split("\n");
    strictEqual(lines.length, 1, stderr);
    match(lines[0], /ERROR server: --io epoll .*needs --allow-ffi/);
  }));
});

Deno.test("serve --io deno needs no --allow-ffi", async () => {
  await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", "--io", "deno"]);
  const port = await cli.port();
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    ok(sameBytes(await exchange(conn, encoder.encode("deno")), encoder.encode("deno")));
  }
  cli.kill("SIGTERM");
  strictEqual((await cli.finished()).code, 0);
});

Deno.test("--io bogus, and --io epoll with a host name, are usage errors: exit 2, one line and the hint", async () => {
  const dir = await Deno.makeTempDir({ prefix: "echo-epoll-" });
  try {
    const socket = `${dir}/echo.sock`;
    const cases: [string[], string][] = [
      [["--io", "bogus"], 'invalid --io "bogus": expected one of deno, epoll'],
      [
        ["--io", "epoll", "-H", "localhost2"],
        '--io epoll takes an IP address for --host (such as 0.0.0.0, ::, 127.0.0.1) or localhost, not "localhost2"',
      ],
    ];
    // Every permission the flags could want, so that only the combination is refused.
    const permissions = ioPermissions("epoll", ["--allow-net", "--allow-read", "--allow-write"]);
    await Promise.all(cases.map(async ([args, message]) => {
      await using cli = new Cli(["-H", "127.0.0.1", "-p", "0", ...args], { permissions });
      const { code, stderr } = await cli.finished();
      strictEqual(code, 2, `${args.join(" ")}: ${stderr}`);
      deepStrictEqual(stderr.trimEnd().split("\n"), [
        `echo-server: ${message}`,
        'Try "echo-server serve --help" for usage.',
      ]);
    }));
    // Refused before anything was created.
    await rejects(Deno.lstat(socket), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listenEpoll refuses a host name with a ListenError that says what it takes", () => {
  throws(() => listenEpoll({ hostname: "localhost2", port: 0 }), {
    name: "ListenError",
    message:
      "cannot listen on localhost2:0: --io epoll takes an IP address (such as 0.0.0.0, ::, 127.0.0.1) or localhost, not a name",
  });
});

Deno.test("epoll: a peer that sends 64 MiB without reading stalls only itself, the server holding at most 8 KiB of it; once it reads, every byte comes back in order", async () => {
  await using server = serve({ ...local, io: "epoll" });
  const hog = await Deno.connect(server.addr);
  const sent = pattern(64 << 20, 11);
  let hogDone = false;
  const hogWriting = writeAll(hog, sent).then(() => hogDone = true);
  // The server has echoed what the socket buffers take, then stops: the counters stand still.
  await until("the hog's echo to stall", steady(() => server.stats().bytesIn));

  // Others are echoed meanwhile, each exactly.
  const others = await Promise.all(
    Array.from({ length: 5 }, async (_, n) => {
      using conn = await Deno.connect(server.addr);
      return await pingpong(conn, n, 20);
    }),
  );
  const othersBytes = others.reduce((sum, n) => sum + n, 0);

  strictEqual(
    hogDone,
    false,
    "64 MiB cannot fit in the socket buffers unless the server hoards it",
  );
  const stalled = server.stats();
  const hogIn = stalled.bytesIn - othersBytes;
  ok(hogIn < 48 << 20, `the server read ${hogIn} bytes of the hog's ahead`);
  // What it read and could not send; the rest of what the hog sent waits in the kernel.
  const held = stalled.bytesIn - stalled.bytesOut;
  ok(held >= 0 && held <= FIRST_READ_BYTES, `the server holds ${held} bytes of the hog's`);

  // Now it reads: everything comes back, in order, and the stream then ends cleanly.
  const reply = await readN(hog, sent.length);
  await hogWriting;
  strictEqual(reply.length, sent.length);
  ok(sameBytes(reply, sent), "the hog's echo differs");
  await hog.closeWrite();
  await readEnd(hog, "the server to end the hog's stream");
  hog.close();
  const stats = server.stats();
  strictEqual(stats.bytesIn, sent.length + othersBytes);
  strictEqual(stats.bytesOut, stats.bytesIn);
});

Deno.test("epoll: after a half-close, every byte comes back, then EOF, at the edges of the shared buffer", async () => {
  await using server = serve({ ...local, io: "epoll" });
  const sizes = [1, 1000, SHARED_BUFFER_BYTES - 1, SHARED_BUFFER_BYTES, SHARED_BUFFER_BYTES + 1];
  for (const [i, size] of [...sizes, 3 << 20].entries()) {
    using conn = await Deno.connect(server.addr);
    const payload = pattern(size, i);
    if (size <= SHARED_BUFFER_BYTES + 1) {
      // Small enough for the socket buffers: all written and half-closed before a byte is read,
      // so the FIN comes right behind the data, often in the same wake-up as its last bytes.
      await writeAll(conn, payload);
      await conn.closeWrite();
      const reply = await readToEnd(conn);
      strictEqual(reply.length, size, `${size} bytes`);
      ok(sameBytes(reply, payload), `${size} bytes differ`);
    } else {
      const reading = readToEnd(conn);
      await writeAll(conn, payload);
      await conn.closeWrite();
      const reply = await reading;
      strictEqual(reply.length, size, `${size} bytes`);
      ok(sameBytes(reply, payload), `${size} bytes differ`);
    }
  }
  const stats = server.stats();
  strictEqual(stats.closed?.["client-closed"], sizes.length + 1);
  strictEqual(stats.closed?.error, 0);
});

Deno.test("epoll: a reset peer, idle or in mid-stream, is logged 'reset by peer' and the server keeps serving", async () => {
  const { cli, port } = await epollServer(["--log-level", "debug"]);
  await using _cli = cli;
  const addr = { hostname: "127.0.0.1", port };

  // Idle, all echoed: a reset (SO_LINGER 0, which node:net's resetAndDestroy sets) instead of a FIN.
  // (Deno's close() shuts the socket down before closing it: a FIN goes first, so the server
  // would read the end of the stream before the reset that unread data causes.)
  {
    const rude = net.createConnection({ host: "127.0.0.1", port });
    rude.on("error", () => {});
    await within(once(rude, "connect"), "the rude client's connection");
    const message = pattern(1000, 1);
    rude.write(message);
    const echo = new Uint8Array(message.length);
    let echoed = 0;
    await within(
      new Promise<void>((resolve) =>
        rude.on("data", (chunk: Uint8Array) => {
          echo.set(chunk.subarray(0, echo.length - echoed), echoed);
          echoed += chunk.length;
          if (echoed >= message.length) resolve();
        })
      ),
      () => `the echo of 1000 bytes to the rude client (${echoed} came)`,
    );
    strictEqual(echoed, message.length);
    ok(sameBytes(echo, message));
    const closed = once(rude, "close");
    rude.resetAndDestroy();
    await within(closed, "the rude client's socket to close after its reset");
    await cli.waitFor(/#1 closed: reset by peer; 1000 B in, 1000 B out/);
  }

  // In mid-stream: closed while it still sends 8 MiB, its echo unread. The kernel then resets
  // it (the FIN Deno's close() sends first waits behind the data), and the server, still echoing,
  // hears the reset.
  {
    const rude = await Deno.connect(addr);
    const writing = writeAll(rude, pattern(8 << 20, 3)).catch(() => {});
    await cli.waitFor(/#2 got \d+ bytes/);
    rude.close();
    await writing;
    await cli.waitFor(/#2 closed: reset by peer; \d+ B in, \d+ B out/);
  }

  {
    using polite = await Deno.connect(addr);
    strictEqual(await pingpong(polite, 4, 10) > 0, true);
  }
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  strictEqual(stderr.match(/closed: reset by peer/g)?.length, 2, stderr);
  ok(!/ERROR/.test(stderr), stderr);
});

Deno.test("epoll: SIGTERM during a pingpong flood drains it: every echo exact, exit 0 long before the drain timeout", async () => {
  const { cli, port } = await epollServer(["--drain-timeout", "20s"]);
  await using _cli = cli;
  const addr = { hostname: "127.0.0.1", port };
  const clients = 8;
  const messages = 300;
  let echoes = 0;
  let signalledAt = 0;
  let refusedWhileDraining: Promise<void> | undefined;
  const onEcho = () => {
    // Mid-flood: a sixth of the way through.
    if (++echoes === (clients * messages) / 6) {
      signalledAt = performance.now();
      cli.kill("SIGTERM");
      refusedWhileDraining = cli.waitFor(/draining/).then(() => assertRefused(addr));
    }
  };
  const conns = await Promise.all(Array.from({ length: clients }, () => Deno.connect(addr)));
  const sent = await Promise.all(conns.map(async (conn, n) => {
    const bytes = await pingpong(conn, n, messages, { onEcho });
    await conn.closeWrite();
    await readEnd(conn, `the server to end client ${n}'s drained stream`);
    conn.close();
    return bytes;
  }));
  ok(signalledAt > 0, "the flood ended before the signal");
  await refusedWhileDraining;
  const { code, stderr } = await cli.finished();
  const took = performance.now() - signalledAt;
  strictEqual(code, 0, stderr);
  ok(took < 15_000, `exited ${took.toFixed(0)} ms after SIGTERM`);
  match(stderr, /SIGTERM: shutting down/);
  // Still flooding when the server heard the signal: none had finished.
  match(stderr, new RegExp(`draining ${clients} connections for up to 20(\\.0)?s`));
  ok(!stderr.includes("closed: shutdown"), `a connection was cut:\n${stderr}`);
  const total = sent.reduce((sum, n) => sum + n, 0);
  match(
    stderr,
    new RegExp(
      `stopped: served ${clients} connections, echoed ${total.toLocaleString("en-US")} bytes`,
    ),
  );
});

Deno.test("epoll: a flood that never stops is cut at the drain timeout, and the server exits 0", async () => {
  const { cli, port } = await epollServer(["--drain-timeout", "300ms"]);
  await using _cli = cli;
  const addr = { hostname: "127.0.0.1", port };
  let echoes = 0;
  let signalledAt = 0;
  const onEcho = () => {
    if (++echoes === 200) {
      signalledAt = performance.now();
      cli.kill("SIGTERM");
    }
  };
  const conns = await Promise.all(Array.from({ length: 6 }, () => Deno.connect(addr)));
  // Far more messages than fit in the drain: only the server's close ends these.
  const echoed = await Promise.all(conns.map(async (conn, n) => {
    try {
      return await pingpong(conn, n, 1_000_000, { onEcho, cut: true });
    } finally {
      conn.close();
    }
  }));
  const cutAfter = performance.now() - signalledAt;
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  ok(echoed.every((bytes) => bytes > 0), `echoed: ${echoed}`);
  ok(cutAfter >= 250, `cut ${cutAfter.toFixed(0)} ms after SIGTERM, before the drain timeout`);
  ok(cutAfter < 10_000, `cut only ${cutAfter.toFixed(0)} ms after SIGTERM`);
  strictEqual(stderr.match(/closed: shutdown/g)?.length, 6, stderr);
  match(stderr, /stopped: served 6 connections/);
});

Deno.test("epoll: the idle timeout closes a silent connection while others keep the loop busy", async () => {
  const { cli, port } = await epollServer(["--idle-timeout", "300ms"]);
  await using _cli = cli;
  const addr = { hostname: "127.0.0.1", port };
  const started = performance.now();
  const silent = await Deno.connect(addr);
  let silentClosed = false;
  const silentEnd = silent.read(new Uint8Array(1)).then((n) => {
    silentClosed = true;
    return { n, after: performance.now() - started };
  });
  // Busy clients echo back to back, with no pause, until the silent one is closed.
  const busy = await Promise.all(Array.from({ length: 4 }, () => Deno.connect(addr)));
  const giveUp = () => performance.now() - started > WAIT_MS;
  const echoed = await Promise.all(
    busy.map((conn, n) => pingpong(conn, n, 1_000_000, { stop: () => silentClosed || giveUp() })),
  );
  const { n, after } = await within(silentEnd, "the idle timeout to close the silent connection");
  strictEqual(n, null);
  ok(after >= 250, `closed after ${after.toFixed(0)} ms, before the idle timeout`);
  // 300 ms is asked; the bound only tells "closed while the loop is busy" from "starved until
  // the busy clients stopped", with room for a loaded machine.
  ok(after < 10_000, `closed only after ${after.toFixed(0)} ms`);
  ok(echoed.every((bytes) => bytes > 0), `echoed: ${echoed}`);
  // The busy ones are still served.
  for (const [i, conn] of busy.entries()) strictEqual(await pingpong(conn, 10 + i, 3) > 0, true);
  for (const conn of [silent, ...busy]) conn.close();
  cli.kill("SIGTERM");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
  strictEqual(stderr.match(/closed: idle timeout/g)?.length, 1, stderr);
  strictEqual(stderr.match(/closed: client closed/g)?.length, 4, stderr);
});

Deno.test("listenEpoll + serve({ listener }): echoes, and shutdown stops the loop with nothing left pending", async () => {
  const listener = listenEpoll(local);
  const server = serve({ listener, drainTimeoutMs: 50 });
  strictEqual(server.addr.port, listener.addr.port);
  deepStrictEqual(server.addr, {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  {
    using conn = await Deno.connect(server.addr);
    const payload = pattern(200_000, 5);
    ok(sameBytes(await exchange(conn, payload), payload));
  }
  // One left open: the drain times out on it, and it is closed.
  using open = await Deno.connect(server.addr);
  ok(sameBytes(await exchange(open, encoder.encode("open")), encoder.encode("open")));
  const stats = await server.shutdown();
  strictEqual(stats.served, 2);
  strictEqual(stats.open, 0);
  strictEqual(stats.closed?.shutdown, 1);
  await within(listener.stopped, "the epoll loop to stop");
  await readEnd(open, "the server to close the connection left open");
  await assertRefused(server.addr);
  // The test's sanitizers then check that no op (the loop's off-thread wait) or resource is left.
});

Deno.test("listenEpoll refuses a name and a taken port with a ListenError, leaving nothing open", () => {
  throws(
    () => listenEpoll({ hostname: "localhost2", port: 0 }),
    (error: unknown) => error instanceof ListenError && /takes an IP address/.test(error.message),
  );
  using taken = Deno.listen(local);
  throws(
    () => listenEpoll({ hostname: "127.0.0.1", port: taken.addr.port }),
    (error: unknown) =>
      error instanceof ListenError &&
      error.message === `cannot listen on 127.0.0.1:${taken.addr.port}: address already in use`,
  );
  // TLS material that cannot serve: said before anything listens.
  throws(
    () => serve({ ...local, io: "epoll", tls: { cert: "", key: "" } }),
    (error: unknown) =>
      error instanceof ListenError &&
      error.message ===
        "cannot listen with TLS on 127.0.0.1:0: the certificate holds no PEM certificate",
  );
});

Deno.test("epoll over IPv6: serves ::1, and names an IPv4 client of :: as ::ffff:127.0.0.1, as Deno does", async () => {
  {
    await using server = serve({ hostname: "::1", port: 0, io: "epoll" });
    strictEqual(server.addr.hostname, "::1");
    using conn = await Deno.connect({ hostname: "::1", port: server.addr.port });
    ok(sameBytes(await exchange(conn, encoder.encode("six")), encoder.encode("six")));
  }

  const listener = listenEpoll({ hostname: "::", port: 0 });
  strictEqual(listener.addr.hostname, "::");
  const accepted: Connection[] = [];
  try {
    const accepting = listener[Symbol.asyncIterator]();
    for (const hostname of ["127.0.0.1", "::1"]) {
      const next = accepting.next();
      using client = await Deno.connect({ hostname, port: listener.addr.port });
      const { value, done } = await within(next, `listenEpoll to accept ${hostname}`);
      strictEqual(done, false);
      accepted.push(value);
      const named = hostname === "127.0.0.1" ? "::ffff:127.0.0.1" : "::1";
      deepStrictEqual(value.remoteAddr, {
        transport: "tcp",
        hostname: named,
        port: client.localAddr.port,
      });
      const peer = peerOf(value.remoteAddr);
      deepStrictEqual([peer.host, peer.text], [named, `[${named}]:${client.localAddr.port}`]);
    }
  } finally {
    for (const conn of accepted) conn.close();
    listener.close();
    await within(listener.stopped, "the epoll loop to stop");
  }

  // Deno's own listener names the same client the same way, so logs and limits agree.
  using deno = Deno.listen({ hostname: "::", port: 0 });
  const denoAccepting = deno.accept();
  using client = await Deno.connect({ hostname: "127.0.0.1", port: deno.addr.port });
  using conn = await within(denoAccepting, "Deno's listener to accept 127.0.0.1");
  strictEqual(conn.remoteAddr.hostname, "::ffff:127.0.0.1");
  strictEqual(conn.remoteAddr.port, client.localAddr.port);
});

Deno.test("epoll: a reader that stops, cut at the drain timeout, gets exactly the bytes the closed line counts out, a prefix of what it sent, then a reset", async () => {
  const { cli, port } = await epollServer(["--drain-timeout", "300ms"]);
  await using _cli = cli;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const sent = pattern(32 << 20, 21);
  // It ends when the server closes: its writes are discarded from the cut on, then refused.
  const writing = writeAll(conn, sent).catch(() => {});
  // Some echo comes back, then the client reads nothing more: the buffers on both sides fill.
  const first = await readN(conn, 1 << 20);
  cli.kill("SIGTERM");
  // Cut 300 ms after the signal; the client still reads nothing, so the grace (1 s) runs out.
  const closed = await cli.waitFor(/#1 closed: shutdown; (\d+) B in, (\d+) B out/);
  const [bytesIn, bytesOut] = [Number(closed[1]), Number(closed[2])];
  const { bytes: rest, end } = await readUntilGone(conn);
  await writing;
  const got = first.length + rest.length;
  strictEqual(end, "reset", "what was never sent is cut off with a reset");
  strictEqual(got, bytesOut, `the client got ${got} bytes, the log says ${bytesOut} B out`);
  ok(bytesOut <= bytesIn && bytesOut < sent.length, `${bytesIn} B in, ${bytesOut} B out`);
  ok(sameBytes(first, sent.subarray(0, first.length)), "the first MiB differs");
  ok(sameBytes(rest, sent.subarray(first.length, got)), "what came after the cut differs");
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
});

Deno.test("epoll: a slow reader of 64 MiB cut at the drain timeout gets exactly the bytes the closed line counts out, a prefix of what it sent", async () => {
  const { cli, port } = await epollServer(["--drain-timeout", "300ms"]);
  await using _cli = cli;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const sent = pattern(64 << 20, 22);
  const writing = writeAll(conn, sent).catch(() => {});
  // Slow: at most 64 KiB every 4 ms (about 16 MB/s), so that the 64 MiB cannot be echoed
  // before the cut, and what is queued then drains within the grace, or nearly.
  const chunks: Uint8Array[] = [];
  let got = 0;
  let end = "eof";
  const buffer = new Uint8Array(64 * 1024);
  let signalled = false;
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      got += n;
      if (!signalled && got >= 1 << 20) {
        signalled = true;
        cli.kill("SIGTERM");
      }
      // Pacing a slow reader (load shaping), not waiting for anything.
      await new Promise((resolve) => setTimeout(resolve, 4));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    end = "reset";
  }
  await writing;
  const closed = await cli.waitFor(/#1 closed: shutdown; (\d+) B in, (\d+) B out/);
  const bytesOut = Number(closed[2]);
  strictEqual(
    got,
    bytesOut,
    `the client got ${got} bytes (then ${end}), the log says ${bytesOut} B out`,
  );
  ok(got < sent.length, "the transfer ended before the cut");
  let off = 0;
  for (const chunk of chunks) {
    ok(sameBytes(chunk, sent.subarray(off, off + chunk.length)), `bytes ${off}+ differ`);
    off += chunk.length;
  }
  const { code, stderr } = await cli.finished();
  strictEqual(code, 0, stderr);
});

Deno.test("epoll: each libc wrapper returns its own call's errno, as -errno, whatever runs around it", () => {
  const sys = openLibc();
  const buffer = new Uint8Array(16);
  const stream = sys.socket(C.AF_INET, C.SOCK_STREAM | C.SOCK_CLOEXEC, 0);
  ok(stream >= 0, `socket: ${stream}`);
  try {
    // Calls that fail with errors of their own, interleaved, with garbage made between them
    // so that the collector runs; any read of errno but the call's own would show.
    let garbage: number[][] = [];
    for (let i = 0; i < 100_000; i++) {
      strictEqual(sys.recv(-1, buffer, 16n, 0), -E.EBADF);
      strictEqual(sys.accept4(stream, buffer, buffer, 0), -E.EINVAL);
      strictEqual(sys.ioctlInt(-1, C.SIOCOUTQ), -E.EBADF);
      strictEqual(sys.getsockoptInt(-1, C.SOL_SOCKET, C.SO_ERROR), -E.EBADF);
      garbage.push(new Array(16).fill(i));
      if (garbage.length > 1000) garbage = [];
    }
    // And the successes: SO_ERROR of a fresh socket is 0, its queues are empty.
    strictEqual(sys.getsockoptInt(stream, C.SOL_SOCKET, C.SO_ERROR), 0);
  } finally {
    strictEqual(sys.close(stream), 0);
  }
  strictEqual(sys.close(stream), -E.EBADF);
});

Deno.test("epoll: an EAGAIN that a hung-up socket cannot have given is not trusted: a reset whose errno was overwritten still ends as 'reset by peer'", async () => {
  const sys = openLibc();
  await using server = serve({ ...local, io: "epoll" });
  const rude = net.createConnection({ host: "127.0.0.1", port: server.addr.port });
  rude.on("error", () => {});
  await once(rude, "connect");
  rude.write("x");
  await once(rude, "data");
  // From here every failed recv says EAGAIN, as when errno was overwritten between the call
  // and its read: the engine must find the reset from the socket itself (EPOLLHUP, SO_ERROR).
  const recv = sys.recv;
  sys.recv = (fd, bytes, length, flags) => {
    const r = recv.call(sys, fd, bytes, length, flags);
    return r < 0 ? -E.EAGAIN : r;
  };
  try {
    const closed = once(rude, "close");
    rude.resetAndDestroy();
    await closed;
    await until("the server to close the reset connection", () => server.stats().open === 0);
  } finally {
    sys.recv = recv;
  }
  const { closed } = server.stats();
  strictEqual(closed?.reset, 1, JSON.stringify(closed));
  strictEqual(closed?.["client-closed"], 0, JSON.stringify(closed));
});

Deno.test("epoll: an event collected for a descriptor that was closed since does not reach the next owner of its number", async () => {
  const reactor = new Reactor();
  reactor.retain();
  const { sys } = reactor;
  const calls: string[] = [];
  const fds: number[] = [];
  let replaced = -1;
  const replacement: Readiness = {
    ready: (events) => calls.push(`replacement got ${events}`),
    fail: (error) => calls.push(`replacement failed: ${error}`),
  };
  // Whichever of the two is dispatched first closes the other and gives its number to a new
  // descriptor, within the batch that also holds the other's event.
  const swapper = (me: number): Readiness => ({
    ready() {
      calls.push(`eventfd ${me}`);
      sys.read(fds[me], new Uint8Array(8), 8n);
      if (replaced >= 0) return;
      const other = fds[1 - me];
      reactor.close(other);
      replaced = sys.eventfd(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
      strictEqual(replaced, other, "the new descriptor has the closed one's number");
      reactor.add(replaced, C.EPOLLIN, replacement);
    },
    fail: (error) => calls.push(`eventfd ${me} failed: ${error}`),
  });
  const one = new Uint8Array(new BigUint64Array([1n]).buffer);
  for (const me of [0, 1]) {
    const fd = sys.eventfd(0, C.EFD_NONBLOCK | C.EFD_CLOEXEC);
    ok(fd >= 0, `eventfd: ${fd}`);
    fds.push(fd);
    reactor.add(fd, C.EPOLLIN, swapper(me));
  }
  // Both readable before the loop's first poll, which runs after this synchronous code: one
  // batch holds both events.
  for (const fd of fds) strictEqual(sys.write(fd, one, 8n), 8);
  try {
    // The batch is dispatched as a whole, within one turn of the loop.
    await until("the first event", () => calls.length > 0);
    strictEqual(calls.length, 1, calls.join("; "));
    match(calls[0], /^eventfd [01]$/);
  } finally {
    const kept = fds[calls[0] === "eventfd 1" ? 1 : 0];
    reactor.close(kept);
    if (replaced >= 0) reactor.close(replaced);
    reactor.release();
    await reactor.stopped;
  }
});
