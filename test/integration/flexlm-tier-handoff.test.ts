import { afterEach, describe, expect, it } from 'vitest';
import { askLmgrd, flexlmCheckout, flexlmSession, vendorCheckout, type LmgrdReply } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A FlexLM client's lmgrd connection is served by the backup tier, and the tiers change before its
 * vendor-daemon connection arrives: a primary slot frees up (maxconn), or the primary comes back
 * (failback). The vendor connection must still reach the backup, whose lmgrd issued its ticket;
 * the primary's vendor daemon would deny the checkout.
 */
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});

const VIP = '127.0.0.1';

describe('FlexLM lmgrd and vendor connections across tiers', () => {
  it('a client whose lmgrd connection overflowed to the backup (primary at maxconn) checks out there, even when a primary slot frees first', async () => {
    const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', 'check: { type: status, inter: 1s }'], { a: 'maxconn: 1', b: 'backup: true' });
    // The holder takes the primary's only slot with its vendor connection.
    const holder = await flexlmSession({ host: VIP, lmgrdPort, localAddress: '127.0.0.2' });
    expect([holder.granted, holder.server]).toEqual([true, 'a']);

    const client = { host: VIP, lmgrdPort, localAddress: '127.0.0.3' };
    const lmgrd = await askLmgrd(client);
    expect((await proxy.server('licenses', 'b')).total).toBe(1);
    // The holder returns its license between the newcomer's two connections: the primary has room.
    await holder.vendor.close();
    await waitFor(async () => (await proxy.server('licenses', 'a')).active === 0, { timeoutMs: 5000, intervalMs: 10, what: "the primary's slot to free up" });

    const checkout = await vendorCheckout(client, lmgrd);
    await checkout.vendor.close();
    expect([checkout.granted, checkout.detail.replace(/-\d+$/, '')]).toEqual([true, 'b']);
    // New clients still go to the primary.
    expect((await flexlmCheckout({ host: VIP, lmgrdPort, localAddress: '127.0.0.4' })).server).toBe('a');
  });

  it('a client whose lmgrd connection reached the backup checks out there when the primary comes back before its vendor connection (failback: auto)', async () => {
    const check = 'check: { type: status, inter: 100ms, fastinter: 50ms, downinter: 100ms, rise: 1, fall: 1, timeout: 300ms }';
    const { lmgrdPort, sims, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', 'failback: auto', check], { b: 'backup: true' });
    const tier = (name: string) => waitFor(async () => (await proxy.backend('licenses')).tier === name, { timeoutMs: 5000, intervalMs: 10, what: `serving tier ${name}` });
    const client = { host: VIP, lmgrdPort, localAddress: '127.0.0.3' };
    expect((await flexlmCheckout(client)).server).toBe('a');

    // The primary hangs (its checks time out): the backup serves.
    const primary = sims.a!.child;
    primary.kill('SIGSTOP');
    let lmgrd: LmgrdReply;
    try {
      await tier('backup');
      lmgrd = await askLmgrd(client);
      expect((await proxy.server('licenses', 'b')).total).toBe(1);
    } finally {
      primary.kill('SIGCONT');
    }
    // It answers again and is UP: the active tier serves new connections before the vendor one comes.
    await tier('active');

    const checkout = await vendorCheckout(client, lmgrd);
    await checkout.vendor.close();
    expect([checkout.granted, checkout.detail.replace(/-\d+$/, '')]).toEqual([true, 'b']);
    // Failback is real for everyone else: a new client goes to the primary.
    expect((await flexlmCheckout({ host: VIP, lmgrdPort, localAddress: '127.0.0.4' })).server).toBe('a');
  });
});
