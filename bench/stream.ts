/**
 * The stream mode: each connection writes flat out while it reads and
 * verifies the echoed stream, with a bounded window of unechoed bytes.
 *
 * @module
 */
import { describeError } from "../text/address.ts";
import { BANNER_MAX, EOF, NO_REPLY, refusal } from "./failures.ts";
import { describeBanner } from "../text/tls.ts";
import { hex, int } from "./numbers.ts";
import { PERIOD } from "./pattern.ts";
import { READ_MAX, type Run } from "./run.ts";

/**
 * Most bytes a stream connection keeps unechoed. Without a bound the kernel's
 * buffers fill and the latency measured is theirs (tens of milliseconds), and
 * on loopback a small window keeps the data in cache: 256 KiB doubled the
 * throughput of 1 MiB (the C load generator's choice), 3.2 against 1.6 GB/s.
 * Over a real network it caps a connection at 256 KiB per round trip, so use
 * more connections there.
 */
const STREAM_WINDOW = 256 * 1024;
/** Stream latency markers kept per connection; more in flight go unsampled. */
const MARKS = 256;

/** Per-connection state shared by a stream's writer and reader. */
class StreamState {
  sent = 0;
  /**
   * Bytes of the write in progress. Its echo can be read before the write's
   * own promise settles, so the reader's bound on what may come back is
   * `sent + writing`.
   */
  writing = 0;
  received = 0;
  /** Reads that matched, and that did not: all bad and then closed is a refusal. */
  intactReads = 0;
  badReads = 0;
  /** The start of what the server sent first, when that was not the echo. */
  banner: string | null = null;
  /** Where the first corrupted read went wrong; reported once it cannot be a refusal line. */
  bad: string | null = null;
  /** Over TLS, writing was shut down at the normal end, so that the server's close ends the read. */
  halfClosed = false;
  /** Wrote something; read something before the run stopped; ended in an error. */
  asked = false;
  fed = false;
  failed = false;
  writerDone = false;
  /** Set once the connection's end is accounted for: the other side stays quiet. */
  finished = false;
  /** Ring of (stream offset after a write, time the write completed). */
  readonly markAt = new Float64Array(MARKS);
  readonly markTime = new Float64Array(MARKS);
  head = 0;
  tail = 0;
  /** Wakes the writer once the reader has made room under STREAM_WINDOW. */
  room: (() => void) | null = null;
}

/**
 * Runs one stream connection until the run stops and its echo is drained.
 * Connection `index` starts at its own point of the pattern; latency is
 * sampled per write, from its end to the end of its echo.
 */
export async function stream(run: Run, conn: Deno.Conn, index: number): Promise<void> {
  const st = new StreamState();
  // Connections start at different points of the pattern, and every write is
  // exactly one period long, so each full write is the same view.
  const phase = (index * 7919) % PERIOD;
  const chunk = run.pattern.bytes.subarray(phase, phase + PERIOD);
  /** Ends the connection once; `err` marks a failure rather than the normal end. */
  const finish = (err?: unknown) => {
    if (st.finished) return;
    st.finished = true;
    let refused = false;
    st.room?.();
    st.room = null;
    if (err === undefined) {
      // The normal end.
    } else if (run.closing) {
      // The drain time ran out: what was written and not echoed back never will be.
      if (st.received === 0 && (st.sent > 0 || st.writing > 0)) {
        run.timedOut++;
        run.noteError(NO_REPLY);
      } else if (st.received < st.sent || st.writing > 0) {
        run.short++;
        run.noteError(
          `a stream echo was still incomplete when the drain time (${
            run.drainMs / 1000
          } s) ran out (${int(st.sent - st.received)} bytes written and not echoed${
            st.writing > 0 ? ", a write pending" : ""
          })`,
        );
      }
    } else if (st.intactReads === 0 && st.received <= BANNER_MAX) {
      st.failed = true;
      refused = true;
      run.refused++;
      run.corrupted -= st.badReads;
      run.noteError(refusal(err, st.banner));
    } else {
      st.failed = true;
      run.resets++;
      if (st.received < st.sent) run.short++;
      run.noteError(
        err === EOF
          ? "the server closed the connection mid-stream"
          : `the connection failed mid-stream: ${describeError(err)}`,
      );
    }
    if (st.bad !== null && !refused) {
      run.noteError(st.bad);
    }
    // The normal end has every echo in, so nothing is left to read: it can end cleanly.
    if (err === undefined) run.finish(conn);
    else run.release(conn);
  };
  const writer = async () => {
    try {
      while (!run.stopping && !st.finished) {
        if (st.sent - st.received > STREAM_WINDOW) {
          const { promise, resolve } = Promise.withResolvers<void>();
          st.room = resolve;
          await promise;
          continue;
        }
        let done = 0;
        while (done < PERIOD) {
          st.writing = PERIOD - done;
          st.asked = true;
          const n = await conn.write(done === 0 ? chunk : chunk.subarray(done));
          st.writing = 0;
          done += n;
          st.sent += n;
          run.bytesSent += n;
        }
        const next = (st.tail + 1) % MARKS;
        if (next !== st.head) {
          st.markAt[st.tail] = st.sent;
          st.markTime[st.tail] = performance.now();
          st.tail = next;
        }
      }
    } catch (err) {
      finish(err);
    }
    st.writerDone = true;
    if (st.received < st.sent || st.finished) return;
    if (run.endpoint.transport !== "tls") return finish();
    // Every echo is in and the reader waits in a read. Closing now would reset a TLS
    // connection; shutting writing down instead makes the server close, which ends that read.
    st.halfClosed = true;
    try {
      await conn.closeWrite();
    } catch (err) {
      finish(err);
    }
  };
  const reader = async () => {
    const buf = new Uint8Array(READ_MAX);
    try {
      while (!(st.writerDone && st.received >= st.sent)) {
        const n = await conn.read(buf);
        if (n === null) {
          // After our half-close with every echo in, the server's close is the normal end.
          finish(st.halfClosed && st.received >= st.sent ? undefined : EOF);
          return;
        }
        run.bytesReceived += n;
        if (!run.stopping) st.fed = true;
        // A flipped byte leaves the stream aligned, so keep going and count
        // each corrupted read; a dropped one misaligns the rest, which then
        // counts on every read, as it should.
        if (
          st.received + n <= st.sent + st.writing &&
          run.pattern.matches(buf, n, (phase + st.received) % PERIOD)
        ) {
          st.intactReads++;
        } else {
          run.corrupted++;
          st.badReads++;
          if (st.received === 0) st.banner = describeBanner(buf.subarray(0, n));
          st.bad ??= streamMismatch(run, st, buf, n, phase);
        }
        st.received += n;
        // Past a refusal line's worth, or after a good read, corruption is corruption.
        if (st.bad !== null && (st.intactReads > 0 || st.received > BANNER_MAX)) {
          run.noteError(st.bad);
        }
        if (st.room !== null && st.sent - st.received <= STREAM_WINDOW) {
          st.room();
          st.room = null;
        }
        if (st.head !== st.tail && st.received >= st.markAt[st.head]) {
          const now = performance.now();
          run.lastEchoAt = now;
          do {
            run.window.record((now - st.markTime[st.head]) * 1000);
            run.messages++;
            if (!run.stopping) run.perConnection[index]++;
            st.head = (st.head + 1) % MARKS;
          } while (st.head !== st.tail && st.received >= st.markAt[st.head]);
        }
      }
      finish();
    } catch (err) {
      finish(err);
    }
  };
  await Promise.all([writer(), reader()]);
  if (st.asked && !st.fed && !st.failed) run.starved++;
}

/** Where a corrupted stream read of `n` bytes first differs from what was written. */
function streamMismatch(
  run: Run,
  st: StreamState,
  buf: Uint8Array,
  n: number,
  phase: number,
): string {
  const bytes = run.pattern.bytes;
  const start = (phase + st.received) % PERIOD;
  const m = Math.min(n, Math.max(0, st.sent + st.writing - st.received));
  for (let i = 0; i < m; i++) {
    if (buf[i] !== bytes[start + i]) {
      return `a corrupted echo: stream byte ${int(st.received + i)} was ${hex(buf[i])}, expected ${
        hex(bytes[start + i])
      }`;
    }
  }
  return `a corrupted echo: more bytes came back than were written (${int(st.received + n)} of ${
    int(st.sent + st.writing)
  })`;
}
