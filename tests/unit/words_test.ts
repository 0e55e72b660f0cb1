import { equal } from "node:assert/strict";
import { describeValue, plural, quoteBytes } from "../../text/words.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("quoteBytes: what a peer sent is quoted safely for a terminal", () => {
  equal(quoteBytes(bytes("busy\n")), '"busy\\n"');
  equal(quoteBytes(bytes("\x7f\x1b[2Jno\u0085")), '"\\u007f\\u001b[2Jno\\u0085"');
  equal(quoteBytes(new Uint8Array([0xff, 0x00, 0x41, 0x22])), '"\\xff\\x00A\\""');
  equal(quoteBytes(bytes("x".repeat(100))), `"${"x".repeat(60)}"…`);
  // A multi-byte character cut at the 60th byte is still text.
  equal(quoteBytes(bytes(`${"x".repeat(59)}é`)), `"${"x".repeat(59)}"…`);
  equal(quoteBytes(new Uint8Array()), '""');
});

Deno.test("plural and describeValue", () => {
  equal(plural(1, "byte"), "1 byte");
  equal(plural(0, "byte"), "0 bytes");
  equal(describeValue("x"), '"x"');
  equal(describeValue(1.5), "1.5");
});
