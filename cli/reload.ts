/**
 * Live reconfiguration: `--config FILE` read at start, and again on SIGHUP.
 * A reload reads the file with the same flag table as the command line
 * (flags given there still win), hands the new values to the command, and
 * either all of it applies or nothing does; a bad file is logged with the
 * reason. Keys that cannot change while serving are used at start only: a
 * reload that changes them says so and leaves them as they are.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { logger } from "../log/log.ts";
import { ConfigError, overlay, readConfigFile } from "./config_file.ts";
import { type FlagTable, type FlagValues, UsageError } from "./flags.ts";
import { type GivenFlags, readFlags } from "./parse.ts";

/** Keys a config file may not hold: the file's own flag, and `help`. */
const NOT_IN_FILE = ["config", "help"];

/**
 * Reads `path` and the command line's `args` together by `table`, the
 * command line winning.
 *
 * @throws {UsageError} `--config PATH: reason` for a file that cannot be used.
 */
export async function loadConfig<S extends FlagTable>(
  path: string,
  table: S,
  args: GivenFlags,
): Promise<FlagValues<S>> {
  try {
    return readFlags(overlay(await readConfigFile(path, table, NOT_IN_FILE), args), table);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`--config ${error.message}`);
    // Only the file's values can be wrong here: the command line's were read already.
    if (error instanceof UsageError) throw new UsageError(`--config ${path}: ${error.message}`);
    throw error;
  }
}

/** What {@linkcode watchReloads} needs. */
export interface ReloadOptions<S extends FlagTable> {
  /** The config file. */
  path: string;
  /** The command's flag table. */
  table: S;
  /** What the command line gave; it wins over the file at every reload. */
  args: GivenFlags;
  /** The values in force at start. */
  initial: FlagValues<S>;
  /** The keys a reload may change; the others are used at start only. */
  reloadable: readonly (keyof S & string)[];
  /**
   * Puts new values in force, given the values before; all or nothing: it
   * throws, having changed nothing, when one of them cannot be used.
   */
  apply(next: FlagValues<S>, before: FlagValues<S>): Promise<void> | void;
}

const log = logger("server");

/**
 * On each SIGHUP, reads the config file again and applies it with
 * `options.apply`; reloads run one at a time, in order. Dispose the result
 * to stop listening for SIGHUP.
 */
export function watchReloads<S extends FlagTable>(options: ReloadOptions<S>): Disposable {
  const { path, table, args, reloadable } = options;
  let current = options.initial;
  let queue = Promise.resolve();
  const reload = async () => {
    let next: FlagValues<S>;
    try {
      next = await loadConfig(path, table, args);
    } catch (error) {
      return refuse(error);
    }
    const startOnly = Object.keys(table).filter((key) =>
      !reloadable.includes(key) && !same(next[key], options.initial[key])
    );
    // Start-only keys keep their values from the start, whatever the file says now.
    const merged = { ...options.initial };
    for (const key of reloadable) merged[key] = next[key];
    try {
      await options.apply(merged, current);
    } catch (error) {
      return refuse(error);
    }
    const changed = reloadable.filter((key) => !same(merged[key], current[key]));
    current = merged;
    log.info("SIGHUP: reloaded {path}: {changes}", {
      path,
      changes: changed.length === 0 ? "no change" : `changed ${changed.join(", ")}`,
    });
    if (startOnly.length > 0) {
      log.warning("SIGHUP: {keys} in {path} {take} effect only at a restart; unchanged", {
        path,
        keys: startOnly.join(", "),
        take: startOnly.length === 1 ? "takes" : "take",
      });
    }
  };
  const refuse = (error: unknown) => {
    const reason = error instanceof Error ? error.message : describeError(error);
    log.error("SIGHUP: not reloaded, nothing changed: {reason}", { reason });
  };
  const onHangup = () => {
    queue = queue.then(reload).catch(refuse);
  };
  Deno.addSignalListener("SIGHUP", onHangup);
  return { [Symbol.dispose]: () => Deno.removeSignalListener("SIGHUP", onHangup) };
}

/** Equal values, as far as flag values go: numbers, text, switches, lists of CIDRs. */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
