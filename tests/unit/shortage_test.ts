/**
 * A shortage of descriptors as the accept loop lives through it, on a clock
 * of the test's own: the cap comes down to what is open, goes back up once
 * accepts stop failing, comes down again if they fail again, and the episode
 * ends once the lifted cap has held.
 */
import { equal } from "node:assert/strict";
import { Guard } from "../../admission/guard.ts";
import { DescriptorShortage } from "../../server/shortage.ts";
import { FailureEpisode, QUIET_MS } from "../../log/episode.ts";

const EMFILE = Object.assign(new Error("too many open files"), { code: "EMFILE" });

/** A guard with `open` admissions held, a shortage on a test clock, and the clock. */
function setUp(
  open: number,
): { guard: Guard; shortage: DescriptorShortage; tick(ms: number): void } {
  const guard = new Guard({ maxConns: 100 });
  for (let i = 0; i < open; i++) guard.admit(`10.0.0.${i}`);
  let clock = 0;
  const shortage = new DescriptorShortage(guard, () => clock);
  return {
    guard,
    shortage,
    tick: (ms) => {
      clock += ms;
      shortage.check();
    },
  };
}

Deno.test("DescriptorShortage: the cap comes down to what is open, and back up once accepts stop failing", () => {
  const { guard, shortage, tick } = setUp(7);
  shortage.failed(EMFILE);
  equal(guard.maxConns, 7);
  equal(shortage.active, true);
  tick(QUIET_MS - 1);
  equal(guard.maxConns, 7, "not before a quiet second");
  tick(1);
  equal(guard.maxConns, 100, "lifted");
  equal(shortage.active, true, "the lifted cap must hold a second before the episode ends");
  tick(QUIET_MS);
  equal(shortage.active, false);
  equal(guard.maxConns, 100);
});

Deno.test("DescriptorShortage: failing again after the lift lowers the cap again, in the same episode", () => {
  const { guard, shortage, tick } = setUp(5);
  shortage.failed(EMFILE);
  tick(QUIET_MS);
  equal(guard.maxConns, 100);
  // A connection closed meanwhile: the cap is what is open now.
  guard.admit("10.0.1.1");
  shortage.failed(EMFILE);
  equal(guard.maxConns, 6);
  equal(shortage.active, true);
  tick(QUIET_MS);
  equal(guard.maxConns, 100);
  tick(QUIET_MS);
  equal(shortage.active, false);
});

Deno.test("DescriptorShortage: with nothing open the cap is left alone, and the episode still ends", () => {
  const { guard, shortage, tick } = setUp(0);
  shortage.failed(EMFILE);
  equal(guard.maxConns, 100);
  tick(QUIET_MS);
  equal(shortage.active, false);
});

Deno.test("FailureEpisode: one beginning and one end however many failures, and a new episode after", () => {
  let clock = 0;
  const said: string[] = [];
  const episode = new FailureEpisode({
    began: () => said.push("began"),
    ended: (failures, seconds) => said.push(`ended: ${failures} in ${seconds} s`),
  }, () => clock);
  for (let i = 0; i < 5; i++) {
    episode.failed(EMFILE);
    clock += 400;
    episode.check();
  }
  clock += QUIET_MS;
  episode.check();
  episode.failed(EMFILE);
  episode.stop();
  equal(said.join("; "), "began; ended: 5 in 3 s; began");
});
