import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { type Connection, type Listener, serve } from "../server.ts";
import {
  assertRefused,
  exchange,
  pattern,
  readEnd,
  readN,
  readToEnd,
  sameBytes,
  testEngines,
  within,
  writeAll,
} from "./helpers.ts";

const encoder = new TextEncoder();
const local = { hostname: "127.0.0.1", port: 0 } as const;

for (
  const [name, payload] of [
    ["text", encoder.encode("Hello, server 1")],
    ["every byte value 0-255", pattern(256)],
    ["1 byte", new Uint8Array([42])],
    ["1 MiB", pattern(1 << 20, 3)],
    ["16 MiB", pattern(16 << 20, 5)],
  ] as const
) {
  testEngines(`echoes ${name} exactly`, async (io) => {
    await using server = serve({ ...local, io });
    using conn = await Deno.connect(server.addr);
    const reply = await exchange(conn, payload);
    strictEqual(reply.length, payload.length);
    ok(sameBytes(reply, payload), "reply differs from what was sent");
  });
}

testEngines("echoes many messages on one connection, in order", async (io) => {
  await using server = serve({ ...local, io });
  using conn = await Deno.connect(server.addr);
  for (let i = 0; i < 200; i++) {
    const message = pattern(1 + (i * 37) % 5000, i);
    ok(sameBytes(await exchange(conn, message), message), `message ${i} differs`);
  }
});

testEngines("serves 100 concurrent clients each sending 20 messages 10 ms apart", async (io) => {
  await using server = serve({ ...local, io });
  const client = async (n: number) => {
    using conn = await Deno.connect(server.addr);
    for (let i = 20; i >= 1; i--) {
      const message = encoder.encode(`Hello, server ${i} from client ${n}`);
      const reply = await exchange(conn, message);
      deepStrictEqual(new TextDecoder().decode(reply), `Hello, server ${i} from client ${n}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  await Promise.all(Array.from({ length: 100 }, (_, n) => client(n)));
  const stats = server.stats();
  strictEqual(stats.served, 100);
  strictEqual(stats.bytesIn, stats.bytesOut);
});

testEngines("after a half-close, writes back everything received, then closes", async (io) => {
  await using server = serve({ ...local, io });
  using conn = await Deno.connect(server.addr);
  const payload = pattern(3 << 20, 9);
  // Written in full before reading a byte, then half-closed: the server must
  // still return every byte and then end the stream.
  const reading = readToEnd(conn);
  await writeAll(conn, payload);
  await conn.closeWrite();
  const reply = await reading;
  strictEqual(reply.length, payload.length);
  ok(sameBytes(reply, payload));
});

testEngines("a client that sends 64 MiB without reading stalls only itself", async (io) => {
  await using server = serve({ ...local, io });
  const hog = await Deno.connect(server.addr);
  const big = new Uint8Array(64 << 20);
  const firstWrite = await hog.write(big);
  ok(firstWrite > 0);
  let hogDone = false;
  const hogWriting = writeAll(hog, big.subarray(firstWrite)).then(
    () => hogDone = true,
    () => hogDone = true,
  );

  using other = await Deno.connect(server.addr);
  for (let i = 0; i < 10; i++) {
    const message = pattern(10_000, i);
    ok(sameBytes(await exchange(other, message), message));
  }
  strictEqual(hogDone, false, "64 MiB cannot fit in socket buffers unless the server hoards it");
  ok(server.stats().bytesIn < 48 << 20, `server read ${server.stats().bytesIn} bytes ahead`);
  hog.close();
  await hogWriting;
});

testEngines("a peer that resets ends only its own connection", async (io) => {
  await using server = serve({ ...local, io });
  const rude = await Deno.connect(server.addr);
  await writeAll(rude, pattern(100_000));
  // Closing with echoed bytes still unread makes the kernel send a reset.
  await readN(rude, 1);
  rude.close();
  using polite = await Deno.connect(server.addr);
  const message = encoder.encode("still there?");
  ok(sameBytes(await exchange(polite, message), message));
});

testEngines("shutdown lets an open connection finish and refuses new ones", async (io) => {
  const server = serve({ ...local, io, drainTimeoutMs: 10_000 });
  const conn = await Deno.connect(server.addr);
  ok(sameBytes(await exchange(conn, encoder.encode("one")), encoder.encode("one")));
  const stopped = server.shutdown();
  await assertRefused(server.addr);
  ok(sameBytes(await exchange(conn, encoder.encode("two")), encoder.encode("two")));
  conn.close();
  const summary = await stopped;
  strictEqual(summary.served, 1);
  strictEqual(summary.bytesOut, 6);
  strictEqual(summary.open, 0);
});

testEngines("shutdown closes connections still open when the drain timeout ends", async (io) => {
  const server = serve({ ...local, io, drainTimeoutMs: 50 });
  using conn = await Deno.connect(server.addr);
  ok(sameBytes(await exchange(conn, encoder.encode("hi")), encoder.encode("hi")));
  const summary = await server.shutdown();
  strictEqual(summary.open, 0);
  await readEnd(conn, "the server to close the connection at the drain timeout");
});

/** A TCP listener seen only through the `Listener` interface, with hooks to misbehave. */
function scriptedListener(
  options: { failFirstAccepts?: number } = {},
): Listener<Deno.NetAddr> & { endIteration(): void } {
  const tcp = Deno.listen(local);
  let failures = options.failFirstAccepts ?? 0;
  const ended = Promise.withResolvers<IteratorResult<Connection>>();
  return {
    addr: tcp.addr,
    close: () => tcp.close(),
    endIteration: () => ended.resolve({ done: true, value: undefined }),
    [Symbol.asyncIterator]: () => ({
      next: () => {
        if (failures > 0) {
          failures--;
          return Promise.reject(new Error("accept failed on purpose"));
        }
        const accepted = tcp.accept().then((conn) => ({ done: false as const, value: conn }));
        return Promise.race([accepted, ended.promise]);
      },
    }),
  };
}

Deno.test("serves connections from a listener it is given, and closes it at shutdown", async () => {
  const listener = scriptedListener();
  const server = serve({ listener });
  strictEqual(server.addr.port, listener.addr.port);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  ok(sameBytes(await exchange(conn, encoder.encode("given")), encoder.encode("given")));
  conn.close();
  strictEqual((await server.shutdown()).served, 1);
  await assertRefused(listener.addr);
});

Deno.test("a failed accept is retried, and no client is lost", async () => {
  const listener = scriptedListener({ failFirstAccepts: 3 });
  await using server = serve({ listener });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  ok(sameBytes(await exchange(conn, encoder.encode("late")), encoder.encode("late")));
});

Deno.test("a listener that ends by itself stops the server and closes its connections", async () => {
  const listener = scriptedListener();
  const server = serve({ listener });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  ok(sameBytes(await exchange(conn, encoder.encode("hi")), encoder.encode("hi")));
  listener.endIteration();
  await rejects(within(server.finished, "the server to stop with its listener"), {
    message: `stopped listening on 127.0.0.1:${server.addr.port}: the listener closed`,
  });
  await readEnd(conn, "the server to close the connection it served");
  // The server closed the listener it lost, rather than leave its port open.
  await assertRefused(listener.addr);
});
