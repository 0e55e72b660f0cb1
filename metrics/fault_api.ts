/**
 * `GET /faults` and `PUT /faults` on the metrics listener (`--fault-api`):
 * the fault specs in force, as a JSON list of spec strings, and a new list
 * put in force for the connections and sources selected from then on.
 *
 * @module
 */
import { logger } from "../log/log.ts";
import type { HttpRequest } from "./http.ts";
import { type HttpReply, plain } from "./http_reply.ts";

const log = logger("server");

/** The faults as the API reads and changes them. */
export interface FaultApi {
  /** The specs in force, as given. */
  get(): readonly string[];
  /**
   * Puts `specs` in force, all or nothing.
   *
   * @throws {Error} with the reason, one line, when one does not read: nothing changes then.
   */
  put(specs: readonly string[]): void;
}

/** The largest `PUT /faults` body taken. */
export const FAULT_API_MAX_BODY = 64 * 1024;

/**
 * Answers a request to `/faults`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { answerFaults } from "./fault_api.ts";
 * let specs: readonly string[] = [];
 * const api = { get: () => specs, put: (next: readonly string[]) => void (specs = next) };
 * equal((answerFaults({ method: "PUT", path: "/faults", body: '["delay=1s"]' }, api)).status, 200);
 * equal(answerFaults({ method: "GET", path: "/faults" }, api).body, '["delay=1s"]\n');
 * equal(answerFaults({ method: "PUT", path: "/faults", body: "{}" }, api).status, 400);
 * ```
 */
export function answerFaults(request: HttpRequest, api: FaultApi): HttpReply {
  if (request.method !== "PUT") return json(200, api.get());
  let specs: unknown;
  try {
    specs = JSON.parse(request.body ?? "");
  } catch {
    return plain(
      400,
      'the body is not JSON: expected a list of spec strings, e.g. ["delay=200ms"]\n',
    );
  }
  if (!Array.isArray(specs) || !specs.every((spec) => typeof spec === "string")) {
    return plain(400, 'expected a JSON list of spec strings, e.g. ["delay=200ms"]\n');
  }
  const before = api.get();
  try {
    api.put(specs);
  } catch (error) {
    return plain(400, `${error instanceof Error ? error.message : String(error)}\n`);
  }
  const after = api.get();
  // A change nobody signed for: the log says what it was, as a reload does.
  log.info("PUT /faults: fault {before} → {after}", {
    before: before.length === 0 ? "none" : before.join("; "),
    after: after.length === 0 ? "none" : after.join("; "),
  });
  return json(200, after);
}

function json(status: number, value: unknown): HttpReply {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(value) + "\n",
  };
}
