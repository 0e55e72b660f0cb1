/**
 * The files a run can write besides its report on stdout: the HTML page
 * (`--report`) and the HdrHistogram percentile text (`--hgrm`).
 *
 * @module
 */
import type { Measured } from "./engine.ts";
import { hgrmOf } from "./hgrm.ts";
import { htmlReport } from "./html_report.ts";

/**
 * Throws, before any load, when a file asked for cannot be written: no
 * permission to write it, or no folder to put it in.
 */
export function checkOutputs(...paths: (string | undefined)[]): void {
  for (const path of paths) {
    if (path === undefined) continue;
    if (Deno.permissions.querySync({ name: "write", path }).state !== "granted") {
      throw new Error(`cannot write ${path}: run deno with --allow-write`);
    }
    const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
    let isFolder = true;
    try {
      isFolder = Deno.statSync(folder).isDirectory;
    } catch (error) {
      // Without the permission to look, the write itself will say what is wrong.
      if (error instanceof Deno.errors.NotFound) isFolder = false;
    }
    if (!isFolder) throw new Error(`cannot write ${path}: there is no folder ${folder}`);
  }
}

/** Writes the page and the percentile text of `m`, where asked; a failure is one sentence. */
export async function writeOutputs(m: Measured, html?: string, hgrm?: string): Promise<void> {
  const write = async (path: string, text: string) => {
    try {
      await Deno.writeTextFile(path, text);
    } catch (error) {
      throw new Error(`cannot write ${path}: ${error instanceof Error ? error.message : error}`);
    }
  };
  if (html !== undefined) await write(html, htmlReport(m.report, m.histogram));
  if (hgrm !== undefined) await write(hgrm, hgrmOf(m.histogram));
}
