import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { EchoCheck } from "../../client/echo_check.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("EchoCheck accepts the echo in any split, across chunks sent", () => {
  const check = new EchoCheck("127.0.0.1:8000");
  check.sent(bytes("one\n"));
  check.sent(bytes("two\n"));
  strictEqual(check.pending, 8);
  for (const piece of ["o", "ne\ntw", "o\n"]) strictEqual(check.received(bytes(piece)), undefined);
  strictEqual(check.pending, 0);
});

Deno.test("EchoCheck names the first differing byte, and bytes beyond those sent", () => {
  const differs = new EchoCheck("127.0.0.1:8000");
  differs.sent(bytes("hello"));
  strictEqual(differs.received(bytes("he")), undefined);
  const wrong = differs.received(bytes("lp!"));
  deepStrictEqual([wrong?.kind, wrong?.message], ["mismatch", 'echo differs at byte 3: got "lp!"']);
  const surplus = new EchoCheck("127.0.0.1:8000");
  surplus.sent(bytes("hi"));
  const more = surplus.received(bytes("hi, and more"));
  deepStrictEqual(
    [more?.kind, more?.message],
    ["mismatch", "127.0.0.1:8000 sent 10 more bytes than were sent to it"],
  );
});
