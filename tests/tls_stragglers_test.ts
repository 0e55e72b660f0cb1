/**
 * TLS stragglers: TCP connections to the TLS port that never start their
 * handshake. `--handshake-timeout` closes them for real (the peer sees the
 * end, the server's descriptors come back), and rounds of them closed by
 * their clients, under a small descriptor limit, leave the server able to
 * serve a crowd afterwards. Named `system: …`: they need `openssl` for the
 * certificates.
 */
import { equal, ok } from "node:assert/strict";
import { Cli, descriptorsOf, pattern, steady, until, within } from "./helpers.ts";
import { opensslMissing, testCerts } from "./certs.ts";

const missing = await opensslMissing();
const ignore = missing !== undefined;
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A TLS server from the command line, optionally under `ulimit -n`; its pid and port. */
async function tlsServer(flags: string[], limit?: number): Promise<{ cli: Cli; port: number }> {
  const { certPath, keyPath } = await testCerts();
  const args = [
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--cert",
    certPath,
    "--key",
    keyPath,
    ...flags,
  ];
  const deno = [Deno.execPath(), "run", "--quiet", "--allow-net", "--allow-read"];
  const cli = limit === undefined
    ? new Cli(args, { permissions: ["--allow-net", "--allow-read"] })
    : new Cli(["-c", `ulimit -n ${limit} && exec "$@"`, "bash", ...deno, "main.ts", ...args], {
      executable: "bash",
    });
  return { cli, port: await cli.port() };
}

Deno.test({
  name:
    `system: TLS: 300 silent connections are closed by --handshake-timeout, each peer sees the end, and the descriptors come back${ignored}`,
  ignore,
  async fn() {
    const { cli, port } = await tlsServer(["--handshake-timeout", "1s", "--idle-timeout", "2s"]);
    await using _cli = cli;
    const before = descriptorsOf(cli.pid);
    const silent = await Promise.all(
      Array.from({ length: 300 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    await until(
      "300 connections open on the server",
      () => (cli.stderr.match(/ opened from /g)?.length ?? 0) === 300,
      10_000,
    );
    // No count of descriptors held here: on a busy machine the first handshake timeouts may
    // already have fired by now; the lines above say the server took all 300.
    // Every peer reads the end of its connection: closed for real, not only in the books.
    const ends = await Promise.all(silent.map(async (conn) => {
      try {
        return await conn.read(new Uint8Array(16));
      } catch (error) {
        return error instanceof Error ? error.name : String(error);
      } finally {
        conn.close();
      }
    }));
    ok(ends.every((end) => end === null || end === "ConnectionReset"), String(ends.slice(0, 5)));
    // Each says why in its closed line (the lines may come a moment after the ends).
    await until(
      "300 lines saying why",
      () => cli.stderr.match(/failed: no handshake within 1s/g)?.length === 300,
      5_000,
    );
    await until("the descriptors to come back", () => descriptorsOf(cli.pid) <= before + 2, 5_000);
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  },
});

Deno.test({
  name:
    `system: TLS under ulimit -n 100: rounds of 250 silent connects, then 60 clients are all served at the same time${ignored}`,
  ignore,
  async fn() {
    const { ca } = await testCerts();
    // The idle timeout also bounds the handshake: each round's silent peers are cut after 1 s.
    const { cli, port } = await tlsServer(["--idle-timeout", "1s"], 100);
    await using _cli = cli;
    const baseline = descriptorsOf(cli.pid);
    for (let round = 1; round <= 3; round++) {
      const silent: Deno.TcpConn[] = [];
      for (let i = 0; i < 250; i++) {
        silent.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      // More than the server can hold: it takes what it can (its descriptors near the limit).
      await until(
        `round ${round}: the server to fill its descriptors`,
        () => descriptorsOf(cli.pid) >= 90,
        10_000,
      );
      // All at once, and the next round at once: the server frees them as it can.
      for (const conn of silent) conn.close();
    }
    await until(
      "the descriptors to come back",
      () => descriptorsOf(cli.pid) <= baseline + 2,
      10_000,
    );
    // A crowd afterwards, each client holding its connection until every one has its echo:
    // only a server that holds 60 at once gets through (the cap came back up with the descriptors).
    const everyone = Promise.withResolvers<void>();
    let echoed = 0;
    const crowd = Array.from({ length: 60 }, async (_, i) => {
      const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
      try {
        const text = `client ${i}`;
        await conn.write(encoder.encode(text));
        const reply = new Uint8Array(text.length);
        for (let got = 0; got < reply.length;) {
          const n = await conn.read(reply.subarray(got));
          if (n === null) throw new Error(`client ${i}: closed after ${got} bytes`);
          got += n;
        }
        equal(decoder.decode(reply), text);
        if (++echoed === 60) everyone.resolve();
        await everyone.promise;
      } finally {
        conn.close();
      }
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`only ${echoed} of 60 clients echoed at once within 20 s`)),
        20_000,
      );
    });
    try {
      await Promise.race([Promise.all(crowd), late]);
    } finally {
      clearTimeout(timer);
      everyone.resolve();
      await Promise.allSettled(crowd);
    }
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
  },
});

Deno.test({
  name:
    `system: TLS: a connection that lasts holds one descriptor on the server, as a plain one does${ignored}`,
  ignore,
  async fn() {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer([]);
    await using _cli = cli;
    const before = descriptorsOf(cli.pid);
    const clients = await Promise.all(
      Array.from(
        { length: 50 },
        () => Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] }),
      ),
    );
    try {
      for (const [i, conn] of clients.entries()) {
        await conn.write(encoder.encode(`c${i}`));
        equal(decoder.decode(await readExactly(conn, `c${i}`.length)), `c${i}`);
      }
      // Two each at first (Deno's and Node's), one each once they have lasted a second.
      await until(
        "one descriptor per connection",
        () => descriptorsOf(cli.pid) <= before + 50 + 1,
        10_000,
      );
      for (const [i, conn] of clients.entries()) {
        await conn.write(encoder.encode(`again ${i}`));
        equal(decoder.decode(await readExactly(conn, `again ${i}`.length)), `again ${i}`);
      }
    } finally {
      for (const conn of clients) conn.close();
    }
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  },
});

/** Reads exactly `n` bytes, failing if the connection ends first. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let got = 0; got < n;) {
    const read = await conn.read(out.subarray(got));
    if (read === null) throw new Error(`closed after ${got} of ${n} bytes`);
    got += read;
  }
  return out;
}

Deno.test({
  name:
    `system: TLS: a client that sends without reading is read no further than its echoes can be written${ignored}`,
  ignore,
  async fn() {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer(["--drain-timeout", "300ms"]);
    await using _cli = cli;
    using rude = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
    // It writes for up to 1.5 s and never reads. A server that stops reading once its echoes
    // stop leaving (the client's buffers full) makes these writes wait: a few MB get through,
    // the kernels' buffers. One that read on regardless took 400 MB a second into its memory.
    const chunk = new Uint8Array(64 * 1024);
    let written = 0;
    const deadline = Date.now() + 1_500;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      while (Date.now() < deadline && written < 64 * 1024 * 1024) {
        const late = new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), deadline - Date.now());
        });
        const n = await Promise.race([rude.write(chunk), late]);
        clearTimeout(timer);
        if (n === "late") break;
        written += n;
      }
    } finally {
      clearTimeout(timer);
    }
    ok(written < 32 * 1024 * 1024, `the client wrote ${written} bytes unread`);
    // Meanwhile the server serves others.
    using polite = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
    await polite.write(encoder.encode("still here"));
    equal(decoder.decode(await readExactly(polite, 10)), "still here");
    // The rude client never reads, and Deno's TLS client would linger at its close: the drain
    // cuts it after 300 ms (and the second its gentle cut gives it).
    cli.kill("SIGTERM");
    equal((await cli.finished()).code, 0);
  },
});

Deno.test({
  name:
    `system: TLS under ulimit -n 60: 60 clients handshaking at once, more than fit, are all served in turn${ignored}`,
  ignore,
  async fn() {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer([], 60);
    await using _cli = cli;
    // Each client connects, echoes, and leaves: those the server cannot take yet wait in the
    // backlog (or, accepted, for a descriptor to hand them to node:tls), and none is dropped.
    const replies = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const conn = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
      try {
        await conn.write(encoder.encode(`client ${i}`));
        return decoder.decode(await readExactly(conn, `client ${i}`.length));
      } finally {
        conn.close();
      }
    }));
    for (const [i, reply] of replies.entries()) equal(reply, `client ${i}`);
    cli.kill("SIGTERM");
    const { code, stderr } = await cli.finished();
    equal(code, 0, stderr);
    ok(/out of file descriptors/.test(stderr), "the server ran out, as the test means it to");
    ok(!/closed: error/.test(stderr), stderr);
  },
});

Deno.test({
  name:
    `system: TLS: a client that reads only after the drain timeout still gets every echo, then close_notify${ignored}`,
  ignore,
  async fn() {
    const { ca } = await testCerts();
    const { cli, port } = await tlsServer(["--drain-timeout", "300ms"]);
    await using _cli = cli;
    using slow = await Deno.connectTls({ hostname: "localhost", port, caCerts: [ca] });
    // It writes until its writes wait (its echoes fill the buffers: the server has stopped
    // reading it, and has input it has not read), for 1.5 s at most, reading nothing yet.
    const chunk = pattern(64 * 1024);
    let sent = 0;
    let stalled = false;
    const writing = (async () => {
      while (!stalled && sent < 256 * 1024 * 1024) sent += await slow.write(chunk);
    })().catch(() => {});
    await until("the writes to stall", steady(() => sent, 5), 10_000, 50);
    stalled = true;
    cli.kill("SIGTERM");
    await cli.waitFor(/draining 1 connection for up to 300ms/);
    // The drain times out while it still reads nothing; then it reads, well within the second
    // its gentle cut gives it: every byte echoed, in order, and the end as TLS says it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    let received = 0;
    const buffer = new Uint8Array(256 * 1024);
    let end: string;
    try {
      while (true) {
        const n = await within(slow.read(buffer), "the rest of the echoes");
        if (n === null) {
          end = "close_notify";
          break;
        }
        for (let i = 0; i < n; i++) {
          if (buffer[i] !== chunk[(received + i) % chunk.length]) {
            throw new Error(`byte ${received + i} differs`);
          }
        }
        received += n;
      }
    } catch (error) {
      end = error instanceof Error ? error.name : String(error);
    }
    equal(end, "close_notify", `after ${received} of ${sent} bytes`);
    ok(received > 0 && received <= sent, `${received} of ${sent} bytes back`);
    await writing;
    equal((await cli.finished()).code, 0);
    ok(/closed: shutdown/.test(cli.stderr), cli.stderr);
  },
});
