/**
 * A worker of `bench --workers`: runs its share of the load with
 * {@linkcode measure} and posts its progress each second and its results at
 * the end (histograms as `Histogram.toSparse` writes them).
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { measure } from "./engine.ts";
import type { FromWorker, ToWorker } from "./workers.ts";

/** A worker's global scope, as much of it as this module uses. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
};

const stop = new AbortController();

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "stop") return stop.abort();
  void measure({
    ...message.options,
    signal: stop.signal,
    onProgress: (progress) => scope.postMessage({ type: "progress", progress }),
  }).then(
    (m) =>
      scope.postMessage({
        type: "done",
        report: m.report,
        histogram: m.histogram.toSparse(),
        seconds: m.seconds,
        perConnection: [...m.perConnection],
      }),
    (error) => scope.postMessage({ type: "error", message: describeError(error) }),
  );
};
