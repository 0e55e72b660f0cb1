/**
 * The fault flags of `serve` (`--fault`, `--fault-api`), the server option
 * they make, and the faults in force at run time, which SIGHUP and `PUT /faults` replace.
 *
 * @module
 */
import { parseFaultSpec } from "../fault/spec.ts";
import type { FaultApi } from "../metrics/fault_api.ts";
import type { EchoServer } from "../server/serve.ts";
import { listFlag, switchFlag } from "./flags.ts";

/** The fault flags of `serve`. */
export const SERVE_FAULT_FLAGS = {
  fault: listFlag(
    {
      value: "SPEC",
      help:
        "misbehave on purpose: NAME=VALUE[,…] applied together to the connections it selects, e.g. delay=200ms,jitter=50ms,share=0.1 (repeatable; README: Faults on purpose)",
    },
    (text) => parseFaultSpec(text).text,
  ),
  "fault-api": switchFlag({
    help:
      "GET and PUT /faults on the --metrics listener, to read and change the faults while serving (bind it to a trusted address)",
  }),
};

/** The flag values {@linkcode serveFaults} looks at. */
export interface FaultFlagValues {
  /** `--fault`, each spec as given (trimmed). */
  fault: readonly string[];
  /** `--fault-api`. */
  "fault-api": boolean;
  /** `--config`, when given. */
  config?: string;
}

/**
 * The server's `faults` option: the specs given, when faults are asked for
 * or may come later (`--fault-api`, or a `--config` that SIGHUP re-reads);
 * none otherwise, so that a server without faults does not even look.
 */
export function serveFaults(flags: FaultFlagValues): readonly string[] | undefined {
  const later = flags["fault-api"] || flags.config !== undefined;
  return flags.fault.length > 0 || later ? flags.fault : undefined;
}

/**
 * The faults in force while serving, as `GET /faults` shows them, replaced
 * by SIGHUP and `PUT /faults` alike.
 */
export class LiveFaults implements FaultApi {
  #specs: readonly string[];
  #server: Pick<EchoServer, "reconfigureFaults"> | undefined;

  /** Starts with the specs the server is started with. */
  constructor(initial: readonly string[]) {
    this.#specs = initial;
  }

  /** Changes the faults of `server` from now on: the one started with the initial specs. */
  attach(server: Pick<EchoServer, "reconfigureFaults">): void {
    this.#server = server;
  }

  /** The specs in force. */
  get(): readonly string[] {
    return this.#specs;
  }

  /** Puts `specs` in force for the connections from now on; throws, changing nothing, on a bad one. */
  put(specs: readonly string[]): void {
    const texts = specs.map((spec) => parseFaultSpec(spec).text);
    if (this.#server === undefined) throw new Error("the server is still starting: try again");
    this.#server.reconfigureFaults?.(texts);
    this.#specs = texts;
  }
}
