/**
 * `--config FILE`: a JSON object whose keys are a command's long flags, read
 * into the same form as the command line (what was given for each flag, as
 * text) so that the SAME flag specifications read and check both. Flags on
 * the command line win over the file.
 *
 * @module
 */
import { describeError, describeFileError } from "../text/address.ts";
import { didYouMean } from "../text/nearest.ts";
import type { FlagTable } from "./flags.ts";
import type { GivenFlags } from "./parse.ts";

/** The file cannot be used: unreadable, not JSON, or a key or value of the wrong kind. */
export class ConfigError extends Error {
  /** Makes the error from its whole message, which names the file. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/**
 * Turns the parsed JSON of a config file into what the command line would
 * have given: numbers and strings become the flag's text (`20` → `"20"`),
 * `true` gives a switch and `false` leaves it out, an array gives a
 * repeatable flag once per item. Keys not in `table`, or in `refused` (such
 * as `config` itself), are errors, which name the nearest known key if any
 * is near. The values are not read here: the flag
 * table's readers do that, with the command line's rules and messages.
 *
 * @throws {ConfigError} naming the key (the file is named by the caller).
 *
 * @example
 * ```ts
 * import { deepEqual, throws } from "node:assert/strict";
 * import { intFlag, listFlag, switchFlag } from "./flags.ts";
 * import { configToGiven } from "./config_file.ts";
 * const table = {
 *   "max-conns": intFlag({ min: 1, help: "cap" }),
 *   udp: switchFlag({ help: "udp" }),
 *   allow: listFlag({ help: "allow" }, (text) => text),
 * };
 * deepEqual(
 *   configToGiven({ "max-conns": 20, udp: true, allow: ["10.0.0.0/8"] }, table),
 *   new Map([["max-conns", ["20"]], ["udp", [""]], ["allow", ["10.0.0.0/8"]]]),
 * );
 * throws(() => configToGiven({ port: 1 }, table), { message: 'unknown key "port"' });
 * throws(() => configToGiven({ "max-con": 1 }, table), {
 *   message: 'unknown key "max-con" (did you mean "max-conns"?)',
 * });
 * throws(() => configToGiven([], table), { message: "expected a JSON object of flag values" });
 * ```
 */
export function configToGiven(
  json: unknown,
  table: FlagTable,
  refused: readonly string[] = [],
): GivenFlags {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError("expected a JSON object of flag values");
  }
  const given = new Map<string, string[]>();
  for (const [key, value] of Object.entries(json)) {
    const flag = Object.hasOwn(table, key) && !refused.includes(key) ? table[key] : undefined;
    if (flag === undefined) {
      const known = Object.keys(table).filter((name) => !refused.includes(name));
      throw new ConfigError(
        `unknown key "${key}"${didYouMean(key, known, (name) => `"${name}"`)}`,
      );
    }
    if (flag.type === "boolean") {
      if (typeof value !== "boolean") throw new ConfigError(`"${key}": expected true or false`);
      if (value) given.set(key, [""]);
    } else if (flag.multiple) {
      const items: unknown[] = Array.isArray(value) ? value : [value];
      given.set(key, items.map((item) => scalar(key, item, "a list of strings")));
    } else {
      given.set(key, [scalar(key, value, "a number or a string")]);
    }
  }
  return given;
}

function scalar(key: string, value: unknown, expected: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  throw new ConfigError(`"${key}": expected ${expected}, not ${JSON.stringify(value)}`);
}

/**
 * Reads `path` and turns it into given flags with {@linkcode configToGiven}.
 *
 * @throws {ConfigError} `PATH: reason` when the file cannot be read or used.
 */
export async function readConfigFile(
  path: string,
  table: FlagTable,
  refused: readonly string[] = [],
): Promise<GivenFlags> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const permission = error instanceof Deno.errors.PermissionDenied ||
      error instanceof Deno.errors.NotCapable;
    throw new ConfigError(
      `${path}: ${permission ? "reading it needs --allow-read" : describeFileError(error)}`,
      { cause: error },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // V8 quotes the start of the text, line breaks and all: one line it must stay.
    const why = describeError(error).replace(/\s*\n\s*/g, " ");
    throw new ConfigError(`${path}: not valid JSON: ${why}`, { cause: error });
  }
  try {
    return configToGiven(json, table, refused);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`${path}: ${error.message}`, { cause: error });
  }
}

/**
 * The file's flags with the command line's laid over them: a flag given on
 * the command line wins, whatever the file says.
 *
 * @example
 * ```ts
 * import { deepEqual } from "node:assert/strict";
 * import { overlay } from "./config_file.ts";
 * const file = new Map([["rate", ["5"]], ["burst", ["10"]]]);
 * const args = new Map([["rate", ["2"]]]);
 * deepEqual(overlay(file, args), new Map([["rate", ["2"]], ["burst", ["10"]]]));
 * ```
 */
export function overlay(file: GivenFlags, args: GivenFlags): GivenFlags {
  const merged = new Map(file);
  for (const [name, values] of args) merged.set(name, values);
  return merged;
}
