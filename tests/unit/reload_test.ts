import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { parseCidr } from "../../admission/cidr.ts";
import { Guard } from "../../admission/guard.ts";
import { LocalCounts } from "../../admission/local_counts.ts";
import { SharedCounts } from "../../admission/shared_counts.ts";
import { configToGiven } from "../../cli/config_file.ts";
import { loadConfig } from "../../cli/reload.ts";
import { SERVE_FLAGS } from "../../cli/serve_command.ts";
import { scanFlags } from "../../cli/parse.ts";

function withFile(text: string, body: (path: string) => Promise<void>): Promise<void> {
  const path = Deno.makeTempFileSync({ suffix: ".json" });
  Deno.writeTextFileSync(path, text);
  return body(path).finally(() => Deno.removeSync(path));
}

Deno.test("config file: values are read by the serve flags' own specifications", async () => {
  const file = JSON.stringify({
    "max-conns": 50,
    "max-conns-per-ip": 4,
    rate: 2.5,
    "idle-timeout": "30s",
    allow: ["10.0.0.0/8", "::1"],
    udp: true,
    "log-level": "warning",
  });
  await withFile(file, async (path) => {
    const flags = await loadConfig(path, SERVE_FLAGS, scanFlags(["--rate", "7"], SERVE_FLAGS));
    strictEqual(flags["max-conns"], 50);
    strictEqual(flags["max-conns-per-ip"], 4);
    strictEqual(flags.rate, 7, "the command line wins");
    strictEqual(flags["idle-timeout"], 30_000);
    deepStrictEqual(flags.allow, [parseCidr("10.0.0.0/8"), parseCidr("::1")]);
    strictEqual(flags.udp, true);
    strictEqual(flags["log-level"], "warning");
    strictEqual(flags.port, 8000, "what neither gives keeps its default");
  });
});

Deno.test("config file: each kind of bad file is one UsageError naming the file and the key", async () => {
  const cases: [string, RegExp][] = [
    ["[1]", /: expected a JSON object of flag values$/],
    ["{", /: not valid JSON: /],
    ['{"config": "other.json"}', /: unknown key "config"$/],
    ['{"help": true}', /: unknown key "help"$/],
    ['{"max-conns": -1}', /: invalid --max-conns "-1": expected a whole number 1 or more$/],
    ['{"max-conns": 1.5}', /: invalid --max-conns "1.5"/],
    ['{"max-conns": null}', /: "max-conns": expected a number or a string, not null$/],
    ['{"udp": "yes"}', /: "udp": expected true or false$/],
    ['{"allow": [1]}', /: --allow: /],
    ['{"when-full": "drop"}', /: invalid --when-full "drop": expected one of wait, refuse$/],
  ];
  for (const [text, message] of cases) {
    await withFile(text, async (path) => {
      await rejects(loadConfig(path, SERVE_FLAGS, new Map()), (error: Error) => {
        strictEqual(error.name, "UsageError", text);
        ok(error.message.startsWith(`--config ${path}: `), error.message);
        ok(message.test(error.message), `${text}: ${error.message}`);
        return true;
      });
    });
  }
  throws(() => configToGiven({ "no-such-flag": 1 }, SERVE_FLAGS), {
    message: 'unknown key "no-such-flag"',
  });
});

Deno.test("Guard.reconfigure: new limits at once, counts kept, all or nothing", () => {
  const guard = new Guard({ maxConns: 10, maxConnsPerIp: 3 });
  const held = [guard.admit("10.0.0.1"), guard.admit("10.0.0.1")];
  guard.reconfigure({ maxConns: 10, maxConnsPerIp: 1 });
  strictEqual(guard.open, 2, "nobody is closed");
  deepStrictEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per-ip" });
  ok(guard.admit("10.0.0.2").ok);
  throws(() => guard.reconfigure({ maxConns: 0 }), /invalid maxConns 0/);
  strictEqual(guard.maxConns, 10, "a bad reload changes nothing");
  deepStrictEqual(guard.admit("10.0.0.1"), { ok: false, reason: "per-ip" });
  guard.reconfigure({ maxConns: 3, deny: [parseCidr("10.0.0.9")] });
  strictEqual(guard.full, true, "3 open at a cap of 3");
  deepStrictEqual(guard.admit("10.0.0.9"), { ok: false, reason: "denied" });
  strictEqual(guard.refusals["per-ip"], 2);
  for (const admission of held) if (admission.ok) admission.release();
});

Deno.test("raising the cap wakes the accept loop waiting at it, locally and shared", async () => {
  const local = new LocalCounts(1, 10);
  strictEqual(local.tryOpen("a", 5), "ok");
  const localRoom = local.whenNotFull();
  strictEqual(local.setCap(2), 2);
  await localRoom;
  const shared = SharedCounts.create({ cap: 1 });
  strictEqual(shared.tryOpen("a", 5), "ok");
  const sharedRoom = shared.whenNotFull();
  strictEqual(shared.setCap(5), 5);
  await sharedRoom;
  strictEqual(shared.setCap(1), 1);
  strictEqual(shared.full, true);
  shared.close("a");
  local.close("a");
});
