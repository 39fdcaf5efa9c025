import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon.js';
import type { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { startDaemon, startSimulators } from '../helpers/in-process-daemon.js';
import { waitFor } from '../helpers/wait-for.js';

let daemon: Daemon | null = null;
let sims: LicenseSimulator[] = [];
const clients: Socket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await daemon?.close();
  daemon = null;
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

/** A client that sends HELLO and records the reply and whether the proxy closed it. */
function hello(port: number): { sock: Socket; reply: () => string; closed: () => boolean } {
  const sock = connect({ host: '127.0.0.1', port });
  clients.push(sock);
  let reply = '';
  let closed = false;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => (reply += d));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  sock.write('HELLO\n');
  return { sock, reply: () => reply, closed: () => closed };
}

function config(simPort: number, opts: { serverMaxconn?: number; frontendMaxconn?: number; queueTimeout?: string; maxQueue?: number }): string {
  return `frontends:
  - name: fe
    listen: 127.0.0.1:0
    backend: b
    inband_status: false
    ${opts.frontendMaxconn ? `maxconn: ${opts.frontendMaxconn}` : ''}
backends:
  - name: b
    check: { type: none }
    queue_timeout: ${opts.queueTimeout ?? '5s'}
    max_queue: ${opts.maxQueue ?? 100}
    servers:
      - { name: s1, address: 127.0.0.1:${simPort}${opts.serverMaxconn ? `, maxconn: ${opts.serverMaxconn}` : ''} }
`;
}

describe('maxconn and the bounded queue', () => {
  it('server maxconn: a third client waits in the queue and is served when a slot frees', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { serverMaxconn: 2 }));
    const port = daemon.frontends[0]!.address().port;
    const backend = daemon.model.backend('b')!;
    const a = hello(port);
    const b = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1') && b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'two sessions served' });
    const c = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'third connection queued' });
    expect(c.reply()).toBe('');
    expect(sims[0]!.connections).toBe(2);
    a.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'queued client served after a slot freed' });
    expect(backend.server('s1')!.active).toBe(2);
    expect(backend.queued).toBe(0);
  });

  it('a queued connection gives up after queue_timeout, and the queue is bounded by max_queue', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { serverMaxconn: 1, queueTimeout: '300ms', maxQueue: 1 }));
    const port = daemon.frontends[0]!.address().port;
    const backend = daemon.model.backend('b')!;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first session served' });
    const queued = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'second connection queued' });
    const refused = hello(port);
    await waitFor(() => refused.closed(), { timeoutMs: 5000, what: 'third connection refused (queue full)' });
    expect(refused.reply()).toBe('');
    expect(backend.queueRejected).toBe(1);
    const t0 = Date.now();
    await waitFor(() => queued.closed(), { timeoutMs: 5000, what: 'queued connection closed at queue_timeout' });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(queued.reply()).toBe('');
    expect(backend.queueTimeouts).toBe(1);
    // The held session was never disturbed.
    a.sock.write('CHECKOUT cad 1\n');
    await waitFor(() => a.reply().includes('GRANTED'), { timeoutMs: 5000, what: 'first session still works' });
  });

  it('frontend maxconn: excess clients wait un-connected and are served in order as sessions end', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { frontendMaxconn: 2 }));
    const fe = daemon.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    const b = hello(port);
    await waitFor(() => a.reply() && b.reply(), { timeoutMs: 5000, what: 'two sessions served' });
    const c = hello(port);
    const d = hello(port);
    await waitFor(() => fe.queued === 2, { timeoutMs: 5000, what: 'two clients waiting at the frontend' });
    expect(sims[0]!.connections).toBe(2);
    b.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first waiting client served' });
    expect(d.reply()).toBe('');
    expect(fe.queued).toBe(1);
    a.sock.end();
    await waitFor(() => d.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'second waiting client served' });
    expect(fe.sessions.size).toBe(2);
  });
});
