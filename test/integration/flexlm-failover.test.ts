import { afterEach, describe, expect, it } from 'vitest';
import { clientAddresses, flexlmCheckout } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A sticky client's license server crashes: its next checkout follows the failover to the other
 * server (both connections), stays there, and does not flap back when the crashed server returns —
 * FlexLM would count a re-checkout on the other server as a second license.
 */
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});

describe('FlexLM stickiness across a server failure', () => {
  it('moves the dead server’s clients once, keeps them there after it returns, and leaves the other clients alone', async () => {
    const { lmgrdPort, sims, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', 'retries: 2', 'check: { type: status, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 2, fall: 2, timeout: 500ms }']);
    const checkout = async (client: string): Promise<string> => {
      const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: client });
      if (!r.granted) throw new Error(`${client}: checkout denied: ${r.detail}`);
      return r.server!;
    };
    const clients = clientAddresses(20);
    const before = new Map<string, string>();
    for (const c of clients) before.set(c, await checkout(c));
    const victim = before.get(clients[0]!)!;
    const survivor = victim === 'a' ? 'b' : 'a';
    const onVictim = clients.filter((c) => before.get(c) === victim);
    const onSurvivor = clients.filter((c) => before.get(c) === survivor);
    expect(onVictim.length).toBeGreaterThan(0);
    expect(onSurvivor.length).toBeGreaterThan(0);

    // Crash: the first clients find out by a refused connect (passive health + retry), before any check does.
    await sims[victim]!.kill();
    for (const c of onVictim) expect(await checkout(c)).toBe(survivor);
    for (const c of onVictim) expect(await checkout(c)).toBe(survivor);
    for (const c of onSurvivor) expect(await checkout(c)).toBe(survivor);
    expect((await proxy.server('licenses', victim)).state).toMatch(/^DOWN/);

    // Back on the same ports, and UP again.
    await sims[victim]!.restart();
    await waitFor(async () => (await proxy.server('licenses', victim)).state === 'UP', { timeoutMs: 10_000, intervalMs: 50, what: `server ${victim} UP again in /status` });
    const after = new Map<string, string>();
    for (const c of clients) after.set(c, await checkout(c));
    const flapped = onVictim.filter((c) => after.get(c) !== survivor);
    console.log(`failover: ${onVictim.length}/${clients.length} clients were on ${victim}; moved to ${survivor}: ${onVictim.length}; flapped back after ${victim} returned: ${flapped.length}`);
    expect(flapped).toEqual([]);
    for (const c of onSurvivor) expect(after.get(c)).toBe(survivor);

    // The returned server is usable: new client hosts are placed on it again.
    const newcomers = clientAddresses(8, 22);
    const placed = await Promise.all(newcomers.map((c) => checkout(c)));
    expect(placed).toContain(victim);
    const st = await proxy.backend('licenses');
    expect(st.stick_entries).toBe(clients.length + newcomers.length);
    expect((await proxy.get('/metrics')).body).toContain(`licgate_stick_table_entries{backend="licenses"} ${clients.length + newcomers.length}\n`);
  });
});
