/**
 * A small client for the simulated license server's line protocol (src/simulator/license-simulator.ts):
 * HELLO → "HELLO <name>", CHECKOUT <feature> <n> → "GRANTED <handle>" | "DENIED <reason>",
 * CHECKIN <handle> → "OK" | "ERROR …". One request at a time; every reply line is bounded in length
 * and in time, so a test against a broken proxy fails with a message instead of hanging.
 */
import { connect, type Socket } from 'node:net';

export interface LicenseClientOptions {
  host?: string;
  /** Source address (e.g. 127.0.0.2) so a test can act as several client hosts (stickiness, source hash). */
  localAddress?: string;
  /** Connect and per-reply deadline. */
  timeoutMs?: number;
}

const MAX_LINE = 4096;

export type Checkout = { granted: true; handle: string } | { granted: false; reason: string };

export class LicenseClient {
  private buf = '';
  private waiting: { resolve: (line: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private failure: Error | null = null;
  private closed: Promise<void>;

  private constructor(readonly socket: Socket, private readonly timeoutMs: number) {
    socket.setEncoding('latin1');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => {
      this.buf += chunk;
      if (this.buf.length > MAX_LINE && !this.buf.includes('\n')) this.fail(new Error(`reply line longer than ${MAX_LINE} bytes`));
      this.deliver();
    });
    socket.on('error', (e) => this.fail(e));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.once('end', () => this.fail(new Error(`connection closed by peer before a reply (had ${JSON.stringify(this.buf)})`)));
  }

  static connect(port: number, opts: LicenseClientOptions = {}): Promise<LicenseClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const sock = connect({ host: opts.host ?? '127.0.0.1', port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${opts.host ?? '127.0.0.1'}:${port} timed out after ${timeoutMs}ms`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new LicenseClient(sock, timeoutMs));
      });
    });
  }

  /** Sends one line and resolves with the next reply line (without its newline). */
  request(line: string): Promise<string> {
    if (this.waiting) return Promise.reject(new Error('one request at a time'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`no reply to ${JSON.stringify(line)} within ${this.timeoutMs}ms`));
      }, this.timeoutMs);
      this.waiting = { resolve, reject, timer };
      this.socket.write(`${line}\n`);
      this.deliver();
    });
  }

  /** The server's name. */
  async hello(): Promise<string> {
    const reply = await this.request('HELLO');
    const m = /^HELLO (\S+)$/.exec(reply);
    if (!m) throw new Error(`expected "HELLO <name>", got ${JSON.stringify(reply)}`);
    return m[1]!;
  }

  async checkout(feature: string, count = 1): Promise<Checkout> {
    const reply = await this.request(`CHECKOUT ${feature} ${count}`);
    let m = /^GRANTED (\S+)$/.exec(reply);
    if (m) return { granted: true, handle: m[1]! };
    m = /^DENIED (.*)$/.exec(reply);
    if (m) return { granted: false, reason: m[1]! };
    throw new Error(`expected GRANTED or DENIED, got ${JSON.stringify(reply)}`);
  }

  checkin(handle: string): Promise<string> {
    return this.request(`CHECKIN ${handle}`);
  }

  /** Half-closes, then waits (at most the reply deadline) for the peer to close its side too. */
  async close(): Promise<void> {
    this.socket.end();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`peer did not close within ${this.timeoutMs}ms after our FIN`)), this.timeoutMs);
    });
    try {
      await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
      this.socket.destroy();
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private deliver(): void {
    const nl = this.buf.indexOf('\n');
    if (nl < 0 || !this.waiting) return;
    const line = this.buf.slice(0, nl).replace(/\r$/, '');
    this.buf = this.buf.slice(nl + 1);
    const w = this.waiting;
    this.waiting = null;
    clearTimeout(w.timer);
    w.resolve(line);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      clearTimeout(w.timer);
      w.reject(e);
    }
  }
}

/** One short session: connect, HELLO, close. Resolves with the name of the server that answered. */
export async function helloOnce(port: number, opts: LicenseClientOptions = {}): Promise<string> {
  const c = await LicenseClient.connect(port, opts);
  try {
    const name = await c.hello();
    await c.close();
    return name;
  } finally {
    c.destroy();
  }
}
