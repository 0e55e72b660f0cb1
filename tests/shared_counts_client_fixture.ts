/**
 * Test-thread side of shared_counts_worker_fixture.ts: starts the worker and
 * turns its message protocol into awaited calls.
 *
 * @module
 */

import { WAIT_MS, within } from "./helpers.ts";
import type { FixtureReply, FixtureRequest } from "./shared_counts_worker_fixture.ts";

/**
 * One fixture Worker, terminated on dispose so that a failing assertion
 * cannot leak it past the test (the sanitizers would report it).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * using worker = new FixtureWorker();
 * equal((await worker.request({ op: "release" })).done, true);
 * ```
 */
export class FixtureWorker implements Disposable {
  readonly #worker = new Worker(new URL("./shared_counts_worker_fixture.ts", import.meta.url), {
    type: "module",
  });

  /**
   * Sends one request and resolves with its reply; rejects when the worker
   * reports an error, or when no reply comes within `ms`, naming the request
   * (its timer also keeps the event loop alive, which delivering an
   * `Atomics.waitAsync` result requires). Only one request may be pending at
   * a time.
   *
   * @example
   * ```ts
   * import { deepEqual, equal } from "node:assert/strict";
   * import { SharedCounts } from "../admission/shared_counts.ts";
   * using worker = new FixtureWorker();
   * const shared = SharedCounts.create();
   * await worker.request({ op: "guard", buffer: shared.buffer, options: { maxConns: 2 } });
   * const reply = await worker.request({ op: "admit", addresses: ["10.0.0.1"] });
   * deepEqual(reply.results, ["ok"]);
   * equal(shared.open, 1);
   * ```
   */
  request(request: FixtureRequest, ms = WAIT_MS): Promise<FixtureReply> {
    const { promise, resolve, reject } = Promise.withResolvers<FixtureReply>();
    this.#worker.onmessage = (event: MessageEvent<FixtureReply>) => {
      if (event.data.error === undefined) resolve(event.data);
      else reject(new Error(`worker: ${event.data.error}`));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`worker: ${event.message}`));
    };
    this.#worker.postMessage(request);
    return within(promise, `the worker's reply to "${request.op}"`, ms);
  }

  /**
   * Stops the worker; called by `using` at the end of the scope.
   *
   * @example
   * ```ts no-assert
   * const worker = new FixtureWorker();
   * worker[Symbol.dispose]();
   * ```
   */
  [Symbol.dispose](): void {
    this.#worker.terminate();
  }
}
