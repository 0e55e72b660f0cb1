import { ok, strictEqual, throws } from "node:assert/strict";
import { TokenBucket } from "../admission/token_bucket.ts";

function takes(bucket: TokenBucket, count: number): boolean[] {
  return Array.from({ length: count }, () => bucket.take());
}

Deno.test("TokenBucket: starts full and allows a burst", () => {
  const bucket = new TokenBucket({ rate: 1, burst: 3, now: () => 0 });
  ok(bucket.full);
  strictEqual(bucket.tokens, 3);
  strictEqual(takes(bucket, 4).join(), "true,true,true,false");
  ok(!bucket.full);
  strictEqual(bucket.tokens, 0);
});

Deno.test("TokenBucket: refills at rate, capped at burst", () => {
  let t = 0;
  const now = () => t;
  const bucket = new TokenBucket({ rate: 2, burst: 2, now });
  strictEqual(takes(bucket, 3).join(), "true,true,false");
  t = 499;
  ok(!bucket.take());
  t = 500;
  ok(bucket.take());
  ok(!bucket.take());
  t = 1000;
  strictEqual(bucket.tokens, 1);
  t = 1500;
  ok(bucket.full);
  t = 100_000; // long idle must not bank more than burst
  strictEqual(bucket.tokens, 2);
  strictEqual(takes(bucket, 3).join(), "true,true,false");
});

Deno.test("TokenBucket: refused takes cost nothing", () => {
  let t = 0;
  const now = () => t;
  const bucket = new TokenBucket({ rate: 1, burst: 1, now });
  ok(bucket.take());
  for (let i = 0; i < 100; i++) ok(!bucket.take());
  t = 1000;
  ok(bucket.take());
});

Deno.test("TokenBucket: fractional rate", () => {
  let t = 0;
  const now = () => t;
  const bucket = new TokenBucket({ rate: 0.5, now });
  strictEqual(bucket.burst, 1);
  ok(bucket.take());
  t = 1999;
  ok(!bucket.take());
  strictEqual(bucket.tokens, 0.9995);
  t = 2000;
  ok(bucket.full);
  ok(bucket.take());
  t = 3000;
  strictEqual(bucket.tokens, 0.5);
});

Deno.test("TokenBucket: fractional rate with non-integral interval", () => {
  let t = 0;
  const now = () => t;
  const bucket = new TokenBucket({ rate: 3, burst: 1, now });
  let admitted = 0;
  for (t = 0; t < 10_000; t++) if (bucket.take()) admitted++;
  // One per 333.3 ms over 10 s, rounded up to whole ms ticks.
  ok(admitted >= 29 && admitted <= 30, `admitted ${admitted}`);
});

Deno.test("TokenBucket: default burst is ceil(rate)", () => {
  strictEqual(new TokenBucket({ rate: 2.5 }).burst, 3);
  strictEqual(new TokenBucket({ rate: 0.1 }).burst, 1);
});

Deno.test("TokenBucket: clock stepping backwards is harmless", () => {
  let t = 10_000;
  const now = () => t;
  const bucket = new TokenBucket({ rate: 1, burst: 1, now });
  ok(bucket.take());
  t = 5_000;
  ok(!bucket.take());
  t = 11_000;
  ok(bucket.take());
});

Deno.test("TokenBucket: invalid options name the value", () => {
  throws(() => new TokenBucket({ rate: 0 }), {
    name: "RangeError",
    message: "invalid rate 0: must be a positive finite number",
  });
  throws(() => new TokenBucket({ rate: Number.POSITIVE_INFINITY }), {
    message: "invalid rate Infinity: must be a positive finite number",
  });
  throws(() => new TokenBucket({ rate: Number.NaN }), {
    message: "invalid rate NaN: must be a positive finite number",
  });
  throws(() => new TokenBucket({ rate: 1, burst: 0.5 }), {
    name: "RangeError",
    message: "invalid burst 0.5: must be a finite number >= 1",
  });
});
