import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, startTcpServer, stopAll } from '../helpers/proxy-harness.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

describe('idle_timeout (off by default, per frontend when set)', () => {
  it('closes a session that stays silent longer than idle_timeout, and only then', async () => {
    const up = await startTcpServer((s) => s.on('data', (d: Buffer) => s.write(d)), { allowHalfOpen: false });
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses, idle_timeout: 800ms }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s, address: "127.0.0.1:${up.port}" }]
`);
    const sock = connect({ host: '127.0.0.1', port: proxy.port });
    const events: string[] = [];
    let echoed = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (echoed += d));
    sock.on('close', () => events.push('close'));
    sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    // Traffic every 200 ms keeps it open well past the timeout.
    let n = 0;
    await holdsFor(
      () => {
        sock.write(`${n++}\\n`);
        return events.length === 0;
      },
      { forMs: 1600, intervalMs: 200, what: 'a busy session stays open' },
    );
    await waitFor(() => echoed.split('\\n').length > n, { timeoutMs: 2000, what: 'all echoes' });
    // Then silence: it is closed from our side.
    await waitFor(() => events.includes('close'), { timeoutMs: 5000, what: 'idle session closed' });
    const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'session log' });
    expect(log.end).toBe('idle-timeout');
    await waitFor(() => up.sockets.size === 0, { timeoutMs: 3000, what: 'the upstream side closed too' });
  });
});
