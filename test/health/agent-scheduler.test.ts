import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { AgentScheduler } from '../../src/health/agent-scheduler.js';
import type { Backend } from '../../src/model/backend.js';
import { Model } from '../../src/model/model.js';
import type { Server } from '../../src/model/server.js';
import { adoptServers, handOverBackends } from '../../src/reload.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';
import { startTcpServer } from '../helpers/proxy-harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real agent whose reply the test changes; null closes at once without a line. */
async function agent(): Promise<{ port: number; say: (line: string | null) => void; close: () => Promise<void> }> {
  let line: string | null = 'up\n';
  const sockets = new Set<Socket>();
  const srv: NetServer = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.end(line ?? '');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    if (srv.listening) await new Promise<void>((r) => srv.close(() => r()));
  };
  cleanups.push(close);
  return { port: (srv.address() as AddressInfo).port, say: (l) => (line = l), close };
}

function backend(agentPort: number, extra = '') {
  const m = new Model(loadConfigText(`admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: tcp, rise: 1, fall: 1 }\n    agent_port: ${agentPort}\n    agent_inter: 100ms\n${extra}    servers:\n      - { name: a, address: 127.0.0.1:1, weight: 100 }\n`));
  return m.backend('lic')!;
}

function run(b: ReturnType<typeof backend>, port: number): AgentScheduler {
  const s = new AgentScheduler(b, port, b.cfg.agent_inter, 1000, b.cfg.agent_send);
  cleanups.push(() => s.stop());
  s.start();
  return s;
}

describe('AgentScheduler (backend agent_port)', () => {
  it('applies weight, drain, maint and down, and an agent up brings the server back; a down under its maint stays MAINT, unchecked', async () => {
    const ag = await agent();
    const b = backend(ag.port);
    const a = b.server('a')!;
    run(b, ag.port);
    ag.say('up ready 50%\n');
    await waitFor(() => a.effectiveWeight === 50, { timeoutMs: 3000, what: 'weight 50 from the agent' });
    expect(a.usable).toBe(true);
    ag.say('drain\n');
    await waitFor(() => a.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN from the agent' });
    expect(b.choose('c', null)).toBeNull();
    ag.say('down #lmgrd not responding\n');
    await waitFor(() => a.stateText === 'DOWN (agent)', { timeoutMs: 3000, what: 'DOWN from the agent' });
    expect(a.agent!.reason).toBe('agent says "down #lmgrd not responding"');
    // "up" withdraws the agent's down; the drain it set earlier stays until it says ready.
    ag.say('up\n');
    await waitFor(() => a.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'back to DRAIN after up' });
    ag.say('ready 100%\n');
    await waitFor(() => a.usable && a.effectiveWeight === 100, { timeoutMs: 3000, what: 'usable at weight 100' });
    ag.say('maint\n');
    await waitFor(() => a.stateText === 'MAINT (agent)', { timeoutMs: 3000, what: 'MAINT from the agent' });
    // What a licgate sidecar says while its only server is in MAINT: HAProxy 2.6 shows MAINT.
    ag.say('down maint 0% #maintenance\n');
    await waitFor(() => a.agent?.reason === 'agent says "down maint 0% #maintenance"', { timeoutMs: 3000, what: 'the down maint reply read' });
    expect([a.stateText, a.checksPaused, a.usable]).toEqual(['MAINT (agent)', true, false]);
    // Leaving MAINT while the agent still says down: HAProxy's DOWN (agent), checked again.
    ag.say('ready\n');
    await waitFor(() => a.stateText === 'DOWN (agent)', { timeoutMs: 3000, what: 'DOWN (agent) after ready' });
    expect(a.checksPaused).toBe(false);
    ag.say('up 100%\n');
    await waitFor(() => a.usable, { timeoutMs: 3000, what: 'usable after up 100%' });
  });

  it('an agent "up" never overrides a failed health check', async () => {
    const ag = await agent();
    const b = backend(ag.port);
    const a = b.server('a')!;
    a.checkFailed({ ok: false, reason: 'connection refused', durationMs: 1, at: Date.now() });
    const s = run(b, ag.port);
    ag.say('up ready 100%\n');
    await waitFor(() => a.agent?.state === 'up', { timeoutMs: 3000, what: 'the agent view' });
    await holdsFor(() => !a.up && a.stateText === 'DOWN', { forMs: 400, what: 'server stays DOWN while the agent says up' });
    expect(a.agentError).toBeNull();
  });

  it('an unreachable or silent agent changes nothing (HAProxy: not an error)', async () => {
    const ag = await agent();
    const b = backend(ag.port);
    const a = b.server('a')!;
    run(b, ag.port);
    ag.say('drain 30%\n');
    await waitFor(() => a.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN' });
    ag.say(null);
    await waitFor(() => a.agentError === 'agent closed without a reply', { timeoutMs: 3000, what: 'the empty reply noted' });
    await ag.close();
    await waitFor(() => a.agentError === 'connection refused', { timeoutMs: 3000, what: 'the refusal noted' });
    expect(a.stateText).toBe('DRAIN (agent)');
    expect(a.agent).toMatchObject({ state: 'drain', weightPercent: 30 });
  });

  it('licgate reading a licgate sidecar: an admin drain on the sidecar drains the server here', async () => {
    const sidecar = new Daemon(
      loadConfigText('agent: { listen: 127.0.0.1:0, backend: local }\nbackends:\n  - name: local\n    check: { type: none }\n    servers:\n      - { name: lmgrd, address: 127.0.0.1:1, weight: 10 }\n'),
      pino({ level: 'silent' }),
    );
    cleanups.push(() => sidecar.close());
    await sidecar.start();
    const port = sidecar.agentResponder!.address().port;
    const b = backend(port);
    const a = b.server('a')!;
    run(b, port);
    const lmgrd = sidecar.model.backend('local')!.server('lmgrd')!;
    await waitFor(() => a.agent?.weightPercent === 100, { timeoutMs: 3000, what: 'first agent reply' });
    lmgrd.setWeight(5, 'test');
    await waitFor(() => a.effectiveWeight === 50, { timeoutMs: 3000, what: 'weight 50% here' });
    lmgrd.setAdmin('drain', 'test');
    await waitFor(() => a.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN here' });
    lmgrd.setAdmin('ready', 'test');
    await waitFor(() => a.usable && a.effectiveWeight === 50, { timeoutMs: 3000, what: 'ready again at 50%' });
  });

  it('agent_send is written first, so one agent port can answer per backend (HAProxy agent-send)', async () => {
    const heard: string[] = [];
    const srv = await startTcpServer((sock) => {
      let got = '';
      sock.on('data', (d) => {
        got += d;
        if (!got.includes('\n')) return;
        heard.push(got);
        sock.end(got === 'flexlm\n' ? 'up 30%\n' : 'up 90%\n');
      });
    });
    cleanups.push(srv.close);
    const port = srv.port;
    const b = backend(port, '    agent_send: "flexlm\\n"\n');
    const a = b.server('a')!;
    run(b, port);
    await waitFor(() => a.effectiveWeight === 30, { timeoutMs: 3000, what: 'the answer for "flexlm"' });
    expect(heard[0]).toBe('flexlm\n');
  });

  it('config: agent_port and agent_inter are read; agent_port beside a check of type agent is an error', () => {
    const b = backend(27200);
    expect([b.cfg.agent_port, b.cfg.agent_inter]).toEqual([27200, 100]);
    const dflt = loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    agent_port: 27200\n    servers: [ { name: a, address: 127.0.0.1:1 } ]\n');
    expect(dflt.backends[0]!.agent_inter).toBe(2000);
    expect(() => loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: agent, port: 27200 }\n    agent_port: 27200\n    servers: [ { name: a, address: 127.0.0.1:1 } ]\n', 'x.yaml')).toThrow(
      'x.yaml:5:17: backend "lic": agent_port adds an agent check, but the check is already type agent; use one',
    );
    expect(() => loadConfigText('admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    agent_send: "x\\n"\n    servers: [ { name: a, address: 127.0.0.1:1 } ]\n', 'x.yaml')).toThrow(
      'x.yaml:4:17: backend "lic": agent_send is sent to the agent on agent_port, but agent_port is not set (a check of type agent takes "send")',
    );
  });

  it('after a reload, a reply that names only a weight keeps the drain the agent set before it', async () => {
    const ag = await agent();
    const model = (inter: string): Model =>
      new Model(loadConfigText(`admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: tcp, inter: ${inter} }\n    agent_port: ${ag.port}\n    agent_inter: 100ms\n    servers:\n      - { name: a, address: 127.0.0.1:1, weight: 100 }\n`));
    const old = model('2s');
    const s = run(old.backend('lic')!, ag.port);
    ag.say('drain 50%\n');
    await waitFor(() => old.backend('lic')!.server('a')!.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN from the agent' });
    // The reload (only the health check's interval changed) restarts the agent loop, as Daemon.startChecks does.
    s.stop();
    const next = model('3s');
    adoptServers(old, next);
    handOverBackends(old, next);
    const a = next.backend('lic')!.server('a')!;
    expect(a.stateText).toBe('DRAIN (agent)');
    ag.say('75%\n');
    run(next.backend('lic')!, ag.port);
    await waitFor(() => a.agent?.weightPercent === 75, { timeoutMs: 3000, what: 'weight 75% from the agent' });
    // HAProxy: what a reply does not mention stays as the agent last set it; only it reverts its drain.
    expect(a.stateText).toBe('DRAIN (agent)');
  });

  it('stop() ends polling', async () => {
    const ag = await agent();
    const b = backend(ag.port);
    const a = b.server('a')!;
    const s = run(b, ag.port);
    ag.say('up 40%\n');
    await waitFor(() => a.effectiveWeight === 40, { timeoutMs: 3000, what: 'weight 40' });
    s.stop();
    ag.say('up 80%\n');
    await holdsFor(() => a.effectiveWeight === 40, { forMs: 400, what: 'no more agent reads after stop()' });
  });
});

/** A daemon whose backend lic reads its servers' agents on `agentPort`; `reload` rewrites its file with other servers and reloads it. */
async function agentDaemon(agentPort: number, servers: string[], agentInter: string): Promise<{ d: Daemon; reload: (servers: string[], agentInter: string) => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-agent-retarget-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'licgate.yaml');
  // Each server keeps its port whatever the list, so a server that stays keeps its address.
  const yaml = (names: string[], inter: string): string =>
    `log: { level: silent, format: json }\nadmin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: none, timeout: 10s }\n    agent_port: ${agentPort}\n    agent_inter: ${inter}\n    servers:\n` +
    names.map((n) => `      - { name: ${n}, address: "127.0.0.1:${n.charCodeAt(0)}", weight: 100 }\n`).join('');
  writeFileSync(file, yaml(servers, agentInter));
  const d = new Daemon(loadConfigFile(file), pino({ level: 'silent' }));
  cleanups.push(() => d.close());
  await d.start();
  return {
    d,
    reload: async (next, inter) => {
      writeFileSync(file, yaml(next, inter));
      expect(await d.reload('test')).toMatchObject({ ok: true });
    },
  };
}

/** What an agent loop keeps per server, by name; a server not in the running backend is marked. */
function kept(sched: AgentScheduler, lic: Backend): { memory: string[]; timerOrRead: string[] } {
  const inner = sched as unknown as Record<'timers' | 'inflight' | 'memory', Map<Server, unknown>>;
  const names = (...maps: Map<Server, unknown>[]): string[] => maps.flatMap((m) => [...m.keys()]).map((s) => `${s.name}${lic.servers.includes(s) ? '' : ' (removed)'}`).sort();
  return { memory: names(inner.memory), timerOrRead: names(inner.timers, inner.inflight) };
}

describe('AgentScheduler.retarget: a reload that adds and removes servers', () => {
  it('the added server has its agent read, the removed one is read no more and leaves no timer, read or memory behind', async () => {
    const ag = await agent();
    ag.say('up 60%\n');
    const { d, reload } = await agentDaemon(ag.port, ['a', 'b'], '100ms');
    const before = d.model.backend('lic')!;
    const b = before.server('b')!;
    await waitFor(() => before.servers.every((s) => s.agent?.weightPercent === 60), { timeoutMs: 3000, what: 'both servers read at 60%' });
    const sched = d.agentSchedulers[0]!;

    await reload(['a', 'c'], '100ms');
    // Same agent port and send string: the loop goes on with the new backend rather than starting over.
    expect(d.agentSchedulers).toEqual([sched]);
    const lic = d.model.backend('lic')!;
    ag.say('up 30%\n');
    await waitFor(() => lic.servers.every((s) => s.agent?.weightPercent === 30), { timeoutMs: 3000, what: 'a and the added c read at 30%' });
    // A read of the removed server would set the 30% on it (it has no successor to hand the reply to).
    await holdsFor(() => b.agent?.weightPercent === 60 && b.agentError === null, { forMs: 500, what: 'the removed server b is not read after the reload' });
    expect(kept(sched, lic)).toEqual({ memory: ['a', 'c'], timerOrRead: ['a', 'c'] });
  });

  it('a read under way when the reload removes its server is given up; the one of a server that stays goes to its successor', async () => {
    // The agent holds the first two connections (the first reads of a and b) and answers later ones at once.
    const held: Socket[] = [];
    const line = 'up 40%\n';
    const srv = await startTcpServer((sock) => {
      if (held.length === 2) return void sock.end(line);
      held.push(sock);
      sock.resume();
    });
    cleanups.push(srv.close);
    const { d, reload } = await agentDaemon(srv.port, ['a', 'b'], '10s');
    await waitFor(() => held.length === 2, { timeoutMs: 3000, what: 'the first reads of a and b, held' });
    const b = d.model.backend('lic')!.server('b')!;
    const sched = d.agentSchedulers[0]!;

    await reload(['a', 'c'], '100ms');
    expect(d.agentSchedulers).toEqual([sched]);
    const lic = d.model.backend('lic')!;
    // b's read was cut off by the reload: its connection closes; a's stays open.
    const open = (): Socket[] => held.filter((s) => !s.readableEnded && !s.destroyed);
    await waitFor(() => open().length === 1, { timeoutMs: 3000, what: "b's held read closed by the client" });
    open()[0]!.end(line);
    await waitFor(() => lic.servers.every((s) => s.agent?.weightPercent === 40), { timeoutMs: 3000, what: "a's held reply applied to a's successor, and c read" });
    expect(kept(sched, lic).memory).toEqual(['a', 'c']);
    await holdsFor(() => b.agent === null && b.agentError === null, { forMs: 300, what: 'the removed server b takes no reply' });
    expect(kept(sched, lic).timerOrRead).toEqual(['a', 'c']);
  });
});
