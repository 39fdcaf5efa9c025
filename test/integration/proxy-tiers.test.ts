import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce } from '../helpers/license-client.js';
import { startInProcessSimulator, startProxy, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

const CHECK = '{ type: status, inter: 100ms, fastinter: 50ms, downinter: 100ms, rise: 2, fall: 2, timeout: 300ms }';

type Sim = Awaited<ReturnType<typeof startInProcessSimulator>>;

async function sims(...names: string[]): Promise<Record<string, Sim>> {
  const out: Record<string, Sim> = {};
  for (const n of names) out[n] = await startInProcessSimulator(n);
  return out;
}

/** `n` sessions; every one must succeed (a failure throws and fails the test). Returns who answered. */
async function sessions(proxy: ProxyProcess, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(await helloOnce(proxy.port));
  return out;
}

const uniq = (xs: string[]): string[] => [...new Set(xs)].sort();

async function totals(proxy: ProxyProcess): Promise<Record<string, number>> {
  const b = await proxy.backend('licenses');
  return Object.fromEntries(b.servers.map((s) => [s.name, s.total]));
}

function config(s: Record<string, Sim>, failback: 'auto' | 'manual'): string {
  return `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    failback: ${failback}
    check: ${CHECK}
    servers:
      - { name: a1, address: "127.0.0.1:${s.a1!.port}", weight: 100 }
      - { name: a2, address: "127.0.0.1:${s.a2!.port}", weight: 100 }
      - { name: b, address: "127.0.0.1:${s.b!.port}", weight: 100, backup: true }
`;
}

async function tier(proxy: ProxyProcess, name: string): Promise<void> {
  await waitFor(async () => (await proxy.backend('licenses')).tier === name, { timeoutMs: 5000, intervalMs: 20, what: `serving tier ${name}` });
}

async function state(proxy: ProxyProcess, server: string, text: string): Promise<void> {
  await waitFor(async () => (await proxy.server('licenses', server)).state === text, { timeoutMs: 5000, intervalMs: 20, what: `${server} ${text}` });
}

describe('backup tier', () => {
  it('idle while an active is up; all traffic when the actives are down; back on recovery (failback: auto)', async () => {
    const s = await sims('a1', 'a2', 'b');
    const proxy = await startProxy(config(s, 'auto'));
    expect(uniq(await sessions(proxy, 30))).toEqual(['a1', 'a2']);
    // One active dies: the other carries everything, the backup stays idle, no client notices.
    await s.a1!.close();
    expect(uniq(await sessions(proxy, 20))).toEqual(['a2']);
    expect((await totals(proxy)).b).toBe(0);
    await state(proxy, 'a1', 'DOWN');
    expect((await proxy.backend('licenses')).tier).toBe('active');
    // Both actives dead: the backup takes all new sessions.
    await s.a2!.close();
    expect(uniq(await sessions(proxy, 20))).toEqual(['b']);
    await tier(proxy, 'backup');
    // a1 comes back on its port: once it is UP again, new sessions go to it.
    s.a1 = await startInProcessSimulator('a1', { port: s.a1!.port });
    await state(proxy, 'a1', 'UP');
    await tier(proxy, 'active');
    expect(uniq(await sessions(proxy, 20))).toEqual(['a1']);
    const t = await totals(proxy);
    expect(t.b).toBe(20);
  });

  it('failback: manual stays on the backup after the actives recover, until the backup fails', async () => {
    const s = await sims('a1', 'a2', 'b');
    const proxy = await startProxy(config(s, 'manual'));
    expect(uniq(await sessions(proxy, 10))).toEqual(['a1', 'a2']);
    await s.a1!.close();
    await s.a2!.close();
    expect(uniq(await sessions(proxy, 10))).toEqual(['b']);
    await tier(proxy, 'backup');
    s.a1 = await startInProcessSimulator('a1', { port: s.a1!.port });
    s.a2 = await startInProcessSimulator('a2', { port: s.a2!.port });
    await state(proxy, 'a1', 'UP');
    await state(proxy, 'a2', 'UP');
    // Both actives are UP, and still every new session goes to the backup, for as long as we look
    // (several check intervals).
    await holdsFor(async () => (await proxy.backend('licenses')).tier === 'backup' && (await helloOnce(proxy.port)) === 'b', {
      forMs: 1000,
      intervalMs: 20,
      what: 'manual failback keeps the backup serving',
    });
    const before = await totals(proxy);
    expect(before.a1 + before.a2).toBe(10);
    // The backup fails: now the actives take over again.
    await s.b!.close();
    expect(uniq(await sessions(proxy, 10))).toEqual(['a1', 'a2']);
    await tier(proxy, 'active');
  });
});

describe('disaster-recovery tier', () => {
  it('tier 2 serves when tiers 0 and 1 are down, and gives way when the backup returns', async () => {
    const s = await sims('a', 'b', 'dr');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: ${CHECK}
    servers:
      - { name: a, address: "127.0.0.1:${s.a!.port}" }
      - { name: b, address: "127.0.0.1:${s.b!.port}", backup: true }
      - { name: dr, address: "127.0.0.1:${s.dr!.port}", tier: 2 }
`);
    expect(uniq(await sessions(proxy, 5))).toEqual(['a']);
    await s.a!.close();
    await s.b!.close();
    // No client sees the two dead tiers: each connect is retried down to DR.
    expect(uniq(await sessions(proxy, 10))).toEqual(['dr']);
    await tier(proxy, 'dr');
    const st = await proxy.backend('licenses');
    expect(st.servers.map((x) => [x.name, x.state])).toEqual([
      ['a', 'DOWN'],
      ['b', 'DOWN'],
      ['dr', 'UP'],
    ]);
    expect([st.running, st.servers_up]).toEqual([true, '1/3']);
    s.b = await startInProcessSimulator('b', { port: s.b!.port });
    await tier(proxy, 'backup');
    expect(uniq(await sessions(proxy, 5))).toEqual(['b']);
  });
});
