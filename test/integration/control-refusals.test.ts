import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { CROWDED, LOCAL_RESERVE, MAX_PEERS_PER_ADDRESS } from '../../src/io/peers-by-address.js';
import { freePort } from '../helpers/free-port.js';
import { oneExchange } from '../helpers/one-exchange.js';
import { peerFlood, type PeerFlood } from '../helpers/peer-flood.js';
import { processGroupGone } from '../helpers/process-group.js';
import { sample } from '../helpers/prom-text.js';
import { CLI, startProxy, startSimulator, stopAll, type LogLine, type ProxyProcess } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';

const floods: PeerFlood[] = [];
afterEach(async () => {
  for (const f of floods.splice(0)) f.destroy();
  await stopAll();
});

async function sidecar(): Promise<{ p: ProxyProcess; ports: Record<'status' | 'agent' | 'admin', number> }> {
  const s1 = await startSimulator('s1');
  const p = await startProxy(`status: { listen: 127.0.0.1:0 }
agent: { listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: tcp, inter: 1s }
    servers: [{ name: s1, address: 127.0.0.1:${s1.port} }]
`);
  return { p, ports: { status: p.listening.status!, agent: p.listening.agent!, admin: p.listening.admin } };
}

const refusedLines = (p: ProxyProcess, listener: string) => p.logs.filter((l) => l.listener === listener && typeof l.msg === 'string' && l.msg.includes('refused'));

async function refusedTotal(p: ProxyProcess, listener: string): Promise<number | undefined> {
  return sample((await p.get('/metrics')).body, 'licgate_control_refused_total', { listener });
}

describe('refusals on the control ports are counted and logged', () => {
  for (const listener of ['status', 'agent', 'admin'] as const) {
    it(`a host flooding the ${listener} port: licgate_control_refused_total{listener="${listener}"} counts each peer closed at once, and one warn line names the host`, async () => {
      const { p, ports } = await sidecar();
      expect(await refusedTotal(p, listener)).toBe(0);
      // Past half the port (64, the harness's own keep-alive connection to the admin port among them),
      // one address gets MAX_PEERS_PER_ADDRESS: the others are refused.
      const flood = await peerFlood(ports[listener], MAX_CONTROL_PEERS);
      floods.push(flood);
      await waitFor(() => flood.closed() >= MAX_CONTROL_PEERS / 2, { timeoutMs: 3000, what: 'half the flooding peers closed at once' });
      // Well within the 5 s a silent peer is held: every one closed so far was refused.
      expect(await refusedTotal(p, listener)).toBe(flood.closed());
      await waitFor(() => refusedLines(p, listener).length > 0, { timeoutMs: 3000, what: `a log line about the ${listener} listener's refusals` });
      // The flood is over by now; its other refusals came within 10 s of the first: their line waits
      // for the 10 s to end.
      await holdsFor(() => refusedLines(p, listener).length === 1, { forMs: 300, what: 'one line for the whole flood' });
      const lines = refusedLines(p, listener);
      expect(lines[0]).toMatchObject({ level: 40, listener, refused: 1, top_address: '127.0.0.2' });
      // The admin listener says the places it keeps for checks from this host: an admin reading why
      // one was refused needs the whole limit.
      // It also closes idle peers for new ones: the line says so.
      const admin = listener === 'admin';
      const reserve = admin ? `, ${LOCAL_RESERVE} more from this host (127.0.0.1, ::1, its own address)` : '';
      const evicts = admin ? '; past that, a new peer takes the place of the one idle longest' : '';
      expect(lines[0]!.msg).toBe(`${listener} listener ${admin ? 'refused or closed' : 'refused'} 1 connection since the last such line, most from 127.0.0.2 (1): it serves ${MAX_CONTROL_PEERS} peers at once${reserve}, and once ${MAX_CONTROL_PEERS / 2} are open, ${MAX_PEERS_PER_ADDRESS} from one address${evicts}`);
    });
  }

  it('the rest of a flood is logged once 10 s have passed since the first line, though no refusal follows', async () => {
    const { p, ports } = await sidecar();
    floods.push(await peerFlood(ports.agent, MAX_CONTROL_PEERS));
    await waitFor(() => refusedLines(p, 'agent').length > 0, { timeoutMs: 3000, what: "a log line about the agent listener's refusals" });
    const lines = await waitFor(() => refusedLines(p, 'agent').length >= 2 && refusedLines(p, 'agent'), { timeoutMs: 13_000, what: 'a second line, for the refusals after the first' });
    const total = (await refusedTotal(p, 'agent'))!;
    expect(total).toBe(MAX_CONTROL_PEERS / 2);
    expect(lines).toMatchObject([
      { listener: 'agent', refused: 1, top_address: '127.0.0.2' },
      { listener: 'agent', refused: total - 1, top_address: '127.0.0.2', top_address_refused: total - 1 },
    ]);
    // Nothing more to tell: no timer left to write another line.
    await holdsFor(() => refusedLines(p, 'agent').length === 2, { forMs: 1500, what: 'no third line' });
  });

  it('a stop writes the refusals not logged yet, and does not wait for the 10 s to end', async () => {
    const { p, ports } = await sidecar();
    floods.push(await peerFlood(ports.agent, MAX_CONTROL_PEERS));
    await waitFor(() => refusedLines(p, 'agent').length > 0, { timeoutMs: 3000, what: "a log line about the agent listener's refusals" });
    const total = (await refusedTotal(p, 'agent'))!;
    const stopping = performance.now();
    await p.stop();
    expect(performance.now() - stopping).toBeLessThan(5000);
    // stdout may still be in the pipe when the exit is seen.
    await waitFor(() => refusedLines(p, 'agent').length >= 2, { timeoutMs: 3000, what: 'a second line, written at the stop' });
    expect(refusedLines(p, 'agent')).toMatchObject([{ refused: 1 }, { refused: total - 1 }]);
  });

  it('past 128 peers at once from several hosts: those closed by the listener limit are counted too', async () => {
    const { p, ports } = await sidecar();
    // 64 from one host, then 16 from each of four more fill the 128 places; 4 more cannot get one.
    floods.push(await peerFlood(ports.status, MAX_CONTROL_PEERS / 2, '127.0.0.2'));
    for (let h = 3; h <= 6; h++) floods.push(await peerFlood(ports.status, MAX_PEERS_PER_ADDRESS, `127.0.0.${h}`));
    const last = await peerFlood(ports.status, 4, '127.0.0.7');
    floods.push(last);
    await waitFor(() => last.closed() === 4, { timeoutMs: 3000, what: 'the 4 peers past 128 closed at once' });
    expect(floods.slice(0, -1).reduce((n, f) => n + f.closed(), 0)).toBe(0);
    expect(await refusedTotal(p, 'status')).toBe(4);
    await waitFor(() => refusedLines(p, 'status').length > 0, { timeoutMs: 3000, what: "a log line about the status listener's refusals" });
    expect(refusedLines(p, 'status')).toMatchObject([{ listener: 'status', refused: 1, top_address: '127.0.0.7' }]);
  });
});

describe('peers the STATUS listener cuts off are logged as a summary, not a line each', () => {
  const cutOffLines = (p: ProxyProcess) => p.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('cut off'));

  it('20 peers sending garbage and 5 silent ones: one warn line at the first, one for the other 24 once 10 s have passed', async () => {
    const { p, ports } = await sidecar();
    const garbage = await peerFlood(ports.status, 20, '127.0.0.2', 'X'.repeat(300));
    floods.push(garbage);
    await waitFor(() => garbage.closed() === 20, { timeoutMs: 3000, what: 'the peers sending a line over 256 bytes cut off' });
    const silent = await peerFlood(ports.status, 5, '127.0.0.3');
    floods.push(silent);
    await waitFor(() => silent.closed() === 5, { timeoutMs: 8000, what: 'the silent peers cut off after 5 s' });
    // Lines are written in order: once the reload's line is in, every line before it is.
    p.child.kill('SIGHUP');
    await waitFor(() => p.logs.some((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 5000, what: 'the reload logged' });
    expect(cutOffLines(p)).toHaveLength(1);
    const lines = await waitFor(() => cutOffLines(p).length >= 2 && cutOffLines(p), { timeoutMs: 8000, what: 'a second line, for the peers cut off after the first' });
    expect(lines).toMatchObject([
      { level: 40, listener: 'status', cut_off: 1, why: 'too-long', top_address: '127.0.0.2', top_address_cut_off: 1 },
      { level: 40, listener: 'status', cut_off: 24, why: 'timeout', top_address: '127.0.0.2', top_address_cut_off: 19 },
    ]);
    expect(lines[1]!.msg).toBe('status listener cut off 24 peers since the last such line, the last for timeout, most from 127.0.0.2 (19): it waits 5 s for one line of at most 256 bytes');
  });
});

describe('an IPv6 host takes one share of a control port, whatever its number of addresses', () => {
  beforeEach((ctx) => requireTools(['unshare', 'ip'], ctx));

  it('128 silent peers from 128 addresses of fd00:38::/64 get the 64 places of a crowded port, not 128: a STATUS check from ::1 is still answered', async () => {
    // A /64 of addresses is a host's own to use: it runs in a network namespace of its own (a user
    // namespace too, no root needed), whose lo gets those addresses; no address of this host is touched.
    const from = Array.from({ length: MAX_CONTROL_PEERS }, (_, i) => `fd00:38::${(i + 1).toString(16)}:${((i * 7919) % 0x10000).toString(16)}`);
    const dir = mkdtempSync(join(tmpdir(), 'licgate-test-'));
    const config = join(dir, 'licgate.yaml');
    writeFileSync(config, `admin: { listen: "127.0.0.1:0" }
status: { listen: "[::]:0" }
log: { level: info, format: json }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: "127.0.0.1:27000" }]
`);
    const driver = fileURLToPath(new URL('../helpers/v6-prefix-flood.mjs', import.meta.url));
    const setup = 'ip link set lo up && for a in $V6_FROM; do echo "address add $a/64 dev lo nodad"; done | ip -batch - && exec "$0" "$@"';
    const child = spawn('unshare', ['--net', '--map-root-user', 'sh', '-c', setup, process.execPath, driver, CLI, config, ...from], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, V6_FROM: from.join(' ') } });
    const pgid = child.pid!;
    try {
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
      const [code] = (await once(child, 'close')) as [number | null];
      expect(code, err).toBe(0);
      const { reply, metrics } = JSON.parse(out) as { reply: string; metrics: string };
      expect(reply).toMatch(/^Server Status: /);
      expect(sample(metrics, 'licgate_control_refused_total', { listener: 'status' })).toBe(MAX_CONTROL_PEERS - CROWDED);
      const logs = err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
      expect(logs.find((l) => l.listener === 'status' && String(l.msg).includes('refused'))).toMatchObject({ refused: 1, top_address: 'fd00:38::/64' });
    } finally {
      if (!processGroupGone(pgid)) process.kill(-pgid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('allow lists on the status and agent listeners', () => {
  const config = (s1: number, statusAllow: string, agentAllow: string): string => `status: { listen: "[::]:0"${statusAllow} }
agent: { listen: 127.0.0.1:0, backend: licenses${agentAllow} }
backends:
  - name: licenses
    check: { type: tcp, inter: 1s }
    servers: [{ name: s1, address: 127.0.0.1:${s1} }]
`;
  const deniedTotal = async (p: ProxyProcess, listener: string): Promise<number | undefined> => sample((await p.get('/metrics')).body, 'licgate_control_denied_total', { listener });

  it('a peer from an address not in the list is reset at accept, unanswered, counted and logged; an IPv4 peer of a dual-stack listener matches its IPv4 entry; a reload changes the list of the listener it keeps', async () => {
    const s1 = await startSimulator('s1');
    const p = await startProxy(config(s1.port, ', allow: [127.0.0.2/32]', ', allow: [127.0.0.2/32]'));
    const status = p.listening.status!;
    const agent = p.listening.agent!;
    await waitFor(async () => (await p.server('licenses', 's1')).state === 'UP', { timeoutMs: 10_000, what: 's1 UP' });
    expect([await deniedTotal(p, 'status'), await deniedTotal(p, 'agent')]).toEqual([0, 0]);
    const reset = { got: '', how: 'ECONNRESET' };
    expect(await oneExchange(status, '127.0.0.1', 'STATUS\r\n')).toEqual(reset);
    expect(await oneExchange(status, '::1', 'STATUS\r\n', '::1')).toEqual(reset);
    expect(await oneExchange(agent, '127.0.0.1', '')).toEqual(reset);
    // The status listener is on [::]: 127.0.0.2 reaches it as ::ffff:127.0.0.2.
    expect((await oneExchange(status, '127.0.0.2', 'STATUS\r\n')).got).toMatch(/^Server Status: Running\r\n/);
    expect((await oneExchange(agent, '127.0.0.2', '')).got).toMatch(/^up/);
    expect({ status: await deniedTotal(p, 'status'), agent: await deniedTotal(p, 'agent'), refused: await refusedTotal(p, 'status') }).toEqual({ status: 2, agent: 1, refused: 0 });
    const line = await waitFor(() => p.logs.find((l) => typeof l.denied === 'number'), { timeoutMs: 3000, what: 'the denied log line' });
    // As the listener's refusal lines write a peer of a dual-stack listener.
    expect(line).toMatchObject({ level: 40, denied: 1, listener: 'status', top_address: '::ffff:127.0.0.1', top_address_denied: 1 });

    p.reload(config(s1.port, ', allow: [127.0.0.1/32]', ''));
    const reloaded = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
    expect(reloaded.msg).toMatch(/status changed.*agent changed/);
    expect((await oneExchange(status, '127.0.0.1', 'STATUS\r\n')).got).toMatch(/^Server Status: Running\r\n/);
    expect(await oneExchange(status, '127.0.0.2', 'STATUS\r\n')).toEqual(reset);
    expect((await oneExchange(agent, '127.0.0.1', '')).got).toMatch(/^up/);
    expect({ status: await deniedTotal(p, 'status'), agent: await deniedTotal(p, 'agent') }).toEqual({ status: 3, agent: 1 });
  });
});

describe('refusals on an admin listener a reload moved', () => {
  it('token refusals waiting for their summary line are written once when the listener goes idle, not lost at a stop', async () => {
    const s1 = await startSimulator('s1');
    const [a, b, c] = [await freePort(), await freePort(), await freePort()];
    const yaml = (admin: number): string => `admin: { listen: "127.0.0.1:${admin}" }
backends:
  - name: licenses
    check: { type: tcp, inter: 1s }
    servers: [{ name: s1, address: 127.0.0.1:${s1.port} }]
`;
    const p = await startProxy(yaml(a));
    const refused = () => p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('admin call refused'));
    // No admin.token_file: every change is refused 403 E_ADMIN_DISABLED. The first is logged at once,
    // the other two wait for the end of the 10 s.
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`http://127.0.0.1:${a}/admin/reload`, { method: 'POST', headers: { connection: 'close' } });
      expect(r.status).toBe(403);
    }
    await waitFor(() => refused().length === 1, { timeoutMs: 3000, what: 'the first refusal logged at once' });
    const reloaded = () => p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')).length;
    // Two moves: the second forgets the first's listener, idle by then.
    for (const [i, port] of [b, c].entries()) {
      p.reload(yaml(port));
      await waitFor(() => reloaded() === i + 1, { timeoutMs: 5000, what: `reload ${i + 1} moving the admin listener to ${port}` });
    }
    await p.stop();
    // Well within the 10 s of the first line: only a close of the moved listener writes the rest.
    // stdout may still be in the pipe when the exit is seen.
    await waitFor(() => refused().length >= 2, { timeoutMs: 3000, what: 'the two refusals after the first, in one line by the stop' });
    expect(refused().map((l) => [l.code, l.refused])).toEqual([['E_ADMIN_DISABLED', undefined], ['E_ADMIN_DISABLED', 2]]);
  });
});
