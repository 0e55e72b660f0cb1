import { ok, strictEqual, throws } from "node:assert/strict";
import { LogThrottle } from "../../log/throttle.ts";

Deno.test("LogThrottle: one line per key per interval, with suppressed count", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ intervalMs: 1000, now });
  strictEqual(throttle.hit("a"), 0);
  strictEqual(throttle.hit("a"), null);
  t = 500;
  strictEqual(throttle.hit("a"), null);
  strictEqual(throttle.hit("a"), null);
  t = 999;
  strictEqual(throttle.hit("a"), null);
  t = 1000;
  strictEqual(throttle.hit("a"), 4);
  strictEqual(throttle.hit("a"), null);
  t = 2000;
  strictEqual(throttle.hit("a"), 1);
  t = 3000;
  strictEqual(throttle.hit("a"), 0);
});

Deno.test("LogThrottle: keys are independent", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ intervalMs: 1000, now });
  strictEqual(throttle.hit("a"), 0);
  strictEqual(throttle.hit("b"), 0);
  strictEqual(throttle.hit("a"), null);
  t = 1000;
  strictEqual(throttle.hit("b"), 0);
  strictEqual(throttle.hit("a"), 1);
});

Deno.test("LogThrottle: default interval is 10 s", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ now });
  strictEqual(throttle.hit("a"), 0);
  t = 9_999;
  strictEqual(throttle.hit("a"), null);
  t = 10_000;
  strictEqual(throttle.hit("a"), 1);
});

Deno.test("LogThrottle: interval 0 lets everything through", () => {
  const now = () => 0;
  const throttle = new LogThrottle({ intervalMs: 0, now });
  for (let i = 0; i < 5; i++) strictEqual(throttle.hit("a"), 0);
  ok(throttle.size <= 1);
});

Deno.test("LogThrottle: expired keys with nothing to report are swept", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ intervalMs: 1000, now });
  for (let i = 0; i < 500; i++) throttle.hit(`10.0.${i >> 8}.${i & 255}`);
  strictEqual(throttle.size, 500);
  t = 1000;
  throttle.hit("fresh");
  strictEqual(throttle.size, 1);
});

Deno.test("LogThrottle: an unreported count survives the interval", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ intervalMs: 1000, now });
  strictEqual(throttle.hit("a"), 0);
  strictEqual(throttle.hit("a"), null);
  strictEqual(throttle.hit("a"), null);
  t = 60_000;
  strictEqual(throttle.hit("other"), 0); // triggers a sweep
  strictEqual(throttle.hit("a"), 2);
});

Deno.test("LogThrottle: memory bounded by maxKeys under a flood of distinct keys", () => {
  const now = () => 0;
  const throttle = new LogThrottle({ intervalMs: 10_000, maxKeys: 100, now });
  for (let i = 0; i < 10_000; i++) {
    const key = `2001:db8:${i.toString(16)}::/64`;
    strictEqual(throttle.hit(key), 0);
    throttle.hit(key); // leaves a pending count, so the sweep may not drop it
    ok(throttle.size <= 100);
  }
  strictEqual(throttle.size, 100);
  // The most recent key is still throttled; the oldest was evicted and starts over.
  strictEqual(throttle.hit("2001:db8:270f::/64"), null);
  strictEqual(throttle.hit("2001:db8:0::/64"), 0);
});

Deno.test("LogThrottle: eviction drops the key let through longest ago", () => {
  let t = 0;
  const now = () => t;
  const throttle = new LogThrottle({ intervalMs: 1000, maxKeys: 2, now });
  throttle.hit("a");
  t = 10;
  throttle.hit("b");
  t = 20;
  throttle.hit("c"); // evicts "a"
  strictEqual(throttle.size, 2);
  strictEqual(throttle.hit("b"), null);
  strictEqual(throttle.hit("c"), null);
  strictEqual(throttle.hit("a"), 0); // forgotten, so let through again (evicts "b")
  strictEqual(throttle.hit("c"), null);
  strictEqual(throttle.hit("b"), 0);
});

Deno.test("LogThrottle: invalid options name the value", () => {
  throws(() => new LogThrottle({ intervalMs: -1 }), {
    name: "RangeError",
    message: "invalid intervalMs -1: must be a finite number >= 0",
  });
  throws(() => new LogThrottle({ maxKeys: 0 }), {
    name: "RangeError",
    message: "invalid maxKeys 0: must be a positive integer",
  });
  throws(() => new LogThrottle({ maxKeys: 1.5 }), {
    message: "invalid maxKeys 1.5: must be a positive integer",
  });
});
