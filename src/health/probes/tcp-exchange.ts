import { connect } from 'node:net';
import type { Matcher } from '../../config/schema.js';
import { isLocalResourceError } from '../../io/local-errors.js';
import { InconclusiveCheck } from './probe.js';
import type { ProbeTarget } from './probe.js';
import { ReplyReader, type ReplyEnd } from './reply-reader.js';

export interface Exchange {
  /** Everything read (at most `readLimit` bytes), as latin1 so binary replies cannot throw. */
  reply: string;
  matched: boolean;
  /** Why reading stopped: the matcher hit, the peer closed, or the limit was reached. */
  stop: 'match' | 'eof' | 'limit' | 'connected';
}

/**
 * Connects, optionally sends, and reads until `expect` matches, the peer closes or `readLimit` is
 * reached. Rejects with a short reason (refused, timeout, reset) that becomes the check's reason.
 */
export function tcpExchange(target: ProbeTarget, signal: AbortSignal, send: string, expect: ReplyEnd | null, readLimit: number): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: target.host, port: target.port, noDelay: true });
    const reply = new ReplyReader(expect, readLimit, 'latin1');
    let settled = false;
    const done = (err: string | Error | null, ex?: Exchange): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err !== null) reject(typeof err === 'string' ? new Error(err) : err);
      else resolve(ex!);
    };
    const onAbort = (): void => done(reply.size ? `timeout (read ${reply.size} bytes, no match)` : sock.connecting ? 'connect timeout' : 'timeout waiting for reply');
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort);
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (isLocalResourceError(e.code)) return done(new InconclusiveCheck(`licgate could not open a check connection: ${e.code}`));
      done(e.code === 'ECONNREFUSED' ? 'connection refused' : e.code === 'ECONNRESET' ? 'connection reset' : (e.code ?? e.message));
    });
    sock.on('connect', () => {
      // With nothing to expect, a check passes once its bytes are written (or at connect when it
      // sends none): waiting for a server that keeps the connection open would only time out.
      if (!expect) {
        if (send) sock.write(send, () => done(null, { reply: '', matched: true, stop: 'connected' }));
        else done(null, { reply: '', matched: true, stop: 'connected' });
        return;
      }
      if (send) sock.write(send);
    });
    sock.on('data', (chunk: Buffer) => {
      if (reply.push(chunk)) return done(null, { reply: reply.text(), matched: true, stop: 'match' });
      if (reply.full) done(null, { reply: reply.text(), matched: false, stop: 'limit' });
    });
    sock.on('end', () => done(null, { reply: reply.text(), matched: expect ? reply.ended() : true, stop: 'eof' }));
  });
}

export function describeMatcher(m: Matcher): string {
  return 'literal' in m ? `"${m.literal}"` : String(m.regex);
}

/** First line of a reply, trimmed and shortened, for a failure reason. */
export function firstLine(reply: string): string {
  const line = reply.split(/\r?\n/, 1)[0]!.trim();
  return line.length > 80 ? `${line.slice(0, 80)}…` : line || '(empty reply)';
}
