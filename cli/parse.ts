/**
 * Parsing a command line by a table of flag specifications, and the flags
 * part of the usage text made from the same table.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type FlagTable, type FlagValues, UsageError } from "./flags.ts";

/** What was given for each flag of a table, as strings, before any value is read. */
export type GivenFlags = ReadonlyMap<string, readonly string[]>;

/**
 * Splits `args` by `table` without reading any value yet, so that `--help`
 * can win over a bad value. Unknown flags, missing values and stray arguments
 * become a {@linkcode UsageError}.
 */
export function scanFlags(args: readonly string[], table: FlagTable): GivenFlags {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple: true }> =
    {};
  for (const [name, flag] of Object.entries(table)) {
    options[name] = { type: flag.type, multiple: true };
    if (flag.short !== undefined) options[name].short = flag.short;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeNumbers(args, table),
      options,
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError(explainParseError(error, table));
  }
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  }
  const given = new Map<string, string[]>();
  for (const [name, values] of Object.entries(parsed.values)) {
    if (Array.isArray(values)) {
      given.set(name, values.map((value) => typeof value === "string" ? value : ""));
    }
  }
  return given;
}

/** Reads every flag of `table` from what {@linkcode scanFlags} found, defaults included. */
export function readFlags<S extends FlagTable>(given: GivenFlags, table: S): FlagValues<S> {
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(table)) {
    values[name] = flag.read(given.get(name) ?? [], name);
  }
  return values as FlagValues<S>;
}

/**
 * Parses `args` against `table` into typed values, defaults filled in.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { intFlag, switchFlag } from "./flags.ts";
 * import { parseFlags } from "./parse.ts";
 * const table = {
 *   port: intFlag({ short: "p", min: 0, max: 65535, default: 8000, help: "port" }),
 *   json: switchFlag({ help: "json" }),
 * };
 * deepEqual(parseFlags(["--json"], table), { port: 8000, json: true });
 * ```
 */
export function parseFlags<S extends FlagTable>(args: readonly string[], table: S): FlagValues<S> {
  return readFlags(scanFlags(args, table), table);
}

/** `--port -1` means the value -1 for a numeric flag: written `--port=-1`, parseArgs takes it so. */
function joinNegativeNumbers(args: readonly string[], table: FlagTable): string[] {
  const numeric = new Map<string, string>();
  for (const [name, flag] of Object.entries(table)) {
    if (!flag.numeric) continue;
    numeric.set(`--${name}`, name);
    if (flag.short !== undefined) numeric.set(`-${flag.short}`, name);
  }
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = numeric.get(args[i]);
    const next = args[i + 1];
    if (args[i] === "--") return [...joined, ...args.slice(i)];
    if (name !== undefined && next !== undefined && /^-\.?\d/.test(next)) {
      joined.push(`--${name}=${next}`);
      i++;
    } else {
      joined.push(args[i]);
    }
  }
  return joined;
}

function explainParseError(error: unknown, table: FlagTable): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof Error && "code" in error ? error.code : undefined;
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
 * import { equal } from "node:assert/strict";
 * import { portFlag } from "./flags.ts";
 * import { formatFlags } from "./parse.ts";
 * equal(
 *   formatFlags({ port: portFlag({ min: 0, default: 8000, help: "port to listen on" }) }),
 *   "  -p, --port PORT   port to listen on (default: 8000)",
 * );
 * ```
 */
export function formatFlags(table: FlagTable): string {
  const rows = Object.entries(table).map(([name, flag]) => {
    const left = `${flag.short ? `-${flag.short}, ` : "    "}--${name}${
      flag.value ? ` ${flag.value}` : ""
    }`;
    const right = flag.help +
      (flag.shownDefault !== undefined ? ` (default: ${flag.shownDefault})` : "");
    return [left, right] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}   ${right}`).join("\n");
}
