/**
 * The `bench` command: runs the load tester with a live progress line and
 * prints the report as text or JSON.
 *
 * @module
 */
import { type BenchOptions, formatProgress, formatReport, runBench } from "../bench/mod.ts";
import { describeError } from "../text/address.ts";

const encoder = new TextEncoder();

/**
 * Runs a benchmark and resolves with the exit code: 0 when every echo was
 * verified, 1 when any was corrupted, short or timed out, a connection failed,
 * or the server could not be reached (with `json`, stdout then gets
 * `{"ok":false,"error":"..."}`). SIGINT ends the run early with a report.
 */
export async function runBenchCommand(
  options: Omit<BenchOptions, "signal" | "onProgress">,
  json: boolean,
): Promise<number> {
  const interrupted = new AbortController();
  const onInterrupt = () => interrupted.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  // On a terminal the progress line is redrawn in place; elsewhere (a pipe,
  // a CI log) each second gets a plain line of its own.
  const tty = Deno.stderr.isTerminal();
  let drawn = false;
  try {
    const report = await runBench({
      ...options,
      signal: interrupted.signal,
      onProgress: (progress) => {
        const line = formatProgress(progress);
        Deno.stderr.writeSync(encoder.encode(tty ? `\r\x1b[2K${line}` : `${line}\n`));
        drawn = tty;
      },
    });
    if (drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    console.log(json ? JSON.stringify(report) : formatReport(report));
    if (!report.ok) {
      const timedOut = report.timedOut > 0 ? `, ${report.timedOut} timed out` : "";
      console.error(
        `echo-server bench: ${report.mismatches} mismatches, ${report.errors} errors${timedOut}${
          report.firstError ? ` (first: ${report.firstError})` : ""
        }`,
      );
    }
    return report.ok ? 0 : 1;
  } catch (error) {
    if (drawn) Deno.stderr.writeSync(encoder.encode("\n"));
    // With --json, stdout still gets one JSON object, so a pipeline can parse it.
    if (json) console.log(JSON.stringify({ ok: false, error: describeError(error) }));
    console.error(`echo-server bench: ${describeError(error)}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}
