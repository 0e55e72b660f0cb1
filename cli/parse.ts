/**
 * Parsing a command line by a table of flag specifications, and the flags
 * part of the usage text made from the same table.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { didYouMean } from "../text/nearest.ts";
import { type FlagTable, type FlagValues, UsageError } from "./flags.ts";

/** What was given for each flag of a table, as strings, before any value is read. */
export type GivenFlags = ReadonlyMap<string, readonly string[]>;

/**
 * Splits `args` by `table` without reading any value yet, so that `--help`
 * can win over a bad value. Unknown flags (with the nearest known one, if
 * any is near), missing values and stray arguments become a
 * {@linkcode UsageError}.
 *
 * The checks work on parseArgs' tokens rather than its strict mode, whose
 * errors tell their kinds apart only in their message text.
 *
 * @example
 * ```ts
 * import { deepEqual, throws } from "node:assert/strict";
 * import { intFlag } from "./flags.ts";
 * import { scanFlags } from "./parse.ts";
 * const table = { port: intFlag({ short: "p", min: 0, max: 65535, help: "port" }) };
 * deepEqual(scanFlags(["-p", "-1"], table), new Map([["port", ["-1"]]]));
 * throws(() => scanFlags(["--port"], table), { message: "--port needs a value" });
 * throws(() => scanFlags(["--prot", "1"], table), {
 *   message: "unknown flag --prot (did you mean --port?)",
 * });
 * ```
 */
export function scanFlags(args: readonly string[], table: FlagTable): GivenFlags {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple: true }> =
    {};
  for (const [name, flag] of Object.entries(table)) {
    options[name] = { type: flag.type, multiple: true };
    if (flag.short !== undefined) options[name].short = flag.short;
  }
  const { tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const given = new Map<string, string[]>();
  for (const token of tokens) {
    if (token.kind === "positional") throw new UsageError(`unexpected argument "${token.value}"`);
    if (token.kind !== "option") continue;
    const flag = Object.hasOwn(table, token.name) ? table[token.name] : undefined;
    if (flag === undefined) {
      // A one-letter alias has no near name worth guessing at.
      const hint = token.rawName.startsWith("--")
        ? didYouMean(token.name, Object.keys(table), (name) => `--${name}`)
        : "";
      throw new UsageError(`unknown flag ${token.rawName}${hint}`);
    }
    const name = `--${token.name}`;
    let value = "";
    if (flag.type === "boolean") {
      if (token.value !== undefined) throw new UsageError(`${name} takes no value`);
    } else {
      if (token.value === undefined) throw new UsageError(`${name} needs a value`);
      // `--port -1` is the value -1 for a numeric flag; for any other flag a
      // value that starts with "-" is more likely a forgotten value.
      const negative = flag.numeric === true && /^-\.?\d/.test(token.value);
      if (!token.inlineValue && token.value.startsWith("-") && !negative) {
        throw new UsageError(
          `${name} needs a value (write ${name}=VALUE for a value that starts with "-")`,
        );
      }
      value = token.value;
    }
    const values = given.get(token.name);
    if (values === undefined) given.set(token.name, [value]);
    else values.push(value);
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
  const indent = " ".repeat(2 + width + 3);
  return rows.map(([left, right]) =>
    wrap(right, Math.max(HELP_COLUMNS - indent.length, 30))
      .map((line, i) => i === 0 ? `  ${left.padEnd(width)}   ${line}` : indent + line)
      .join("\n")
  ).join("\n");
}

/** How wide `--help` is: its lines fit a 100-column terminal. */
const HELP_COLUMNS = 100;

/** `text` in lines of at most `width` characters, broken at spaces (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line];
}
