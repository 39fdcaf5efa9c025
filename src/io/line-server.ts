import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import { listenAt } from './listen.js';

export interface LineServerOptions {
  what: string;
  /** Longest line accepted, terminator included; a longer one gets the peer cut off. */
  maxLine: number;
  /** A peer that has not sent a full line by then is cut off. */
  timeoutMs: number;
  /** Reply to one request line (without its \r\n), or null to close without a reply. */
  answer: (line: string, peer: Socket) => string | null;
  /** Counted abuse: 'too-long' or 'timeout'. */
  onReject?: (why: 'too-long' | 'timeout') => void;
}

/**
 * A one-request line protocol listener (STATUS and friends): read one line, answer, close.
 * Memory per peer is bounded by maxLine and time by timeoutMs, so garbage or silence from one
 * peer cannot hurt the others.
 */
export class LineServer {
  private readonly server: NetServer;

  constructor(private readonly listenAt: HostPort, private readonly opts: LineServerOptions) {
    this.server = createServer(this.accept);
    this.server.on('error', () => {
      // Accept errors (EMFILE) surface here; keep the listener running.
    });
  }

  listen(): Promise<void> {
    return listenAt(this.server, this.listenAt, this.opts.what);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  private readonly accept = (sock: Socket): void => {
    let buf = '';
    sock.setEncoding('latin1');
    sock.setTimeout(this.opts.timeoutMs, () => {
      this.opts.onReject?.('timeout');
      sock.destroy();
    });
    sock.on('error', () => sock.destroy());
    const onData = (chunk: string): void => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length >= this.opts.maxLine) {
          this.opts.onReject?.('too-long');
          sock.destroy();
        }
        return;
      }
      if (nl + 1 > this.opts.maxLine) {
        this.opts.onReject?.('too-long');
        sock.destroy();
        return;
      }
      sock.off('data', onData);
      sock.setTimeout(0);
      const line = buf.slice(0, nl).replace(/\r$/, '');
      const reply = this.opts.answer(line, sock);
      if (reply === null) sock.end();
      else sock.end(reply);
    };
    sock.on('data', onData);
    sock.on('end', () => sock.end());
  };
}
