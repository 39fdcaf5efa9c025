import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { Daemon } from '../../src/daemon.js';
import type { Logger } from '../../src/observe/log.js';
import { serverJson } from '../../src/serve/status-json.js';
import { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { LicenseClient } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { startSimulators } from '../helpers/in-process-daemon.js';
import { CLI, type LogLine } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { silentNameServer } from '../helpers/silent-name-server.js';
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

/** The config of startWithDns: one frontend "fe" on backend `b` (the YAML after "backends:"). */
function withFrontend(backends: string): Config {
  return loadConfigText(`frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b }\nbackends:\n${backends}`);
}

/**
 * A started daemon with one frontend "fe" on backend `b`, looking names up with `lookup`; `reread`
 * is the config a reload applies, `log` where its log lines go (default: nowhere).
 */
async function startWithDns(backends: string, lookup: (host: string) => Promise<string>, opts: { reread?: () => Config; log?: Logger } = {}): Promise<Daemon> {
  const d = new Daemon(withFrontend(backends), opts.log ?? pino({ level: 'silent' }), { lookup, reread: opts.reread });
  try {
    await d.start();
  } catch (e) {
    await d.close();
    throw e;
  }
  return d;
}

/** One HELLO through the daemon's frontend "fe": the name of the license server that answered. */
async function helloThrough(d: Daemon): Promise<string> {
  const c = await LicenseClient.connect(d.frontends[0]!.address().port);
  try {
    return await c.hello();
  } finally {
    await c.close();
  }
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
    await waitFor(() => server.lastCheck && server.lastCheck.at > performance.now() - 200 && server.lastCheck.ok, { timeoutMs: 3000, what: 'a passing check after DNS stopped answering' });
    expect(server.stateText).toBe('UP');
    expect(serverJson(server)).toMatchObject({ address: `lic1.licenses.test:${port}`, resolved: '127.0.0.1', dns_error: 'ENOTFOUND' });

    // It resolves again: the error clears.
    dns.answer.set('lic1.licenses.test', '127.0.0.1');
    await daemon.resolver.resolveAll();
    expect(server.dnsError).toBeNull();
    expect(await hello()).toBe('lic1');
  });

  it('a name with only an IPv6 address (AAAA) is checked and connected over IPv6', async () => {
    const sim = new LicenseSimulator({ listen: { host: '::1', port: 0 }, name: 'lic6', tokens: 10 });
    sims = [sim];
    const port = (await sim.listen()).port;
    const dns = scriptedDns();
    dns.answer.set('lic6.licenses.test', '::1');
    daemon = await startWithDns(`  - name: b
    check: { type: status, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers: [ { name: lic6, address: "lic6.licenses.test:${port}" } ]
`, dns.lookup);
    const server = daemon.model.backend('b')!.server('lic6')!;
    await waitFor(() => server.stateText === 'UP', { timeoutMs: 3000, what: 'lic6 UP by its STATUS check over IPv6' });
    expect(await helloThrough(daemon)).toBe('lic6');
    expect(serverJson(server)).toMatchObject({ address: `lic6.licenses.test:${port}`, resolved: '::1' });
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
    expect(await helloThrough(daemon)).toBe('lic1');
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


describe('a server a command checks, whose name has no address', () => {
  it('charges nothing to it: sessions go on to the next server at once, no connect error is counted or logged, observe_errors cannot mark it DOWN, and it stays eligible (a sidecar\'s tier and alerts follow its command); once its name resolves it takes its share', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const dns = scriptedDns('EAI_AGAIN');
    const { log, lines } = capturedLog();
    // Checks far apart: a DOWN forced by passive health would stay until the test ends.
    daemon = await startWithDns(`  - name: b
    observe_errors: 1
    check: { type: exec, argv: [${JSON.stringify(process.execPath)}, -e, "0"], inter: 30s, fastinter: 30s, downinter: 30s, rise: 1, fall: 1, timeout: 5s }
    servers:
      - { name: lic1, address: "localhost:${sims[0]!.address().port}" }
      - { name: lic2, address: "127.0.0.1:${sims[1]!.address().port}" }
`, dns.lookup, { log });
    const lic1 = daemon.model.backend('b')!.server('lic1')!;
    await waitFor(() => lic1.lastCheck, { timeoutMs: 5000, what: 'the first check of lic1' });
    const fe = daemon.frontends[0]!.address().port;
    const hellos = async (n: number): Promise<Set<string>> => {
      const seen = new Set<string>();
      for (let i = 0; i < n; i++) {
        const c = await LicenseClient.connect(fe);
        seen.add(await c.hello());
        await c.close();
      }
      return seen;
    };
    expect(await hellos(4)).toEqual(new Set(['lic2']));
    expect(serverJson(lic1)).toMatchObject({ state: 'UP', usable: true, resolved: null, dns_error: 'EAI_AGAIN' });
    expect(lic1.connectErrors).toBe(0);
    const metrics = await daemon.metrics.registry.metrics();
    expect(sample(metrics, 'licgate_connect_errors_total', { frontend: 'fe', backend: 'b', server: 'lic1', reason: 'other' }) ?? 0).toBe(0);
    expect(sample(metrics, 'licgate_backend_usable_servers', { backend: 'b' })).toBe(2);
    expect(lines.filter((l) => String(l.msg).startsWith('connect to server failed'))).toEqual([]);

    dns.answer.set('localhost', '127.0.0.1');
    await daemon.resolver.resolveAll();
    expect(serverJson(lic1)).toMatchObject({ state: 'UP', usable: true, resolved: '127.0.0.1', dns_error: null });
    expect(await hellos(4)).toEqual(new Set(['lic1', 'lic2']));
  });
});

/** A logger whose JSON lines the test reads. */
function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }) };
}

describe('DNS names and reloads', () => {
  /** Backend b: lic1 by address, and lic2 by name when `withLic2`. */
  const backendB = (port1: number, port2: number, withLic2: boolean): string => `  - name: b
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "127.0.0.1:${port1}" }
${withLic2 ? `      - { name: lic2, address: "lic2.licenses.test:${port2}" }\n` : ''}`;

  it('are looked up before the reload commits: the added server starts as at start-up, with no state change logged', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    const dns = scriptedDns();
    dns.answer.set('lic2.licenses.test', '127.0.0.1');
    // A name server a few milliseconds away, as any is.
    const lookup = async (host: string): Promise<string> => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return dns.lookup(host);
    };
    const { log, lines } = capturedLog();
    let next = backendB(p1, p2, false);
    daemon = await startWithDns(next, lookup, { log, reread: () => withFrontend(next) });

    next = backendB(p1, p2, true);
    expect((await daemon.reload('test')).ok).toBe(true);
    const lic2 = daemon.model.backend('b')!.server('lic2')!;
    expect(serverJson(lic2)).toMatchObject({ state: 'UP', usable: true, resolved: '127.0.0.1', dns_error: null });
    // It is checked and takes sessions like any server; nothing says it changed state.
    await waitFor(() => lic2.lastCheck?.ok, { timeoutMs: 3000, what: 'a passing check of lic2' });
    const fe = daemon.frontends[0]!.address().port;
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const c = await LicenseClient.connect(fe);
      seen.add(await c.hello());
      await c.close();
    }
    expect(seen).toEqual(new Set(['lic1', 'lic2']));
    expect(lines.filter((l) => l.server === 'lic2' && 'from' in l).map((l) => `${String(l.from)} -> ${String(l.to)}`)).toEqual([]);
  });

  /** A daemon serving lic1 whose name server never answers; its next reload adds lic2 by name. */
  async function beforeAddingLic2(): Promise<{ d: Daemon; lookups: string[] }> {
    sims = await startSimulators(['lic1']);
    const p1 = sims[0]!.address().port;
    const lookups: string[] = [];
    const hung = (host: string): Promise<string> => (lookups.push(host), new Promise<string>(() => {}));
    let next = backendB(p1, 1, false);
    const d = await startWithDns(next, hung, { reread: () => withFrontend(next) });
    daemon = d;
    next = backendB(p1, 1, true);
    return { d, lookups };
  }

  it('one that does not answer in time neither holds up nor fails the reload: the server starts DOWN (no address)', async () => {
    const { d, lookups } = await beforeAddingLic2();
    const began = performance.now();
    expect(await d.reload('test')).toMatchObject({ ok: true, changes: [expect.stringContaining('server lic2 added')] });
    // The lookup's own bound (2 s), as at start-up; not the name server's timeouts.
    expect(performance.now() - began).toBeLessThan(4000);
    expect(lookups).toEqual(['lic2.licenses.test']);
    expect(serverJson(d.model.backend('b')!.server('lic2')!)).toMatchObject({ state: 'DOWN (no address)', usable: false, resolved: null, dns_error: 'ETIMEOUT' });
    const c = await LicenseClient.connect(d.frontends[0]!.address().port);
    expect(await c.hello()).toBe('lic1');
    await c.close();
  });

  it('an answer that comes after a reload reaches the server of the new config: a name still unresolved at start-up is not left without an address until the next round', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    // The first answer comes after the lookup timeout (the first name server not answering); the
    // name server then stops answering altogether, so only that first answer can give lic2 its address.
    const lookups: string[] = [];
    const flaky = (host: string): Promise<string> => {
      lookups.push(host);
      if (lookups.length > 1) return new Promise<string>(() => {});
      return new Promise((resolve) => setTimeout(() => resolve('127.0.0.1'), 2500).unref());
    };
    let next = backendB(p1, p2, true);
    daemon = await startWithDns(next, flaky, { reread: () => withFrontend(next) });
    expect(daemon.model.backend('b')!.server('lic2')!.stateText).toBe('DOWN (no address)');

    // A reload before the answer comes (here it only changes lic1's weight).
    next = next.replace('address: "127.0.0.1', 'weight: 2, address: "127.0.0.1');
    expect((await daemon.reload('test')).changes).toEqual(['backend b: server lic1 weight 1 -> 2']);
    const lic2 = daemon.model.backend('b')!.server('lic2')!;
    await waitFor(() => lic2.connectHost === '127.0.0.1', { timeoutMs: 3000, what: 'the late answer on lic2 of the running config' });
    expect(serverJson(lic2)).toMatchObject({ resolved: '127.0.0.1', dns_error: null });
    await waitFor(() => lic2.stateText === 'UP', { timeoutMs: 3000, what: 'lic2 UP' });
  });

  it('the stop does not wait for them: a reload still looking up an added server is refused at once', async () => {
    const { d, lookups } = await beforeAddingLic2();
    const reload = d.reload('test');
    await waitFor(() => lookups.includes('lic2.licenses.test'), { timeoutMs: 3000, what: 'the reload looking up lic2.licenses.test' });
    const began = performance.now();
    const stopping = d.shutdown(0);
    expect(await reload).toMatchObject({ ok: false, errors: [expect.stringContaining('shutting down: reload refused')] });
    // Well inside the lookup's 2 s bound.
    expect(performance.now() - began).toBeLessThan(1000);
    await stopping;
    expect(d.model.backend('b')!.server('lic2')).toBeUndefined();
  });

  it.each([
    { change: 'removes', edit: (cfg: string) => cfg.replace(/^ {6}- \{ name: lic2,.*\n/m, '') },
    { change: 'gives an address for its name', edit: (cfg: string) => cfg.replace('lic2.licenses.test', '127.0.0.1') },
  ])('a lookup under way for a server the reload $change: its timeout and its late answer are dropped, and nothing logs that the server lost or got an address', async ({ edit }) => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    // lic2's name resolves at start-up; the name server then stops answering it until the test says.
    const held: ((address: string) => void)[] = [];
    let hold = false;
    const lookup = (host: string): Promise<string> => (hold && host === 'lic2.licenses.test' ? new Promise((resolve) => held.push(resolve)) : Promise.resolve('127.0.0.1'));
    const { log, lines } = capturedLog();
    let next = backendB(p1, p2, true);
    daemon = await startWithDns(next, lookup, { log, reread: () => withFrontend(next) });
    expect(daemon.model.backend('b')!.server('lic2')!.connectHost).toBe('127.0.0.1');

    hold = true;
    const round = daemon.resolver.resolveAll();
    await waitFor(() => held.length === 1, { timeoutMs: 3000, what: 'a round looking lic2.licenses.test up' });
    const mark = lines.length;
    next = edit(next);
    expect((await daemon.reload('test')).ok).toBe(true);
    // The round's own bound (2 s) passes, then the answer comes.
    await round;
    held[0]!('127.0.0.2');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.slice(mark).filter((l) => l.host === 'lic2.licenses.test').map((l) => l.msg)).toEqual([]);
  });

  it('an answer past the lookup bound that comes while the reload still binds a listen host by name is the added server\'s first address', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    // Both names answer only when the test says: the server's after its 2 s bound, the listen
    // host's after that (with the first name server down, every answer is late).
    const held = new Map<string, (address: string) => void>();
    const lookup = (host: string): Promise<string> => new Promise((resolve) => held.set(host, resolve));
    const { log, lines } = capturedLog();
    let next = backendB(p1, p2, false);
    const cfg = (): Config => loadConfigText(`frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b }\n  - { name: fe2, listen: "listen.licenses.test:0", backend: b }\nbackends:\n${next}`);
    daemon = await startWithDns(next, lookup, { log, reread: cfg });
    next = backendB(p1, p2, true);
    const reload = daemon.reload('test');
    await waitFor(() => held.has('lic2.licenses.test') && held.has('listen.licenses.test'), { timeoutMs: 3000, what: 'the reload looking up lic2 and its listen host' });
    await waitFor(() => lines.some((l) => l.host === 'lic2.licenses.test' && l.reason === 'ETIMEOUT'), { timeoutMs: 5000, what: "lic2's lookup past its bound" });
    held.get('lic2.licenses.test')!('127.0.0.1');
    await new Promise((resolve) => setImmediate(resolve));
    held.get('listen.licenses.test')!('127.0.0.1');
    expect(await reload).toMatchObject({ ok: true, changes: expect.arrayContaining([expect.stringContaining('server lic2 added')]) });
    // The next round is 10 s away: dropped, the answer would leave lic2 without an address until then.
    expect(serverJson(daemon.model.backend('b')!.server('lic2')!)).toMatchObject({ state: 'UP', resolved: '127.0.0.1', dns_error: null });
  });

  it('an answer for a server of a reload that failed to bind is for no server: nothing is logged about it', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    const held: ((address: string) => void)[] = [];
    const lookup = (host: string): Promise<string> => new Promise((resolve) => host === 'lic2.licenses.test' && held.push(resolve));
    const { log, lines } = capturedLog();
    let next = backendB(p1, p2, false);
    let extra = '';
    daemon = await startWithDns(next, lookup, { log, reread: () => loadConfigText(`frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b }\n${extra}backends:\n${next}`) });
    // The port of lic1's simulator is taken: the reload that adds lic2 fails at its bind.
    next = backendB(p1, p2, true);
    extra = `  - { name: fe2, listen: "127.0.0.1:${p1}", backend: b }\n`;
    expect(await daemon.reload('test')).toMatchObject({ ok: false });
    expect(held).toHaveLength(1);
    const mark = lines.length;
    held[0]!('127.0.0.1');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines.slice(mark).filter((l) => l.host === 'lic2.licenses.test').map((l) => l.msg)).toEqual([]);
  });
});

describe('a name server that does not answer, and license hosts shared by backends', () => {
  /**
   * A name server that answers only when the test says so: `inFlight` counts the lookups of each
   * name under way. Each one would hold one of libuv's four threads (the log writer's too) for
   * resolv.conf's timeouts.
   */
  function heldDns(): { lookup: (host: string) => Promise<string>; inFlight: (host: string) => number; answer: (host: string, address: string) => void } {
    const held = new Map<string, ((address: string) => void)[]>();
    return {
      lookup: (host) => new Promise<string>((resolve) => held.set(host, [...(held.get(host) ?? []), resolve])),
      inFlight: (host) => held.get(host)?.length ?? 0,
      answer: (host, address) => {
        for (const r of held.get(host) ?? []) r(address);
        held.delete(host);
      },
    };
  }

  /** The lmgrd port (backend b) and the vendor daemon's port (backend v) of the same two license hosts; lic3 on lic1's host when `withLic3`. */
  const twoPorts = (p1: number, p2: number, opts: { weight?: number; withLic3?: boolean } = {}): string => ['b', 'v'].map((name) => `  - name: ${name}
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "lic1.licenses.test:${p1}", weight: ${opts.weight ?? 1} }
      - { name: lic2, address: "lic2.licenses.test:${p2}" }
${opts.withLic3 && name === 'v' ? `      - { name: lic3, address: "lic1.licenses.test:${p2}" }\n` : ''}`).join('');

  it('has one lookup of each name under way at a time, whatever the backends, rounds and reloads; its answer reaches every server with that name', async () => {
    sims = await startSimulators(['lic1', 'lic2']);
    const [p1, p2] = sims.map((s) => s.address().port) as [number, number];
    const dns = heldDns();
    let next = twoPorts(p1, p2);
    daemon = await startWithDns(next, dns.lookup, { reread: () => withFrontend(next) });
    const d = daemon;
    // lic2's lookup may still wait its turn behind lic1's (the resolver runs lookupsAtOnce() at a time).
    const oneEach = (): void => {
      expect(dns.inFlight('lic1.licenses.test')).toBe(1);
      expect(dns.inFlight('lic2.licenses.test')).toBeLessThanOrEqual(1);
    };
    // Start-up: one lookup per name, not one per backend.
    oneEach();
    for (const b of ['b', 'v']) expect(serverJson(d.model.backend(b)!.server('lic1')!)).toMatchObject({ state: 'DOWN (no address)', dns_error: 'ETIMEOUT' });

    // A round while the lookups hang adds none.
    await d.resolver.resolveAll();
    oneEach();

    // A reload that keeps the servers (new objects, same names), then a round: none either.
    next = twoPorts(p1, p2, { weight: 2 });
    expect((await d.reload('test')).ok).toBe(true);
    await d.resolver.resolveAll();
    oneEach();

    // A reload that adds a server on lic1's host waits for the lookup under way (bounded as ever).
    next = twoPorts(p1, p2, { weight: 2, withLic3: true });
    const began = performance.now();
    expect(await d.reload('test')).toMatchObject({ ok: true, changes: [expect.stringContaining('server lic3 added')] });
    expect(performance.now() - began).toBeLessThan(4000);
    oneEach();
    expect(serverJson(d.model.backend('v')!.server('lic3')!)).toMatchObject({ state: 'DOWN (no address)', dns_error: 'ETIMEOUT' });

    // The name server answers: every server of the running config with that name takes the address.
    dns.answer('lic1.licenses.test', '127.0.0.1');
    const onLic1 = [d.model.backend('b')!.server('lic1')!, d.model.backend('v')!.server('lic1')!, d.model.backend('v')!.server('lic3')!];
    await waitFor(() => onLic1.every((s) => s.stateText === 'UP'), { timeoutMs: 3000, what: 'every server on lic1.licenses.test UP' });
    for (const s of onLic1) expect(serverJson(s)).toMatchObject({ resolved: '127.0.0.1', dns_error: null });
    await waitFor(() => dns.inFlight('lic2.licenses.test') === 1, { timeoutMs: 3000, what: 'the lookup of lic2.licenses.test under way' });
    expect(serverJson(d.model.backend('b')!.server('lic2')!)).toMatchObject({ state: 'DOWN (no address)', resolved: null });
  });

  it('a host written in capitals in one backend (as a FlexLM license file names it) and in small letters in another is one name: one lookup, whose answer reaches both', async () => {
    sims = await startSimulators(['lic1']);
    const port = sims[0]!.address().port;
    const dns = heldDns();
    const backends = ['b', 'v'].map((name, i) => `  - name: ${name}
    check: { type: tcp, inter: 100ms, fastinter: 50ms, fall: 1, rise: 1 }
    servers:
      - { name: lic1, address: "${i === 0 ? 'LIC1.Licenses.Test' : 'lic1.licenses.test'}:${port}" }
`).join('');
    daemon = await startWithDns(backends, dns.lookup);
    const d = daemon;
    expect(dns.inFlight('LIC1.Licenses.Test') + dns.inFlight('lic1.licenses.test')).toBe(1);
    await d.resolver.resolveAll();
    expect(dns.inFlight('LIC1.Licenses.Test') + dns.inFlight('lic1.licenses.test')).toBe(1);
    dns.answer('LIC1.Licenses.Test', '127.0.0.1');
    dns.answer('lic1.licenses.test', '127.0.0.1');
    const both = [d.model.backend('b')!.server('lic1')!, d.model.backend('v')!.server('lic1')!];
    await waitFor(() => both.every((s) => s.stateText === 'UP'), { timeoutMs: 3000, what: 'lic1 UP in both backends' });
  });
});

describe('licgate run behind a name server that does not answer', () => {
  // Each lookup of these names waits 30 s for the name server. libuv runs getaddrinfo() on at most
  // half its threads (2 of Node's default 4; 4 of the 8 `licgate run` starts with), in the order
  // asked, whoever asks. With Node's default pool both of those threads would serve server names
  // (see lookupsAtOnce), so this needs the 8, which no variable in the environment asks for here.
  it('with no UV_THREADPOOL_SIZE set: with more license host names than libuv looks up at once, a reload that binds a listen host by name completes at once, and its log line is written', async (ctx) => {
    requireTools(['unshare', 'ip', 'mount'], ctx);
    const names = Array.from({ length: 5 }, (_, i) => `silent${i}.licenses.test`);
    const dir = mkdtempSync(join(tmpdir(), 'licgate-dns-'));
    const file = join(dir, 'licgate.yaml');
    const config = (listen: string[]): string => `log: { level: info, format: json }
shutdown_delay: 0s
frontends:
${listen.map((at, i) => `  - { name: fe${i}, listen: "${at}", backend: b }\n`).join('')}backends:
  - name: b
    check: { type: none }
    servers:
${names.map((n, i) => `      - { name: lic${i}, address: "${n}:27000" }\n`).join('')}`;
    writeFileSync(file, config(['127.0.0.1:27000']));
    const argv = [...silentNameServer(dir, 30), process.execPath, CLI, 'run', '--config', file];
    const { UV_THREADPOOL_SIZE: _, ...env } = process.env;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'], env });
    ctx.onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGKILL');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    });
    const logs: LogLine[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => logs.push(JSON.parse(line) as LogLine));
    const msgs = (): string[] => logs.map((l) => String(l.msg));
    await waitFor(() => child.exitCode !== null || msgs().includes('licgate started'), { timeoutMs: 15_000, what: 'licgate started' });
    // Start-up waited its 2 s for each name and got nothing: the name server is silent, not refusing.
    expect(msgs().filter((m) => m.startsWith('DNS lookup'))).toEqual(names.map((n) => `DNS lookup of ${n} failed (ETIMEOUT); no address known yet`));

    writeFileSync(file, config(['127.0.0.1:27000', 'localhost:27001']));
    child.kill('SIGHUP');
    const reloaded = (): LogLine | undefined => logs.find((l) => String(l.msg).startsWith('config reload'));
    // The listen host's lookup, and the log line's write (the log is written each second).
    await waitFor(reloaded, { timeoutMs: 5000, what: 'the reload logged' });
    expect(reloaded()!.msg).toMatch(/^config reloaded from .*: 1 change: frontend fe1 added on localhost:27001$/);
  });
});
