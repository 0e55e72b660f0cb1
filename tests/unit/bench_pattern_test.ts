import { deepEqual, equal, ok } from "node:assert/strict";
import { answered, failedBy, type Outcome } from "../../bench/failures.ts";
import { Pattern, PERIOD } from "../../bench/pattern.ts";
import { Wakeups } from "../../bench/schedule.ts";

Deno.test("the pattern repeats every PERIOD bytes and catches flipped and shifted bytes", () => {
  const pattern = new Pattern(70_000);
  const b = pattern.bytes;
  equal(b.length, PERIOD + 70_000);
  deepEqual(b.subarray(PERIOD, PERIOD + 1000), b.subarray(0, 1000));
  const echo = b.slice(500, 4596);
  ok(pattern.matches(echo, echo.length, 500));
  // One buffer lost: the rest arrives a power of two early.
  ok(!pattern.matches(b.slice(500 + 4096, 500 + 8192), 4096, 500));
  echo[4000] ^= 0x01;
  ok(!pattern.matches(echo, echo.length, 500));
  // The same pattern every time: a failing run can be reproduced.
  deepEqual(new Pattern(16).bytes.subarray(0, 64), b.subarray(0, 64));
});

Deno.test("wake-ups come in time order from one timer, and all at once on wakeAll", async () => {
  const wakeups = new Wakeups();
  const order: number[] = [];
  const now = performance.now();
  const woken = [30, 10, 20].map((ms) => wakeups.at(now + ms).then(() => order.push(ms)));
  await Promise.all(woken);
  deepEqual(order, [10, 20, 30]);
  ok(performance.now() - now >= 30 - 2);

  const late = [wakeups.at(now + 60_000), wakeups.at(now + 120_000)];
  wakeups.wakeAll();
  await Promise.all(late);
});

Deno.test("outcomes: which leave the connection usable, which are the server's failure", () => {
  const all: Outcome[] = ["echoed", "corrupted", "cut", "reset", "refused"];
  deepEqual(all.filter(answered), ["echoed", "corrupted"]);
  deepEqual(all.filter(failedBy), ["reset", "refused"]);
});
