import { connect } from 'node:net';

/**
 * A client from local address `from` that sends `line` as soon as it is connected: what it read
 * before its connection ended, and how it ended (`end`, or the error code: ECONNRESET for a reset).
 */
export async function oneExchange(port: number, from: string, line: string, host = '127.0.0.1'): Promise<{ got: string; how: string }> {
  const s = connect({ host, port, localAddress: from });
  let got = '';
  let how = 'end';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.on('connect', () => s.end(line));
  // Not events.once(s, 'close'): it rejects on the 'error' before it.
  await new Promise<void>((resolve) => {
    s.on('error', (e: NodeJS.ErrnoException) => (how = e.code ?? e.message));
    s.on('close', () => resolve());
  });
  return { got, how };
}
