/**
 * `deploy/haproxy.cfg` for real: `haproxy -c` on the file as shipped, then
 * HAProxy on loopback in front of the instances the file's comments start
 * (the same command lines, ports 0), the file's ports replaced by the ones
 * the instances got. Named `system: …`: they need the `haproxy` program and
 * clients bound to 127.0.0.2x. Without haproxy they are ignored, saying why.
 */
import { ok, strictEqual } from "node:assert/strict";
import { type BoundClient, commandOutput, connectFrom, testEngines, until } from "./helpers.ts";
import { HAPROXY_CONFIG, haproxyMissing, startStack } from "./haproxy.ts";

const missing = await haproxyMissing();
const ignored = missing === undefined ? "" : ` (ignored: ${missing})`;

Deno.test({
  name: `system: haproxy -c accepts deploy/haproxy.cfg as shipped${ignored}`,
  ignore: missing !== undefined,
  async fn() {
    const out = await commandOutput("haproxy", { args: ["-c", "-f", HAPROXY_CONFIG] });
    strictEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  },
});

testEngines(
  `system: deploy/haproxy.cfg spreads clients over its instances, carries their address, skips a draining one${ignored}`,
  async (io) => {
    await using stack = new AsyncDisposableStack();
    const { instances, names, front, haproxy } = await startStack(stack, io, (config) =>
      // Checks 10 times as often, but each may take 2 s, as a loaded test machine needs.
      config.replace(/\binter 1s\b/, "inter 100ms")
        .replace(/^backend echo$/m, "backend echo\n  timeout check 2s"));

    // Six clients, each echoing every byte value through HAProxy, all open at once.
    // (HAProxy says nothing when it is ready, and the instances' logs come as they come.)
    const bytes = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join("");
    const first = await until(
      "haproxy to listen",
      () => connectFrom("127.0.0.21", front).catch(() => undefined),
    );
    const clients: BoundClient[] = [first];
    stack.defer(() => clients.forEach((client) => client.close()));
    for (let n = 22; n <= 26; n++) clients.push(await connectFrom(`127.0.0.${n}`, front));
    for (const client of clients) strictEqual(await client.echo(bytes), bytes);

    // Each client's own address, in the log of exactly one instance; every instance has some.
    const whose = (n: number) =>
      instances.filter((cli) => new RegExp(`opened from 127\\.0\\.0\\.${n}:`).test(cli.stderr));
    for (let n = 21; n <= 26; n++) {
      const found = await until(
        `127.0.0.${n} in a log`,
        () => whose(n).length ? whose(n) : undefined,
      );
      strictEqual(found.length, 1, `127.0.0.${n} opened on more than one instance`);
    }
    for (const cli of instances) {
      ok(/opened from 127\.0\.0\.2\d:/.test(cli.stderr), `leastconn left ${names.get(cli)} out`);
      ok(!/opened from 127\.0\.0\.1:/.test(cli.stderr), "HAProxy's own address is not the peer");
    }

    // Drain the instance of the first client: /readyz turns 503, HAProxy marks it down,
    // new clients go elsewhere, and the first client's connection goes on echoing.
    const draining = whose(21)[0];
    draining.kill("SIGTERM");
    await until(
      `${names.get(draining)} down`,
      () =>
        new RegExp(
          `Server echo/${names.get(draining)} is DOWN, reason: Layer7 wrong status, code: 503`,
        )
          .exec(haproxy.log) ?? undefined,
    );
    const late = await connectFrom("127.0.0.30", front);
    clients.push(late);
    strictEqual(await late.echo("after the drain began"), "after the drain began");
    strictEqual(await first.echo("still here"), "still here");
    await until("127.0.0.30 in a log", () => whose(30).at(0));
    ok(!whose(30).includes(draining), "a client went to the draining instance");
    // Its last connection closed, the draining instance exits 0 before its drain timeout.
    for (const client of clients) client.close();
    const { code, stderr } = await draining.finished();
    strictEqual(code, 0, stderr);
  },
  { ignore: missing !== undefined },
);
