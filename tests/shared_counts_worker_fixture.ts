/**
 * Worker side of the multi-thread tests for shared_counts.ts and guard.ts.
 * Loaded with `new Worker(new URL("./shared_counts_worker_fixture.ts",
 * import.meta.url), { type: "module" })`; answers each request with one reply.
 *
 * @module
 */

import { type Admission, Guard, type GuardOptions } from "../admission/guard.ts";
import type { RateLimit } from "../admission/limits.ts";
import { SharedCounts } from "../admission/shared_counts.ts";

/**
 * What the test thread asks the worker to do.
 *
 * - `hammer`: once all `parties` workers have arrived at the `start` barrier
 *   (an Int32 arrival count), `rounds` times tryOpen on keys in turn, holding
 *   up to `hold` admissions and closing the oldest when at `hold` or refused,
 *   checking the limits after every admission; closes everything at the end.
 *   `tally` holds one Int32 per key: the admissions all workers hold, raised
 *   after an admission and lowered before its close, so it never exceeds the
 *   true count, and a tally above `maxPerKey` proves a limit was broken.
 * - `tokens`: `attempts` takeToken calls at one fixed time.
 * - `open` / `close`: `count` tryOpen or close calls for `key`.
 * - `wait`: replies once `whenNotFull` resolves.
 * - `guard`: builds this worker's Guard (replacing any earlier one).
 * - `admit`: admits each address with the Guard and keeps the admissions.
 * - `release`: releases every kept admission.
 *
 * @example
 * ```ts no-assert
 * const request: FixtureRequest = { op: "open", buffer: new SharedArrayBuffer(8), key: "k", count: 1 };
 * ```
 */
export type FixtureRequest =
  | {
    op: "hammer";
    buffer: SharedArrayBuffer;
    start: SharedArrayBuffer;
    tally: SharedArrayBuffer;
    parties: number;
    keys: string[];
    maxPerKey: number;
    rounds: number;
    hold: number;
  }
  | {
    op: "tokens";
    buffer: SharedArrayBuffer;
    key: string;
    limit: RateLimit;
    nowMs: number;
    attempts: number;
  }
  | { op: "open" | "close"; buffer: SharedArrayBuffer; key: string; count: number }
  | { op: "wait"; buffer: SharedArrayBuffer }
  | { op: "guard"; buffer: SharedArrayBuffer; options: Omit<GuardOptions, "shared" | "now"> }
  | { op: "admit"; addresses: string[] }
  | { op: "release" };

/**
 * The worker's answer. `hammer` fills every field; the others set `results`
 * (per-call outcomes) or just `done`.
 *
 * @example
 * ```ts no-assert
 * const reply: FixtureReply = { done: true, results: ["ok", "cap"] };
 * ```
 */
export interface FixtureReply {
  done: true;
  results?: string[];
  admitted?: number;
  refused?: number;
  violations?: string[];
  error?: string;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<FixtureRequest>) => void) | null;
  postMessage(message: FixtureReply): void;
}

// Deno types `self` as a window in files that are also type-checked with the
// tests, so the worker surface used here is spelled out instead.
const scope = globalThis as unknown as WorkerScope;

let guard: Guard | undefined;
const admissions: Admission[] = [];

function hammer(request: Extract<FixtureRequest, { op: "hammer" }>): FixtureReply {
  const counts = new SharedCounts(request.buffer);
  // A barrier, so that no worker finishes before the last one has even loaded.
  const arrived = new Int32Array(request.start);
  if (Atomics.add(arrived, 0, 1) + 1 === request.parties) Atomics.notify(arrived, 0);
  for (let seen = Atomics.load(arrived, 0); seen < request.parties;) {
    Atomics.wait(arrived, 0, seen);
    seen = Atomics.load(arrived, 0);
  }
  const tally = new Int32Array(request.tally);
  const close = (index: number) => {
    Atomics.sub(tally, index, 1);
    counts.close(request.keys[index]);
  };
  const held: number[] = [];
  const violations: string[] = [];
  let admitted = 0;
  let refused = 0;
  for (let i = 0; i < request.rounds; i++) {
    const index = i % request.keys.length;
    const key = request.keys[index];
    const result = counts.tryOpen(key, request.maxPerKey);
    if (result === "ok") {
      admitted++;
      held.push(index);
      const forKey = Atomics.add(tally, index, 1) + 1;
      const open = counts.open;
      if (open > counts.cap && violations.length < 10) violations.push(`open ${open}`);
      if (forKey > request.maxPerKey && violations.length < 10) {
        violations.push(`${key} open ${forKey}`);
      }
    } else {
      refused++;
    }
    // A refused worker gives a slot back too; otherwise one that holds fewer
    // than `hold` when the cap is reached would be refused forever.
    if (held.length >= request.hold || (result !== "ok" && held.length > 0)) {
      close(held.shift() ?? index);
    }
  }
  for (const index of held) close(index);
  return { done: true, admitted, refused, violations };
}

function handle(request: FixtureRequest): FixtureReply | Promise<FixtureReply> {
  switch (request.op) {
    case "hammer":
      return hammer(request);
    case "tokens": {
      const counts = new SharedCounts(request.buffer);
      let granted = 0;
      for (let i = 0; i < request.attempts; i++) {
        if (counts.takeToken(request.key, request.limit, request.nowMs)) granted++;
      }
      return { done: true, admitted: granted };
    }
    case "open": {
      const counts = new SharedCounts(request.buffer);
      const results: string[] = [];
      for (let i = 0; i < request.count; i++) results.push(counts.tryOpen(request.key, 1_000));
      return { done: true, results };
    }
    case "close": {
      const counts = new SharedCounts(request.buffer);
      for (let i = 0; i < request.count; i++) counts.close(request.key);
      return { done: true };
    }
    case "wait":
      return new SharedCounts(request.buffer).whenNotFull().then(() => ({ done: true }));
    case "guard":
      guard = new Guard({ ...request.options, shared: new SharedCounts(request.buffer) });
      return { done: true };
    case "admit": {
      if (guard === undefined) throw new Error("admit before guard");
      const results: string[] = [];
      for (const address of request.addresses) {
        const admission = guard.admit(address);
        results.push(admission.ok ? "ok" : admission.reason);
        admissions.push(admission);
      }
      return { done: true, results };
    }
    case "release":
      for (const admission of admissions.splice(0)) {
        if (admission.ok) admission.release();
      }
      return { done: true };
  }
}

scope.onmessage = async (event) => {
  try {
    scope.postMessage(await handle(event.data));
  } catch (error) {
    scope.postMessage({ done: true, error: String(error) });
  }
};
