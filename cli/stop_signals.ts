/**
 * How `serve` stops on SIGINT and SIGTERM: not ready at once, still
 * accepting for the shutdown delay (so that a balancer's checks take the
 * server out before its listener closes), then the drain; a second signal
 * skips what is left of the delay, and one during the drain exits at once.
 *
 * @module
 */
import { flushLogs, logger } from "../log/log.ts";
import { formatExactDuration } from "../text/duration.ts";

/** Signals this close to the first are the same keypress delivered twice, not a second request. */
export const SAME_SIGNAL_MS = 300;

/** What {@linkcode onStopSignals} works with. */
export interface StopOptions {
  /** Keep accepting this long after the first signal; 0 drains at once. */
  shutdownDelayMs: number;
  /** Called at the first signal: from then on the server is not ready (`/readyz` 503). */
  notReady(): void;
  /** Starts the drain; called once, after the delay. */
  drain(): void;
}

const log = logger("server");

/**
 * Listens for SIGINT and SIGTERM on behalf of a running server until the
 * returned handle is disposed.
 */
export function onStopSignals(options: StopOptions): Disposable {
  let lastSignalAt: number | undefined;
  /** Set while the shutdown delay runs: ends it early. */
  let delay: ReturnType<typeof setTimeout> | undefined;
  const drain = () => {
    clearTimeout(delay);
    delay = undefined;
    options.drain();
  };
  const onSignal = (signal: Deno.Signal) => () => {
    if (lastSignalAt !== undefined) {
      // One Ctrl-C can arrive twice: from the terminal, and forwarded by a
      // parent such as `deno task` or npx in the same process group.
      if (performance.now() - lastSignalAt < SAME_SIGNAL_MS) return;
      lastSignalAt = performance.now();
      if (delay !== undefined) {
        log.info("second {signal}: draining now", { signal });
        return drain();
      }
      log.warning("second {signal}: exiting now", { signal });
      // Now, but with the logs out first unless stderr's reader is stuck (then within 0.5 s).
      void flushLogs(500).then(() => Deno.exit(signal === "SIGINT" ? 130 : 143));
      return;
    }
    lastSignalAt = performance.now();
    // Not ready from now on, while the listener still accepts: a balancer's checks see the 503
    // and stop sending new clients before anything is refused.
    options.notReady();
    if (options.shutdownDelayMs === 0) {
      log.info("{signal}: shutting down", { signal });
      return drain();
    }
    log.info("{signal}: not ready; accepting for {delay} more, then draining", {
      signal,
      delay: formatExactDuration(options.shutdownDelayMs),
    });
    delay = setTimeout(drain, options.shutdownDelayMs);
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = onSignal(signal);
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  return {
    [Symbol.dispose]: () => {
      clearTimeout(delay);
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    },
  };
}
