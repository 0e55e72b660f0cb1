/**
 * Command-line flags: one table per command gives each flag's name, alias,
 * default and help, and from it come both the parsing and the usage text.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDuration } from "../text/duration.ts";

/** One flag of a command. */
export interface Flag {
  /** `string` takes a value; `boolean` is a switch. */
  type: "string" | "boolean";
  /** One-letter alias, without the dash. */
  short?: string;
  /** The value's placeholder in the usage text, e.g. `PORT`. */
  value?: string;
  /** The default, shown in the usage text. */
  default?: string;
  /** The flag may be given more than once. */
  multiple?: boolean;
  /** One line of help. */
  help: string;
}

/** A command's flags, by long name. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** Parsed values: strings for flags with values, booleans for switches, arrays for repeatable ones. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The command line is wrong; the message names the flag and the value. Exit code 2. */
export class UsageError extends Error {
  /** @param message e.g. `invalid --port "abc": expected a whole number from 0 to 65535` */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parses `args` against `table`, filling in defaults. Unknown flags, missing
 * values and stray arguments become a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const values = parseFlags(["-p", "9000"], {
 *   port: { type: "string", short: "p", default: "8000", help: "port" },
 * });
 * console.assert(values.port === "9000");
 * ```
 */
export function parseFlags(args: string[], table: FlagTable): FlagValues {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, flag] of Object.entries(table)) {
    options[name] = { type: flag.type };
    if (flag.short !== undefined) options[name].short = flag.short;
    if (flag.multiple) options[name].multiple = true;
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(explainParseError(error, table));
  }
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  }
  const values: FlagValues = { ...parsed.values };
  for (const [name, flag] of Object.entries(table)) {
    if (values[name] === undefined && flag.default !== undefined) values[name] = flag.default;
  }
  return values;
}

function explainParseError(error: unknown, table: FlagTable): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  const short = /^-(\w)\b/.exec(quoted)?.[1];
  const long = Object.entries(table).find(([, flag]) =>
    short !== undefined && flag.short === short
  );
  const name = long !== undefined ? `--${long[0]}` : /--[\w-]+/.exec(quoted)?.[0] ?? quoted;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown flag ${name}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (message.includes("ambiguous")) {
      return `${name} needs a value (write ${name}=VALUE for a value that starts with "-")`;
    }
    return message.includes("argument missing")
      ? `${name} needs a value`
      : `${name} takes no value`;
  }
  return message;
}

/**
 * The flags part of a usage text: one line per flag, aligned, with defaults.
 *
 * @example
 * ```ts
 * import { formatFlags } from "./flags.ts";
 * console.log(formatFlags({ port: { type: "string", short: "p", value: "PORT", default: "8000", help: "port to listen on" } }));
 * // "  -p, --port PORT   port to listen on (default: 8000)"
 * ```
 */
export function formatFlags(table: FlagTable): string {
  const rows = Object.entries(table).map(([name, flag]) => {
    const left = `${flag.short ? `-${flag.short}, ` : "    "}--${name}${
      flag.value ? ` ${flag.value}` : ""
    }`;
    const right = flag.help + (flag.default !== undefined ? ` (default: ${flag.default})` : "");
    return [left, right] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}   ${right}`).join("\n");
}

/**
 * Reads a whole number flag in `[min, max]`, or throws a {@linkcode UsageError}
 * naming the flag.
 *
 * @example
 * ```ts
 * import { intFlag } from "./flags.ts";
 * console.assert(intFlag("port", "8080", 0, 65535) === 8080);
 * ```
 */
export function intFlag(name: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
    throw new UsageError(`invalid --${name} "${text}": expected a whole number ${range}`);
  }
  return value;
}

/**
 * Reads a positive number (fractions allowed), or throws a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { numberFlag } from "./flags.ts";
 * console.assert(numberFlag("rate", "2.5") === 2.5);
 * ```
 */
export function numberFlag(name: string, text: string): number {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new UsageError(`invalid --${name} "${text}": expected a number above 0`);
  }
  return value;
}

/**
 * Reads one of a fixed set of words, or throws a {@linkcode UsageError} listing them.
 *
 * @example
 * ```ts
 * import { choiceFlag } from "./flags.ts";
 * console.assert(choiceFlag("log-format", "json", ["text", "json"] as const) === "json");
 * ```
 */
export function choiceFlag<T extends string>(name: string, text: string, choices: readonly T[]): T {
  const found = choices.find((choice) => choice === text);
  if (found === undefined) {
    throw new UsageError(`invalid --${name} "${text}": expected one of ${choices.join(", ")}`);
  }
  return found;
}

/**
 * Reads a duration flag (`500ms`, `10s`, `2m`, plain seconds) into
 * milliseconds, or throws a {@linkcode UsageError} naming the flag.
 *
 * @example
 * ```ts
 * import { durationFlag } from "./flags.ts";
 * console.assert(durationFlag("drain-timeout", "2m") === 120_000);
 * ```
 */
export function durationFlag(name: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    const tooLong = error instanceof Error && error.message.endsWith("too long");
    throw new UsageError(
      tooLong
        ? `invalid --${name} "${text}": longer than the longest duration supported, 596h`
        : `invalid --${name} "${text}": expected a duration such as 500ms, 10s, 2m or 1h`,
    );
  }
}

/**
 * Reads a host name or address, or throws a {@linkcode UsageError}: empty
 * text and white space are refused here rather than by the resolver later.
 *
 * @example
 * ```ts
 * import { hostFlag } from "./flags.ts";
 * console.assert(hostFlag("host", "::1") === "::1");
 * ```
 */
export function hostFlag(name: string, text: string): string {
  if (text === "" || /\s/.test(text)) {
    throw new UsageError(`invalid --${name} "${text}": expected a host name or an IP address`);
  }
  return text;
}
