import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LicenseClient } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { startSilentListener, type SilentListener } from '../helpers/silent-listener.js';
import { waitFor } from '../helpers/wait-for.js';

const clients: LicenseClient[] = [];
const sockets: Socket[] = [];
const listeners: SilentListener[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of sockets.splice(0)) s.destroy();
  await stopAll();
  await Promise.all(listeners.splice(0).map((l) => l.stop()));
});

function yaml(simPort: number, grace: string, delay = '0s'): string {
  return `shutdown_grace: ${grace}
shutdown_delay: ${delay}
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 300ms, rise: 1, fall: 2, timeout: 500ms }
    servers:
      - { name: s1, address: 127.0.0.1:${simPort} }
`;
}

async function held(p: ProxyProcess): Promise<LicenseClient> {
  const c = await LicenseClient.connect(p.port);
  clients.push(c);
  expect(await c.hello()).toBe('s1');
  expect((await c.checkout('solver', 1)).granted).toBe(true);
  return c;
}

function exitOf(p: ProxyProcess): Promise<[number | null, NodeJS.Signals | null]> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve([p.child.exitCode, p.child.signalCode]);
  return once(p.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

describe('graceful shutdown of a real licgate run', () => {
  it('SIGTERM: /ready and /health 503 at once, no new connections, the open session finishes, exit 0', async () => {
    const sim = await startSimulator('s1');
    const p = await startProxy(yaml(sim.port, '30s'));
    expect((await p.get('/health')).status).toBe(200);
    const c = await held(p);
    const exited = exitOf(p);
    p.child.kill('SIGTERM');
    const t0 = performance.now();
    const ready = await waitFor(async () => {
      const r = await p.get('/ready');
      return r.status === 503 && r;
    }, { timeoutMs: 2000, intervalMs: 5, what: '/ready → 503 after SIGTERM' });
    expect(performance.now() - t0).toBeLessThan(500);
    expect(ready.json).toEqual({ ready: false, reason: 'shutting down' });
    const health = await p.get('/health');
    expect(health.status).toBe(503);
    expect((health.json as { reason: string }).reason).toBe('shutting down');
    await waitFor(() => refused(p.port), { timeoutMs: 2000, what: 'the frontend to refuse new connections' });

    // The license session goes on as if nothing happened, and its end lets licgate exit.
    expect((await c.checkout('solver', 1)).granted).toBe(true);
    expect(p.child.exitCode).toBeNull();
    const before = performance.now();
    await c.close();
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    // Event-driven: exit follows the session's end at once, not at the 30 s grace.
    expect(performance.now() - before).toBeLessThan(3000);
    expect(p.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(p.logs.some((l) => String(l.msg).includes('grace expired'))).toBe(false);
  });

  it('shutdown_delay: /health 503 at once, new sessions still served during the delay, refused after it', async () => {
    const sim = await startSimulator('s1');
    const p = await startProxy(yaml(sim.port, '5s', '1500ms'));
    const exited = exitOf(p);
    p.child.kill('SIGTERM');
    const t0 = performance.now();
    await waitFor(async () => (await p.get('/health')).status === 503, { timeoutMs: 2000, intervalMs: 5, what: '/health → 503 after SIGTERM' });
    // keepalived or HAProxy move clients away on the 503; until they have, clients are still served.
    const during = await held(p);
    expect((await during.checkout('solver', 1)).granted).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(await refused(p.port)).toBe(false);
    await waitFor(() => refused(p.port), { timeoutMs: 5000, what: 'the frontend to refuse new connections after the delay' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
    // The session accepted during the delay drains like any other.
    expect((await during.checkout('solver', 1)).granted).toBe(true);
    await during.close();
    const [code] = await exited;
    expect(code).toBe(0);
  });

  it('SIGINT with a session still open at the end of shutdown_grace: it is closed, exit 0', async () => {
    const sim = await startSimulator('s1');
    const p = await startProxy(yaml(sim.port, '1s'));
    const c = await held(p);
    const closed = once(c.socket, 'close');
    const exited = exitOf(p);
    const t0 = performance.now();
    p.child.kill('SIGINT');
    const [code] = await exited;
    const took = performance.now() - t0;
    expect(code).toBe(0);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(5000);
    await closed;
    const warn = p.logs.find((l) => String(l.msg).includes('shutdown grace expired'));
    expect(warn).toMatchObject({ sessions: 1 });
    expect(p.logs.find((l) => l.msg === 'session closed')).toMatchObject({ end: 'shutdown', server: 's1' });
  });

  it('a shutdown_grace changed by a reload is the one SIGTERM gives open sessions', async () => {
    const sim = await startSimulator('s1');
    const p = await startProxy(yaml(sim.port, '60s'));
    p.reload(yaml(sim.port, '1s'));
    await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 5000, what: 'the reload to shutdown_grace 1s' });
    await held(p);
    const exited = exitOf(p);
    const t0 = performance.now();
    p.child.kill('SIGTERM');
    const draining = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('shutting down: no new connections')), { timeoutMs: 5000, what: 'the shutdown log line' });
    expect(draining).toMatchObject({ open_sessions: 1, grace_ms: 1000 });
    const [code] = await exited;
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('sessions still connecting upstream or queued for a server slot when the grace ends are logged as ended by the shutdown', async () => {
    // "dark" answers no SYN (connect_timeout 30 s, no race); "s1" takes one session (maxconn 1) and the next waits (queue_timeout 30 s).
    const dark = await startSilentListener();
    listeners.push(dark);
    const up = await startTcpServer(() => {});
    const p = await startProxy(`shutdown_grace: 300ms
shutdown_delay: 0s
frontends:
  - { name: busy, listen: 127.0.0.1:0, backend: full, inband_status: false }
  - { name: black, listen: 127.0.0.1:0, backend: silent, inband_status: false }
backends:
  - name: full
    check: { type: none }
    queue_timeout: 30s
    servers: [{ name: s1, address: "127.0.0.1:${up.port}", maxconn: 1 }]
  - name: silent
    check: { type: none }
    connect_timeout: 30s
    connect_race: 0
    servers: [{ name: dark, address: "127.0.0.1:${dark.port}" }]
`);
    const client = (port: number): Socket => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      sockets.push(s);
      return s;
    };
    client(p.ports.busy!);
    await waitFor(() => up.accepted.length === 1, { timeoutMs: 5000, what: 'the first session on s1' });
    client(p.ports.busy!);
    client(p.ports.black!);
    await waitFor(async () => {
      const m = (await p.get('/metrics')).body;
      return sample(m, 'licgate_backend_queue_length', { backend: 'full' }) === 1 && (await p.server('silent', 'dark')).active === 1;
    }, { timeoutMs: 5000, what: 'one session queued for s1 and one connecting to dark' });

    const exited = exitOf(p);
    p.child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    const ends = p.logs.filter((l) => l.msg === 'session closed').map((l) => ({ frontend: l.frontend, server: l.server, end: l.end }));
    expect(ends).toHaveLength(3);
    expect(ends).toEqual(
      expect.arrayContaining([
        { frontend: 'busy', server: 's1', end: 'shutdown' },
        { frontend: 'busy', server: null, end: 'shutdown' },
        { frontend: 'black', server: null, end: 'shutdown' },
      ]),
    );
  });

  it('a second signal exits at once, with 128 + its number (143 for SIGTERM), a stop asked for and not a failure', async () => {
    const sim = await startSimulator('s1');
    const p = await startProxy(yaml(sim.port, '60s'));
    await held(p);
    const exited = exitOf(p);
    p.child.kill('SIGTERM');
    await waitFor(async () => (await p.get('/ready')).status === 503, { timeoutMs: 2000, intervalMs: 5, what: '/ready → 503' });
    const t0 = performance.now();
    p.child.kill('SIGTERM');
    const [code] = await exited;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(code).toBe(143);
    // The exit still flushes the log: the line saying why is there.
    expect(p.logs.find((l) => l.msg === 'second signal: exiting now')).toMatchObject({ level: 40, signal: 'SIGTERM' });
  });
});
