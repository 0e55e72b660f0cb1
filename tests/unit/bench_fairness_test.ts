/** The bench's guard against starving its own connections: when it pauses, and when it does not. */
import { equal, ok, strictEqual } from "node:assert/strict";
import { Fairness, STARVED_MS, WORK_MS } from "../../bench/fairness.ts";

const T = 10_000;

Deno.test("fairness: no connection waiting long, no pause ever", () => {
  const fairness = new Fairness(3);
  for (let i = 0; i < 3; i++) fairness.sent(i, T);
  equal(fairness.check(T + STARVED_MS), false);
  for (let now = T; now < T + 10 * WORK_MS; now++) strictEqual(fairness.pause(now), undefined);
});

Deno.test("fairness: a connection that got its echo is not waiting", () => {
  const fairness = new Fairness(2);
  fairness.sent(0, T);
  fairness.sent(1, T);
  fairness.echoed(0);
  fairness.echoed(1);
  equal(fairness.check(T + 10 * STARVED_MS), false);
});

Deno.test("fairness: while one starves, every loop shares one pause per stretch of work", async () => {
  const fairness = new Fairness(2);
  fairness.sent(1, T);
  ok(fairness.check(T + STARVED_MS + 1));
  const now = T + STARVED_MS + 2;
  strictEqual(fairness.pause(now), undefined);
  const first = fairness.pause(now + WORK_MS);
  ok(first instanceof Promise);
  strictEqual(fairness.pause(now + WORK_MS + 1), first, "one pause for everyone");
  await first;
  strictEqual(fairness.pause(now + WORK_MS + 2), undefined, "work again after the pause");
});

Deno.test("fairness: still waiting after two pauses means the server holds it, not this client", async () => {
  const fairness = new Fairness(1);
  fairness.sent(0, T);
  let now = T + STARVED_MS + 1;
  ok(fairness.check(now));
  for (let pauses = 0; pauses < 2; pauses++) {
    strictEqual(fairness.pause(now), undefined);
    now += WORK_MS;
    const pause = fairness.pause(now);
    ok(pause instanceof Promise);
    await pause;
    now += 1;
  }
  equal(fairness.check(now), false);
  // A new message from that connection can starve again.
  fairness.sent(0, now);
  ok(fairness.check(now + STARVED_MS + 1));
});

Deno.test("fairness: the pauses end a while after the last starving connection was seen", () => {
  const fairness = new Fairness(1);
  fairness.sent(0, T);
  ok(fairness.check(T + STARVED_MS + 1));
  fairness.echoed(0);
  equal(fairness.check(T + STARVED_MS + 2), false);
  // Long after: no pause however much work.
  const later = T + 100 * STARVED_MS;
  strictEqual(fairness.pause(later), undefined);
  strictEqual(fairness.pause(later + 10 * WORK_MS), undefined);
});

Deno.test("fairness: a new starvation counts its work from its own start", () => {
  const fairness = new Fairness(1);
  fairness.sent(0, T);
  const first = T + STARVED_MS + 1;
  ok(fairness.check(first));
  strictEqual(fairness.pause(first), undefined); // work starts counting here
  fairness.echoed(0);
  // The window ends without a pause; much later another connection starves.
  const later = first + 100 * STARVED_MS;
  strictEqual(fairness.pause(later), undefined);
  fairness.sent(0, later);
  ok(fairness.check(later + STARVED_MS + 1));
  strictEqual(fairness.pause(later + STARVED_MS + 2), undefined, "no pause before its own work");
});
