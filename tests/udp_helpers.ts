/**
 * UDP test sockets: a socket whose datagrams queue up as they arrive, so that
 * a test can wait for the next one for a bounded time without leaving a
 * receive pending when it ends.
 *
 * @module
 */

/** A UDP socket on loopback that collects what it receives. */
export class Inbox implements AsyncDisposable {
  readonly socket: Deno.DatagramConn;
  readonly #queue: [Uint8Array, Deno.NetAddr][] = [];
  readonly #loop: Promise<void>;
  #wake: (() => void) | undefined;
  #closed = false;

  /** Binds `hostname`:`port` (port 0: any free one). */
  constructor(hostname = "127.0.0.1", port = 0) {
    const socket = Deno.listenDatagram({ transport: "udp", hostname, port });
    this.socket = socket;
    this.#loop = (async () => {
      try {
        while (true) {
          const [data, from] = await socket.receive(new Uint8Array(65_536));
          this.#queue.push([data.slice(), from as Deno.NetAddr]);
          this.#wake?.();
        }
      } catch {
        // Closed: the loop ends.
      }
    })();
  }

  /** The port it is bound to. */
  get port(): number {
    return (this.socket.addr as Deno.NetAddr).port;
  }

  /** Sends `data` to `port` on `hostname`. */
  async send(data: Uint8Array | string, port: number, hostname = "127.0.0.1"): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    await this.socket.send(bytes, { transport: "udp", hostname, port });
  }

  /** The next datagram received, or null when none comes within `ms`. */
  async next(ms: number): Promise<Uint8Array | null> {
    const deadline = performance.now() + ms;
    while (this.#queue.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0 || this.#closed) return null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    const first = this.#queue.shift();
    return first === undefined ? null : first[0];
  }

  /** Datagrams received and not yet taken. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Closes the socket and waits for its loop to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.socket.close();
      this.#wake?.();
    }
    await this.#loop;
  }
}

/** Binds an {@linkcode Inbox} on `hostname`:`port`, or returns why it cannot (no root, port taken). */
export function tryInbox(hostname: string, port: number): Inbox | string {
  try {
    return new Inbox(hostname, port);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
