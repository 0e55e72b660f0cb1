/**
 * The metrics endpoint's HTTP server on real sockets: what probes and
 * scrapers send (HAProxy's header-less HTTP/1.0 check, keep-alive, HEAD),
 * what they must not get away with (other methods, bodies, huge heads), and
 * its limits (a slow head, an idle keep-alive, more connections than it
 * holds), each with small limits so that the test is quick.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { type HttpLimits, HttpServer } from "../metrics/http.ts";
import { plain } from "../metrics/http_reply.ts";
import { until, within } from "./helpers.ts";
import { headEnd, parseHead } from "../metrics/request_head.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const QUICK: HttpLimits = {
  maxConnections: 4,
  headerTimeoutMs: 300,
  idleTimeoutMs: 600,
  maxHeadBytes: 1024,
  answerTimeoutMs: 600,
};

/** A server answering `METHOD PATH` in its body, on a free loopback port. */
function start(limits: HttpLimits = QUICK): { server: HttpServer; port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = new HttpServer(
    listener,
    (request) =>
      plain(request.path === "/missing" ? 404 : 200, `${request.method} ${request.path}\n`),
    limits,
  );
  return { server, port: listener.addr.port };
}

/** Everything the server sends on `conn` until it closes it, within `ms`. */
async function readAll(conn: Deno.Conn, ms = 5_000): Promise<string> {
  const deadline = setTimeout(() => conn.close(), ms);
  let text = "";
  const buffer = new Uint8Array(4096);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } catch (error) {
    if (error instanceof Deno.errors.BadResource) {
      throw new Error(`the server did not close within ${ms} ms; it sent: ${text}`);
    }
    if (error instanceof Deno.errors.ConnectionReset) return text;
    throw error;
  } finally {
    clearTimeout(deadline);
  }
}

/** Sends `raw` on a new connection and returns all the server sends back before closing. */
async function exchange(port: number, raw: string): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(raw));
  return await readAll(conn);
}

Deno.test("metrics HTTP: HAProxy's check (HTTP/1.0, no header) is answered and closed", async () => {
  const { server, port } = start();
  await using _server = server;
  const answer = await exchange(port, "GET /readyz HTTP/1.0\r\n\r\n");
  match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  match(answer, /\r\nconnection: close\r\n/);
  ok(answer.endsWith("\r\n\r\nGET /readyz\n"), answer);
});

Deno.test("metrics HTTP: keep-alive requests, pipelined, each answered in order", async () => {
  const { server, port } = start();
  await using _server = server;
  const answer = await exchange(
    port,
    "GET /a HTTP/1.1\r\nhost: x\r\n\r\nHEAD /b HTTP/1.1\r\nhost: x\r\n\r\nGET /missing?q=1 HTTP/1.1\r\nconnection: close\r\n\r\n",
  );
  const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
  deepEqual(statuses, ["200", "200", "404"]);
  // HEAD says how long the body would be, and sends none.
  match(answer, /content-length: 8\r\n\r\nHTTP\/1\.1 404/);
  ok(answer.endsWith("GET /missing\n"), answer);
});

Deno.test("metrics HTTP: other methods, bodies and bad requests are refused and closed", async () => {
  const { server, port } = start();
  await using _server = server;
  const post = await exchange(port, "POST /metrics HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc");
  match(post, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
  match(post, /\r\nallow: GET, HEAD\r\n/);
  // A GET with a body is not a wrong method: it is a request this server does not take.
  const body = await exchange(port, "GET /metrics HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc");
  match(body, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*no request body/);
  const head = await exchange(port, "HEAD / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
  match(head, /^HTTP\/1\.1 400 /);
  ok(head.endsWith("\r\n\r\n"), `HEAD got a body: ${head}`);
  match(await exchange(port, "DELETE / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 405 /);
  match(await exchange(port, "hello there\r\n\r\n"), /^HTTP\/1\.1 400 /);
  match(await exchange(port, "GET / HTTP/1.1\r\nno colon\r\n\r\n"), /^HTTP\/1\.1 400 /);
  match(
    await exchange(port, `GET / HTTP/1.1\r\nx: ${"y".repeat(2000)}\r\n\r\n`),
    /^HTTP\/1\.1 431 /,
  );
});

Deno.test("metrics HTTP: a head that is not complete in time is closed (slowloris)", async () => {
  const { server, port } = start();
  await using _server = server;
  const started = performance.now(); // before the connect: the head's deadline starts at accept
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode("GET /metrics HTTP/1.1\r\nx-slow: "));
  equal(await readAll(conn), "");
  ok(performance.now() - started >= QUICK.headerTimeoutMs);
  equal(server.counts.timedOut, 1);
});

Deno.test("metrics HTTP: an idle keep-alive connection is closed after the idle timeout", async () => {
  const { server, port } = start();
  await using _server = server;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode("GET /a HTTP/1.1\r\nhost: x\r\n\r\n"));
  match(await readAll(conn), /^HTTP\/1\.1 200 OK\r\n[\s\S]*GET \/a\n$/);
  equal(server.counts.timedOut, 1);
});

Deno.test("metrics HTTP: more connections than it holds: the one waiting longest makes room", async () => {
  const { server, port } = start({ ...QUICK, headerTimeoutMs: 60_000, idleTimeoutMs: 60_000 });
  await using _server = server;
  // Four silent connections fill it; a fifth, a probe, is served, and the first is closed.
  const silent = [];
  for (let i = 0; i < 4; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Each gets as far as the server's table before the next comes.
    await conn.write(encoder.encode("G"));
    silent.push(conn);
  }
  try {
    match(await exchange(port, "GET /healthz HTTP/1.0\r\n\r\n"), /^HTTP\/1\.1 200 /);
    equal(await readAll(silent[0]), "");
    ok(server.counts.evicted >= 1);
  } finally {
    for (const conn of silent) conn.close();
  }
});

Deno.test("metrics HTTP: close() ends idle connections and stops accepting", async () => {
  const { server, port } = start();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode("GET /a HTTP/1.1\r\nhost: x\r\n\r\n"));
  const reply = new Uint8Array(512);
  ok((await conn.read(reply) ?? 0) > 0);
  await server.close();
  equal(await readAll(conn), "");
  let refused = false;
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
  } catch (error) {
    refused = error instanceof Deno.errors.ConnectionRefused;
  }
  ok(refused, "nothing listens after close()");
});

Deno.test("parseHead: the request line and the headers that matter", () => {
  deepEqual(parseHead("GET /readyz HTTP/1.0\r"), {
    method: "GET",
    path: "/readyz",
    keepAlive: false,
    hasBody: false,
  });
  deepEqual(parseHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r"), {
    method: "GET",
    path: "/",
    keepAlive: true,
    hasBody: false,
  });
  deepEqual(parseHead("PUT /faults HTTP/1.1\r\nTransfer-Encoding: chunked\r"), {
    method: "PUT",
    path: "/faults",
    keepAlive: true,
    hasBody: true,
  });
  equal(
    (parseHead("GET http://127.0.0.1:9100/healthz?x HTTP/1.1") as { path: string }).path,
    "/healthz",
  );
  equal((parseHead("GET http://127.0.0.1:9100 HTTP/1.1") as { path: string }).path, "/");
  equal(parseHead("GET / HTTP/2.0"), "bad request line");
  equal(parseHead("GET / HTTP/1.1\r\n: empty name"), "bad header line");
});

Deno.test("metrics HTTP: a head cut anywhere across reads, and one exactly at the limit, are read whole", async () => {
  const { server, port } = start();
  await using _server = server;
  const request = "GET /split HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
  for (const cut of [request.length - 1, request.length - 2, request.length - 3, 5]) {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode(request.slice(0, cut)));
    // Likely in the server's hands before the rest comes (the unit test below covers every cut
    // for sure); either way the answer must be the same.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await conn.write(encoder.encode(request.slice(cut)));
    match(await readAll(conn), /^HTTP\/1\.1 200 OK[\s\S]*GET \/split\n$/, `cut at ${cut}`);
  }
  const start_ = "GET /full HTTP/1.1\r\nx: ";
  const end = "\r\nconnection: close\r\n\r\n";
  const exact = start_ + "y".repeat(QUICK.maxHeadBytes - start_.length - end.length) + end;
  equal(exact.length, QUICK.maxHeadBytes);
  match(await exchange(port, exact), /^HTTP\/1\.1 200 OK/);
  match(await exchange(port, exact.replace("x: ", "x: y")), /^HTTP\/1\.1 431 /);
});

Deno.test("metrics HTTP: a client that never reads its answers is closed, and close() does not wait for it", async () => {
  const big = "x".repeat(256 * 1024);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = new HttpServer(listener, () => plain(200, big), QUICK);
  const port = listener.addr.port;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // Requests piled up, answers never read: the server's writes stop once the buffers fill.
  await conn.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(50)));
  await until("the stalled answer to be timed out", () => server.counts.timedOut === 1, 10_000);
  // And close() is bounded, whatever a client does.
  using stalled = await Deno.connect({ hostname: "127.0.0.1", port });
  await stalled.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(50)));
  const started = performance.now();
  await within(server.close(), "close() with a client that does not read", 5_000);
  ok(performance.now() - started < 4_000);
});

Deno.test("headEnd: searched again from where it left off, a head's end is found at every cut", () => {
  const bytes = encoder.encode("GET / HTTP/1.1\r\nhost: x\r\n\r\nnext");
  const whole = headEnd(bytes, bytes.length);
  ok(whole !== undefined);
  for (let cut = 1; cut < whole.next; cut++) {
    equal(headEnd(bytes, cut), undefined, `complete at ${cut}?`);
    deepEqual(headEnd(bytes, bytes.length, Math.max(0, cut - 2)), whole, `cut at ${cut}`);
  }
});
