/**
 * Flag specifications: each flag carries its alias, value type, default,
 * bounds, parser and help line; parse.ts turns a table of them into values
 * and into the flags part of a usage text.
 *
 * @module
 */
import { DurationError, formatExactDuration, LONGEST_MS, parseDuration } from "../text/duration.ts";
import { didYouMean } from "../text/nearest.ts";

/** The largest TCP port. */
export const PORT_MAX = 65535;

/** The command line is wrong; the message names the flag and the value. Exit code 2. */
export class UsageError extends Error {
  /** The command whose `--help` shows the right usage; undefined for the top level. */
  readonly command: string | undefined;

  /**
   * Makes the error from its message, e.g. `invalid --port "abc": expected a
   * whole number from 0 to 65535`, and the command it is about.
   */
  constructor(message: string, command?: string) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** What the usage text says of a flag. */
export interface FlagHelp {
  /** One-letter alias, without the dash. */
  readonly short?: string;
  /** The value's placeholder in the usage text, e.g. `PORT`. */
  readonly value?: string;
  /** One line of help. */
  readonly help: string;
}

/** One flag of a command, named by its key in the command's {@linkcode FlagTable}. */
export interface Flag<T> extends FlagHelp {
  /** `string` takes a value; `boolean` is a switch. */
  readonly type: "string" | "boolean";
  /** The flag may be given more than once. */
  readonly multiple?: boolean;
  /** A value that looks like a negative number is this flag's value (`--port -1`), not a flag. */
  readonly numeric?: boolean;
  /** The default as the usage text shows it, e.g. `5m`. */
  readonly shownDefault?: string;
  /**
   * Turns what was given, in order, into the flag's value: empty when the
   * flag was left out, `""` for each time a switch was given. Throws a
   * {@linkcode UsageError} naming `--name` and the bad value.
   */
  read(given: readonly string[], name: string): T;
}

/** A command's flags, by long name. */
export type FlagTable = Readonly<Record<string, Flag<unknown>>>;

/** The values a {@linkcode FlagTable} reads into, by long name. */
export type FlagValues<S extends FlagTable> = {
  -readonly [K in keyof S]: S[K] extends Flag<infer T> ? T : never;
};

/** A flag that takes one value: the last one given wins, the default stands in when none is. */
function single<T, D>(
  help: FlagHelp & { readonly default?: D },
  parse: (text: string, name: string) => T,
  extra: { shownDefault?: string; numeric?: boolean } = {},
): Flag<T | D> {
  const { default: fallback, ...text } = help;
  return {
    ...text,
    ...extra,
    type: "string",
    read: (given, name) => {
      const last = given.at(-1);
      return last === undefined ? fallback as D : parse(last, name);
    },
  };
}

/**
 * A whole number in `[min, max]` (`max` defaults to no bound).
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { intFlag } from "./flags.ts";
 * const port = intFlag({ short: "p", min: 0, max: 65535, default: 8000, help: "port" });
 * equal(port.read([], "port"), 8000);
 * equal(port.read(["9000"], "port"), 9000);
 * throws(() => port.read(["-1"], "port"), {
 *   message: 'invalid --port "-1": expected a whole number from 0 to 65535',
 * });
 * ```
 */
export function intFlag<D extends number | undefined = undefined>(
  spec: FlagHelp & { readonly min: number; readonly max?: number; readonly default?: D },
): Flag<number | D> {
  const { min, max = Number.MAX_SAFE_INTEGER, ...help } = spec;
  const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
  return single(help, (text, name) => {
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (value > Number.MAX_SAFE_INTEGER) {
      throw new UsageError(`invalid --${name} "${text}": too large (at most ${max})`);
    }
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new UsageError(`invalid --${name} "${text}": expected a whole number ${range}`);
    }
    return value;
  }, { numeric: true, shownDefault: spec.default?.toString() });
}

/**
 * A TCP port: 0 to 65535 where 0 means "any free one", else 1 to 65535.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { portFlag } from "./flags.ts";
 * const port = portFlag({ min: 1, default: 8000, help: "server port" });
 * equal(port.read(["65535"], "port"), 65535);
 * throws(() => port.read(["0"], "port"), { message: 'invalid --port "0": expected a whole number from 1 to 65535' });
 * ```
 */
export function portFlag<D extends number | undefined = undefined>(
  spec: Omit<FlagHelp, "short" | "value"> & { readonly min: 0 | 1; readonly default?: D },
): Flag<number | D> {
  return intFlag({ short: "p", value: "PORT", ...spec, max: PORT_MAX });
}

/**
 * A number above 0, fractions allowed.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { numberFlag } from "./flags.ts";
 * const rate = numberFlag({ help: "per second" });
 * equal(rate.read(["2.5"], "rate"), 2.5);
 * equal(rate.read([], "rate"), undefined);
 * ```
 */
export function numberFlag<D extends number | undefined = undefined>(
  spec: FlagHelp & { readonly default?: D },
): Flag<number | D> {
  return single(spec, (text, name) => {
    const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
    if (!(value > 0) || !Number.isFinite(value)) {
      throw new UsageError(`invalid --${name} "${text}": expected a number above 0`);
    }
    return value;
  }, { numeric: true, shownDefault: spec.default?.toString() });
}

/**
 * A duration (`500ms`, `10s`, `2m`, `1h`, plain seconds) read into
 * milliseconds; the default is in milliseconds too, shown as `10s`.
 * `positive` refuses 0.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { durationFlag } from "./flags.ts";
 * import { formatFlags } from "./parse.ts";
 * const table = { "drain-timeout": durationFlag({ default: 10_000, help: "drain" }) };
 * equal(table["drain-timeout"].read(["2m"], "drain-timeout"), 120_000);
 * equal(formatFlags(table), "      --drain-timeout   drain (default: 10s)");
 * ```
 */
export function durationFlag<D extends number | undefined = undefined>(
  spec: FlagHelp & { readonly default?: D; readonly positive?: boolean },
): Flag<number | D> {
  const { positive = false, ...help } = spec;
  return single(help, (text, name) => {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch (error) {
      if (!(error instanceof DurationError)) throw error;
      throw new UsageError(
        error.kind === "too-long"
          ? `invalid --${name} "${text}": longer than the longest duration supported, ${
            Math.floor(LONGEST_MS / 3_600_000)
          }h`
          : `invalid --${name} "${text}": expected a duration such as 500ms, 10s, 2m or 1h`,
      );
    }
    if (positive && ms === 0) throw new UsageError(`invalid --${name} "${text}": must be above 0`);
    return ms;
  }, {
    numeric: true,
    shownDefault: spec.default === undefined ? undefined : formatExactDuration(spec.default),
  });
}

/**
 * One of a fixed set of words, in any letter case; `aliases` names other
 * words for some of them (`warn` for `warning`). The placeholder defaults to
 * the words, `a|b`. A bad value is refused with the list, and the nearest
 * word when one is near.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { choiceFlag } from "./flags.ts";
 * const format = choiceFlag({ choices: ["text", "json"], default: "text", help: "format" });
 * equal(format.read(["json"], "format"), "json");
 * equal(format.read(["JSON"], "format"), "json");
 * throws(() => format.read(["xml"], "format"), /expected one of text, json/);
 * throws(() => format.read(["jsno"], "format"), /expected one of text, json \(did you mean json\?\)$/);
 * const level = choiceFlag({ choices: ["info", "warning"], aliases: { warn: "warning" }, help: "" });
 * equal(level.read(["WARN"], "level"), "warning");
 * ```
 */
export function choiceFlag<const T extends string, D extends T | undefined = undefined>(
  spec: Omit<FlagHelp, "value"> & {
    readonly choices: readonly T[];
    readonly default?: D;
    readonly value?: string;
    /** Other words for some choices, lower case, e.g. `{ warn: "warning" }`. */
    readonly aliases?: Readonly<Record<string, T>>;
  },
): Flag<T | D> {
  const { choices, aliases = {}, value = choices.join("|"), ...help } = spec;
  return single({ ...help, value }, (text, name) => {
    const lower = text.toLowerCase();
    const found = choices.find((choice) => choice.toLowerCase() === lower) ??
      (Object.hasOwn(aliases, lower) ? aliases[lower] : undefined);
    if (found === undefined) {
      throw new UsageError(
        `invalid --${name} "${text}": expected one of ${choices.join(", ")}${
          didYouMean(text, choices)
        }`,
      );
    }
    return found;
  }, { shownDefault: spec.default });
}

/**
 * A host name or address: empty text and white space are refused here rather
 * than by the resolver later.
 *
 * @example
 * ```ts
 * import { equal, throws } from "node:assert/strict";
 * import { hostFlag } from "./flags.ts";
 * const host = hostFlag({ default: "127.0.0.1", help: "server" });
 * equal(host.read(["::1"], "host"), "::1");
 * throws(() => host.read([""], "host"), /invalid --host "": expected a host name/);
 * ```
 */
export function hostFlag<D extends string | undefined = undefined>(
  spec: Omit<FlagHelp, "short" | "value"> & { readonly default?: D },
): Flag<string | D> {
  return single({ short: "H", value: "HOST", ...spec }, (text, name) => {
    if (text === "" || /\s/.test(text)) {
      throw new UsageError(`invalid --${name} "${text}": expected a host name or an IP address`);
    }
    return text;
  }, { shownDefault: spec.default });
}

/** Any text, taken as given; undefined when left out. */
export function textFlag(spec: FlagHelp): Flag<string | undefined> {
  return single<string, undefined>(spec, (text) => text);
}

/**
 * A flag that may be repeated, each value read by `parse`; its errors are
 * put as `--name: message`.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { listFlag } from "./flags.ts";
 * import { readFlags, scanFlags } from "./parse.ts";
 * const table = { tag: listFlag({ value: "TAG", help: "tags" }, (text) => text.toUpperCase()) };
 * deepEqual(readFlags(scanFlags(["--tag", "a", "--tag=b"], table), table).tag, ["A", "B"]);
 * deepEqual(table.tag.read([], "tag"), []);
 * ```
 */
export function listFlag<T>(spec: FlagHelp, parse: (text: string) => T): Flag<T[]> {
  return {
    ...spec,
    type: "string",
    multiple: true,
    read: (given, name) =>
      given.map((text) => {
        try {
          return parse(text);
        } catch (error) {
          if (error instanceof UsageError) throw error;
          throw new UsageError(`--${name}: ${error instanceof Error ? error.message : error}`);
        }
      }),
  };
}

/** A switch: true when given. */
export function switchFlag(spec: Omit<FlagHelp, "value">): Flag<boolean> {
  return { ...spec, type: "boolean", read: (given) => given.length > 0 };
}

/** `-h, --help`, in every command's table. */
export const HELP_FLAG: Flag<boolean> = switchFlag({ short: "h", help: "show this help" });
