import { lookup } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.js';
import { Daemon } from '../src/daemon.js';
import { StopBeganError } from '../src/errors.js';
import type { Lookup } from '../src/health/address-resolver.js';
import { freePort } from './helpers/flexlm-simulator-process.js';
import { startDaemon } from './helpers/in-process-daemon.js';
import { helloOnce, LicenseClient } from './helpers/license-client.js';
import { oneExchange } from './helpers/one-exchange.js';
import { parseSamples, sample } from './helpers/prom-text.js';
import { startInProcessSimulator, stopAll } from './helpers/proxy-harness.js';
import { startSilentListener } from './helpers/silent-listener.js';
import { holdsFor, waitFor } from './helpers/wait-for.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await stopAll();
});

/** A config file in a fresh directory; `write` replaces its text (then reload). */
function configFile(text: string): { file: string; dir: string; write: (text: string) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-daemon-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'licgate.yaml');
  writeFileSync(file, text);
  return { file, dir, write: (t) => writeFileSync(file, t) };
}

/**
 * A name service that answers for `held` (every name when null) only once the test calls answer(),
 * as a slow DNS server would; other names get the system's answer. The sockets stay real.
 */
function scriptedLookup(held: string | null = null): { lookups: string[]; answer: (address: string) => void; lookup: Lookup } {
  const lookups: string[] = [];
  let answer!: (address: string) => void;
  const answered = new Promise<string>((resolve) => (answer = resolve));
  return { lookups, answer, lookup: async (host) => (lookups.push(host), held === null || host === held ? answered : (await lookup(host)).address) };
}

/** A daemon from `cfg` whose JSON log lines the test reads. */
async function startLogged(cfg: { file: string }): Promise<{ d: Daemon; logs: () => Record<string, unknown>[] }> {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'info' }, sink));
  cleanup.push(() => d.close());
  await d.start();
  return { d, logs: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** The license server: a TCP listener on 127.0.0.1 that counts the health checks' connects. */
async function checkCounter(): Promise<{ port: number; checks: () => number }> {
  let checks = 0;
  const srv = createServer((s) => {
    checks++;
    s.destroy();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return { port: (srv.address() as AddressInfo).port, checks: () => checks };
}

describe('a reload in flight when the shutdown begins', () => {
  /** `extra`: a second frontend on HOST:PORT, a host name: the reload looks it up before binding. */
  function yaml(simPort: number, extra: number | null, check = '{ type: none }', host = 'localhost'): string {
    return `log: { level: silent, format: json }
shutdown_grace: 20s
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
${extra !== null ? `  - { name: extra, listen: "${host}:${extra}", backend: licenses }\n` : ''}backends:
  - name: licenses
    check: ${check}
    servers:
      - { name: s1, address: 127.0.0.1:${simPort} }
`;
  }

  /** A started daemon on yaml(simPort, null) whose name server answers for slow-dns.licgate.test only once told. */
  async function withSlowDns(simPort: number): Promise<{ cfg: ReturnType<typeof configFile>; d: Daemon; lookups: string[]; answer: (address: string) => void }> {
    const cfg = configFile(yaml(simPort, null));
    const { lookups, answer, lookup } = scriptedLookup('slow-dns.licgate.test');
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }), { lookup });
    await d.start();
    cleanup.push(() => d.close());
    cleanup.push(() => answer('127.0.0.1'));
    return { cfg, d, lookups, answer };
  }

  const REFUSED = 'shutting down: reload refused (shutdown began while the reload was binding its new listeners; they are closed again)';

  it('is refused and closes the listener it bound: the graceful shutdown takes no new connection there, the held session finishes', async () => {
    const sim = await startInProcessSimulator('s1');
    const cfg = configFile(yaml(sim.port, null));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());

    // A held license session keeps the graceful shutdown waiting (shutdown_grace 20s).
    const held = await LicenseClient.connect(d.frontends[0]!.address().port);
    cleanup.push(() => held.destroy());
    expect(await held.hello()).toBe('s1');

    // SIGHUP with a config that adds a frontend on a host name ...
    const host = (await lookup('localhost')).address;
    const extraPort = await freePort(host);
    cfg.write(yaml(sim.port, extraPort));
    const reload = d.reload('SIGHUP');
    // One microtask turn: the reload has passed its shutting-down check and waits on the lookup of
    // "localhost" (the refusal text below proves it got that far: an early refusal says less).
    await null;
    // ... and SIGTERM while it runs.
    const stopping = d.shutdown(20_000);

    expect(await reload).toEqual({ ok: false, errors: [REFUSED], changes: [], stopping: true });
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
    await expect(helloOnce(extraPort, { host, timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);

    // The session opened before still works, and its end lets the shutdown finish.
    expect((await held.checkout('solver', 1)).granted).toBe(true);
    await held.close();
    await stopping;
    expect(d.openSessions()).toBe(0);
  });

  it('whose new listener cannot bind reports the listen error, not a refusal by the stop', async () => {
    const sim = await startInProcessSimulator('s1');
    const cfg = configFile(yaml(sim.port, null));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());

    // Two new frontends: the first binds, the second's port is taken.
    const free = await freePort('127.0.0.1');
    const busy = (await checkCounter()).port;
    cfg.write(`${yaml(sim.port, null)}`.replace('backends:', `  - { name: extra1, listen: "127.0.0.1:${free}", backend: licenses }
  - { name: extra2, listen: "127.0.0.1:${busy}", backend: licenses }
backends:`));
    const reload = d.reload('SIGHUP');
    await null; // the reload is binding extra1, past its shutting-down check
    const stopping = d.shutdown(5000);

    // The reload failed on the port in use, which the stop had no part in.
    expect(await reload).toEqual({ ok: false, errors: [`cannot listen for frontend "extra2" on 127.0.0.1:${busy}: address already in use (EADDRINUSE)`], changes: [] });
    await stopping;
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
    await expect(helloOnce(free, { host: '127.0.0.1', timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('is waited for by the shutdown: once shutdown() resolves, nothing the reload bound listens and no check runs', async () => {
    const sim = await startInProcessSimulator('s1');
    const check = '{ type: tcp, inter: 10s, rise: 1, fall: 1, timeout: 1s }';
    const cfg = configFile(yaml(sim.port, null, check));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());
    expect(d.schedulers).toHaveLength(1);

    const host = (await lookup('localhost')).address;
    const extraPort = await freePort(host);
    cfg.write(yaml(sim.port, extraPort, check));
    const settled: string[] = [];
    const reload = d.reload('SIGHUP').then((o) => (settled.push('reload'), o));
    await null; // the reload waits on the lookup of "localhost", past its shutting-down check
    // No session open: the shutdown has nothing to drain and would be done before the lookup.
    const stopped = d.shutdown(5000).then(() => settled.push('shutdown'));

    const outcome = await reload;
    await stopped;
    expect(outcome).toEqual({ ok: false, errors: [REFUSED], changes: [], stopping: true });
    expect(settled).toEqual(['reload', 'shutdown']);
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
    expect(d.schedulers).toHaveLength(0);
    await expect(helloOnce(extraPort, { host, timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('does not hold up the shutdown while the lookup of its listen host goes unanswered: the stop goes on, the reload is refused, nothing binds later', async () => {
    const sim = await startInProcessSimulator('s1');
    // A name server that does not answer for the new listen host (resolver timeouts: seconds per
    // attempt); the sockets stay real.
    const { cfg, d, lookups, answer } = await withSlowDns(sim.port);

    const extraPort = await freePort('127.0.0.1');
    cfg.write(yaml(sim.port, extraPort, '{ type: none }', 'slow-dns.licgate.test'));
    const reload = d.reload('SIGHUP');
    await waitFor(() => lookups.includes('slow-dns.licgate.test'), { timeoutMs: 5000, what: 'the reload looking up slow-dns.licgate.test' });

    // SIGTERM: the stop (nothing to drain, shutdown_delay 0s) is done while the lookup is still unanswered.
    let stopped = false;
    const stopping = d.shutdown(5000).then(() => (stopped = true));
    await waitFor(() => stopped, { timeoutMs: 3000, what: 'shutdown() done while the listen host lookup is unanswered' });
    expect(await reload).toEqual({ ok: false, errors: [REFUSED], changes: [], stopping: true });
    await stopping;

    // The answer comes late: nothing binds on it.
    answer('127.0.0.1');
    await expect(helloOnce(extraPort, { host: '127.0.0.1', timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
  });

  it('drains a session its new listener took while it waited on a server name, then closes it: the stop counts it and waits for it', async () => {
    const sim = await startInProcessSimulator('s1');
    const { cfg, d, lookups } = await withSlowDns(sim.port);

    // A new frontend on a literal address (bound at once) and a new server whose name is looked up:
    // the reload listens on the new port while it waits for that answer, and a client comes in.
    const extraPort = await freePort('127.0.0.1');
    cfg.write(yaml(sim.port, extraPort, '{ type: none }', '127.0.0.1').replace('      - { name: s1', `      - { name: s2, address: "slow-dns.licgate.test:${sim.port}" }\n      - { name: s1`));
    const reload = d.reload('SIGHUP');
    await waitFor(() => lookups.includes('slow-dns.licgate.test'), { timeoutMs: 5000, what: 'the reload looking up slow-dns.licgate.test' });
    const held = await LicenseClient.connect(extraPort);
    cleanup.push(() => held.destroy());
    expect(await held.hello()).toBe('s1');

    let stopped = false;
    const stopping = d.shutdown(20_000).then(() => (stopped = true));
    expect(await reload).toEqual({ ok: false, errors: [REFUSED], changes: [], stopping: true });
    expect(d.openSessions()).toBe(1);
    await holdsFor(() => !stopped, { forMs: 300, what: 'the shutdown waiting for the session on the refused listener' });
    expect((await held.checkout('solver', 1)).granted).toBe(true);
    await held.close();
    await stopping;
    expect(d.openSessions()).toBe(0);
  });
});

describe('a change made while a reload binds its new listeners', () => {
  it('is what the running config has once the reload commits: an admin drain made meanwhile is kept, new sessions avoid the server', async () => {
    const [s1, s2] = [await startInProcessSimulator('s1'), await startInProcessSimulator('s2')];
    /** `extra`: a second frontend on a host name: the reload looks it up before binding. */
    const yaml = (extra: number | null): string => `log: { level: silent, format: json }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
${extra !== null ? `  - { name: extra, listen: "extra.licgate.test:${extra}", backend: licenses }\n` : ''}backends:
  - name: licenses
    check: { type: none }
    servers:
      - { name: s1, address: 127.0.0.1:${s1.port} }
      - { name: s2, address: 127.0.0.1:${s2.port} }
`;
    // The name server answers for the new listen host only when the test says so.
    const { lookups, answer, lookup: scripted } = scriptedLookup('extra.licgate.test');
    const cfg = configFile(yaml(null));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }), { lookup: scripted });
    await d.start();
    cleanup.push(() => d.close());
    cleanup.push(() => answer('127.0.0.1'));

    const extraPort = await freePort('127.0.0.1');
    cfg.write(yaml(extraPort));
    const reload = d.reload('SIGHUP');
    // The reload has adopted the running servers' state and waits on the lookup.
    await waitFor(() => lookups.includes('extra.licgate.test'), { timeoutMs: 5000, what: 'the reload looking up extra.licgate.test' });
    // What POST /admin/backends/licenses/servers/s1 {"state": "drain"} does: on the config running now.
    d.model.backend('licenses')!.server('s1')!.setAdmin('drain', 'admin API');
    answer('127.0.0.1');

    expect(await reload).toEqual({ ok: true, errors: [], changes: [`frontend extra added on extra.licgate.test:${extraPort}`] });
    expect(d.model.backend('licenses')!.server('s1')!.stateText).toBe('DRAIN');
    for (let i = 0; i < 4; i++) {
      expect(await helloOnce(d.frontends[0]!.address().port)).toBe('s2');
      expect(await helloOnce(extraPort, { host: '127.0.0.1' })).toBe('s2');
    }
  });
});

describe('a reload asked for during start-up', () => {
  it('runs once start() has finished: one set of health checks, each server checked once per interval', async () => {
    const { port, checks } = await checkCounter();

    // One server by IP and one by name: start() looks the name up before it starts the checks.
    const cfg = configFile(`log: { level: silent, format: json }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: tcp, inter: 20s, fastinter: 20s, downinter: 20s, rise: 1, fall: 1, timeout: 1s }
    servers:
      - { name: s1, address: 127.0.0.1:${port} }
      - { name: s2, address: lic2.example.test:${port} }
`);
    // The name service answers when the test says so (a slow DNS server; the sockets stay real).
    const { lookups, answer, lookup: scripted } = scriptedLookup();
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }), { lookup: scripted });
    cleanup.push(() => d.close());

    const settled: string[] = [];
    const starting = d.start().then(() => settled.push('start'));
    await waitFor(() => lookups.length > 0, { timeoutMs: 5000, what: 'start-up looking up lic2.example.test' });
    // The listeners are up (the admin listener too, when configured): SIGHUP and POST /admin/reload
    // (src/serve/reload-route.ts) both come here while start() waits for DNS.
    const reload = d.reload('POST /admin/reload').then((o) => (settled.push('reload'), o));
    answer('127.0.0.1');
    await starting;
    expect(await reload).toMatchObject({ ok: true, errors: [] });

    // Each server is checked once at start, then every 20 s: two connects (s1, s2), not four.
    await waitFor(() => checks() >= 2, { timeoutMs: 5000, what: 'the first checks' });
    await holdsFor(() => checks() <= 2, { forMs: 1000, what: 'one check per server' }).catch((e: Error) => {
      throw new Error(`${e.message}: ${checks()} connects seen, ${d.schedulers.length} check schedulers running`);
    });
    expect(d.schedulers).toHaveLength(1);
    // The reload waited for start-up; it did not run beside it.
    expect(settled).toEqual(['start', 'reload']);
  });

  it('startChecks() twice leaves one set of checks running', async () => {
    const cfg = configFile(`log: { level: silent, format: json }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: tcp, inter: 20s, rise: 1, fall: 1, timeout: 1s }
    agent_port: 1
    servers:
      - { name: s1, address: 127.0.0.1:1 }
`);
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());
    expect([d.schedulers.length, d.agentSchedulers.length]).toEqual([1, 1]);
    d.startChecks();
    expect([d.schedulers.length, d.agentSchedulers.length]).toEqual([1, 1]);
  });
});

describe('the first health checks', () => {
  it('are spread over the servers of every backend, not started in the same millisecond per backend', async () => {
    // One license host serving four vendor daemons: four backends of one server each, all on it.
    const seen: number[] = [];
    const srv = createServer((s) => {
      seen.push(performance.now());
      s.destroy();
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
    const port = (srv.address() as AddressInfo).port;
    const backends = ['a', 'b', 'c', 'd']
      .map((v) => `  - name: ${v}\n    check: { type: tcp, inter: 20s, rise: 1, fall: 1, timeout: 1s }\n    servers:\n      - { name: ${v}1, address: 127.0.0.1:${port} }`)
      .join('\n');
    const d = await startDaemon(`log: { level: silent, format: json }\nfrontends:\n  - { name: lmgrd, listen: 127.0.0.1:0, backend: a }\nbackends:\n${backends}\n`);
    cleanup.push(() => d.close());
    await waitFor(() => seen.length === 4, { timeoutMs: 5000, what: 'the first check of each of the four servers' });
    // Spread over 200 ms (min(inter, 200 ms)): 0, 50, 100, 150 ms; a start-up stall may only bunch the first ones.
    expect(seen[3]! - seen[0]!).toBeGreaterThanOrEqual(75);
  });
});

describe('close() during start-up', () => {
  it('waits for start-up: once close() resolves, no listener start-up bound accepts and no check runs', async () => {
    const { port, checks } = await checkCounter();

    // The frontend listens on a host name: start-up looks it up before it binds.
    const fePort = await freePort('127.0.0.1');
    const cfg = configFile(`log: { level: silent, format: json }
frontends:
  - { name: lmgrd, listen: "lmgrd.licgate.test:${fePort}", backend: licenses }
backends:
  - name: licenses
    check: { type: tcp, inter: 100ms, rise: 1, fall: 1, timeout: 1s }
    servers:
      - { name: s1, address: 127.0.0.1:${port} }
`);
    const { lookups, answer, lookup: scripted } = scriptedLookup();
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }), { lookup: scripted });
    cleanup.push(() => d.close());
    cleanup.push(() => answer('127.0.0.1'));

    const starting = d.start();
    await waitFor(() => lookups.includes('lmgrd.licgate.test'), { timeoutMs: 5000, what: 'start-up looking up lmgrd.licgate.test' });
    const closing = d.close();
    answer('127.0.0.1');
    await closing;
    // Start-up gave up waiting on the lookup when the stop began.
    await expect(starting).rejects.toBeInstanceOf(StopBeganError);

    await expect(helloOnce(fePort, { host: '127.0.0.1', timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
    expect(d.schedulers).toHaveLength(0);
    const seen = checks();
    await holdsFor(() => checks() === seen, { forMs: 500, what: 'no health check after close()' });
  });
});

describe('the shutdown metrics', () => {
  /** Every client a frontend accepted, as the metrics account for it: sessions ended plus clients turned away, by reason. */
  async function accounted(d: Daemon, frontend: string): Promise<{ ended: number; turnedAway: Record<string, number | undefined> }> {
    const m = await d.metrics.registry.metrics();
    const ended = parseSamples(m).filter((x) => x.name === 'licgate_sessions_ended_total' && x.labels.frontend === frontend).reduce((n, x) => n + x.value, 0);
    const turnedAway = Object.fromEntries(['full', 'timeout', 'stopping'].map((reason) => [reason, sample(m, 'licgate_frontend_rejected_total', { frontend, reason })]));
    return { ended, turnedAway };
  }

  /** A client holding a session slot, and `waiting` more accepted behind it (frontend maxconn 1). */
  async function fillFrontend(d: Daemon, name: string, waiting: number): Promise<LicenseClient[]> {
    const fe = d.frontends.find((f) => f.name === name)!;
    const port = fe.address().port;
    const first = await LicenseClient.connect(port);
    cleanup.push(() => first.close());
    await first.hello();
    const rest = await Promise.all(Array.from({ length: waiting }, () => LicenseClient.connect(port)));
    for (const c of rest) cleanup.push(() => c.close());
    await waitFor(() => fe.queued === waiting, { timeoutMs: 5000, what: `${waiting} clients waiting for a slot on ${name}` });
    return [first, ...rest];
  }

  it('count the clients still waiting for a frontend slot (maxconn) at the stop as turned away by the stop (reason stopping, not a full wait list), and log them', async () => {
    const sim = await startInProcessSimulator('s1');
    const cfg = configFile(`log: { level: info, format: json }
shutdown_delay: 0s
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: lic, maxconn: 1 }
backends:
  - name: lic
    check: { type: none }
    queue_timeout: 30s
    servers: [{ name: s1, address: "127.0.0.1:${sim.port}" }]
`);
    const { d, logs } = await startLogged(cfg);
    await fillFrontend(d, 'fe', 2);
    await d.shutdown(200);
    // Three clients connected: one session ended by the stop, two closed while they waited. The
    // stop was planned: LicgateFrontendRejecting reads only full and timeout.
    expect(await accounted(d, 'fe')).toEqual({ ended: 1, turnedAway: { full: 0, timeout: 0, stopping: 2 } });
    expect(logs().filter((l) => String(l.msg).includes('waiting for a session slot'))).toEqual([expect.objectContaining({ level: 40, frontend: 'fe', clients: 2 })]);
  });

  it('count the clients waiting for a slot on a frontend a reload removed as turned away by the stop (reason stopping), for as long as it has sessions', async () => {
    const sim = await startInProcessSimulator('s1');
    const yaml = (extra: boolean): string => `log: { level: info, format: json }
shutdown_delay: 0s
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: lic }
${extra ? '  - { name: extra, listen: 127.0.0.1:0, backend: lic, maxconn: 1 }\n' : ''}backends:
  - name: lic
    check: { type: none }
    queue_timeout: 30s
    servers: [{ name: s1, address: "127.0.0.1:${sim.port}" }]
`;
    const cfg = configFile(yaml(true));
    const { d, logs } = await startLogged(cfg);
    const [holder] = await fillFrontend(d, 'extra', 1);
    cfg.write(yaml(false));
    expect((await d.reload('test')).ok).toBe(true);
    expect(await accounted(d, 'extra')).toEqual({ ended: 0, turnedAway: { full: 0, timeout: 0, stopping: 1 } });
    // The session the reload left open ends, and the frontend's series go with it.
    await holder!.close();
    await waitFor(() => d.openSessions() === 0, { timeoutMs: 5000, what: 'the session on the removed frontend ended' });
    expect(await accounted(d, 'extra')).toEqual({ ended: 0, turnedAway: { full: undefined, timeout: undefined, stopping: undefined } });
    expect(logs().filter((l) => String(l.msg).includes('waiting for a session slot'))).toEqual([expect.objectContaining({ level: 40, frontend: 'extra', clients: 1 })]);
  });

  it('keep the last reload successful when a reload is asked for during the stop: it is not applied, and no reload failure is logged', async () => {
    const sim = await startInProcessSimulator('s1');
    const cfg = configFile(`shutdown_grace: 20s
shutdown_delay: 0s
frontends: [{ name: lmgrd, listen: 127.0.0.1:0, backend: licenses }]
backends: [{ name: licenses, check: { type: none }, servers: [{ name: s1, address: 127.0.0.1:${sim.port} }] }]
`);
    const { d, logs } = await startLogged(cfg);
    // A held session keeps the stop draining, as a systemctl reload (logrotate, config management) comes in.
    const held = await LicenseClient.connect(d.frontends[0]!.address().port);
    cleanup.push(() => held.destroy());
    expect(await held.hello()).toBe('s1');
    const stopping = d.shutdown(20_000);

    expect(await d.reload('SIGHUP')).toMatchObject({ ok: false, errors: ['shutting down: reload refused'] });
    // The config is fine and nothing failed: LicgateReloadFailed ("run licgate validate") must not fire.
    expect(sample(await d.metrics.registry.metrics(), 'licgate_config_last_reload_successful')).toBe(1);
    expect(logs().filter((l) => (l.level as number) >= 50).map((l) => l.msg)).toEqual([]);
    expect(logs().map((l) => l.msg)).toContain('reload not applied (SIGHUP): licgate is stopping');
    await held.close();
    await stopping;
  });

  it('count a session still connecting upstream when the grace ends as ended by the shutdown', async () => {
    const dark = await startSilentListener();
    cleanup.push(() => dark.stop());
    const d = await startDaemon(`shutdown_delay: 0s
frontends:
  - { name: black, listen: 127.0.0.1:0, backend: silent, inband_status: false }
backends:
  - name: silent
    check: { type: none }
    connect_timeout: 30s
    connect_race: 0
    servers: [{ name: dark, address: "127.0.0.1:${dark.port}" }]
`);
    cleanup.push(() => d.close());
    const c = createConnection(d.frontends[0]!.address().port, '127.0.0.1').on('error', () => {});
    cleanup.push(() => void c.destroy());
    await waitFor(() => d.openSessions() === 1, { timeoutMs: 5000, what: 'the session connecting to dark' });
    await d.shutdown(200);
    const m = await d.metrics.registry.metrics();
    const ended = (end: string): number | undefined => sample(m, 'licgate_sessions_ended_total', { frontend: 'black', backend: 'silent', end });
    expect({ shutdown: ended('shutdown'), clientGone: ended('client-gone') }).toEqual({ shutdown: 1, clientGone: 0 });
  });
});

describe('a listen host that does not resolve', () => {
  it('fails start-up with the frontend, its address and the lookup error; the frontend bound before it is closed again', async () => {
    const port = await freePort('127.0.0.1');
    const cfg = configFile(`log: { level: silent, format: json }
frontends:
  - { name: first, listen: "127.0.0.1:${port}", backend: licenses }
  - { name: lmgrd, listen: "nowhere.licgate.test:27000", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: "127.0.0.1:1" }]
`);
    const lookups: string[] = [];
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }), {
      lookup: (host) => (lookups.push(host), Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }))),
    });
    cleanup.push(() => d.close());
    await expect(d.start()).rejects.toThrow('cannot listen for frontend "lmgrd" on nowhere.licgate.test:27000: getaddrinfo ENOTFOUND nowhere.licgate.test (ENOTFOUND)');
    expect(lookups).toEqual(['nowhere.licgate.test']);
    await expect(helloOnce(port, { host: '127.0.0.1', timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('a reload that moves the status listener', () => {
  it('leaves a peer mid-line connected; the stop still cuts it off at once, not at its 5 s deadline', async () => {
    const port = await freePort();
    const text = (host: string): string => `log: { level: silent, format: json }
shutdown_grace: 20s
shutdown_delay: 0s
status: { listen: "${host}:${port}" }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: 127.0.0.1:1 }]
`;
    const cfg = configFile(text('127.0.0.1'));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    cleanup.push(() => d.close());
    await d.start();
    const old = d.statusResponder!;
    const peer = createConnection(port, '127.0.0.1').on('error', () => undefined);
    cleanup.push(() => void peer.destroy());
    const closed = new Promise<number>((resolve) => peer.on('close', () => resolve(performance.now())));
    await new Promise((resolve) => peer.once('connect', resolve));
    peer.write('STAT');
    await waitFor(() => old.connections === 1, { timeoutMs: 3000, what: 'the status listener to accept the peer' });
    cfg.write(text('0.0.0.0'));
    expect(await d.reload('test')).toMatchObject({ ok: true, changes: ['status changed'] });
    expect(d.statusResponder).not.toBe(old);
    expect(old.connections).toBe(1);
    expect(peer.destroyed).toBe(false);
    const stopAt = performance.now();
    await d.shutdown();
    expect((await closed) - stopAt).toBeLessThan(1000);
    expect(old.connections).toBe(0);
  });
});

describe('a reload that moves the status listener with a new allow list', () => {
  it('the listener it binds takes the new list from its first accept: an IPv4 peer of a ::ffff: listener matches its IPv4 entry', async () => {
    const text = (listen: string, allow: string): string => `log: { level: silent, format: json }
shutdown_delay: 0s
status: { listen: "${listen}", allow: [${allow}] }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: 127.0.0.1:1 }]
`;
    const cfg = configFile(text('127.0.0.1:0', '127.0.0.1/32'));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    cleanup.push(() => d.close());
    await d.start();
    cfg.write(text('[::ffff:127.0.0.1]:0', '127.0.0.2/32'));
    expect(await d.reload('test')).toMatchObject({ ok: true, changes: ['status changed'] });
    const port = d.statusResponder!.address().port;
    expect(await oneExchange(port, '127.0.0.1', 'STATUS\r\n')).toEqual({ got: '', how: 'ECONNRESET' });
    expect((await oneExchange(port, '127.0.0.2', 'STATUS\r\n')).got).toMatch(/^Server Status: /);
  });
});

describe('the "licgate started" line', () => {
  it('gives every listener as address:port, an IPv6 one in brackets, so an admin sees where each is bound', async () => {
    const cfg = configFile(`admin: { listen: "127.0.0.1:0" }
status: { listen: "[::1]:0" }
agent: { listen: "127.0.0.1:0", backend: licenses }
frontends:
  - { name: lmgrd, listen: "[::1]:0", backend: licenses }
  - { name: vendor, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: "127.0.0.1:1" }]
`);
    const { d, logs } = await startLogged(cfg);
    const started = logs().find((l) => l.msg === 'licgate started');
    expect(started).toMatchObject({
      frontends: [`lmgrd@[::1]:${d.frontends[0]!.address().port}`, `vendor@127.0.0.1:${d.frontends[1]!.address().port}`],
      admin: `127.0.0.1:${d.admin!.address().port}`,
      status: `[::1]:${d.statusResponder!.address().port}`,
      agent: `127.0.0.1:${d.agentResponder!.address().port}`,
    });
  });
});
