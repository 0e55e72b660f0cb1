/**
 * The fault specs read as text (`--fault`, the config's `fault`, `PUT
 * /faults`): every setting's value, and each error as one line naming the
 * bad part; and the selection by `from` and `share`.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { parseFaultSpec, parseSize } from "../../fault/spec.ts";
import { FaultTable } from "../../fault/select.ts";

Deno.test("fault spec: every setting reads into its value", () => {
  const spec = parseFaultSpec(
    " delay=200ms, jitter=50ms,rate=64KiB/s,read-rate=1MiB,slice=3,slice-delay=10ms,close-after=1MiB," +
      "reset-after=5s,stall-after=4096,slow-close=1s,corrupt=0.5,refuse=0.1,drop=0.05,duplicate=1," +
      "reorder=0,share=0.25,from=10.0.0.0/8;::1 ",
  );
  equal(spec.text.startsWith("delay=200ms"), true);
  const s = spec.settings;
  deepEqual(
    [s.delay, s.jitter, s.rate, s["read-rate"], s.slice, s["slice-delay"], s["slow-close"]],
    [200, 50, 65536, 1048576, 3, 10, 1000],
  );
  deepEqual([s["close-after"], s["reset-after"], s["stall-after"]], [
    { bytes: 1048576 },
    { ms: 5000 },
    { bytes: 4096 },
  ]);
  deepEqual([s.corrupt, s.refuse, s.drop, s.duplicate, s.reorder, s.share], [
    0.5,
    0.1,
    0.05,
    1,
    0,
    0.25,
  ]);
  equal(s.from?.length, 2);
});

Deno.test("fault spec: sizes in bytes, binary and decimal units", () => {
  equal(parseSize("4096"), 4096);
  equal(parseSize("64KiB"), 65536);
  equal(parseSize("1MiB"), 1048576);
  equal(parseSize("1.5MB"), 1_500_000);
  equal(parseSize("2kB"), 2000);
});

Deno.test("fault spec: each error is one line naming the spec and the bad part", () => {
  const cases: [string, string][] = [
    ["", "empty fault spec: expected NAME=VALUE[,NAME=VALUE…]"],
    ["dely=1s", 'fault "dely=1s": unknown name "dely" (did you mean delay?)'],
    ["delay", 'fault "delay": "delay" is not NAME=VALUE'],
    ["delay=1s,,rate=1KiB", 'fault "delay=1s,,rate=1KiB": an empty setting between commas'],
    ["delay=abc", 'fault "delay=abc": delay "abc": expected a duration such as 200ms, 5s or 2m'],
    ["delay=1000h", 'fault "delay=1000h": delay "1000h": too long'],
    ["rate=fast", 'fault "rate=fast": rate "fast": expected a rate such as 64KiB/s or 1MiB/s'],
    ["slice=0", 'fault "slice=0": slice "0": expected a size such as 4096, 64KiB or 1MiB'],
    ["slice=3XB", 'fault "slice=3XB": slice "3XB": expected a size such as 4096, 64KiB or 1MiB'],
    [
      "close-after=soon",
      'fault "close-after=soon": close-after "soon": expected a size such as 1MiB or a duration such as 5s',
    ],
    ["corrupt=1.5", 'fault "corrupt=1.5": corrupt "1.5": expected a probability from 0 to 1'],
    ["drop=-0.1", 'fault "drop=-0.1": drop "-0.1": expected a probability from 0 to 1'],
    ["delay=1s,delay=2s", 'fault "delay=1s,delay=2s": delay is given twice'],
    ["slice-delay=1s", 'fault "slice-delay=1s": slice-delay needs slice'],
    [
      "from=10.0.0.0/33,refuse=1",
      'fault "from=10.0.0.0/33,refuse=1": from "10.0.0.0/33": invalid CIDR "10.0.0.0/33": prefix length must be 0-32',
    ],
    [
      "share=0.5",
      'fault "share=0.5": no fault in it, only a selection: add one of delay, jitter, rate, read-rate, slice, slice-delay, close-after, reset-after, stall-after, slow-close, corrupt, refuse, drop, duplicate, reorder',
    ],
  ];
  for (const [text, message] of cases) {
    throws(() => parseFaultSpec(text), (error: Error) => {
      equal(error.message, message);
      ok(!error.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("fault selection: from spares other addresses, IPv4-mapped peers match IPv4 blocks", () => {
  const table = new FaultTable([parseFaultSpec("delay=1s,from=127.0.0.2;10.0.0.0/8")]);
  equal(table.pick("127.0.0.2")?.settings.delay, 1000);
  equal(table.pick("::ffff:10.9.8.7")?.settings.delay, 1000);
  equal(table.pick("127.0.0.3"), undefined);
  equal(table.pick("/run/echo.sock"), undefined, "a socket path matches no block");
  equal(parseFaultSpec("DELAY=1s,Slice=3").settings.slice, 3, "names in any letter case");
  const kinds = new FaultTable([parseFaultSpec("drop=0.5"), parseFaultSpec("slice=3")]);
  deepEqual(kinds.pick("127.0.0.1")?.specs, ["slice=3"], "a datagram fault selects no connection");
  deepEqual(kinds.pick("127.0.0.1", "datagram")?.specs, ["drop=0.5"], "nor a stream one a source");
});

Deno.test("fault selection: share draws per connection; every selecting spec applies, the later winning", () => {
  const draws = [0.1, 0.9];
  const table = new FaultTable(
    [parseFaultSpec("delay=1s,share=0.5"), parseFaultSpec("delay=2s,rate=1KiB")],
    () => draws.shift() ?? 0,
  );
  const first = table.pick("127.0.0.1");
  deepEqual(first?.settings, { delay: 2000, share: 0.5, rate: 1024 });
  deepEqual(first?.specs, ["delay=1s,share=0.5", "delay=2s,rate=1KiB"]);
  deepEqual(table.pick("127.0.0.1")?.specs, ["delay=2s,rate=1KiB"]);
  table.replace([]);
  equal(table.pick("127.0.0.1"), undefined);
});
