/**
 * Flood benchmark for admission control: how much does a flood of
 * connections that open and never send delay a well-behaved client?
 *
 * Starts the server from main.ts with its default flags plus a per-address
 * cap of 256 (as a server open to the internet would run), then measures one
 * client's 64-byte round trips in three phases: alone, while `--flood`
 * connections are being opened from `--addresses` loopback addresses as fast
 * as possible, and while they are all held open and silent. Bounded: at most
 * `--flood` connections and `--echoes` round trips per phase.
 *
 *   deno run -A scripts/flood.ts [--flood 4000] [--addresses 40] [--echoes 2000]
 *
 * @module
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { Histogram } from "../bench/histogram.ts";
import { startProjectServer } from "./project_server.ts";

let parsed;
try {
  parsed = parseArgs({
    options: {
      flood: { type: "string", default: "4000" },
      addresses: { type: "string", default: "40" },
      echoes: { type: "string", default: "2000" },
      "flooder-port": { type: "string" },
    },
    strict: true,
  });
} catch (error) {
  console.error(`flood: ${error instanceof Error ? error.message : error}`);
  Deno.exit(2);
}
const { values } = parsed;
const FLOOD = Number(values.flood);
const ADDRESSES = Number(values.addresses);
const ECHOES = Number(values.echoes);
for (const [name, n] of [["flood", FLOOD], ["addresses", ADDRESSES], ["echoes", ECHOES]] as const) {
  if (!Number.isInteger(n) || n < 1 || n > 20_000) {
    console.error(`flood: --${name} must be a whole number from 1 to 20000`);
    Deno.exit(2);
  }
}

const sockets: net.Socket[] = [];
let opened = 0;
let failed = 0;
function openFlood(port: number): Promise<void> {
  const perAddress = Math.ceil(FLOOD / ADDRESSES);
  const all: Promise<void>[] = [];
  for (let i = 0; i < FLOOD; i++) {
    const localAddress = `127.0.${1 + Math.floor(i / perAddress / 250)}.${
      1 + (Math.floor(i / perAddress) % 250)
    }`;
    all.push(
      new Promise((resolve) => {
        const s = net.createConnection({ host: "127.0.0.1", port, localAddress }, () => {
          opened++;
          resolve();
        });
        s.on("error", () => {
          failed++;
          resolve();
        });
        sockets.push(s);
      }),
    );
  }
  return Promise.all(all).then(() => {});
}

// The flood runs in a process of its own, so that opening thousands of sockets
// does not delay the measuring client's own event loop.
if (values["flooder-port"] !== undefined) {
  await openFlood(Number(values["flooder-port"]));
  console.log(`${opened} ${failed}`);
  await Deno.stdin.readable.pipeTo(new WritableStream()); // hold until the parent is done
  for (const s of sockets) s.destroy();
  Deno.exit(0);
}

await using server = await startProjectServer(["--max-conns-per-ip", "256"]);
const { port } = server;

const good = await Deno.connect({ hostname: "127.0.0.1", port });
good.setNoDelay(true);
const message = new Uint8Array(64).map((_, i) => i);
const reply = new Uint8Array(64);

/** Round trips: `count` of them, or, with `until`, as many as fit before it settles (30 s at most). */
async function pingPhase(count: number, until?: Promise<unknown>): Promise<Histogram> {
  const h = new Histogram();
  let done = until === undefined;
  until?.finally(() => done = true);
  const deadline = performance.now() + 30_000;
  for (let i = 0; done ? i < count : performance.now() < deadline; i++) {
    const start = performance.now();
    await good.write(message);
    for (let got = 0; got < 64;) {
      const n = await good.read(reply.subarray(got));
      if (n === null) throw new Error("the server closed the good client");
      got += n;
    }
    h.record((performance.now() - start) * 1000);
    if (reply.some((b, j) => b !== message[j])) throw new Error("corrupted echo");
  }
  return h;
}

function row(name: string, h: Histogram): string {
  const f = (us: number) => us.toFixed(0).padStart(8);
  return `${name.padEnd(22)}${String(h.count).padStart(8)}${f(h.mean)}${f(h.percentile(50))}${
    f(h.percentile(99))
  }${f(h.max)}`;
}

await pingPhase(200); // warm-up
const baseline = await pingPhase(ECHOES);
const flooder = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", import.meta.filename ?? "", ...Deno.args, "--flooder-port", String(port)],
  stdin: "piped",
  stdout: "piped",
}).spawn();
const flooderOut = flooder.stdout.pipeThrough(new TextDecoderStream()).getReader();
const flooded = flooderOut.read().then((r) => r.value ?? "");
const during = await pingPhase(0, flooded);
const [floodOpened, floodFailed] = (await flooded).trim().split(" ").map(Number);
const held = await pingPhase(ECHOES);

console.log(
  `flood: ${FLOOD} silent connections from ${ADDRESSES} addresses (${floodOpened} opened, ${floodFailed} failed)`,
);
console.log(
  `${"phase".padEnd(22)}${"echoes".padStart(8)}${"mean µs".padStart(8)}${"p50".padStart(8)}${
    "p99".padStart(8)
  }${"max".padStart(8)}`,
);
console.log(row("alone", baseline));
console.log(row("while flood opens", during));
console.log(row("flood held open", held));
console.log(
  `mean delay added: ${(during.mean - baseline.mean).toFixed(0)} µs while opening, ${
    (held.mean - baseline.mean).toFixed(0)
  } µs while held`,
);

await flooder.stdin.close();
await flooder.status;
await flooderOut.cancel();
good.close();
