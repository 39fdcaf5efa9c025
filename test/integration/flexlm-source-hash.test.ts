import { afterEach, describe, expect, it } from 'vitest';
import { clientAddresses, flexlmCheckout } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * `balance: source` over three FlexLM-like servers: the client address alone decides the server, so
 * both FlexLM connections meet without a stick table, and losing a server moves only its own clients.
 */
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});

describe('balance: source with FlexLM clients', () => {
  it('removing one of three servers moves only its clients, and its return restores the original mapping', async () => {
    const servers = ['a', 'b', 'c'];
    const { lmgrdPort, sims, proxy } = await startFlexlmLab(servers, ['balance: source', 'check: { type: status, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 2, fall: 2, timeout: 500ms }']);
    const clients = clientAddresses(39);
    const map = async (): Promise<Map<string, string>> => {
      const results = await Promise.all(clients.map((c) => flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: c })));
      const denied = results.filter((r) => !r.granted).map((r) => `${r.client}: ${r.detail}`);
      if (denied.length) throw new Error(`denied checkouts: ${denied.join('; ')}`);
      return new Map(results.map((r) => [r.client, r.server!]));
    };
    const count = (m: Map<string, string>, s: string): number => [...m.values()].filter((x) => x === s).length;

    const before = await map();
    for (const s of servers) expect(count(before, s)).toBeGreaterThan(0);
    const removed = before.get(clients[0]!)!;
    await sims[removed]!.kill();
    await waitFor(async () => (await proxy.server('licenses', removed)).state === 'DOWN', { timeoutMs: 10_000, intervalMs: 50, what: `server ${removed} DOWN in /status` });

    const during = await map();
    const kept = clients.filter((c) => before.get(c) !== removed);
    const moved = clients.filter((c) => during.get(c) !== before.get(c));
    console.log(`balance: source — before a/b/c = ${count(before, 'a')}/${count(before, 'b')}/${count(before, 'c')}; ${removed} removed: ${moved.length} of 39 clients moved (all ${count(before, removed)} of ${removed}'s), ${kept.length} kept their server`);
    for (const c of kept) expect(`${c} → ${during.get(c)}`).toBe(`${c} → ${before.get(c)}`);
    expect(moved.sort()).toEqual(clients.filter((c) => before.get(c) === removed).sort());
    expect(count(during, removed)).toBe(0);

    await sims[removed]!.restart();
    await waitFor(async () => (await proxy.server('licenses', removed)).state === 'UP', { timeoutMs: 10_000, intervalMs: 50, what: `server ${removed} UP again in /status` });
    expect(await map()).toEqual(before);
  });
});
