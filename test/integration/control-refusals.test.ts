import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { MAX_PEERS_PER_ADDRESS } from '../../src/io/peers-by-address.js';
import { peerFlood, type PeerFlood } from '../helpers/peer-flood.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startSimulator, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
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
  const started = p.logs.find((l) => l.msg === 'licgate started')!;
  return { p, ports: { status: started.status as number, agent: started.agent as number, admin: Number(new URL(p.adminUrl).port) } };
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
      // The flood is over by now; its other refusals came within 10 s of the first: no line of their own.
      await holdsFor(() => refusedLines(p, listener).length === 1, { forMs: 300, what: 'one line for the whole flood' });
      const lines = refusedLines(p, listener);
      expect(lines[0]).toMatchObject({ level: 40, listener, refused: 1, top_address: '127.0.0.2' });
      expect(lines[0]!.msg).toBe(`${listener} listener refused 1 connection since the last such line, most from 127.0.0.2 (1): it serves ${MAX_CONTROL_PEERS} peers at once, and once ${MAX_CONTROL_PEERS / 2} are open, ${MAX_PEERS_PER_ADDRESS} from one address`);
    });
  }

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
