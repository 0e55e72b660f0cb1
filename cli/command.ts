/**
 * What every command does with its command line: `--help` prints its usage,
 * anything else is read by its flag table and handed to it, and a usage
 * error names the command whose `--help` explains the fix.
 *
 * @module
 */
import { type FlagTable, type FlagValues, UsageError } from "./flags.ts";
import { readFlags, scanFlags } from "./parse.ts";

/** A command: the word that selects it, its usage text and flags, and what it does. */
export interface Command<S extends FlagTable> {
  /** The word on the command line, e.g. `client`; usage errors point to its `--help`. */
  readonly name: string;
  /** Printed for `--help`. */
  readonly usage: string;
  /** The flags it takes; a `help` switch prints the usage instead of running it. */
  readonly flags: S;
  /** Runs it and resolves with the exit code. */
  run(values: FlagValues<S>): Promise<number>;
}

/**
 * Runs `command` with `args` (the words after the command's name), or prints
 * its usage for `--help`, whatever else was given.
 *
 * @example
 * ```ts
 * import { equal, rejects } from "node:assert/strict";
 * import { runCommand } from "./command.ts";
 * import { intFlag } from "./flags.ts";
 * const double = {
 *   name: "double",
 *   usage: "Usage: double [-n N]",
 *   flags: { n: intFlag({ short: "n", min: 0, default: 1, help: "a number" }) },
 *   run: (values: { n: number }) => Promise.resolve(values.n * 2),
 * };
 * equal(await runCommand(double, ["-n", "21"]), 42);
 * await rejects(runCommand(double, ["-n", "x"]), { name: "UsageError", command: "double" });
 * ```
 */
export async function runCommand<S extends FlagTable>(
  command: Command<S>,
  args: readonly string[],
): Promise<number> {
  try {
    const given = scanFlags(args, command.flags);
    if ("help" in command.flags && given.has("help")) {
      console.log(command.usage);
      return 0;
    }
    return await command.run(readFlags(given, command.flags));
  } catch (error) {
    if (error instanceof UsageError && error.command === undefined) {
      throw new UsageError(error.message, command.name);
    }
    throw error;
  }
}
