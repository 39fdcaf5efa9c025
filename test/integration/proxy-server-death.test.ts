import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LicenseClient } from '../helpers/license-client.js';
import { startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess, type SimulatorProcess, type TestServer } from '../helpers/proxy-harness.js';
import { sample } from '../helpers/prom-text.js';
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

describe('on_marked_down: shutdown-sessions (HAProxy on-marked-down)', () => {
  // fall 2 at inter 200ms with a 200ms timeout: DOWN at most ~800 ms after the primary stops answering.
  const FALL_BY_MS = 2 * (200 + 200);
  const twoServers = (primary: number, backup: number, option: string) => `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
${option}
    check: { type: status, inter: 200ms, rise: 2, fall: 2, timeout: 200ms }
    servers:
      - { name: primary, address: "127.0.0.1:${primary}" }
      - { name: backup, address: "127.0.0.1:${backup}", backup: true }
`;

  /** A client holding a license on the primary, and what its socket saw since. */
  async function holder(port: number): Promise<{ lc: LicenseClient; events: string[] }> {
    const lc = await LicenseClient.connect(port);
    expect(await lc.hello()).toBe('primary');
    expect(await lc.checkout('solver', 1)).toMatchObject({ granted: true });
    const events: string[] = [];
    lc.socket.on('end', () => events.push('end'));
    lc.socket.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    lc.socket.on('close', () => events.push('close'));
    return { lc, events };
  }

  /** Stops the primary (kept stopped until the end) and asserts what `c` and a new client see. */
  async function stopPrimaryExpectClosed(proxy: ProxyProcess, primary: SimulatorProcess, c: { events: string[] }): Promise<void> {
    // Stopped, the simulator keeps its sockets: the session stays open as to a vanished host.
    primary.child.kill('SIGSTOP');
    try {
      const t0 = performance.now();
      await waitFor(() => c.events.includes('close'), { timeoutMs: FALL_BY_MS + 1500, intervalMs: 10, what: 'the session to the DOWN primary closed' });
      console.log(`primary stopped → client session closed: ${(performance.now() - t0).toFixed(0)} ms`);
      expect(c.events).toEqual(['end', 'close']);
      expect((await proxy.server('licenses', 'primary')).state).toBe('DOWN');
      const again = await LicenseClient.connect(proxy.port);
      expect(await again.hello()).toBe('backup');
      await again.close();
      const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed' && l.server === 'primary'), { timeoutMs: 3000, what: "the primary session's log line" });
      expect(log.end).toBe('server-down');
      const text = (await proxy.get('/metrics')).body;
      expect(sample(text, 'licgate_sessions_ended_total', { frontend: 'lmgrd', backend: 'licenses', end: 'server-down' })).toBe(1);
      expect((await proxy.server('licenses', 'primary')).active).toBe(0);
    } finally {
      primary.child.kill('SIGCONT');
    }
  }

  it('the primary stops answering its checks: its session is closed with a FIN once it is DOWN, and the client reconnects to the backup', async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const proxy = await startProxy(twoServers(primary.port, backup.port, '    on_marked_down: shutdown-sessions'));
    await stopPrimaryExpectClosed(proxy, primary, await holder(proxy.port));
  });

  it('a session opened before the reload that set it is closed too (its server is the reloaded one)', async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const proxy = await startProxy(twoServers(primary.port, backup.port, ''));
    const c = await holder(proxy.port);
    proxy.reload(twoServers(primary.port, backup.port, '    on_marked_down: shutdown-sessions'));
    const line = await waitFor(() => proxy.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), { timeoutMs: 5000, what: 'the reload' });
    expect(line.msg).toContain('on_marked_down');
    await stopPrimaryExpectClosed(proxy, primary, c);
  });

  it('without it, the session to a DOWN server stays open (as in HAProxy, the default)', async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const proxy = await startProxy(twoServers(primary.port, backup.port, ''));
    const c = await holder(proxy.port);
    primary.child.kill('SIGSTOP');
    try {
      await waitFor(async () => (await proxy.server('licenses', 'primary')).state === 'DOWN', { timeoutMs: FALL_BY_MS + 1500, what: 'primary DOWN' });
      await holdsFor(() => c.events.length === 0, { forMs: 1500, what: 'the session to the DOWN primary stays open' });
      expect((await proxy.server('licenses', 'primary')).active).toBe(1);
    } finally {
      primary.child.kill('SIGCONT');
    }
    await c.lc.close();
  });
});
