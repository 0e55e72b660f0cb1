/**
 * The bench against the independent C load generator
 * (`../shared/bench/loadgen.c`), both loading the C epoll server
 * (`../shared/bench/c_epoll_server.c`) on CPU 0 from CPU 1, in interleaved
 * rounds: pingpong 100 × 64 B and 10,000 × 64 B, each by the C load
 * generator, `bench --io epoll` and `bench --io deno`. Prints a Markdown
 * table of the medians, with each bench's ratio to the C load generator of
 * the same round, and how many connections got no echo.
 *
 *   deno run --allow-all scripts/bench_vs_c.ts [--seconds 6] [--rounds 3]
 *
 * Needs gcc and taskset. The machine is usually shared: quote the ratios
 * with the date, not the absolute figures.
 *
 * @module
 */
import { parseArgs } from "node:util";

const SHARED = new URL("../../shared/bench/", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

let parsed;
try {
  parsed = parseArgs({
    options: {
      seconds: { type: "string", default: "6" },
      rounds: { type: "string", default: "3" },
    },
    strict: true,
  });
} catch (error) {
  console.error(`bench_vs_c: ${error instanceof Error ? error.message : error}`);
  Deno.exit(2);
}
const { values } = parsed;
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
if (!(seconds > 0 && seconds <= 60) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 9)) {
  console.error("bench_vs_c: --seconds from 1 to 60, --rounds from 1 to 9");
  Deno.exit(2);
}

/** What one load generator measured. */
interface Figures {
  msgsPerS: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  /** Connections that got no echo (the C load generator does not say: -1). */
  none: number;
  /** Fewest and most echoes of one connection (bench only). */
  min: number;
  max: number;
}

async function run(program: string, args: string[], timeoutMs: number): Promise<string> {
  const child = new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && !text.includes("{")) {
    throw new Error(`${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

const dir = await Deno.makeTempDir({ prefix: "bench-vs-c-" });
for (const name of ["c_epoll_server", "loadgen"]) {
  await run("gcc", ["-O2", "-o", `${dir}/${name}`, `${SHARED}${name}.c`], 60_000);
}
const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const port = probe.addr.port;
probe.close();
const server = new Deno.Command("taskset", {
  args: ["-c", "0", `${dir}/c_epoll_server`, String(port)],
  stdout: "null",
  stderr: "null",
}).spawn();

// The server is up once it accepts: the first run must not race its start.
for (let tries = 0;; tries++) {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    break;
  } catch (error) {
    if (tries === 100) throw new Error(`the C epoll server did not start: ${error}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function loadgen(conns: number): Promise<Figures> {
  const text = await run("taskset", [
    ...["-c", "1", `${dir}/loadgen`, "127.0.0.1", String(port), String(conns), "64"],
    ...[String(seconds), "pingpong"],
  ], (seconds + 60) * 1000);
  const kv = Object.fromEntries(
    [...(text.match(/^RESULT .*$/m)?.[0] ?? "").matchAll(/(\w+)=([\d.]+)/g)].map((
      [, k, v],
    ) => [k, Number(v)]),
  );
  return {
    msgsPerS: kv.msgs_per_s,
    p50: kv.p50_us,
    p99: kv.p99_us,
    p999: kv.p999_us,
    errors: kv.errors + kv.mismatches,
    none: -1,
    min: -1,
    max: -1,
  };
}

async function bench(io: string, conns: number): Promise<Figures> {
  const text = await run("taskset", [
    ...["-c", "1", Deno.execPath(), "run", "--allow-net", "--allow-ffi", `${ROOT}main.ts`],
    ...["bench", "-p", String(port), "-c", String(conns), "-s", "64", "-d", `${seconds}s`],
    ...["--io", io, "--json"],
  ], (seconds + 60) * 1000);
  const r = JSON.parse(text);
  return {
    msgsPerS: r.msgsPerS,
    p50: r.latencyUs.p50,
    p99: r.latencyUs.p99,
    p999: r.latencyUs.p99_9,
    errors: r.errors + r.mismatches,
    none: r.perConnection.none,
    min: r.perConnection.min,
    max: r.perConnection.max,
  };
}

const LOADS = [100, 10_000];
const GENERATORS: [string, (conns: number) => Promise<Figures>][] = [
  ["C loadgen", loadgen],
  ["bench --io epoll", (c) => bench("epoll", c)],
  ["bench --io deno", (c) => bench("deno", c)],
];
/** Results by load, generator, round. */
const results = LOADS.map(() => GENERATORS.map((): Figures[] => []));
try {
  for (let round = 0; round < rounds; round++) {
    for (const [l, conns] of LOADS.entries()) {
      for (const [g, [name, generate]] of GENERATORS.entries()) {
        const f = await generate(conns);
        results[l][g].push(f);
        console.error(
          `round ${round + 1}: ${name} ${conns} conns: ${
            Math.round(f.msgsPerS)
          } msg/s, p99 ${f.p99} µs, none ${f.none}`,
        );
      }
    }
  }
} finally {
  server.kill("SIGKILL");
  await server.status;
  await Deno.remove(dir, { recursive: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cell = (n: number) => n < 0 ? "—" : Math.round(n).toLocaleString("en-US");
console.log(
  `${
    new Date().toISOString().slice(0, 10)
  }, ${rounds} interleaved rounds of ${seconds} s, C epoll server on CPU 0, load on CPU 1; medians, ratios to the C load generator of the same round\n`,
);
console.log(
  "| load | generator | msg/s | × C | p50 µs | p99 µs | p99 × C | p99.9 µs | p99.9 × C | got no echo | echoes per conn min–max | errors |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const [l, conns] of LOADS.entries()) {
  const c = results[l][0];
  for (const [g, [name]] of GENERATORS.entries()) {
    const rs = results[l][g];
    const ratio = (f: (x: Figures) => number) =>
      median(rs.map((r, i) => f(r) / Math.max(f(c[i]), 1))).toFixed(2);
    const m = (f: (x: Figures) => number) => median(rs.map(f));
    console.log(
      `| ${conns.toLocaleString("en-US")} × 64 B | ${name} | ${cell(m((r) => r.msgsPerS))} | ${
        ratio((r) => r.msgsPerS)
      } | ${cell(m((r) => r.p50))} | ${cell(m((r) => r.p99))} | ${ratio((r) => r.p99)} | ${
        cell(m((r) => r.p999))
      } | ${ratio((r) => r.p999)} | ${cell(Math.max(...rs.map((r) => r.none)))} | ${
        g === 0 ? "—" : `${cell(m((r) => r.min))}–${cell(m((r) => r.max))}`
      } | ${cell(rs.reduce((s, r) => s + r.errors, 0))} |`,
    );
  }
}
