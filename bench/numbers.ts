/**
 * How the load tester writes numbers in its reports and error messages.
 *
 * @module
 */

/**
 * A count, rounded and grouped: `1,234`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { int } from "./numbers.ts";
 * equal(int(1234.6), "1,235");
 * ```
 */
export function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/**
 * A rate in msg/s: grouped, fractions kept (`0.5`, `1,234.5`, `0.00125`).
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { rate } from "./numbers.ts";
 * equal(rate(1234.5), "1,234.5");
 * equal(rate(0.00125), "0.00125");
 * ```
 */
export function rate(n: number): string {
  return n.toLocaleString(
    "en-US",
    n >= 1 ? { maximumFractionDigits: 3 } : { maximumSignificantDigits: 3 },
  );
}

/**
 * A number with a fixed number of decimals, thousands grouped as {@linkcode int} groups them: `1.23`, `1,472.8`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { fixed } from "./numbers.ts";
 * equal(fixed(1.234, 2), "1.23");
 * equal(fixed(1472.84, 1), "1,472.8");
 * ```
 */
export function fixed(n: number, digits: number): string {
  return n.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/**
 * A byte count in megabytes (10^6 bytes), one decimal: `7.9 MB`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { mb } from "./numbers.ts";
 * equal(mb(7_901_184), "7.9 MB");
 * ```
 */
export function mb(n: number): string {
  return `${fixed(n / 1e6, 1)} MB`;
}

/**
 * A volume of bytes in the unit that shows it, decimal as {@linkcode mb}:
 * `512 B`, `20.9 kB`, `35.1 MB`, so that a small volume does not read as
 * `0.0 MB`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { volume } from "./numbers.ts";
 * equal(volume(0), "0 B");
 * equal(volume(512), "512 B");
 * equal(volume(20_984), "21.0 kB");
 * equal(volume(7_901_184), "7.9 MB");
 * equal(volume(1_234_567_890), "1,234.6 MB");
 * ```
 */
export function volume(n: number): string {
  if (n < 1000) return `${int(n)} B`;
  if (n < 1e6) return `${fixed(n / 1000, 1)} kB`;
  return mb(n);
}

/**
 * A throughput in bytes per second, in the unit that shows it: `11.7 MB/s`,
 * `52.3 kB/s`, `12 B/s`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { throughput } from "./numbers.ts";
 * equal(throughput(11_700_000), "11.7 MB/s");
 * equal(throughput(52_300), "52.3 kB/s");
 * equal(throughput(0), "0 B/s");
 * ```
 */
export function throughput(bytesPerS: number): string {
  return `${volume(bytesPerS)}/s`;
}

/**
 * A message size in the unit it was most likely given in: `64 B`, `4 KiB`, `16 MiB`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { size } from "./numbers.ts";
 * equal(size(4096), "4 KiB");
 * equal(size(1000), "1000 B");
 * ```
 */
export function size(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

/**
 * A byte in hexadecimal: `0x0a`.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { hex } from "./numbers.ts";
 * equal(hex(10), "0x0a");
 * ```
 */
export function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, "0")}`;
}
