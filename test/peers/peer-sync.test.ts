import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Model } from '../../src/model/model.js';
import { PeerSync } from '../../src/peers/peer-sync.js';
import { adoptServers, handOverBackends } from '../../src/reload.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'peer-sync-token-0123456789abcdef';
const open: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of open.splice(0).reverse()) await f();
});

/** A token file in a fresh directory (removed after the test). */
function tokenFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'peer-sync-'));
  open.push(() => rmSync(dir, { recursive: true, force: true }));
  const token = join(dir, 'token');
  writeFileSync(token, `${TOKEN}\n`, { mode: 0o600 });
  return token;
}

/** One host's PeerSync with its own model, listening on 127.0.0.1:me and pushing to 127.0.0.1:other. */
async function host(token: string, me: number, other: number, ttl = '1h') {
  const config = (servers: string) => loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "127.0.0.1:${me}", remotes: ["127.0.0.1:${other}"], token_file: ${token} }
backends:
  - { name: licenses, stick: source, stick_ttl: ${ttl}, check: { type: none }, servers: [${servers}] }
`);
  const cfg = config('{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }');
  let model = new Model(cfg);
  const sync = new PeerSync(() => model, pino({ level: 'silent' }));
  await sync.start(cfg.peers!, TOKEN, {});
  open.push(() => sync.close());
  /** What a reload to `servers` does to the model and the peers (reload.ts: adopt, hand over, configure). */
  const reload = (servers: string): void => {
    const next = config(servers);
    const m = new Model(next);
    adoptServers(model, m);
    handOverBackends(model, m);
    model = m;
    sync.configure(next.peers!, TOKEN, null);
  };
  return { table: model.backend('licenses')!.stick!, sync, pusher: [...sync.pushers.values()][0]!, reload };
}

/** Two hosts in this process, pushing to each other on 127.0.0.1. */
async function pair(ttl: string) {
  const token = tokenFile();
  const ports = [await freePort(), await freePort()] as const;
  const a = await host(token, ports[0], ports[1], ttl);
  const b = await host(token, ports[1], ports[0], ttl);
  await waitFor(() => a.pusher.live && b.pusher.live, { timeoutMs: 10_000, what: 'both pushers connected' });
  return { a, b };
}

describe('PeerSync', () => {
  it('pushes its table to a remote that comes back as soon as that remote connects in, not after the backoff', async () => {
    const token = tokenFile();
    const [pa, pb] = [await freePort(), await freePort()];
    // B's port at first closes every connection (B stopped): A's pusher tries at 0, 0.5, 1.5 and
    // 3.5 s, and after the fourth would wait 4 s more.
    let attempts = 0;
    const down = createServer((sock) => {
      attempts++;
      sock.destroy();
    });
    await new Promise<void>((resolve) => down.listen(pb, '127.0.0.1', resolve));
    const a = await host(token, pa, pb);
    a.table.set('10.1.0.1', 'b');
    await waitFor(() => attempts >= 4, { timeoutMs: 8000, what: "A's fourth attempt at B's port" });
    await new Promise<void>((resolve) => down.close(() => resolve()));
    const b = await host(token, pb, pa);
    const back = performance.now();
    await waitFor(() => b.table.get('10.1.0.1') === 'b', { timeoutMs: 3000, what: "A's entry on B, pushed once B connected in" });
    expect(performance.now() - back).toBeLessThan(2000);
  });

  it('applies what the other side pushes without pushing it back, and a clear clears the other table', async () => {
    const { a, b } = await pair('1h');
    a.table.set('10.1.0.1', 'b');
    a.table.set('10.1.0.2', 'a');
    await waitFor(() => b.table.size === 2, { timeoutMs: 5000, what: "A's entries on B" });
    expect(b.table.get('10.1.0.1')).toBe('b');
    // B applied them and noted nothing: its pusher has sent no entry line.
    await new Promise(setImmediate);
    expect([b.pusher.sent, a.pusher.sent]).toEqual([0, 2]);
    a.table.clear();
    await waitFor(() => b.table.size === 0, { timeoutMs: 5000, what: "the clear on B" });
  });

  it("keeps the other side's copy of an entry held by a session alive past its first expiry, through the refresh pass", async () => {
    const { a, b } = await pair('2s');
    const t0 = performance.now();
    a.table.set('10.1.0.1', 'b', t0);
    a.table.sessionOpened('10.1.0.1');
    await waitFor(() => b.table.entry('10.1.0.1') !== undefined, { timeoutMs: 1500, what: "A's entry on B" });
    const first = b.table.entry('10.1.0.1')!.expires;
    // The pass sends the entry again once A's (held) entry outlives what B was told by over 1 s.
    await waitFor(async () => {
      await a.sync.refreshPass();
      return (b.table.entry('10.1.0.1')?.expires ?? 0) > first;
    }, { timeoutMs: 1900, intervalMs: 100, what: "the refreshed expiry on B" });
    await waitFor(() => performance.now() > first + 200, { timeoutMs: 3000, what: "B's first expiry to pass" });
    expect(b.table.get('10.1.0.1')).toBe('b');
  });

  it("keeps the other side's entries to a server a reload removed here: the other host may still serve it", async () => {
    // The admin reloads the backup host (A) first, its config without b; B holds the VIP, still
    // has b, and its clients hold licenses there.
    const { a, b } = await pair('1h');
    a.table.set('10.1.0.1', 'b');
    await waitFor(() => b.table.get('10.1.0.1') === 'b', { timeoutMs: 5000, what: "A's entry on B" });
    a.reload('{ name: a, address: "10.0.0.11:27000" }');
    expect(a.table.get('10.1.0.1')).toBeUndefined();
    // A marker after the reload: once B has it, B has had whatever the reload sent before it.
    a.table.set('10.1.0.2', 'a');
    await waitFor(() => b.table.get('10.1.0.2') === 'a', { timeoutMs: 5000, what: "A's marker entry on B" });
    expect(b.table.get('10.1.0.1'), "B's entry to b, which B still serves").toBe('b');
  });

  it("keeps the other side's copy of a held entry alive on its own when stick_ttl is shorter than a minute", async () => {
    // No refreshPass() called here: the pass runs on its own, often enough for a 4 s ttl.
    const { a, b } = await pair('4s');
    a.table.set('10.1.0.1', 'b');
    a.table.sessionOpened('10.1.0.1');
    await waitFor(() => b.table.entry('10.1.0.1') !== undefined, { timeoutMs: 3000, what: "A's entry on B" });
    const first = b.table.entry('10.1.0.1')!.expires;
    await waitFor(() => performance.now() > first + 1500, { timeoutMs: 8000, what: "B's first expiry to pass" });
    expect(b.table.get('10.1.0.1'), "B's copy 1.5 s past its first expiry").toBe('b');
  });
});
