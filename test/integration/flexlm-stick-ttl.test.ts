import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { clientAddresses, flexlmCheckout, flexlmSession } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';
import { wallClockStep } from '../helpers/wall-clock-step.js';

/**
 * stick_ttl counts from a client's last activity, and never runs out while the client holds a
 * session: a FlexLM client keeps its vendor-daemon connection open for hours with nothing but
 * heartbeats on it, and must find the same server for its next checkout.
 */
const cleanup: (() => void)[] = [];
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
  for (const f of cleanup.splice(0)) f();
});

describe('stick entries and open sessions', () => {
  it('keeps the entry of a client holding a license past stick_ttl, and lets it expire after the session ends', async () => {
    const ttlMs = 1000;
    const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', `stick_ttl: ${ttlMs}ms`, 'check: { type: status, inter: 1s }']);
    const entries = async (): Promise<number | null> => (await proxy.backend('licenses')).stick_entries;

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

  it('keeps every client on its server through a reload that changes stick_ttl and stick_size', async () => {
    // b has weight 0 at first, so every client is placed on a; the reload gives b a share.
    const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', 'stick_ttl: 1h', 'stick_size: 1000', 'check: { type: status, inter: 1s }'], { b: 'weight: 0' });
    const clients = clientAddresses(4);
    for (const localAddress of clients) expect((await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress })).server).toBe('a');

    const before = readFileSync(proxy.configFile, 'utf8');
    const after = before.replace('stick_ttl: 1h', 'stick_ttl: 2h').replace('stick_size: 1000', 'stick_size: 500').replace('weight: 0 }', 'weight: 1 }');
    expect(after).not.toBe(before);
    writeFileSync(proxy.configFile, after);
    proxy.child.kill('SIGHUP');
    const line = await waitFor(() => proxy.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload')), { timeoutMs: 10_000, what: 'the reload log line' });
    expect(line.msg).toContain('3 changes: backend licenses: server b weight 0 -> 1; backend licenses: stick_ttl 1h -> 2h; backend licenses: stick_size 1000 -> 500');
    expect((await proxy.backend('licenses')).stick_entries).toBe(clients.length);

    // Round-robin over a and b would now send every other new client to b; these clients stay on a.
    for (const localAddress of clients) expect((await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress })).server).toBe('a');
    const newcomers = await Promise.all(clientAddresses(4, 10).map((localAddress) => flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress })));
    expect(new Set(newcomers.map((c) => c.server))).toEqual(new Set(['a', 'b']));
  });
});

/** NTP steps and a live-migrated VM's clock sync move the wall clock; stick_ttl is real time. */
describe('stick entries and wall-clock steps', () => {
  it('keeps a client on its server when the wall clock steps forward past stick_ttl', async (ctx) => {
    const clock = wallClockStep(ctx);
    cleanup.push(clock.dispose);
    const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', 'stick_ttl: 1h', 'check: { type: status, inter: 1s }'], {}, [], { wrapper: clock.wrapper });
    const first = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' });
    expect(first.granted).toBe(true);
    clock.set('+2h');
    // Round-robin would place a client without an entry on the other server.
    const again = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' });
    expect(again.server).toBe(first.server);
    expect((await proxy.backend('licenses')).stick_entries).toBe(1);
  });

  it('expires a stick entry one stick_ttl after its last connection when the wall clock steps back', async (ctx) => {
    const clock = wallClockStep(ctx);
    cleanup.push(clock.dispose);
    const ttlMs = 1000;
    const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['stick: source', `stick_ttl: ${ttlMs}ms`, 'check: { type: status, inter: 1s }'], {}, [], { wrapper: clock.wrapper });
    expect((await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' })).granted).toBe(true);
    clock.set('-1h');
    await waitFor(async () => (await proxy.backend('licenses')).stick_entries === 0, { timeoutMs: 5 * ttlMs, intervalMs: 50, what: 'the stick entry to expire after the clock stepped back an hour' });
  });
});
