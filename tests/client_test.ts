import { ok, rejects, strictEqual } from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { ClientError, connect } from "../client.ts";
import { serve } from "../server.ts";
import { fillBacklog, pattern, readN, sameBytes, within } from "./helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;

Deno.test("send resolves with exactly the bytes sent, text or binary, small or large", async () => {
  await using server = serve(local);
  await using client = await connect({ port: server.addr.port });
  const send = (message: string | Uint8Array) =>
    within(client.send(message), `the echo of ${message.length} bytes`);
  strictEqual(new TextDecoder().decode(await send("Hello, server")), "Hello, server");
  const big = pattern(8 << 20, 1);
  ok(sameBytes(await send(big), big), "8 MiB echo differs");
  strictEqual((await send(new Uint8Array(0))).length, 0);
});

Deno.test("concurrent sends on one client come back whole and in order", async () => {
  await using server = serve(local);
  await using client = await connect({ port: server.addr.port });
  const messages = Array.from({ length: 20 }, (_, i) => pattern(50_000 + i, i));
  const replies = await within(
    Promise.all(messages.map((m) => client.send(m))),
    "20 concurrent echoes",
  );
  replies.forEach((reply, i) => ok(sameBytes(reply, messages[i]), `message ${i} differs`));
});

Deno.test("connect names the address and the reason when refused", async () => {
  const gone = Deno.listen(local);
  const port = gone.addr.port;
  gone.close();
  await rejects(connect({ port }), {
    name: "ClientError",
    kind: "connect",
    message: `cannot connect to 127.0.0.1:${port}: connection refused`,
  });
});

Deno.test("system: a connect that its timeout ends is a timeout, not a refusal", async () => {
  using full = await fillBacklog();
  await rejects(connect({ port: full.port, signal: AbortSignal.timeout(100) }), {
    name: "ClientError",
    kind: "timeout",
    message: `cannot connect to 127.0.0.1:${full.port}: timed out`,
  });
});

Deno.test("a send that gets no reply gives up when its signal aborts", async () => {
  // A server that accepts and reads but never answers.
  using mute = Deno.listen(local);
  const accepted = mute.accept();
  await using client = await connect({ port: mute.addr.port });
  using conn = await within(accepted, "the client's connection");
  await rejects(
    client.send("anyone?", { signal: AbortSignal.timeout(50) }),
    (error: unknown) =>
      error instanceof ClientError && error.kind === "timeout" &&
      error.cause instanceof DOMException && error.cause.name === "TimeoutError",
  );
  // Any other abort keeps its own reason.
  await using other = await connect({ port: mute.addr.port });
  using _otherConn = await within(mute.accept(), "the other client's connection");
  await rejects(
    other.send("x", { signal: AbortSignal.abort(new Error("changed my mind")) }),
    { message: "changed my mind" },
  );
  await rejects(
    within(client.send("again"), "a send on a timed-out client to fail"),
    (error: unknown) => error instanceof ClientError && error.kind === "closed",
  );
  strictEqual(await within(conn.read(new Uint8Array(16)), "the first send's 7 bytes"), 7);
});

Deno.test("a server that closes mid-echo is reported with the byte counts", async () => {
  using short = Deno.listen(local);
  const serving = (async () => {
    using conn = await short.accept();
    const buffer = new Uint8Array(4);
    const n = await conn.read(buffer) ?? 0;
    await conn.write(buffer.subarray(0, Math.min(n, 2)));
  })();
  await using client = await connect({ port: short.addr.port });
  await rejects(within(client.send("four", { verify: true }), "the short echo"), {
    name: "ClientError",
    kind: "closed",
    message: /127\.0\.0\.1:\d+ closed the connection after echoing 2 of 4 bytes$/,
  });
  await within(serving, "the short server to end");
});

Deno.test("a server that closes after some echoes did not refuse: the message says how many came back", async () => {
  using closing = Deno.listen(local);
  // Echoes two messages whole, then reads the third and closes without echoing it
  // (having read everything, it closes with a FIN, not a reset).
  const serving = (async () => {
    using conn = await closing.accept();
    const buffer = new Uint8Array(3);
    for (let i = 0; i < 3; i++) {
      for (let got = 0; got < 3;) got += await conn.read(buffer.subarray(got)) ?? 3;
      if (i < 2) await conn.write(buffer);
    }
  })();
  await using client = await connect({ port: closing.addr.port });
  const send = (text: string) => within(client.send(text, { verify: true }), `"${text}" echoed`);
  strictEqual(new TextDecoder().decode(await send("one")), "one");
  strictEqual(new TextDecoder().decode(await send("two")), "two");
  await rejects(send("six"), {
    name: "ClientError",
    kind: "closed",
    message:
      /127\.0\.0\.1:\d+ closed the connection after 2 echoes, before echoing the next message$/,
  });
  await within(serving, "the closing server to end");
});

Deno.test("end half-closes and returns what came back beyond the echoes", async () => {
  await using server = serve(local);
  const client = await connect({ port: server.addr.port });
  await within(client.send("exact"), "the echo of 5 bytes");
  strictEqual((await within(client.end(), "the server to close after the half-close")).length, 0);
});

Deno.test("send with verify tells a refusal from an echo that differs", async () => {
  // One server refuses with a line and closes; the other answers wrongly and stays.
  using refusing = Deno.listen(local);
  const refusal = (async () => {
    using conn = await refusing.accept();
    // It takes the client's 2 bytes first: closing with them unread would reset the
    // connection instead of ending it (which a busy machine's timing made happen).
    await readN(conn, 2);
    await conn.write(new TextEncoder().encode("go away\n"));
  })();
  await using refused = await connect({ port: refusing.addr.port });
  await rejects(within(refused.send("hi", { verify: true }), "the refusal"), {
    name: "ClientError",
    kind: "refused",
    message:
      `127.0.0.1:${refusing.addr.port} sent "go away\\n" instead of an echo and closed the connection (refused?)`,
  });
  await within(refusal, "the refusing server to end");
  using liar = Deno.listen(local);
  const lying = (async () => {
    using conn = await liar.accept();
    const buffer = new Uint8Array(16);
    const n = await conn.read(buffer) ?? 0;
    await conn.write(buffer.subarray(0, n).map((b) => b ^ 1));
    await conn.read(buffer);
  })();
  await using lied = await connect({ port: liar.addr.port });
  await rejects(within(lied.send("abc", { verify: true }), "the wrong echo"), {
    name: "ClientError",
    kind: "mismatch",
    message: 'echo differs: sent "abc", got "`cb"',
  });
  await within(lying, "the lying server to end");
});

Deno.test("a refusal that ends in a reset, not a close, is still a refusal", async () => {
  // A server that closes with the client's bytes unread makes its kernel reset the connection
  // after what it wrote, instead of ending it: which of the two a refused client sees is a
  // matter of timing. This server takes the bytes, then always resets (SO_LINGER 0).
  let line = "";
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => socket.write(line, () => socket.resetAndDestroy()));
  });
  server.listen(0, "127.0.0.1");
  await within(once(server, "listening"), "the resetting server to listen");
  const port = (server.address() as net.AddressInfo).port;
  try {
    line = "go away\n";
    for (const message of ["hi", "a message longer than the refusal"]) {
      await using client = await connect({ port });
      await rejects(within(client.send(message, { verify: true }), "the refusal"), {
        name: "ClientError",
        kind: "refused",
        message:
          `127.0.0.1:${port} sent "go away\\n" instead of an echo and closed the connection (refused?)`,
      });
    }
    line = "";
    await using client = await connect({ port });
    await rejects(within(client.send("hi", { verify: true }), "the refusal"), {
      name: "ClientError",
      kind: "closed",
      message: `127.0.0.1:${port} closed the connection before echoing anything (refused?)`,
    });
  } finally {
    server.close();
    await within(once(server, "close"), "the resetting server to close");
  }
});
