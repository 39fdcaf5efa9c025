import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { connect } from 'node:net';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { LicenseClient } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { oneServerYaml, startInProcessSimulator, startProxy, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';
import { wallClockStep } from '../helpers/wall-clock-step.js';

const cleanup: (() => void)[] = [];
afterEach(async () => {
  await stopAll();
  for (const f of cleanup.splice(0)) f();
});

/**
 * A proxy whose backend `licenses` (`backend`: its options and servers, YAML indented 4, no check)
 * refuses every connect, and the session log line of one client it could not serve.
 */
async function refusedClient(backend: string) {
  const proxy = await startProxy(`
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
${backend}
`);
  const c = connect(proxy.port, '127.0.0.1');
  c.on('error', () => {});
  c.end('HELLO\n');
  const line = await waitFor(() => proxy.logs.find((x) => x.msg === 'session closed'), { timeoutMs: 5000, what: 'session log line' });
  c.destroy();
  return { proxy, line };
}

describe('one JSON log line per finished connection', () => {
  it('names client, frontend, backend, server, bytes each way, duration and how it ended', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(oneServerYaml(sim.port));
    // A second loopback address as the client's source, as another host would be.
    const c = await LicenseClient.connect(proxy.port, { localAddress: '127.0.0.2' });
    expect(await c.hello()).toBe('primary');
    const out = await c.checkout('solver', 2);
    expect(out).toMatchObject({ granted: true });
    expect(sim.inUse).toBe(2);
    expect(await c.checkin((out as { handle: string }).handle)).toBe('OK');
    await c.close();
    const lines = await waitFor(() => {
      const l = proxy.logs.filter((x) => x.msg === 'session closed');
      return l.length ? l : null;
    }, { timeoutMs: 5000, what: 'session log line' });
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    // HELLO\n + CHECKOUT solver 2\n + CHECKIN primary-1\n ; HELLO primary\n + GRANTED primary-1\n + OK\n
    expect(line).toMatchObject({ frontend: 'lmgrd', backend: 'licenses', server: 'primary', bytes_in: 6 + 18 + 18, bytes_out: 14 + 18 + 3, end: 'closed', retries: 0 });
    expect(String(line.client)).toMatch(/^127\.0\.0\.2:\d+$/);
    expect(typeof line.duration_ms).toBe('number');
    expect(sim.inUse).toBe(0);
  });

  it('writes an IPv6 client [::1]:port, served or left while queued, and an IPv4 one reaching a [::] frontend as a.b.c.d:port', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "[::]:0", backend: licenses, maxconn: 1 }
backends:
  - name: licenses
    check: { type: status, inter: 5s }
    servers: [{ name: primary, address: "127.0.0.1:${sim.port}" }]
`);
    const sessionLines = (): Record<string, unknown>[] => proxy.logs.filter((x) => x.msg === 'session closed');
    const v6 = await LicenseClient.connect(proxy.port, { host: '::1' });
    expect(await v6.hello()).toBe('primary');
    // maxconn 1: this client waits for the session slot, and leaves before it gets one.
    const queued = connect({ host: '::1', port: proxy.port });
    await once(queued, 'connect');
    const waiting = async (): Promise<number | undefined> => sample((await proxy.get('/metrics')).body, 'licgate_frontend_waiting_connections', { frontend: 'lmgrd' });
    await waitFor(async () => (await waiting()) === 1, { timeoutMs: 5000, what: 'the second client waiting for the slot' });
    queued.destroy();
    await waitFor(() => sessionLines().length === 1, { timeoutMs: 5000, what: "the queued client's line" });
    await v6.close();
    await waitFor(() => sessionLines().length === 2, { timeoutMs: 5000, what: "the IPv6 client's line" });
    const v4 = await LicenseClient.connect(proxy.port, { host: '127.0.0.1', localAddress: '127.0.0.2' });
    expect(await v4.hello()).toBe('primary');
    await v4.close();
    const lines = await waitFor(() => (sessionLines().length === 3 ? sessionLines() : null), { timeoutMs: 5000, what: "the IPv4 client's line" });
    expect(lines.map((l) => [l.end, String(l.client).replace(/:\d+$/, ':PORT')])).toEqual([
      ['client-gone', '[::1]:PORT'],
      ['closed', '[::1]:PORT'],
      ['closed', '127.0.0.2:PORT'],
    ]);
  });

  it('logs the time a session was open when the wall clock stepped back an hour meanwhile (NTP, VM clock sync)', async (ctx) => {
    const clock = wallClockStep(ctx);
    cleanup.push(clock.dispose);
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(oneServerYaml(sim.port), { wrapper: clock.wrapper });
    const opened = performance.now();
    const c = await LicenseClient.connect(proxy.port);
    expect(await c.hello()).toBe('primary');
    clock.set('-1h');
    await c.close();
    const line = await waitFor(() => proxy.logs.find((x) => x.msg === 'session closed'), { timeoutMs: 5000, what: 'session log line' });
    expect(line.duration_ms).toBeGreaterThanOrEqual(0);
    expect(line.duration_ms).toBeLessThanOrEqual(performance.now() - opened);
  });

  it('a session every server refused logs the retries it made (attempts - 1), as a connected one does', async () => {
    // Three servers on ports nothing listens on: every connect is refused.
    const ports = [await freePort(), await freePort(), await freePort()];
    const { line } = await refusedClient(`    retries: 2
    observe_errors: 0
    servers: [${ports.map((p, i) => `{ name: s${i}, address: "127.0.0.1:${p}" }`).join(', ')}]`);
    expect(line).toMatchObject({ end: 'no-server', server: null, error: expect.stringContaining('(after 3 attempts)') });
    // retries: 2 allows two retries after the first attempt; the line must not claim a third.
    expect(line.retries).toBe(2);
  });

  it('the warning for each failed connect says whether the session retries: the only server retried, then no retries left', async () => {
    const { proxy } = await refusedClient(`    retries: 1
    connect_timeout: 200ms
    servers: [{ name: s0, address: "127.0.0.1:${await freePort()}" }]`);
    const failed = proxy.logs.filter((x) => String(x.msg).startsWith('connect to server failed')).map((x) => `${x.server}: ${x.msg}`);
    // One server: the retry goes to it again, not to "the next one"; the last attempt has none left.
    expect(failed.join(' | ')).toBe('s0: connect to server failed; retrying | s0: connect to server failed; no retries left');
  });

  // A connect scan (nmap -sT: handshake, then RST) or a client that gave up while the accept backlog
  // was full: the kernel completed its handshake, and it reset before licgate accepted it.
  it.each([
    { at: 'with a free session slot', maxconn: 0 },
    { at: 'at frontend maxconn (it would wait)', maxconn: 1 },
  ])('a client that resets before licgate accepts it, $at, is closed at once as client-gone, logged with client "-", and costs the license server no connection', async ({ maxconn }) => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(`
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses${maxconn ? `, maxconn: ${maxconn}` : ''} }
backends:
  - name: licenses
    check: { type: none }
    queue_timeout: 30s
    servers: [{ name: primary, address: "127.0.0.1:${sim.port}" }]
`);
    const held = maxconn ? await LicenseClient.connect(proxy.port) : null;
    if (held) expect(await held.hello()).toBe('primary');
    // Stopped, licgate accepts nothing; the kernel still completes the handshake into its backlog.
    proxy.child.kill('SIGSTOP');
    try {
      const scan = connect(proxy.port, '127.0.0.1');
      scan.on('error', () => {});
      await once(scan, 'connect');
      scan.resetAndDestroy();
      await once(scan, 'close');
    } finally {
      proxy.child.kill('SIGCONT');
    }
    const line = await waitFor(() => proxy.logs.find((x) => x.msg === 'session closed'), { timeoutMs: 5000, what: "the reset client's session line" });
    expect(line).toMatchObject({ client: '-', frontend: 'lmgrd', backend: 'licenses', server: null, bytes_in: 0, bytes_out: 0, end: 'client-gone', retries: 0 });
    // The next client's connection is the license server's next one: none was opened for the reset client before it.
    await held?.close();
    const c = await LicenseClient.connect(proxy.port);
    expect(await c.hello()).toBe('primary');
    await c.close();
    const sessions = maxconn ? 3 : 2;
    await waitFor(() => proxy.logs.filter((x) => x.msg === 'session closed').length === sessions, { timeoutMs: 5000, what: `${sessions} session lines` });
    expect(sim.connections).toBe(sessions - 1);
    const text = (await proxy.get('/metrics')).body;
    const ended = (end: string) => sample(text, 'licgate_sessions_ended_total', { frontend: 'lmgrd', backend: 'licenses', end });
    expect([ended('client-gone'), ended('closed'), sample(text, 'licgate_connections_total', { server: 'primary' })]).toEqual([1, sessions - 1, sessions - 1]);
    expect(proxy.logs.filter((x) => String(x.msg).startsWith('connect to server failed'))).toEqual([]);
  });
});
