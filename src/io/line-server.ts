import type { Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import { ControlPort } from './control-port.js';
import type { OnRefused } from './peers-by-address.js';

export interface LineServerOptions {
  what: string;
  /** Longest line accepted, terminator included; a longer one gets the peer cut off. */
  maxLine: number;
  /**
   * A peer that has not sent a full line this long after connecting is cut off, and so is one that
   * keeps its side open this long after our reply.
   */
  timeoutMs: number;
  /** Peers served at once (see ControlPort); a peer may stay silent for timeoutMs. */
  maxConnections: number;
  /** Reply to one request line (without its \r\n), or null to close without a reply. */
  answer: (line: string, peer: Socket) => string | null;
  /** A peer cut off for a line too long or none in time, with its address (undefined when unknown). */
  onReject?: (why: 'too-long' | 'timeout', peer: string | undefined) => void;
  /** A peer closed at accept: past maxConnections, or past its address's share. */
  onRefused?: OnRefused;
}

/**
 * A one-request line protocol listener (STATUS and friends): read one line, answer, close.
 * Memory per peer is bounded by maxLine and time by timeoutMs, so garbage or silence from one
 * peer cannot hurt the others, and close() does not wait for any of them.
 */
export class LineServer extends ControlPort {
  constructor(listenAt: HostPort, private readonly opts: LineServerOptions) {
    super(listenAt, opts.what, opts.maxConnections, opts.onRefused);
  }

  protected serve(sock: Socket): void {
    let buf = '';
    let answered = false;
    // One deadline from accept, not sock.setTimeout: that one restarts on every byte, so a peer
    // sending a byte every few seconds would hold its socket until maxLine, minutes later.
    let deadline = setTimeout(() => {
      this.opts.onReject?.('timeout', sock.remoteAddress);
      sock.destroy();
    }, this.opts.timeoutMs);
    sock.setEncoding('latin1');
    sock.on('error', () => sock.destroy());
    sock.on('close', () => clearTimeout(deadline));
    sock.on('data', (chunk: string) => {
      // After the reply, input is read and dropped until the peer closes: closing with unread
      // bytes would make the kernel send a RST, which can destroy the reply in flight.
      if (answered) return;
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length >= this.opts.maxLine) {
          this.opts.onReject?.('too-long', sock.remoteAddress);
          sock.destroy();
        }
        return;
      }
      if (nl + 1 > this.opts.maxLine) {
        this.opts.onReject?.('too-long', sock.remoteAddress);
        sock.destroy();
        return;
      }
      answered = true;
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = '';
      clearTimeout(deadline);
      // The peer had its answer: one that never sends its FIN is dropped quietly, not counted.
      deadline = setTimeout(() => sock.destroy(), this.opts.timeoutMs);
      const reply = this.opts.answer(line, sock);
      if (reply === null) sock.end();
      else sock.end(reply);
    });
  }
}
