/**
 * The standard benchmark (`deno task bench`): starts the server from main.ts
 * with its default flags, loads it with the project's own `bench` engine in
 * four standard runs, and prints a Markdown table. Every byte is verified; a
 * mismatch or error makes the exit code 1.
 *
 *   deno task bench [--seconds 3] [-- server flags, e.g. --workers 2]
 *
 * For comparisons against other runtimes, use ../shared/bench/run_peers.sh
 * (see BENCHMARKS.md).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BenchOptions, runBench } from "../bench/mod.ts";
import { startProjectServer } from "./project_server.ts";

let parsed;
try {
  parsed = parseArgs({
    options: { seconds: { type: "string", default: "3" } },
    allowPositionals: true,
    strict: true,
  });
} catch (error) {
  console.error(`bench: ${error instanceof Error ? error.message : error}`);
  Deno.exit(2);
}
const { values, positionals } = parsed;
const seconds = Number(values.seconds);
if (!(seconds > 0 && seconds <= 60)) {
  console.error(`bench: --seconds must be a number above 0, up to 60, not "${values.seconds}"`);
  Deno.exit(2);
}

let server;
try {
  server = await startProjectServer(positionals);
} catch (error) {
  console.error(`bench: ${error instanceof Error ? error.message : error}`);
  Deno.exit(1);
}
const { port } = server;

const runs: Array<[string, Pick<BenchOptions, "mode" | "connections" | "size">]> = [
  ["pingpong 100 × 64 B", { mode: "pingpong", connections: 100, size: 64 }],
  ["pingpong 100 × 4 KiB", { mode: "pingpong", connections: 100, size: 4096 }],
  ["stream 4 connections", { mode: "stream", connections: 4, size: 65536 }],
  ["churn 50 × 64 B", { mode: "churn", connections: 50, size: 64 }],
];
console.log(
  `server: main.ts ${positionals.join(" ") || "(default flags)"}; ${seconds} s per run\n`,
);
console.log("| run | msg/s | MB/s | conn/s | p50 µs | p99 µs | p99.9 µs | errors | mismatches |");
console.log("|---|---|---|---|---|---|---|---|---|");
let failed = false;
for (const [name, run] of runs) {
  const r = await runBench({ host: "127.0.0.1", port, durationMs: seconds * 1000, ...run });
  failed ||= !r.ok;
  const l = r.latencyUs;
  console.log(
    `| ${name} | ${Math.round(r.msgsPerS)} | ${r.mbPerS.toFixed(1)} | ${
      run.mode === "churn" ? Math.round(r.connectionsPerS) : "-"
    } | ${Math.round(l.p50)} | ${Math.round(l.p99)} | ${Math.round(l.p99_9)} | ${r.errors} | ${
      r.mismatches + r.timedOut
    } |`,
  );
}
await server[Symbol.asyncDispose]();
Deno.exit(failed ? 1 : 0);
