import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LicenseClient } from '../helpers/license-client.js';
import { startProxy, startSimulator, startTcpServer, stopAll, type TestServer } from '../helpers/proxy-harness.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

const config = (port: number, check = '{ type: none }') => `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: ${check}
    servers: [{ name: s, address: "127.0.0.1:${port}" }]
`;

/** An upstream that echoes each chunk back; the test then kills its side of the session. */
function echo(): Promise<TestServer> {
  return startTcpServer((s) => s.on('data', (d: Buffer) => s.write(d)));
}

/** A client that has exchanged one round trip through the proxy (so the relay is up). */
async function session(port: number): Promise<{ sock: Socket; events: string[] }> {
  const sock = connect({ host: '127.0.0.1', port });
  const events: string[] = [];
  sock.on('end', () => events.push('end'));
  sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
  sock.on('close', () => events.push('close'));
  await new Promise<void>((resolve, reject) => {
    sock.once('data', () => resolve());
    sock.once('error', reject);
    sock.write('ping\n');
  });
  return { sock, events };
}

describe('server trouble mid-session reaches the client', () => {
  it('server closes its socket: the client sees the close promptly', async () => {
    const up = await echo();
    const proxy = await startProxy(config(up.port));
    const c = await session(proxy.port);
    expect(up.sockets.size).toBe(1);
    const t0 = performance.now();
    for (const s of up.sockets) s.destroy();
    await waitFor(() => c.events.includes('close'), { timeoutMs: 3000, intervalMs: 5, what: 'client close after the server closed' });
    console.log(`server close → client close: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(c.events).toEqual(['end', 'close']);
    await waitFor(async () => (await proxy.server('licenses', 's')).active === 0, { timeoutMs: 3000, what: 'active back to 0' });
  });

  it('a reset from the server arrives at the client as ECONNRESET', async () => {
    const up = await echo();
    const proxy = await startProxy(config(up.port));
    const c = await session(proxy.port);
    for (const s of up.sockets) s.resetAndDestroy();
    await waitFor(() => c.events.includes('close'), { timeoutMs: 3000, intervalMs: 5, what: 'client close after the server reset' });
    expect(c.events).toEqual(['error ECONNRESET', 'close']);
    const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'session log' });
    expect(log.end).toBe('server-reset');
  });

  it('a reset from the client arrives at the server as ECONNRESET', async () => {
    const seen: string[] = [];
    const up = await startTcpServer((s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('error', (e: NodeJS.ErrnoException) => seen.push(`error ${e.code}`));
      s.on('end', () => seen.push('end'));
      s.on('close', () => seen.push('close'));
    });
    const proxy = await startProxy(config(up.port));
    const c = await session(proxy.port);
    c.sock.resetAndDestroy();
    await waitFor(() => seen.includes('close'), { timeoutMs: 3000, intervalMs: 5, what: 'server close after the client reset' });
    expect(seen).toEqual(['error ECONNRESET', 'close']);
    const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'session log' });
    expect(log.end).toBe('client-reset');
  });

  it('the license server process dies (SIGKILL) while a client holds a license: the client is closed promptly', async () => {
    const sim = await startSimulator('primary');
    const proxy = await startProxy(config(sim.port, '{ type: status, inter: 5s }'));
    const lc = await LicenseClient.connect(proxy.port);
    expect(await lc.hello()).toBe('primary');
    expect(await lc.checkout('solver', 1)).toMatchObject({ granted: true });
    const closed = new Promise<number>((resolve) => lc.socket.once('close', () => resolve(performance.now())));
    const t0 = performance.now();
    await sim.kill('SIGKILL');
    const t1 = await Promise.race([closed, new Promise<number>((_, reject) => setTimeout(() => reject(new Error('client not closed within 3 s of the server dying')), 3000))]);
    console.log(`server SIGKILL → client close: ${(t1 - t0).toFixed(1)} ms`);
    await waitFor(async () => (await proxy.server('licenses', 's')).active === 0, { timeoutMs: 3000, what: 'active back to 0' });
  });

  it('the server goes silent but stays connected: nothing is cut (idle timeout is off by default)', async () => {
    // allowHalfOpen false: the server closes when it sees the client's FIN, as license daemons do.
    const up = await startTcpServer(() => undefined, { allowHalfOpen: false });
    const proxy = await startProxy(config(up.port));
    const sock = connect({ host: '127.0.0.1', port: proxy.port });
    const events: string[] = [];
    sock.on('close', () => events.push('close'));
    sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    await waitFor(() => up.sockets.size === 1, { timeoutMs: 3000, what: 'upstream connection' });
    const st = await proxy.server('licenses', 's');
    expect(st.active).toBe(1);
    // Longer than the 2 s in-band STATUS sniff window: a silent session is not cut.
    await holdsFor(() => events.length === 0 && up.sockets.size === 1, { forMs: 2500, what: 'silent session stays open' });
    // Then the client leaves; the server's socket follows.
    sock.end();
    await waitFor(() => up.sockets.size === 0 && events.includes('close'), { timeoutMs: 3000, what: 'both sides closed' });
    expect(events).toEqual(['close']);
  });
});
