/**
 * The nearest name to a misspelt one, for "did you mean" hints on unknown
 * flags, config keys, commands and choices.
 *
 * @module
 */

/**
 * The edit distance between two words: insertions, deletions, substitutions
 * and swaps of two neighbouring letters (`prot` → `port` is one), each
 * costing 1 (the optimal string alignment distance).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { editDistance } from "./nearest.ts";
 * equal(editDistance("prot", "port"), 1);
 * equal(editDistance("max-con", "max-conns"), 2);
 * equal(editDistance("", "abc"), 3);
 * ```
 */
export function editDistance(a: string, b: string): number {
  // Three rows of the dynamic-programming table: the swap looks two rows back.
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, before[j - 2] + 1);
      }
      current[j] = best;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[b.length];
}

/**
 * The candidate nearest to `word`, ignoring letter case, or undefined when
 * none is near enough to be a likely typo: at most a third of the longer
 * word's letters may differ (at least one), so `prot` finds `port` but
 * `bogus` finds nothing. A candidate that starts with `word` (at least 3
 * letters of it) counts as near too, so that `max-conns-per` finds
 * `max-conns-per-ip`. Of two at the same distance, the first wins.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { nearest } from "./nearest.ts";
 * equal(nearest("prot", ["host", "port"]), "port");
 * equal(nearest("max-conns-per", ["max-conns", "max-conns-per-ip"]), "max-conns-per-ip");
 * equal(nearest("bogus", ["host", "port"]), undefined);
 * ```
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const other = candidate.toLowerCase();
    if (other === lower) return candidate;
    const distance = editDistance(lower, other);
    const near = distance <= Math.max(1, Math.floor(Math.max(lower.length, other.length) / 3)) ||
      (lower.length >= 3 && other.startsWith(lower));
    if (near && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * ` (did you mean X?)` for the nearest of `candidates`, written by `show`
 * (`--port`, `"port"`), or `""` when none is near.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { didYouMean } from "./nearest.ts";
 * equal(didYouMean("prot", ["port"], (name) => `--${name}`), " (did you mean --port?)");
 * equal(didYouMean("zzz", ["port"]), "");
 * ```
 */
export function didYouMean(
  word: string,
  candidates: Iterable<string>,
  show: (name: string) => string = (name) => name,
): string {
  const found = nearest(word, candidates);
  return found === undefined ? "" : ` (did you mean ${show(found)}?)`;
}
