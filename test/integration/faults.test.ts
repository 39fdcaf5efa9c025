import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LicenseClient } from '../helpers/license-client.js';
import { runCli, startInProcessSimulator, startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { parseSamples } from '../helpers/prom-text.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'licgate-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sockets: Socket[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
  await stopAll();
});

function open(port: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      sockets.push(s);
      resolve(s);
    });
    s.once('error', () => resolve(null));
  });
}

describe('faults licgate survives', () => {
  it('EMFILE: out of descriptors it refuses new clients, keeps its sessions and recovers once descriptors free up', async (ctx) => {
    requireTools(['prlimit'], ctx);
    const sim = await startSimulator('s1');
    // 64 descriptors: Node itself needs ~30, each proxied session two more.
    const p = await startProxy(`frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b, inband_status: false }\nbackends:\n  - name: b\n    check: { type: status, inter: 300ms }\n    servers: [ { name: s1, address: 127.0.0.1:${sim.port} } ]\n`, { wrapper: ['prlimit', '--nofile=64:64'] });
    const first = await LicenseClient.connect(p.port);
    expect(await first.hello()).toBe('s1');
    // Exhaust the descriptors: keep opening sessions until licgate starts closing new ones. (libuv
    // handles EMFILE at accept() itself — it closes the waiting connection and Node never hears of
    // it — so what a client sees is an immediate close; a log line appears when the upstream
    // connect is what runs out.)
    const held: Socket[] = [];
    let closedByProxy = 0;
    for (let i = 0; i < 80; i++) {
      const s = await open(p.port);
      if (!s) continue;
      held.push(s);
      s.on('close', () => closedByProxy++);
    }
    await waitFor(() => closedByProxy > 0, { timeoutMs: 10_000, what: 'licgate to close connections it has no descriptors for' });
    // The session opened before keeps working, licgate is still up, and the license server was not
    // blamed for licgate's own shortage (observe_errors would otherwise have marked it DOWN).
    expect((await first.checkout('solver', 1)).granted).toBe(true);
    expect((await p.server('b', 's1')).connect_errors).toBe(0);
    expect(p.logs.some((l) => String(l.msg).startsWith('server b/s1 is DOWN'))).toBe(false);
    expect((await p.get('/health')).status).toBe(200);
    // Free the descriptors: new sessions work again.
    for (const s of held) s.destroy();
    const again = await waitFor(async () => {
      try {
        const c = await LicenseClient.connect(p.port);
        const who = await c.hello();
        await c.close();
        return who;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 10_000, what: 'a new session after descriptors were freed' });
    expect(again).toBe('s1');
    await first.close();
  });

  it('a flood of silent connections on the STATUS, agent or admin port does not take the descriptors license clients need', async (ctx) => {
    requireTools(['prlimit'], ctx);
    const sim = await startSimulator('s1');
    // 256 descriptors: Node needs ~30; the STATUS and agent ports are open to the network (HAProxy
    // asks them), and a peer may stay silent for 5 s there, so a flood renewed every 5 s held every
    // descriptor and license clients were turned away. The admin port is the same for a local user,
    // or for the network when it listens elsewhere with a token.
    const p = await startProxy(`status: { listen: 127.0.0.1:0 }\nagent: { listen: 127.0.0.1:0, backend: b }\nfrontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b, inband_status: false }\nbackends:\n  - name: b\n    check: { type: none }\n    servers: [ { name: s1, address: 127.0.0.1:${sim.port} } ]\n`, { wrapper: ['prlimit', '--nofile=256:256'] });
    for (const what of ['status', 'agent', 'admin'] as const) {
      const port = p.listening[what]!;
      const flood: Socket[] = [];
      let turnedAway = 0;
      for (let i = 0; i < 300; i++) {
        // Half-open: the agent answers at once and half-closes, and a peer that keeps its side open
        // is held for 5 s. An end with no answer is a refusal.
        const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        sockets.push(s);
        flood.push(s);
        let answered = false;
        s.on('data', () => (answered = true));
        s.on('error', () => {});
        s.on('end', () => (answered ? undefined : turnedAway++));
        await once(s, 'connect');
      }
      await waitFor(() => turnedAway > 0, { timeoutMs: 4000, what: `licgate to turn part of the ${what} flood away` });
      const c = await LicenseClient.connect(p.port);
      expect(await c.hello().catch((e: Error) => `no session during the ${what} flood: ${e.message}`)).toBe('s1');
      await c.close();
      for (const s of flood) s.destroy();
      await waitFor(async () => (await p.status()).frontends[0]!.active === 0, { timeoutMs: 5000, what: 'the session to end' });
    }
  });

  it('a licgate paused for 5 s (SIGSTOP: a stunned VM) and resumed fails no check of its healthy servers: replies that came meanwhile are read before the timeouts', async () => {
    const sims = await Promise.all(['s1', 's2', 's3'].map((n) => startInProcessSimulator(n)));
    // The exec check is in flight most of the time, so the pause lands in the middle of some.
    const servers = sims.map((sim, i) => `{ name: s${i + 1}, address: "127.0.0.1:${sim.port}" }`).join(', ');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: status }
backends:
  - name: status
    check: { type: status, inter: 100ms, fastinter: 100ms, rise: 1, fall: 1, timeout: 1s }
    servers: [${servers}]
  - name: exec
    check: { type: exec, argv: [/bin/sh, -c, "sleep 0.3"], inter: 100ms, fastinter: 100ms, rise: 1, fall: 1, timeout: 1s }
    servers: [${servers}]
`);
    // Summed over every server of both backends.
    const total = async (name: string, label: string, value: string): Promise<number> =>
      parseSamples((await proxy.get('/metrics')).body).filter((m) => m.name === name && m.labels[label] === value).reduce((n, m) => n + m.value, 0);
    const checks = (result: string): Promise<number> => total('licgate_checks_total', 'result', result);
    await waitFor(async () => (await checks('ok')) >= 12, { timeoutMs: 10_000, what: 'two ok checks of every server' });
    expect(await checks('failed')).toBe(0);
    proxy.child.kill('SIGSTOP');
    try {
      // The pause itself is the fault under test, not a wait for a condition.
      await new Promise((r) => setTimeout(r, 5000));
    } finally {
      proxy.child.kill('SIGCONT');
    }
    const okBefore = await checks('ok');
    await waitFor(async () => (await checks('ok')) >= okBefore + 12, { timeoutMs: 10_000, what: 'two more ok checks of every server' });
    expect({ failed: await checks('failed'), downs: await total('licgate_server_transitions_total', 'to', 'DOWN') }).toEqual({ failed: 0, downs: 0 });
  });

  it('a port already in use at start-up: a clear error naming the listener and the address, exit 1', async () => {
    const blocker = createServer();
    servers.push(blocker);
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as { port: number }).port;
    const file = join(dir, 'c.yaml');
    writeFileSync(file, `frontends:\n  - { name: lmgrd, listen: 127.0.0.1:${port}, backend: b }\nbackends:\n  - name: b\n    servers: [ { name: s1, address: 127.0.0.1:1 } ]\n`);
    const r = await runCli(['run', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`licgate: cannot listen for frontend "lmgrd" on 127.0.0.1:${port}: address already in use (EADDRINUSE)\n`);
  });

  it('a reload whose new listener cannot bind keeps the old config and its listener', async () => {
    const blocker = createServer();
    servers.push(blocker);
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const taken = (blocker.address() as { port: number }).port;
    const sim = await startSimulator('s1');
    const base = `frontends:\n  - { name: fe, listen: 127.0.0.1:0, backend: b }\nbackends:\n  - name: b\n    check: { type: none }\n    servers: [ { name: s1, address: 127.0.0.1:${sim.port} } ]\n`;
    const p = await startProxy(base);
    const { readFileSync } = await import('node:fs');
    const original = readFileSync(p.configFile, 'utf8');
    writeFileSync(p.configFile, original.replace('frontends:\n', `frontends:\n  - { name: extra, listen: 127.0.0.1:${taken}, backend: b }\n`));
    p.child.kill('SIGHUP');
    await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reload failed')), { timeoutMs: 5000, what: 'the failed reload log line' });
    const failed = p.logs.find((l) => String(l.msg).startsWith('config reload failed'))!;
    expect(String(failed.msg)).toContain(`cannot listen for frontend "extra" on 127.0.0.1:${taken}: address already in use (EADDRINUSE)`);
    // The old listener still serves.
    const c = await LicenseClient.connect(p.port);
    expect(await c.hello()).toBe('s1');
    await c.close();
    expect((await p.status()).frontends.map((f) => f.name)).toEqual(['fe']);
  });
});
