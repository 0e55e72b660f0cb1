/**
 * `--workers` of `serve`: a count of isolates serving the same port, or
 * `auto` for one per CPU.
 *
 * @module
 */
import { MAX_WORKERS } from "../server/workers.ts";
import { type Flag, intFlag, UsageError } from "./flags.ts";

const workerCount = intFlag({
  value: "N|auto",
  min: 1,
  max: MAX_WORKERS,
  default: 1,
  help: "isolates serving the same port (auto: one per CPU); limits stay global",
});
/** `--workers`: a count, or `auto` for one per CPU. */
export const workersFlag: Flag<number> = {
  ...workerCount,
  read: (given, name) => {
    if (given.at(-1) === "auto") return navigator.hardwareConcurrency;
    try {
      return workerCount.read(given, name);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new UsageError(`${error.message}, or auto`);
    }
  },
};
