import { afterEach, describe, expect, it } from 'vitest';
import { flexlmCheckout, flexlmSession } from '../helpers/flexlm-client.js';
import { freePort, startFlexlmSimulator, stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { startProxy, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * stick_ttl counts from a client's last activity, and never runs out while the client holds a
 * session: a FlexLM client keeps its vendor-daemon connection open for hours with nothing but
 * heartbeats on it, and must find the same server for its next checkout.
 */
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});

describe('stick entries and open sessions', () => {
  it('keeps the entry of a client holding a license past stick_ttl, and lets it expire after the session ends', async () => {
    const [lmgrdPort, vendorPort] = [await freePort(), await freePort()];
    await startFlexlmSimulator({ name: 'a', host: '127.0.1.1', lmgrdPort, vendorPort });
    await startFlexlmSimulator({ name: 'b', host: '127.0.1.2', lmgrdPort, vendorPort });
    const ttlMs = 1000;
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:${lmgrdPort}", backend: licenses }
  - { name: vendor, listen: "127.0.0.1:${vendorPort}", backend: licenses, server_port: ${vendorPort} }
backends:
  - name: licenses
    stick: source
    stick_ttl: ${ttlMs}ms
    check: { type: status, inter: 1s }
    servers:
      - { name: a, address: "127.0.1.1:${lmgrdPort}" }
      - { name: b, address: "127.0.1.2:${lmgrdPort}" }
`);
    const entries = async (): Promise<number> => ((await proxy.backend('licenses')) as unknown as { stick_entries: number }).stick_entries;

    // Holder: checks out and keeps the vendor connection. Passer-by: checks out and leaves, later.
    const holder = await flexlmSession({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' });
    try {
      expect(holder.granted).toBe(true);
      const passer = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.3' });
      expect(passer.granted).toBe(true);
      expect(await entries()).toBe(2);
      // The passer-by's entry expires one ttl after its last connection; the holder's is older but held.
      await waitFor(async () => (await entries()) === 1, { timeoutMs: 5 * ttlMs, intervalMs: 50, what: "the passer-by's stick entry to expire" });
      const until = Date.now() + 2 * ttlMs;
      while (Date.now() < until) expect(await entries()).toBe(1);
      // Its next checkout from another connection still meets its server.
      const again = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' });
      expect(again.server).toBe(holder.server);
    } finally {
      await holder.vendor.close();
    }
    await waitFor(async () => (await entries()) === 0, { timeoutMs: 5 * ttlMs, intervalMs: 50, what: "the holder's entry to expire after its session closed" });
  });
});
