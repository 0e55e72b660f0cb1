/**
 * One pingpong or churn message: send it, read its echo back, verify it.
 *
 * @module
 */
import { EOF, type Link, lost, mismatch, type Outcome } from "./failures.ts";
import { describeBanner } from "../text/tls.ts";
import type { Run } from "./run.ts";

/**
 * Sends the message of `slot` and reads its echo back. The common case, one
 * write and one read carrying the whole message, stays in this function:
 * every extra async call per message costs throughput.
 */
export async function exchange(
  run: Run,
  conn: Deno.Conn,
  link: Link,
  buf: Uint8Array,
  slot: number,
): Promise<Outcome> {
  const size = run.size;
  let sent = 0;
  let n: number | null = null;
  try {
    sent = await conn.write(run.slotView[slot]);
    run.bytesSent += sent;
    if (sent === size) n = await conn.read(buf);
  } catch (err) {
    run.release(conn);
    return lost(run, link, err, sent, 0, true);
  }
  if (sent === size && n === size && run.pattern.matches(buf, n, run.slotAt[slot])) {
    run.bytesReceived += n;
    return "echoed";
  }
  return await finishEcho(run, conn, link, buf, slot, sent, sent === size ? n : undefined);
}

/**
 * Finishes one message of slot `slot` after its first write put `sent`
 * bytes out: writes the rest while reading the echo back, so that a message
 * larger than the socket buffers cannot deadlock against a server that
 * echoes as it reads. `first` is the result of a read already done, if any.
 * Verifies as it goes; a connection that ends first is closed.
 */
export async function finishEcho(
  run: Run,
  conn: Deno.Conn,
  link: Link,
  buf: Uint8Array,
  slot: number,
  sent: number,
  first: number | null | undefined,
): Promise<Outcome> {
  const size = run.size;
  const view = run.slotView[slot];
  const at = run.slotAt[slot];
  let writeError: unknown = undefined;
  let writer: Promise<void> | undefined;
  if (sent < size) {
    writer = (async () => {
      try {
        while (sent < size) {
          const n = await conn.write(view.subarray(sent));
          run.bytesSent += n;
          sent += n;
        }
      } catch (err) {
        writeError = err;
        // Ends the read too, should the connection still deliver nothing.
        run.release(conn);
      }
    })();
  }
  let got = 0;
  let intact = true;
  let extra = false;
  let why = "";
  /** Set when the connection ended before the echo was complete. */
  let ended = false;
  let cause: unknown = EOF;
  try {
    let n = first === undefined ? await conn.read(buf) : first;
    for (;;) {
      if (n === null) {
        ended = true;
        break;
      }
      run.bytesReceived += n;
      const fresh = got === 0 && link.echoes === 0;
      if (n > size - got) {
        // More bytes than were sent: the echo added some.
        if (intact) why = mismatch(run, buf, n, at, got);
        intact = false;
        extra = true;
      } else if (intact && !run.pattern.matches(buf, n, at + got)) {
        intact = false;
        why = mismatch(run, buf, n, at, got);
      }
      if (!intact && fresh) link.banner ??= describeBanner(buf.subarray(0, n));
      if (extra) break;
      got += n;
      if (got === size) break;
      n = await conn.read(buf);
    }
  } catch (err) {
    ended = true;
    cause = err;
  }
  if (ended) {
    // A failed write closes the connection, which fails the read: report the
    // write's error, taken before our own close below can fail the writer.
    const reason = writeError ?? cause;
    run.release(conn);
    await writer;
    return lost(run, link, reason, sent, got, intact);
  }
  // Every byte is back, so every byte went out: the writer has finished or
  // is about to (after extra bytes, it may still be waiting on the server).
  await writer;
  if (intact) return "echoed";
  // A full-length echo that differs is corrupted, whatever the server does next.
  run.corrupted++;
  run.noteError(why);
  return "corrupted";
}
