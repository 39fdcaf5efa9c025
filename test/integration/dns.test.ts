import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import type { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { LicenseClient } from '../helpers/license-client.js';
import { startSimulators } from '../helpers/in-process-daemon.js';
import { waitFor } from '../helpers/wait-for.js';

let daemon: Daemon | null = null;
let sims: LicenseSimulator[] = [];
afterEach(async () => {
  await daemon?.close();
  daemon = null;
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

/**
 * A resolver the test controls: the sockets stay real, only the name service is scripted (this
 * machine's resolver cannot be told to stop answering for a name).
 */
function scriptedDns(): { lookup: (host: string) => Promise<string>; answer: Map<string, string>; lookups: string[] } {
  const answer = new Map<string, string>();
  const lookups: string[] = [];
  return {
    answer,
    lookups,
    lookup: async (host) => {
      lookups.push(host);
      const a = answer.get(host);
      if (a === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return a;
    },
  };
}

describe('DNS names that stop resolving', () => {
  it('keeps serving on the last good address, keeps the server UP, and says so in /status', async () => {
    sims = await startSimulators(['lic1']);
    const dns = scriptedDns();
    dns.answer.set('lic1.licenses.test', '127.0.0.1');
    const port = sims[0]!.address().port;
    daemon = new Daemon(
      loadConfigText(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: status, inter: 100ms, fastinter: 50ms, fall: 2, rise: 2 }
    servers: [ { name: lic1, address: "lic1.licenses.test:${port}" } ]
`),
      pino({ level: 'silent' }),
      { lookup: dns.lookup },
    );
    await daemon.start();
    const server = daemon.model.backend('b')!.server('lic1')!;
    expect(server.connectHost).toBe('127.0.0.1');
    const fe = daemon.frontends[0]!.address().port;
    const hello = async (): Promise<string> => {
      const c = await LicenseClient.connect(fe);
      try {
        return await c.hello();
      } finally {
        await c.close();
      }
    };
    expect(await hello()).toBe('lic1');

    // The name stops resolving: sessions and checks go on against the last good address.
    dns.answer.delete('lic1.licenses.test');
    await daemon.resolver.resolveAll();
    expect(server.dnsError).toBe('ENOTFOUND');
    const sessionsBefore = server.total;
    for (let i = 0; i < 5; i++) expect(await hello()).toBe('lic1');
    expect(server.total).toBe(sessionsBefore + 5);
    await waitFor(() => server.lastCheck && server.lastCheck.at > Date.now() - 200 && server.lastCheck.ok, { timeoutMs: 3000, what: 'a passing check after DNS stopped answering' });
    expect(server.stateText).toBe('UP');
    const { serverJson } = await import('../../src/serve/status-json.js');
    expect(serverJson(server)).toMatchObject({ address: `lic1.licenses.test:${port}`, resolved: '127.0.0.1', dns_error: 'ENOTFOUND' });

    // It resolves again: the error clears.
    dns.answer.set('lic1.licenses.test', '127.0.0.1');
    await daemon.resolver.resolveAll();
    expect(server.dnsError).toBeNull();
    expect(await hello()).toBe('lic1');
  });

  it('an answer slower than the lookup timeout (the first name server not answering) is still used', async () => {
    sims = await startSimulators(['lic1']);
    // glibc waits resolv.conf's timeout (5 s) on a name server that does not answer before it asks
    // the next one: with the first of two name servers down, every answer comes that late.
    const lookups: string[] = [];
    const slowDns = (host: string): Promise<string> => {
      lookups.push(host);
      return new Promise((resolve) => setTimeout(() => resolve('127.0.0.1'), 2500).unref());
    };
    daemon = new Daemon(
      loadConfigText(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers: [ { name: lic1, address: "lic1.licenses.test:${sims[0]!.address().port}" } ]
`),
      pino({ level: 'silent' }),
      { lookup: slowDns },
    );
    await daemon.start();
    const server = daemon.model.backend('b')!.server('lic1')!;
    await waitFor(() => server.connectHost === '127.0.0.1', { timeoutMs: 5000, what: 'the late answer in use' });
    expect(server.dnsError).toBeNull();
    await waitFor(() => server.stateText === 'UP', { timeoutMs: 3000, what: 'lic1 UP' });
    const c = await LicenseClient.connect(daemon.frontends[0]!.address().port);
    try {
      expect(await c.hello()).toBe('lic1');
    } finally {
      await c.close();
    }
    expect(lookups).toEqual(['lic1.licenses.test']);
  });

  it('a name that never resolved is a DOWN server, not a crash, and other servers carry the traffic', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const dns = scriptedDns();
    daemon = new Daemon(
      loadConfigText(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "gone.licenses.test:${sims[0]!.address().port}" }
      - { name: lic2, address: "127.0.0.1:${sims[1]!.address().port}" }
`),
      pino({ level: 'silent' }),
      { lookup: dns.lookup },
    );
    await daemon.start();
    const fe = daemon.frontends[0]!.address().port;
    for (let i = 0; i < 4; i++) {
      const c = await LicenseClient.connect(fe);
      expect(await c.hello()).toBe('lic2');
      await c.close();
    }
    await waitFor(() => daemon!.model.backend('b')!.server('lic1')!.stateText === 'DOWN', { timeoutMs: 3000, what: 'the unresolvable server DOWN' });
    expect(dns.lookups).toContain('gone.licenses.test');
  });
});
