import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { LicenseClient } from '../helpers/license-client.js';
import { startInProcessSimulator, startProxy, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

describe('one JSON log line per finished connection', () => {
  it('names client, frontend, backend, server, bytes each way, duration and how it ended', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 5s }
    servers: [{ name: primary, address: "127.0.0.1:${sim.port}" }]
`);
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

  it('a session every server refused logs the retries it made (attempts - 1), as a connected one does', async () => {
    // Three servers on ports nothing listens on: every connect is refused.
    const ports = [await freePort(), await freePort(), await freePort()];
    const proxy = await startProxy(`
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    retries: 2
    observe_errors: 0
    check: { type: none }
    servers: [${ports.map((p, i) => `{ name: s${i}, address: "127.0.0.1:${p}" }`).join(', ')}]
`);
    const c = connect(proxy.port, '127.0.0.1');
    c.on('error', () => {});
    c.end('HELLO\n');
    const line = await waitFor(() => proxy.logs.find((x) => x.msg === 'session closed'), { timeoutMs: 5000, what: 'session log line' });
    c.destroy();
    expect(line).toMatchObject({ end: 'no-server', server: null, error: expect.stringContaining('(after 3 attempts)') });
    // retries: 2 allows two retries after the first attempt; the line must not claim a third.
    expect(line.retries).toBe(2);
  });
});
