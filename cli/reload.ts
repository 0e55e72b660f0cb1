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

/** The values of a config file and a command line read together, and what gave them. */
export interface LoadedConfig<S extends FlagTable> {
  /** Every flag's value, the command line winning. */
  values: FlagValues<S>;
  /** What the file and the command line gave, as text: how a reload line shows a value. */
  given: GivenFlags;
}

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
  return (await readConfig(path, table, args)).values;
}

/**
 * {@linkcode loadConfig}, with what the file and the command line gave as text.
 *
 * @throws {UsageError} `--config PATH: reason` for a file that cannot be used.
 */
export async function readConfig<S extends FlagTable>(
  path: string,
  table: S,
  args: GivenFlags,
): Promise<LoadedConfig<S>> {
  try {
    const given = overlay(await readConfigFile(path, table, NOT_IN_FILE), args);
    return { values: readFlags(given, table), given };
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`--config ${error.message}`);
    // Only the file's values can be wrong here: the command line's were read already.
    if (error instanceof UsageError) throw new UsageError(`--config ${path}: ${error.message}`);
    throw error;
  }
}

/**
 * Runs `check` on the values in force (`merged`, from the file and the
 * command line), and when it fails because of the file, says so: a failure
 * that the command line's values alone (`commandLine`) do not give in the
 * same words comes with `--config PATH: ` in front (`--config
 * /etc/echo.json: --burst needs --rate`); one they give is the command
 * line's own, and stays as it is.
 *
 * @throws {UsageError} the check's, naming the file when it is to blame.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { UsageError } from "./flags.ts";
 * import { blameConfig } from "./reload.ts";
 * const check = (v: { rate?: number; burst?: number }) => {
 *   if (v.burst !== undefined && v.rate === undefined) throw new UsageError("--burst needs --rate");
 * };
 * throws(() => blameConfig(check, { burst: 5 }, {}, "e.json"), {
 *   message: "--config e.json: --burst needs --rate",
 * });
 * throws(() => blameConfig(check, { burst: 5 }, { burst: 5 }, "e.json"), {
 *   message: "--burst needs --rate",
 * });
 * ```
 */
export function blameConfig<V>(
  check: (values: V) => void,
  merged: V,
  commandLine: V,
  path: string,
): void {
  try {
    check(merged);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    let alone: string | undefined;
    try {
      check(commandLine);
    } catch (other) {
      alone = other instanceof Error ? other.message : undefined;
    }
    if (alone === error.message) throw error;
    throw new UsageError(`--config ${path}: ${error.message}`, error.command);
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
  /**
   * What the file and the command line gave at start, as text, so that a
   * reload line can show each changed value as it was written.
   * @default {nothing: values show as their defaults}
   */
  initialGiven?: GivenFlags;
  /** The keys a reload may change; the others are used at start only. */
  reloadable: readonly (keyof S & string)[];
  /**
   * Refuses values that do not go together (`--burst` without `--rate`)
   * with a {@linkcode UsageError}, as at start; the reload then changes nothing.
   */
  check?(values: FlagValues<S>): void;
  /**
   * Puts new values in force, given the values before; all or nothing: it
   * throws, having changed nothing, when one of them cannot be used.
   */
  apply(next: FlagValues<S>, before: FlagValues<S>): Promise<void> | void;
}

const log = logger("server");

/**
 * On each SIGHUP, reads the config file again and applies it with
 * `options.apply`; reloads run one at a time, in order. The line it logs
 * names each changed key with its old and new value
 * (`reloaded /etc/echo.json: max-conns 100 → 200`), and a warning names each
 * start-only key the file changed, with the value kept and the file's. Dispose
 * the result to stop listening for SIGHUP.
 */
export function watchReloads<S extends FlagTable>(options: ReloadOptions<S>): Disposable {
  const { path, table, args, reloadable } = options;
  let current = options.initial;
  let currentGiven: GivenFlags = options.initialGiven ?? new Map();
  let queue = Promise.resolve();
  const show = (key: string, given: GivenFlags) => showGiven(table, key, given);
  const reload = async () => {
    let loaded: LoadedConfig<S>;
    try {
      loaded = await readConfig(path, table, args);
    } catch (error) {
      return refuse(error);
    }
    const next = loaded.values;
    const startOnly = Object.keys(table).filter((key) =>
      !reloadable.includes(key) && !same(next[key], options.initial[key])
    );
    // Start-only keys keep their values from the start, whatever the file says now.
    const merged = { ...options.initial };
    const mergedGiven = new Map(currentGiven);
    for (const key of reloadable) {
      merged[key] = next[key];
      const given = loaded.given.get(key);
      if (given === undefined) mergedGiven.delete(key);
      else mergedGiven.set(key, given);
    }
    try {
      options.check?.(merged);
    } catch (error) {
      // The command line's values passed this check at start: what fails now is the file's.
      return refuse(
        error instanceof UsageError ? new UsageError(`--config ${path}: ${error.message}`) : error,
      );
    }
    try {
      await options.apply(merged, current);
    } catch (error) {
      return refuse(error);
    }
    const changed = reloadable.filter((key) => !same(merged[key], current[key]));
    const changes = Object.fromEntries(
      changed.map((key) => [key, { from: show(key, currentGiven), to: show(key, mergedGiven) }]),
    );
    current = merged;
    currentGiven = mergedGiven;
    log.info("SIGHUP: reloaded {path}: {changes}", {
      path,
      changes: changed.length === 0
        ? "no change"
        : changed.map((key) => `${key} ${changes[key].from} → ${changes[key].to}`).join(", "),
      changed: changes,
    });
    if (startOnly.length > 0) {
      log.warning(
        "SIGHUP: {keys} in {path} {take} effect only at a restart; unchanged: {kept}",
        {
          path,
          keys: startOnly.join(", "),
          take: startOnly.length === 1 ? "takes" : "take",
          kept: startOnly.map((key) =>
            `${key} ${show(key, currentGiven)} (file: ${show(key, loaded.given)})`
          ).join(", "),
        },
      );
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

/**
 * A flag's value as the command line or the file wrote it, for the reload
 * line: numbers, durations and choices as written (`2m`), text quoted, lists
 * joined, switches `on`/`off`; a flag given nowhere shows its default, or
 * `off` (a limit, a switch) or `none` (a list, a text) when it has none.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { durationFlag, intFlag, listFlag, textFlag } from "./flags.ts";
 * import { showGiven } from "./reload.ts";
 * const table = {
 *   "max-conns-per-ip": intFlag({ min: 1, help: "" }),
 *   "idle-timeout": durationFlag({ default: 300_000, help: "" }),
 *   deny: listFlag({ help: "" }, (text) => text),
 *   "reject-message": textFlag({ help: "" }),
 * };
 * const given = new Map([["max-conns-per-ip", ["20"]], ["deny", ["10.0.0.0/8", "::1"]]]);
 * equal(showGiven(table, "max-conns-per-ip", given), "20");
 * equal(showGiven(table, "max-conns-per-ip", new Map()), "off");
 * equal(showGiven(table, "idle-timeout", given), "5m");
 * equal(showGiven(table, "deny", given), "10.0.0.0/8, ::1");
 * equal(showGiven(table, "reject-message", new Map([["reject-message", ["busy"]]])), '"busy"');
 * ```
 */
export function showGiven(table: FlagTable, key: string, given: GivenFlags): string {
  const flag = table[key];
  const values = given.get(key) ?? [];
  const last = values.at(-1);
  if (last === undefined) {
    return flag.shownDefault ??
      (flag.multiple || (flag.type === "string" && flag.numeric !== true) ? "none" : "off");
  }
  if (flag.type === "boolean") return "on";
  if (flag.multiple) return values.join(", ");
  // Text of a flag with no default to show is free text (a message, a path): quoted.
  return flag.numeric === true || flag.shownDefault !== undefined ? last : JSON.stringify(last);
}

/** Equal values, as far as flag values go: numbers, text, switches, lists of CIDRs. */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
