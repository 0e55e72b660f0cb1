/**
 * echo-server: an echo server (TCP, TLS, Unix sockets, UDP), its client and its load tester, in one
 * program. This module picks the command, maps failures to exit codes, and
 * starts a worker when it is loaded as one; the commands are in `cli/`.
 *
 * @module
 */
import { benchCommand } from "./cli/bench_command.ts";
import { clientCommand } from "./cli/client_command.ts";
import { UsageError } from "./cli/flags.ts";
import { serveCommand } from "./cli/serve_command.ts";
import { USAGE, VERSION } from "./cli/usage.ts";
import { flushLogs, logger } from "./log/log.ts";
import { didYouMean } from "./text/nearest.ts";
import { inWorker, workerMain } from "./server/workers.ts";

const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Promise<number>>> = {
  serve: (args) => serveCommand(args, new URL(import.meta.url)),
  client: clientCommand,
  bench: benchCommand,
};

async function main(args: readonly string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === "--version" || first === "-V" || first === "version") {
    console.log(`echo-server ${VERSION}`);
    return 0;
  }
  // `help serve` is `serve --help`.
  if (first === "help" && rest[0] !== undefined && Object.hasOwn(COMMANDS, rest[0])) {
    return await COMMANDS[rest[0]](["--help"]);
  }
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(USAGE);
    return 0;
  }
  const command = first !== undefined && Object.hasOwn(COMMANDS, first)
    ? COMMANDS[first]
    : undefined;
  if (command !== undefined) return await command(rest);
  if (first !== undefined && !first.startsWith("-")) {
    throw new UsageError(
      `unknown command "${first}"${
        didYouMean(first, Object.keys(COMMANDS), (name) => `"${name}"`)
      }`,
    );
  }
  return await COMMANDS.serve(args);
}

/** The exit code for a failure: 2 for a wrong command line, 1 for the rest, said in one line. */
function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) {
    const command = error.command === undefined ? "" : ` ${error.command}`;
    console.error(`echo-server: ${error.message}\nTry "echo-server${command} --help" for usage.`);
    return 2;
  }
  // A ListenError's message is already the sentence (`cannot listen on …`); so is any other's.
  logger("server").error("{message}", {
    message: error instanceof Error ? error.message : String(error),
  });
  return 1;
}

if (import.meta.main && inWorker()) {
  workerMain();
} else if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    code = exitCodeFor(error);
  }
  // Bounded: a stalled stderr reader must not keep the process from exiting.
  await flushLogs();
  Deno.exit(code);
}
