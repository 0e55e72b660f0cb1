/**
 * What a server does when a limit turns a connection away or closes it:
 * counts it as its own, and says so at warning level without letting the log
 * become the flood.
 *
 * @module
 */
import { addressKey } from "../admission/cidr.ts";
import { noRefusals, type RefusalReason } from "../admission/refusals.ts";
import { logger } from "../log/log.ts";
import { LogThrottle } from "../log/throttle.ts";
import type { Peer } from "../transport/contract.ts";

const log = logger("server");

/**
 * One server's refusals and closes by a limit. The counts are this server's
 * own: with workers, the guard's counts are shared by all of them, and each
 * worker's summary must not report the others' refusals as its own.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { LimitLog } from "./limit_log.ts";
 * const limits = new LimitLog();
 * limits.record("rate", { host: "192.0.2.1", text: "192.0.2.1:40000" });
 * equal(limits.counts.rate, 1);
 * ```
 */
export class LimitLog {
  readonly #throttle = new LogThrottle();
  readonly #counts = noRefusals();

  /**
   * Counts one refusal (or, with `id`, the close of connection `id`) for
   * `reason`, and logs it, at most once per reason and address every 10 s;
   * `detail` says more where the reason alone would not (a malformed PROXY
   * header: what is wrong with it).
   */
  record(reason: RefusalReason, peer: Peer, id?: number, detail?: string): void {
    this.#counts[reason]++;
    const suppressed = this.#throttle.hit(`${reason} ${addressKey(peer.host)}`);
    if (suppressed === null) return;
    const what =
      (id === undefined ? "refused {peer}: {reason}" : "closed #{id} from {peer}: {reason}") +
      (detail === undefined ? "" : " ({detail})");
    log.warning(what + (suppressed > 0 ? " ({suppressed} more since the last line)" : ""), {
      id,
      peer: peer.text,
      reason,
      detail,
      suppressed,
    });
  }

  /** The counts so far, by reason. */
  get counts(): Readonly<Record<RefusalReason, number>> {
    return { ...this.#counts };
  }
}
