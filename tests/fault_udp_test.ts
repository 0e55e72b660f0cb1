/**
 * Datagram faults end to end: a client socket counts what comes back of
 * 10,000 numbered datagrams (drops and duplicates within their rates), and
 * a datagram held back behind the next one.
 */
import { equal, ok } from "node:assert/strict";
import { serve } from "../server.ts";
import { Inbox } from "./udp_helpers.ts";

const local = { hostname: "127.0.0.1", port: 0 } as const;
/** No reply limit in the way: the faults alone decide what comes back. */
const udp = { rate: 1_000_000, burst: 1_000_000 };

Deno.test("UDP drop=0.2,duplicate=0.2 over 10,000 datagrams: both rates within 17-23 %", async () => {
  await using server = serve({ ...local, udp, faults: ["drop=0.2,duplicate=0.2"] });
  await using inbox = new Inbox();
  const seen = new Map<number, number>();
  const total = 10_000;
  const batch = 200;
  for (let start = 0; start < total; start += batch) {
    for (let i = start; i < start + batch; i++) {
      const datagram = new Uint8Array(4);
      new DataView(datagram.buffer).setUint32(0, i);
      await inbox.send(datagram, server.addr.port);
    }
    // What comes back of a batch comes within a moment: the faults here do not delay.
    for (let reply = await inbox.next(2000); reply !== null; reply = await inbox.next(30)) {
      const id = new DataView(reply.buffer, reply.byteOffset).getUint32(0);
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
  }
  const echoed = seen.size;
  const duplicated = [...seen.values()].filter((times) => times === 2).length;
  ok([...seen.values()].every((times) => times <= 2), "never more than twice");
  const dropRate = 1 - echoed / total;
  const duplicateRate = duplicated / echoed;
  ok(dropRate >= 0.17 && dropRate <= 0.23, `dropped ${(dropRate * 100).toFixed(1)} %`);
  ok(
    duplicateRate >= 0.17 && duplicateRate <= 0.23,
    `duplicated ${(duplicateRate * 100).toFixed(1)} %`,
  );
  const faults = server.stats().faults;
  equal(faults?.drop, total - echoed);
  equal(faults?.duplicate, duplicated);
});

Deno.test("UDP reorder=1: a datagram is held back behind the next one", async () => {
  await using server = serve({ ...local, udp, faults: ["reorder=1"] });
  await using inbox = new Inbox();
  await inbox.send("first", server.addr.port);
  await inbox.send("second", server.addr.port);
  const decode = (data: Uint8Array | null) => data && new TextDecoder().decode(data);
  equal(decode(await inbox.next(2000)), "second");
  equal(decode(await inbox.next(2000)), "first");
});

Deno.test("UDP delay=100ms: the echo comes 100 ms later; from= spares other sources", async () => {
  await using server = serve({ ...local, udp, faults: ["delay=100ms,from=127.0.0.1"] });
  await using inbox = new Inbox();
  const start = performance.now();
  await inbox.send("late", server.addr.port);
  ok((await inbox.next(2000)) !== null);
  ok(performance.now() - start >= 95, "not before the delay");
  await using other = new Inbox("127.0.0.2");
  const otherStart = performance.now();
  await other.send("now", server.addr.port);
  ok((await other.next(2000)) !== null);
  ok(performance.now() - otherStart < 95, "127.0.0.2 is not delayed");
});
