import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { askLmgrd, clientAddresses, flexlmCheckout, flexlmSession, vendorCheckout, type FlexlmCheckout } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { runCli, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Two equal active FlexLM-like servers behind licgate, with frontends for lmgrd and for the vendor
 * daemon sharing one backend. A checkout needs both of a client's connections on the same server:
 * with `stick: source` all succeed; without it a large share is denied (the reason for the feature).
 */
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
});

async function lab(stick: boolean): Promise<{ lmgrdPort: number }> {
  const { lmgrdPort } = await startFlexlmLab(['a', 'b'], ['balance: roundrobin', ...(stick ? ['stick: source'] : []), 'check: { type: status, inter: 1s }']);
  return { lmgrdPort };
}

/** `total` two-step checkouts from the 39 client hosts, `parallel` at a time. */
async function checkouts(lmgrdPort: number, total: number, parallel: number): Promise<FlexlmCheckout[]> {
  const hosts = clientAddresses(39);
  const results: FlexlmCheckout[] = [];
  for (let i = 0; i < total; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, total - i) }, (_, j) => flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: hosts[(i + j) % hosts.length]! }));
    results.push(...(await Promise.all(batch)));
  }
  return results;
}

describe('FlexLM two-port checkouts through licgate', () => {
  it('with stick: source, all 200 checkouts succeed, each client stays on one server, and both servers get clients', async () => {
    const { lmgrdPort } = await lab(true);
    const results = await checkouts(lmgrdPort, 200, 10);
    const granted = results.filter((r) => r.granted).length;
    const serverOf = new Map<string, Set<string>>();
    for (const r of results) if (r.server) serverOf.set(r.client, (serverOf.get(r.client) ?? new Set()).add(r.server));
    const clientsPer = { a: 0, b: 0 };
    for (const servers of serverOf.values()) for (const s of servers) clientsPer[s as 'a' | 'b']++;
    console.log(`stick: source — ${granted}/200 checkouts granted (${((100 * granted) / 200).toFixed(1)} %); clients per server a=${clientsPer.a} b=${clientsPer.b}`);
    expect(results.filter((r) => !r.granted).map((r) => `${r.client}: ${r.detail}`)).toEqual([]);
    expect(granted).toBe(200);
    expect([...serverOf.values()].every((s) => s.size === 1)).toBe(true);
    expect(clientsPer.a).toBeGreaterThan(0);
    expect(clientsPer.b).toBeGreaterThan(0);
    expect(clientsPer.a + clientsPer.b).toBe(39);
  });

  // A [::] listener takes IPv4 clients as ::ffff:a.b.c.d: the key must be the same plain IPv4 address
  // as the 0.0.0.0 listener sees, or the two connections of a checkout are placed apart.
  it.each([
    { by: 'stick: source', keys: ['balance: roundrobin', 'stick: source'], lmgrd: '0.0.0.0', vendor: '[::]' },
    { by: 'balance: source', keys: ['balance: source'], lmgrd: '[::]', vendor: '0.0.0.0' },
  ])('with $by, lmgrd on $lmgrd and the vendor daemon on $vendor, every IPv4 client checks out', async ({ keys, lmgrd, vendor }) => {
    const { proxy } = await startFlexlmLab(['a', 'b'], [...keys, 'check: { type: status, inter: 1s }'], {}, [], { listen: { lmgrd: `${lmgrd}:0`, vendor: `${vendor}:0` } });
    // The proxy's vendor port is not the servers' here (a wildcard listener cannot share a port with
    // them on one host), so the client is pointed at it; the ticket still only works on its server.
    const results = await Promise.all(
      clientAddresses(39).map(async (localAddress) => {
        const opts = { host: '127.0.0.1', lmgrdPort: proxy.ports.lmgrd!, localAddress };
        const { ticket } = await askLmgrd(opts);
        const { vendor: conn, ...r } = await vendorCheckout(opts, { vendorPort: proxy.ports.vendor!, ticket });
        conn.destroy();
        return r;
      }),
    );
    expect(results.filter((r) => !r.granted).map((r) => `${r.client}: ${r.detail}`)).toEqual([]);
    expect(new Set(results.map((r) => r.server))).toEqual(new Set(['a', 'b']));
  });

  it('without stickiness, the same checkouts fail for a substantial share (lmgrd and vendor connections split)', async () => {
    const { lmgrdPort } = await lab(false);
    const results = await checkouts(lmgrdPort, 200, 10);
    const denied = results.filter((r) => !r.granted);
    console.log(`no stickiness — ${200 - denied.length}/200 granted, ${denied.length} denied (${((100 * denied.length) / 200).toFixed(1)} %)`);
    expect(denied.every((r) => r.detail === 'unknown ticket')).toBe(true);
    expect(denied.length / 200).toBeGreaterThan(0.2);
  });

  it('a checkout under way finishes on its server when an admin drains it between the lmgrd and vendor connections; new checkouts go elsewhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-drain-'));
    const token = 'flexlm-drain-test-token-0123456789';
    writeFileSync(join(dir, 'admin.token'), `${token}\n`);
    try {
      const admin = `admin: { listen: "127.0.0.1:0", token_file: "${join(dir, 'admin.token')}" }`;
      const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['balance: roundrobin', 'stick: source', 'check: { type: status, inter: 1s }'], {}, [admin]);
      const client = { host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.2' };
      const lmgrd = await askLmgrd(client);
      const status = await proxy.status();
      const server = status.backends[0]!.servers.find((s) => s.total === 1)!.name;
      const other = server === 'a' ? 'b' : 'a';
      const res = await fetch(`${proxy.adminUrl}/admin/backends/licenses/servers/${server}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"state":"drain"}' });
      expect(res.status).toBe(200);
      expect((await proxy.server('licenses', server)).state).toMatch(/^DRAIN/);

      const checkout = await vendorCheckout(client, lmgrd);
      const counted = await proxy.server('licenses', server);
      await checkout.vendor.close();
      expect([checkout.granted, checkout.detail.replace(/-\d+$/, '')]).toEqual([true, server]);
      // The session is counted on the drained server, as any other.
      expect([counted.active, counted.total]).toEqual([1, 2]);
      // Drain means no new checkouts: the same client's next one, and a new client's, go to the other.
      expect((await flexlmCheckout(client)).server).toBe(other);
      expect((await flexlmCheckout({ ...client, localAddress: '127.0.0.3' })).server).toBe(other);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the admin shows and clears the stick table (ctl stick / unstick)', { timeout: 60_000 }, () => {
  it('lists which server each client is stuck to; unstick by client re-balances that client only, by server the clients stuck to it, leaving open sessions be', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-unstick-'));
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, 'flexlm-unstick-test-token-0123456789\n');
    try {
      const admin = `admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }`;
      // b takes no client until the admin gives it a weight, so both clients are stuck to a.
      const { lmgrdPort, proxy } = await startFlexlmLab(['a', 'b'], ['balance: roundrobin', 'stick: source', 'check: { type: status, inter: 1s }'], { b: 'weight: 0' }, [admin]);
      const ctl = (...args: string[]) => runCli(['ctl', '--url', proxy.adminUrl, '--token-file', tokenFile, ...args]);
      const serverOf = async (localAddress: string): Promise<string | null> => (await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress })).server;
      const table = async (): Promise<{ client: string; server: string; sessions: number; since: string; age_s: number; expires_in_s: number | null }[]> => {
        const r = await ctl('stick', 'licenses', '--json');
        expect(r.code, r.stderr).toBe(0);
        return (JSON.parse(r.stdout) as { entries: [] }).entries;
      };

      const startedAt = Date.now();
      expect(await serverOf('127.0.0.2')).toBe('a');
      const holder = await flexlmSession({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.0.3' });
      try {
        expect(holder.server).toBe('a');
        // From now on b gets 256 of every 257 new placements; the stuck clients stay on a.
        expect((await ctl('set', 'licenses/b', 'weight', '256')).code).toBe(0);
        expect(await serverOf('127.0.0.2')).toBe('a');
        await waitFor(async () => (await proxy.server('licenses', 'a')).active === 1, { timeoutMs: 5000, what: 'only the held session open on a' });

        const entries = await table();
        expect(entries.map((e) => [e.client, e.server, e.sessions])).toEqual([['127.0.0.3', 'a', 1], ['127.0.0.2', 'a', 0]]);
        const [held, idle] = entries as [(typeof entries)[0], (typeof entries)[0]];
        expect(held.expires_in_s).toBeNull(); // lasts while its license is held
        expect(idle.expires_in_s).toBeGreaterThan(8 * 3600 - 60); // the default stick_ttl, 8 h
        expect(idle.expires_in_s).toBeLessThanOrEqual(8 * 3600);
        expect(Date.parse(idle.since)).toBeGreaterThanOrEqual(startedAt - 1000);
        expect(Date.parse(idle.since)).toBeLessThanOrEqual(Date.now());
        const shown = await ctl('stick', 'licenses');
        expect(shown.stdout.split('\n')[0]).toMatch(/^CLIENT\s+SERVER\s+SESSIONS\s+STUCK FOR\s+EXPIRES IN$/);
        expect(shown.stdout).toMatch(/\n127\.0\.0\.3\s+a\s+1\s+\d+s\s+held by sessions\n127\.0\.0\.2\s+a\s+0\s+\d+s\s+7h5\dm\n/);
        expect((await ctl('stick', 'licenses', '::ffff:127.0.0.2')).stdout).toMatch(/^CLIENT.*\n127\.0\.0\.2\s+a\s+0\s/);
        expect((await ctl('stick', 'licenses', '127.0.0.9')).stdout).toBe('licenses: no entry for 127.0.0.9: its next connection is balanced afresh\n');
        const notAddress = await ctl('stick', 'licenses', 'host.example');
        expect([notAddress.code, notAddress.stderr]).toEqual([1, 'licgate ctl: refused (HTTP 400): "client": expected an IP address like 10.1.2.3 or 2001:db8::5, found "host.example"\n']);

        const byClient = await ctl('unstick', 'licenses', '127.0.0.2');
        expect([byClient.code, byClient.stdout]).toEqual([0, 'licenses: cleared 1 entry (client 127.0.0.2); open sessions stay, the next connections are balanced afresh\n']);
        expect(await serverOf('127.0.0.2')).toBe('b');
        expect(await serverOf('127.0.0.3')).toBe('a');
        expect((await table()).map((e) => [e.client, e.server])).toEqual([['127.0.0.2', 'b'], ['127.0.0.3', 'a']]);

        const byServer = await ctl('unstick', 'licenses', '--server', 'a');
        expect([byServer.code, byServer.stdout]).toEqual([0, 'licenses: cleared 1 entry (clients stuck to a); open sessions stay, the next connections are balanced afresh\n']);
        expect((await table()).map((e) => [e.client, e.server])).toEqual([['127.0.0.2', 'b']]);
        // The license held on a is not touched.
        expect((await proxy.server('licenses', 'a')).active).toBe(1);
        expect(await holder.vendor.request('HELLO')).toMatch(/\S/);
      } finally {
        await holder.vendor.close();
        holder.vendor.destroy();
      }
      // Its session ended after its entry was cleared: no entry comes back, and it is balanced afresh.
      await waitFor(async () => (await proxy.server('licenses', 'a')).active === 0, { timeoutMs: 5000, what: "the holder's session on a to end" });
      expect((await table()).map((e) => [e.client, e.server, e.sessions])).toEqual([['127.0.0.2', 'b', 0]]);
      expect(await serverOf('127.0.0.3')).toBe('b');

      const all = await ctl('unstick', 'licenses', '--all');
      expect([all.code, all.stdout]).toEqual([0, 'licenses: cleared 2 entries (every client); open sessions stay, the next connections are balanced afresh\n']);
      expect((await ctl('stick', 'licenses')).stdout).toBe('licenses: no client is stuck to a server\n');
      // JSON log lines are written in batches, flushed every second.
      const logged = await waitFor(() => {
        const lines = proxy.logs.filter((l) => String(l.msg).startsWith('admin: stick table licenses: cleared'));
        return lines.length >= 3 && lines;
      }, { timeoutMs: 5000, what: 'the three clears logged' });
      expect(logged.map((l) => [l.msg, l.cleared, l.client ?? l.server ?? null])).toEqual([
        ['admin: stick table licenses: cleared 1 entry (client 127.0.0.2); their next connections are balanced afresh', 1, '127.0.0.2'],
        ['admin: stick table licenses: cleared 1 entry (server a); their next connections are balanced afresh', 1, 'a'],
        ['admin: stick table licenses: cleared 2 entries (every entry); their next connections are balanced afresh', 2, null],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
