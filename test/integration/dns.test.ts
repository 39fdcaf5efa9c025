import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { serverJson } from '../../src/serve/status-json.js';
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
function scriptedDns(code = 'ENOTFOUND'): { lookup: (host: string) => Promise<string>; answer: Map<string, string>; lookups: string[] } {
  const answer = new Map<string, string>();
  const lookups: string[] = [];
  return {
    answer,
    lookups,
    lookup: async (host) => {
      lookups.push(host);
      const a = answer.get(host);
      if (a === undefined) throw Object.assign(new Error(`getaddrinfo ${code} ${host}`), { code });
      return a;
    },
  };
}

/** A started daemon with one frontend "fe" on backend `b` (the YAML after "backends:"), looking names up with `lookup`. */
async function startWithDns(backends: string, lookup: (host: string) => Promise<string>): Promise<Daemon> {
  const d = new Daemon(loadConfigText(`frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b }\nbackends:\n${backends}`), pino({ level: 'silent' }), { lookup });
  try {
    await d.start();
  } catch (e) {
    await d.close();
    throw e;
  }
  return d;
}

describe('DNS names that stop resolving', () => {
  it('keeps serving on the last good address, keeps the server UP, and says so in /status', async () => {
    sims = await startSimulators(['lic1']);
    const dns = scriptedDns();
    dns.answer.set('lic1.licenses.test', '127.0.0.1');
    const port = sims[0]!.address().port;
    daemon = await startWithDns(`  - name: b
    check: { type: status, inter: 100ms, fastinter: 50ms, fall: 2, rise: 2 }
    servers: [ { name: lic1, address: "lic1.licenses.test:${port}" } ]
`, dns.lookup);
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
    daemon = await startWithDns(`  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers: [ { name: lic1, address: "lic1.licenses.test:${sims[0]!.address().port}" } ]
`, slowDns);
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
    daemon = await startWithDns(`  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "gone.licenses.test:${sims[0]!.address().port}" }
      - { name: lic2, address: "127.0.0.1:${sims[1]!.address().port}" }
`, dns.lookup);
    const fe = daemon.frontends[0]!.address().port;
    for (let i = 0; i < 4; i++) {
      const c = await LicenseClient.connect(fe);
      expect(await c.hello()).toBe('lic2');
      await c.close();
    }
    await waitFor(() => daemon!.model.backend('b')!.server('lic1')!.stateText === 'DOWN (no address)', { timeoutMs: 3000, what: 'the unresolvable server DOWN (no address)' });
    expect(dns.lookups).toContain('gone.licenses.test');
  });

  it('a name with no address yet is DOWN (no address): no session or check connects to it, nothing looks it up on the way; it is used once it resolves', async () => {
    // "localhost" is a name the system resolves at once: were a connect or a check to look it up
    // itself (getaddrinfo on libuv's pool, which during a DNS outage waits resolv.conf's timeouts),
    // lic1 would be reached. The daemon's resolver says the name server does not answer.
    sims = await startSimulators(['lic1', 'lic2']);
    const dns = scriptedDns('EAI_AGAIN');
    daemon = await startWithDns(`  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "localhost:${sims[0]!.address().port}" }
      - { name: lic2, address: "127.0.0.1:${sims[1]!.address().port}" }
`, dns.lookup);
    const lic1 = daemon.model.backend('b')!.server('lic1')!;
    await waitFor(() => lic1.lastCheck, { timeoutMs: 3000, what: 'the first check of lic1' });
    expect(serverJson(lic1)).toMatchObject({ state: 'DOWN (no address)', usable: false, resolved: null, dns_error: 'EAI_AGAIN', last_check: { ok: false, reason: 'no address for localhost (EAI_AGAIN)' } });
    const fe = daemon.frontends[0]!.address().port;
    for (let i = 0; i < 6; i++) {
      const c = await LicenseClient.connect(fe);
      expect(await c.hello()).toBe('lic2');
      await c.close();
    }
    expect(lic1.connectErrors).toBe(0);
    expect(sims[0]!.connections).toBe(0);

    // The name server answers again: lic1 is checked and takes its share of the sessions.
    dns.answer.set('localhost', '127.0.0.1');
    await daemon.resolver.resolveAll();
    expect(lic1.connectHost).toBe('127.0.0.1');
    await waitFor(() => lic1.stateText === 'UP', { timeoutMs: 3000, what: 'lic1 UP once its name resolves' });
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const c = await LicenseClient.connect(fe);
      seen.add(await c.hello());
      await c.close();
    }
    expect(seen).toEqual(new Set(['lic1', 'lic2']));
  });

  it('a server a command checks keeps the health the command reports without an address; a session to it goes on to the next server at once', async () => {
    // A sidecar may know its own license host by name only: lmstat resolves it, licgate need not.
    sims = await startSimulators(['lic1', 'lic2']);
    const dns = scriptedDns('EAI_AGAIN');
    daemon = await startWithDns(`  - name: b
    check: { type: exec, argv: [${JSON.stringify(process.execPath)}, -e, "0"], inter: 100ms, rise: 1, fall: 1, timeout: 5s }
    servers:
      - { name: lic1, address: "localhost:${sims[0]!.address().port}" }
      - { name: lic2, address: "127.0.0.1:${sims[1]!.address().port}" }
`, dns.lookup);
    const lic1 = daemon.model.backend('b')!.server('lic1')!;
    await waitFor(() => lic1.lastCheck, { timeoutMs: 5000, what: 'the first check of lic1' });
    expect(lic1.stateText).toBe('UP');
    const fe = daemon.frontends[0]!.address().port;
    for (let i = 0; i < 4; i++) {
      const c = await LicenseClient.connect(fe);
      expect(await c.hello()).toBe('lic2');
      await c.close();
    }
    expect(sims[0]!.connections).toBe(0);
  });
});

