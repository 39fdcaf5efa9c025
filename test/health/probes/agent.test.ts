import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { agentView, AgentProbe, mergeAgentLine, readAgentLine } from '../../../src/health/probes/agent.js';
import { parseAgentLine } from '../../../src/serve/agent-reply.js';
import type { AgentView } from '../../../src/model/server.js';
import { loadConfigText } from '../../../src/config/load.js';
import { applyConfig } from '../../../src/reload.js';
import { startDaemon } from '../../helpers/in-process-daemon.js';
import { endingIn, trickle, withCpuMs } from '../../helpers/trickle.js';
import { waitFor } from '../../helpers/wait-for.js';

const servers: NetServer[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

/** A real agent on 127.0.0.1:0: `behave` gets each connection (reply, stay silent, ...). */
async function agent(behave: (sock: Socket, received: () => string) => void): Promise<number> {
  const srv = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let got = '';
    sock.setEncoding('latin1').on('data', (d: string) => (got += d));
    behave(sock, () => got);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as AddressInfo).port;
}
const says = (line: string) => agent((sock) => sock.end(line));
const target = (port: number) => ({ host: '127.0.0.1', port });
const timeout = (ms: number) => AbortSignal.timeout(ms);

describe('readAgentLine', () => {
  it('reads up to the first CR or LF', async () => {
    expect(await readAgentLine(target(await says('up 50%\r\nignored\n')), timeout(2000), '', 1024)).toBe('up 50%');
  });

  it('takes a reply without a line end as the line (echo -n agents)', async () => {
    expect(await readAgentLine(target(await says('drain')), timeout(2000), '', 1024)).toBe('drain');
  });

  it('sends agent-send first when given', async () => {
    const port = await agent((sock, got) => sock.on('data', () => got().includes('\n') && sock.end(`echo ${got().trim()}\n`)));
    expect(await readAgentLine(target(port), timeout(2000), 'lic/a\n', 1024)).toBe('echo lic/a');
  });

  it('reads a line trickled 16 bytes a read up to a 1 MiB read_limit in little CPU, and ends it at the last byte', async () => {
    const limit = 1024 * 1024;
    const port = await agent((sock) => {
      sock.setNoDelay(true);
      trickle(sock, endingIn(limit, '\n'), 32 * 1024);
    });
    const { result, cpuMs } = await withCpuMs(() => readAgentLine(target(port), timeout(30_000), '', limit));
    expect(result).toBe(`${'x'.repeat(100)}…`);
    // Rebuilding, decoding and searching the whole reply for a line end on each read took 3.5 s here.
    expect(cpuMs).toBeLessThan(500);
  });

  it('fails with a short reason: refused, silent, empty, endless', async () => {
    const closed = await agent(() => {});
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    await expect(readAgentLine(target(closed), timeout(2000), '', 1024)).rejects.toThrow('connection refused');
    await expect(readAgentLine(target(await agent(() => {})), timeout(150), '', 1024)).rejects.toThrow('timeout waiting for reply');
    await expect(readAgentLine(target(await says('')), timeout(2000), '', 1024)).rejects.toThrow('agent closed without a reply');
    await expect(readAgentLine(target(await says('\n')), timeout(2000), '', 1024)).rejects.toThrow('agent sent an empty line');
    await expect(readAgentLine(target(await says('x'.repeat(5000))), timeout(2000), '', 64)).rejects.toThrow('agent sent 64 bytes without a line end');
  });
});

describe('mergeAgentLine / agentView (HAProxy stickiness)', () => {
  const step = (prev: ReturnType<typeof mergeAgentLine> | null, line: string) => mergeAgentLine(prev, parseAgentLine(line), line);

  it('keeps what a reply does not mention', () => {
    let m = step(null, 'drain 40%');
    expect(m).toMatchObject({ health: 'up', admin: 'drain', weightPercent: 40 });
    m = step(m, 'down');
    expect(m).toMatchObject({ health: 'down', admin: 'drain', weightPercent: 40 });
    m = step(m, '70%');
    expect(m).toMatchObject({ health: 'down', admin: 'drain', weightPercent: 70 });
    m = step(m, 'up');
    expect(m).toMatchObject({ health: 'up', admin: 'drain', weightPercent: 70 });
    m = step(m, 'ready');
    expect(m).toMatchObject({ health: 'up', admin: 'ready', weightPercent: 70 });
  });

  it('maxconn:N sticks like a weight until the agent names another (0 lifts the limit)', () => {
    let m = step(null, 'up maxconn:3');
    expect(agentView(m, true)).toMatchObject({ state: 'up', maxconn: 3 });
    m = step(m, 'drain');
    expect(agentView(m, true)).toMatchObject({ state: 'drain', maxconn: 3 });
    m = step(m, 'ready maxconn:0');
    expect(agentView(m, true)).toMatchObject({ state: 'up', maxconn: 0 });
    expect(agentView(step(null, 'up 50%'), true).maxconn).toBeNull();
  });

  it('fail and stopped are down; the view says down only when it carries health, and not under the agent\'s maint', () => {
    const m = step(step(null, 'drain'), 'stopped #planned');
    expect(m.health).toBe('down');
    expect(agentView(m, true)).toEqual({ state: 'down', weightPercent: null, maxconn: null, reason: 'agent says "stopped #planned"' });
    expect(agentView(m, false)).toEqual({ state: 'drain', weightPercent: null, maxconn: null, reason: 'agent says "stopped #planned"' });
    // HAProxy 2.6 shows MAINT for "maint" then "stopped", and DOWN (agent) once the agent says ready.
    const inMaint = step(step(null, 'maint'), 'stopped #planned');
    expect(agentView(inMaint, true).state).toBe('maint');
    expect(agentView(step(inMaint, 'ready'), true).state).toBe('down');
    expect(agentView(step(null, 'up ready 100%'), true).state).toBe('up');
    expect(agentView(step(null, 'fail'), true).state).toBe('down');
  });
});

describe('AgentProbe (check type agent)', () => {
  it('down/fail/stopped fail the check; anything else passes, with drain/maint/weight applied through the view', async () => {
    const probe = new AgentProbe('', 1024);
    const cases: [string, boolean, string, number | null][] = [
      ['up ready 100%', true, 'up', 100],
      ['drain 0%', true, 'drain', 0],
      ['50%', true, 'drain', 50],
      ['down #lmgrd not responding', false, 'drain', 50],
      ['ready', true, 'up', 50],
      ['fail', false, 'up', 50],
      ['stopped', false, 'up', 50],
      ['maint', true, 'maint', 50],
      ['hello world', true, 'maint', 50],
    ];
    let line = '';
    const port = await agent((sock) => sock.end(`${line}\n`));
    // The server's view, which the check scheduler passes to each check (Server.agent).
    let view: AgentView | null = null;
    for (const [reply, ok, state, pct] of cases) {
      line = reply;
      const out = await probe.run({ ...target(port), agent: view }, timeout(2000));
      expect(out.ok, reply).toBe(ok);
      expect(out.agent, reply).toMatchObject({ state, weightPercent: pct });
      expect(out.reason, reply).toContain(`agent: ${reply}`);
      view = out.agent ?? view;
    }
    line = 'up 10% bogus';
    expect((await probe.run(target(port), timeout(2000))).reason).toBe('agent: up 10% bogus (ignored: bogus)');
  });

  it('an unreachable agent fails the check and leaves the agent view alone', async () => {
    const probe = new AgentProbe('', 1024);
    const closed = await agent(() => {});
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const out = await probe.run(target(closed), timeout(2000));
    expect(out).toEqual({ ok: false, reason: 'connection refused' });
  });

  it('starts from the word the target\'s server carries, not from a reply an earlier server at that address had', async () => {
    const probe = new AgentProbe('', 1024);
    const port = await says('50%\n');
    const drained: AgentView = { state: 'drain', weightPercent: 10, maxconn: 5, reason: 'agent says "drain 10% maxconn:5"' };
    expect((await probe.run({ ...target(port), agent: drained }, timeout(2000))).agent).toMatchObject({ state: 'drain', weightPercent: 50, maxconn: 5 });
    expect((await probe.run({ ...target(port), agent: null }, timeout(2000))).agent).toMatchObject({ state: 'up', weightPercent: 50, maxconn: null });
  });
});

describe('agent weight percentages in a daemon', () => {
  it('an agent percentage scales a weight up to 256 at most, as HAProxy caps it: 25600% of 100 is 256 in /status and /metrics, not 25600', async () => {
    let line = 'up 150%';
    const port = await agent((sock) => sock.end(`${line}\n`));
    // The agent as the check (lic), and as HAProxy's auxiliary agent beside a check (aux).
    const d = await startDaemon(
      `admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: agent, port: ${port}, inter: 50ms, rise: 1, fall: 1 }\n    servers:\n      - { name: a, address: 127.0.0.1:1, weight: 100 }\n` +
        `  - name: aux\n    check: { type: none }\n    agent_port: ${port}\n    agent_inter: 100ms\n    servers:\n      - { name: b, address: 127.0.0.1:2, weight: 100 }\n`,
    );
    const servers = [d.model.backend('lic')!.server('a')!, d.model.backend('aux')!.server('b')!];
    const base = `http://127.0.0.1:${d.admin!.address().port}`;
    const weights = async (): Promise<number[]> => {
      const body = (await (await fetch(`${base}/status`)).json()) as { backends: { servers: { effective_weight: number }[] }[] };
      return body.backends.flatMap((b) => b.servers.map((s) => s.effective_weight));
    };
    try {
      await waitFor(async () => (await weights()).every((w) => w === 150), { timeoutMs: 5000, what: '150% of 100 on both servers' });
      line = 'up 25600%';
      const capped = await waitFor(async () => servers.every((s) => s.agent?.reason === 'agent says "up 25600%"') && weights(), { timeoutMs: 5000, what: 'the 25600% reply applied' });
      expect(capped).toEqual([256, 256]);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/licgate_server_weight\{backend="lic",server="a"\} 256\n/);
      expect(metrics).toMatch(/licgate_server_weight\{backend="aux",server="b"\} 256\n/);
    } finally {
      await d.close();
    }
  });
});

describe('check type agent in a daemon, reading a licgate sidecar', () => {
  it('drain and weight come through setAgent; the sidecar\'s down fails the check through rise/fall', async () => {
    const { pino } = await import('pino');
    const { loadConfigText } = await import('../../../src/config/load.js');
    const { Daemon } = await import('../../../src/daemon.js');
    const { waitFor } = await import('../../helpers/wait-for.js');
    const sidecar = new Daemon(loadConfigText('agent: { listen: 127.0.0.1:0, backend: local }\nbackends:\n  - name: local\n    check: { type: none }\n    servers:\n      - { name: lmgrd, address: 127.0.0.1:1, weight: 10 }\n'), pino({ level: 'silent' }));
    await sidecar.start();
    const port = sidecar.agentResponder!.address().port;
    const proxy = new Daemon(
      loadConfigText(`admin: { listen: 127.0.0.1:0 }\nbackends:\n  - name: lic\n    check: { type: agent, port: ${port}, inter: 100ms, rise: 2, fall: 2 }\n    servers:\n      - { name: a, address: 127.0.0.1:1, weight: 100 }\n`),
      pino({ level: 'silent' }),
    );
    try {
      await proxy.start();
      const a = proxy.model.backend('lic')!.server('a')!;
      const lmgrd = sidecar.model.backend('local')!.server('lmgrd')!;
      await waitFor(() => a.stateText === 'UP' && a.lastCheck?.reason === 'agent: up ready 100%', { timeoutMs: 3000, what: 'UP from the agent check' });
      lmgrd.setWeight(5, 'test');
      await waitFor(() => a.effectiveWeight === 50, { timeoutMs: 3000, what: 'weight 50%' });
      lmgrd.setAdmin('drain', 'test');
      await waitFor(() => a.stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN' });
      lmgrd.setAdmin('ready', 'test');
      lmgrd.checkFailed({ ok: false, reason: 'lmgrd is not running', durationMs: 1, at: Date.now() });
      lmgrd.checkFailed({ ok: false, reason: 'lmgrd is not running', durationMs: 1, at: Date.now() });
      // fall 2: one failed check leaves it "UP 1/2", the next takes it DOWN (the agent view never says down here).
      await waitFor(() => a.stateText === 'DOWN', { timeoutMs: 3000, what: 'DOWN after fall failed checks' });
      // (The sidecar's server is "no check" here: the test drives its health by hand.)
      expect(a.lastCheck!.reason).toBe('agent: down ready 50% #no check: lmgrd is not running');
      expect(a.agent!.state).toBe('up');
    } finally {
      await proxy.close();
      await sidecar.close();
    }
  });
});

describe('check type agent across a reload', () => {
  /** Backend lic, its servers checked by the agent on `port` with `timing`, then `rest` (more backends). */
  const licConfig = (port: number, servers: string, rest = '', timing = 'inter: 100ms, rise: 1, fall: 1'): string => `log: { level: silent, format: json }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: lic }
backends:
  - name: lic
    check: { type: agent, port: ${port}, ${timing} }
    servers:
${servers}${rest}`;

  it('a reload that leaves the check alone keeps the drain the agent set: a later reply naming only a weight does not make the server ready', async () => {
    let line = 'up ready 100%';
    const port = await agent((sock) => sock.end(`${line}\n`));
    const yaml = (otherWeight: number): string => licConfig(port, '      - { name: a, address: 127.0.0.1:1, weight: 100 }\n', `  - name: other
    check: { type: none }
    servers:
      - { name: x, address: 127.0.0.1:2, weight: ${otherWeight} }
`);
    const d = await startDaemon(yaml(10));
    try {
      const a = () => d.model.backend('lic')!.server('a')!;
      line = 'drain 50%';
      await waitFor(() => a().stateText === 'DRAIN (agent)', { timeoutMs: 3000, what: 'DRAIN from the agent check' });
      expect(await applyConfig(d, loadConfigText(yaml(20), 'test.yaml'))).toEqual(['backend other: server x weight 10 -> 20']);
      expect(a().stateText).toBe('DRAIN (agent)');
      line = '75%';
      await waitFor(() => a().agent?.weightPercent === 75, { timeoutMs: 3000, what: 'weight 75% from the agent check after the reload' });
      // HAProxy: what a reply does not mention stays as the agent last set it; only it reverts its drain.
      expect([a().stateText, a().usable]).toEqual(['DRAIN (agent)', false]);
    } finally {
      await d.close();
    }
  });

  it('a reload that only retunes the agent check (inter, rise/fall, timeout) keeps the agent\'s maint: the server does not read UP', async () => {
    let line = 'maint';
    const port = await agent((sock) => sock.end(`${line}\n`));
    const yaml = (timing?: string): string => licConfig(port, '      - { name: a, address: 127.0.0.1:1 }\n', '', timing);
    const d = await startDaemon(yaml());
    try {
      const a = () => d.model.backend('lic')!.server('a')!;
      await waitFor(() => a().stateText === 'MAINT (agent)', { timeoutMs: 3000, what: 'MAINT from the agent check' });
      await applyConfig(d, loadConfigText(yaml('inter: 150ms, rise: 2, fall: 2, timeout: 500ms'), 'test.yaml'));
      expect([a().stateText, a().usable]).toEqual(['MAINT (agent)', false]);
      // A reply naming only a weight leaves the maint as the agent set it, before the reload too.
      line = '40%';
      await waitFor(() => a().agent?.weightPercent === 40, { timeoutMs: 3000, what: 'weight 40% from the agent check after the reload' });
      expect([a().stateText, a().usable]).toEqual(['MAINT (agent)', false]);
    } finally {
      await d.close();
    }
  });

  it('a server removed in the agent\'s maint and added back at its address starts fresh: a reply stating only health brings it UP', async () => {
    let line = 'maint';
    const port = await agent((sock) => sock.end(`${line}\n`));
    // c answers no agent (nothing listens on 127.0.0.2): it only keeps the backend, and its check, going.
    const yaml = (withA: boolean): string => licConfig(port, `${withA ? '      - { name: a, address: 127.0.0.1:1 }\n' : ''}      - { name: c, address: 127.0.0.2:3 }\n`);
    const d = await startDaemon(yaml(true));
    try {
      const a = () => d.model.backend('lic')!.server('a');
      await waitFor(() => a()!.stateText === 'MAINT (agent)', { timeoutMs: 3000, what: 'MAINT from the agent check' });
      await applyConfig(d, loadConfigText(yaml(false), 'test.yaml'));
      expect(a()).toBeUndefined();
      line = 'up';
      await applyConfig(d, loadConfigText(yaml(true), 'test.yaml'));
      await waitFor(() => a()!.agent?.reason === 'agent says "up"', { timeoutMs: 3000, what: 'the re-added server\'s first agent reply' });
      // HAProxy's server added by a reload knows nothing of what its agent said to the one removed.
      expect([a()!.stateText, a()!.agent!.state]).toEqual(['UP', 'up']);
    } finally {
      await d.close();
    }
  });
});
