/**
 * What a run writes for people and other tools: `--hgrm` (checked line for
 * line against hdr-histogram-js, HdrHistogram's own TypeScript port),
 * `--json` with its series, `bench compare`, and `--report`, whose page is
 * loaded in a real headless Chromium (`chromium-headless-shell`; without it
 * that test is ignored, saying why): it must draw its three charts and log
 * nothing to the console.
 */
import { equal, match, ok } from "node:assert/strict";
import * as hdr from "hdr-histogram-js";
import { hgrmOf } from "../bench/hgrm.ts";
import { Histogram } from "../bench/histogram.ts";
import { Cli, commandOutput, runCli } from "./helpers.ts";

const CHROMIUM = "chromium-headless-shell";
const chromiumMissing = await commandOutput(CHROMIUM, { args: ["--version"] }).then(
  (out) => out.success ? undefined : `${CHROMIUM} --version failed`,
  () => `${CHROMIUM} is not installed (apt-get install chromium-headless-shell)`,
);

/** `main.ts bench …args` to its end, with `permissions`. */
async function bench(args: string[], permissions: string[]) {
  await using cli = new Cli(["bench", ...args], { permissions });
  return await cli.finished();
}

/** `bench …args`, allowed to write into `dir` and to use epoll. */
function benchInto(dir: string, args: string[]) {
  return bench(args, ["--allow-net", "--allow-ffi", `--allow-write=${dir}`]);
}

/** `bench compare …files`, allowed to read them. */
function compare(...files: string[]) {
  return bench(["compare", ...files], ["--allow-read"]);
}

Deno.test("--hgrm writes HdrHistogram's percentile distribution, as hdr-histogram-js does", () => {
  const ours = new Histogram();
  const theirs = hdr.build({ numberOfSignificantValueDigits: 3, useWebAssembly: false });
  // Values below 256 µs, where both histograms are exact, so every line must agree.
  let x = 7;
  for (let i = 0; i < 5000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    ours.record(1 + (x % 250));
    theirs.recordValue(1 + (x % 250));
  }
  const a = hgrmOf(ours).split("\n");
  const b = theirs.outputPercentileDistribution(5, 1000).split("\n");
  theirs.destroy();
  equal(a.length, b.length);
  // All but the layout line (our buckets are HdrHistogram's of two significant digits).
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith("#[Buckets")) equal(a[i], b[i], `line ${i}`);
  }
});

Deno.test("bench --json has the series, --hgrm and --report are written, compare reads them", async () => {
  await using server = new Cli(["--host", "127.0.0.1", "--port", "0"]);
  const port = String(await server.port());
  const dir = await Deno.makeTempDir({ prefix: "echo-bench-outputs-" });
  try {
    const bench = await benchInto(dir, [
      ...["-p", port, "-c", "4", "-d", "1500ms", "--io", "epoll", "--json"],
      ...["--report", `${dir}/run.html`, "--hgrm", `${dir}/run.hgrm`],
    ]);
    equal(bench.code, 0, bench.stderr);
    const report = JSON.parse(bench.stdout);
    ok(report.series.length >= 1, bench.stdout);
    ok(report.series[0].msgsPerS > 0 && report.series[0].p99 > 0, bench.stdout);
    equal(report.perConnection.none, 0);
    await Deno.writeTextFile(`${dir}/a.json`, bench.stdout);
    match(await Deno.readTextFile(`${dir}/run.hgrm`), /^ +Value +Percentile +TotalCount/);
    const page = await Deno.readTextFile(`${dir}/run.html`);
    ok(page.includes("uPlot") && !page.includes("<script src"), "uPlot inlined, nothing fetched");
    // Settings in words: a closed loop, not "rate null"; none undefined.
    ok(page.includes("<tr><td>rate</td><td>closed loop</td></tr>"), page.slice(-3000));
    ok(!/<td>(null|undefined)<\/td>/.test(page), "no null or undefined setting");

    const same = await compare(`${dir}/a.json`, `${dir}/a.json`);
    equal(same.code, 0, same.stderr);
    match(same.stdout, /msg\/s .* 1\.00\n/);

    // The same run on the default engine (left out of its options), as a slow stream.
    const b = { ...report, options: { ...report.options, mode: "stream" }, mbPerS: 2.0412 };
    delete b.options.io;
    await Deno.writeTextFile(`${dir}/b.json`, JSON.stringify(b));
    const unlike = await compare(`${dir}/a.json`, `${dir}/b.json`);
    equal(unlike.code, 0, unlike.stderr);
    match(
      unlike.stdout,
      /^warning: the runs differ in mode \(pingpong → stream\): their figures are not like for like\n/,
    );
    match(unlike.stdout, /\nMB\/s +[\d.,]+ +2\.04 +[\d.]+\n/);
    match(unlike.stdout, /\n {2}io: epoll → deno\n/);
    ok(!/null|undefined|—/.test(unlike.stdout), unlike.stdout);

    const missing = await compare(`${dir}/a.json`, `${dir}/none.json`);
    equal(missing.code, 1);
    match(missing.stderr, /^echo-server bench compare: cannot read .*none\.json: no such file\n$/);
    await Deno.writeTextFile(`${dir}/bad.json`, '{"ok":false,"error":"cannot connect"}');
    const bad = await compare(`${dir}/bad.json`, `${dir}/a.json`);
    equal(bad.code, 1);
    match(bad.stderr, /bad\.json is not the JSON report of a bench run: cannot connect\n$/);
    const usage = await compare(`${dir}/a.json`);
    equal(usage.code, 2);
    // Without the permission to write the page, the run does not start: one line says why.
    const denied = await runCli(["bench", "-p", port, "--report", `${dir}/x.html`]);
    equal(denied.code, 1);
    match(
      denied.stderr,
      /^echo-server bench: cannot write .*x\.html: run deno with --allow-write\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: `bench --report renders its charts in headless Chromium, with no console output${
    chromiumMissing === undefined ? "" : ` (ignored: ${chromiumMissing})`
  }`,
  ignore: chromiumMissing !== undefined,
  fn: async () => {
    await using server = new Cli(["--host", "127.0.0.1", "--port", "0"]);
    const port = String(await server.port());
    const dir = await Deno.makeTempDir({ prefix: "echo-bench-page-" });
    try {
      const page = `${dir}/run.html`;
      const bench = await benchInto(dir, [
        ...["-p", port, "-c", "2", "-d", "1200ms", "--io", "epoll", "--report", page],
      ]);
      equal(bench.code, 0, bench.stderr);
      const out = await commandOutput(CHROMIUM, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          `--user-data-dir=${dir}/profile`,
          "--enable-logging=stderr",
          "--v=0",
          "--dump-dom",
          `file://${page}`,
        ],
      });
      const dom = new TextDecoder().decode(out.stdout);
      const log = new TextDecoder().decode(out.stderr);
      ok(out.success, log);
      // The page's script marks the body once the three charts are drawn, or with the error.
      match(dom, /<body[^>]* data-charts="3"/, dom.slice(0, 2000));
      ok(!dom.includes("data-error"), dom.slice(0, 2000));
      equal(dom.match(/<canvas/g)?.length, 3, "three uPlot canvases");
      // Console messages, uncaught errors among them, are logged as INFO:CONSOLE lines.
      equal(log.split("\n").filter((line) => line.includes(":CONSOLE")).join("\n"), "");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
