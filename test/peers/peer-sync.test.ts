import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { StickTable } from '../../src/balance/stick-table.js';
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

/** A saved stick entry, its times on this process's performance.now() (the state file has Unix ms). */
type Saved = { client: string; server: string; expires: number; since: number };

/**
 * One host's PeerSync with its own model, listening on 127.0.0.1:me and pushing to 127.0.0.1:other;
 * `restored`: its table as a restart with admin.state_file starts it, before it connects.
 */
async function host(token: string, me: number, other: number, ttl = '1h', restored: Saved[] = []) {
  const config = (servers: string) => loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "127.0.0.1:${me}", remotes: ["127.0.0.1:${other}"], token_file: ${token} }
backends:
  - { name: licenses, stick: source, stick_ttl: ${ttl}, check: { type: none }, servers: [${servers}] }
`);
  const cfg = config('{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }');
  let model = new Model(cfg);
  const now = performance.now();
  model.backend('licenses')!.stick!.restore(restored.map((e) => ({ client: e.client, server: e.server, expiresIn: e.expires - now, sinceAgo: now - e.since })), now);
  const sync = new PeerSync(() => model, pino({ level: 'silent' }));
  await sync.start(cfg.peers!, TOKEN, {});
  open.push(() => sync.close());
  /** What a reload to `servers` (and `newToken`, read again from token_file) does to the model and the peers (reload.ts: adopt, hand over, configure). */
  const reload = (servers: string, newToken = TOKEN): void => {
    const next = config(servers);
    const m = new Model(next);
    adoptServers(model, m);
    handOverBackends(model, m);
    model = m;
    sync.configure(next.peers!, newToken, null);
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

  it('counts an entry refused for a deletion marker here as unstuck, not as kept', async () => {
    const { a, b } = await pair('1h');
    // A unsticks a client it has no entry for; B's entry for it was placed a minute before (a
    // split brain), and B pushes it before A's marker reaches B.
    a.table.delete('10.1.0.1');
    b.table.set('10.1.0.1', 'a', performance.now() - 60_000);
    // Then one B places now, which A takes: once it is in, so is the line before it.
    b.table.set('10.1.0.2', 'a');
    await waitFor(() => a.table.get('10.1.0.2') === 'a', { timeoutMs: 5000, what: "B's second entry on A" });
    expect(a.table.get('10.1.0.1'), "A's entry for the client it unstuck").toBeUndefined();
    expect(a.sync.status()).toMatchObject({ incoming: [{ peer: '127.0.0.1', received: 2, applied: 1, kept: 0, unstuck: 1 }] });
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

  it('no longer pushes the marker of a server unstuck before a reload removed it: the other host, reloaded too, would skip it at each reconnect', async () => {
    const { a, b } = await pair('1h');
    a.table.forgetServer('b');
    await waitFor(() => b.table.serverUnstuckAgo('b') !== undefined, { timeoutMs: 5000, what: "A's marker for b on B" });
    a.reload('{ name: a, address: "10.0.0.11:27000" }');
    b.reload('{ name: a, address: "10.0.0.11:27000" }');
    // What each host's full push sends at the next reconnect (PeerPusher.connected takes marks()).
    expect([a.sync.marks('licenses').servers, b.sync.marks('licenses').servers], "A's and B's server markers").toEqual([[], []]);
  });

  it("a reload that moves the listener to another local address keeps the count of entries sent to a remote still listed (licgate_peer_updates_total must not go back)", async () => {
    const token = tokenFile();
    const [pa, pa2, pb] = [await freePort(), await freePort(), await freePort()];
    const config = (me: string, remote: string) => loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "${me}", remotes: ["${remote}"], token_file: ${token} }
backends:
  - { name: licenses, stick: source, check: { type: none }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
`);
    const start = async (cfg: ReturnType<typeof config>) => {
      const model = new Model(cfg);
      const sync = new PeerSync(() => model, pino({ level: 'silent' }));
      await sync.start(cfg.peers!, TOKEN, {});
      open.push(() => sync.close());
      return { model, sync };
    };
    const a = await start(config(`127.0.0.1:${pa}`, `127.0.0.2:${pb}`));
    const b = await start(config(`127.0.0.2:${pb}`, `127.0.0.1:${pa}`));
    a.model.backend('licenses')!.stick!.set('10.1.0.1', 'a');
    a.model.backend('licenses')!.stick!.set('10.1.0.2', 'a');
    await waitFor(() => b.model.backend('licenses')!.stick!.size === 2, { timeoutMs: 10_000, what: "A's entries on B" });
    const sentBefore = [...a.sync.pushers.values()][0]!.sent;
    expect(sentBefore).toBe(2);
    // Pushing from 127.0.0.4 now: a new connection from the new address.
    const moved = config(`127.0.0.4:${pa2}`, `127.0.0.2:${pb}`);
    const l = a.sync.buildListener(moved.peers!);
    await l.listen({});
    a.sync.configure(moved.peers!, TOKEN, l);
    expect([...a.sync.pushers.values()].map((p) => [p.name, p.sent]), 'sent to B after the move').toEqual([[`127.0.0.2:${pb}`, sentBefore]]);
  });

  it('a reload that keeps the token (other keys changed) keeps every connection; one that changes it ends those that proved the old one, in and out', async () => {
    const { a, b } = await pair('1h');
    await waitFor(() => a.sync.incoming.get('127.0.0.1')?.connected === 1, { timeoutMs: 5000, what: "B's pusher connected in to A" });
    const since = a.pusher.since;
    a.reload('{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }, { name: c, address: "10.0.0.13:27000" }');
    // Both ends are cut at the commit, synchronously: checked before any turn of the loop.
    expect([a.pusher.live, a.pusher.since, a.sync.incoming.get('127.0.0.1')!.cutOff], "A's pusher (live, since) and its connection in (cut off) after a reload with the same token").toEqual([true, since, 0]);

    const NEW = 'peer-sync-token-rotated-0123456789';
    a.reload('{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }', NEW);
    expect(a.pusher.live, "A's pusher right after the token changed").toBe(false);
    expect(a.sync.status()).toMatchObject({ incoming: [{ peer: '127.0.0.1', cut_off: 1, last_cut_off: 'the token changed here (peers.token_file): the connection proved the old one' }] });
    // B is told why its connection in ended (not "not reachable"); A's new proof is refused by B.
    await waitFor(() => a.pusher.state === 'auth-failed' && b.pusher.state === 'auth-failed', { timeoutMs: 5000, what: 'each pusher refused by the other host' });
    expect([a.pusher.lastError, b.pusher.lastError]).toEqual(['the remote refused our token: peers.token_file differs between the hosts', "the remote's token changed and refuses ours: peers.token_file differs between the hosts"]);
    expect(b.table.size, "B's table").toBe(0);
    a.table.set('10.1.0.1', 'b');
    b.table.set('10.1.0.2', 'a');

    const t0 = performance.now();
    b.reload('{ name: a, address: "10.0.0.11:27000" }, { name: b, address: "10.0.0.12:27000" }', NEW);
    await waitFor(() => a.pusher.live && b.pusher.live && b.table.get('10.1.0.1') === 'b' && a.table.get('10.1.0.2') === 'a', { timeoutMs: 6000, what: 'the hosts linked again, each with the entry the other made between the reloads' });
    // No backoff wait: B's pusher reconnects at the reload, and its connection in ends A's wait.
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a token change in the same reload as a removed remote or a moved listener counts each connection in that proved the old one once, and logs that count', async () => {
    const token = tokenFile();
    const [pa, pa2, pb, pc] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const logged: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void logged.push((JSON.parse(l) as { msg: string }).msg) });
    const config = (me: string, remotes: string[]) => loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "${me}", remotes: [${remotes.map((r) => `"${r}"`).join(', ')}], token_file: ${token} }
backends:
  - { name: licenses, stick: source, check: { type: none }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
`);
    // A on 127.0.0.1 with remotes B (127.0.0.2) and C (127.0.0.3), which push to A from their own address.
    const start = async (me: string, remotes: string[], l = pino({ level: 'silent' })) => {
      const cfg = config(me, remotes);
      const model = new Model(cfg);
      const sync = new PeerSync(() => model, l);
      await sync.start(cfg.peers!, TOKEN, {});
      open.push(() => sync.close());
      return sync;
    };
    const a = await start(`127.0.0.1:${pa}`, [`127.0.0.2:${pb}`, `127.0.0.3:${pc}`], log);
    const b = await start(`127.0.0.2:${pb}`, [`127.0.0.1:${pa}`]);
    await start(`127.0.0.3:${pc}`, [`127.0.0.1:${pa}`]);
    const inA = (peer: string) => a.incoming.get(peer);
    await waitFor(() => inA('127.0.0.2')?.connected === 1 && inA('127.0.0.3')?.connected === 1, { timeoutMs: 10_000, what: "B's and C's pushers connected in to A" });
    const cutLines = () => logged.filter((m) => m.startsWith('peers: the token changed'));

    // C removed and the token changed: C's connection is reset as not in remotes, and is not also
    // counted as cut off for the token.
    const NEW = 'peer-sync-token-rotated-0123456789';
    a.configure(config(`127.0.0.1:${pa}`, [`127.0.0.2:${pb}`]).peers!, NEW, null);
    expect([a.strays, inA('127.0.0.3')!.cutOff, inA('127.0.0.2')!.cutOff], 'A: reset at connect, cut off from C, cut off from B').toEqual([1, 0, 1]);
    expect(cutLines().at(-1), "A's token line after C was removed").toMatch(/^peers: the token changed: cut off 1 connection\(s\) in that proved the old one \(from 127\.0\.0\.2\),/);

    // B takes the new token too and links again; then A moves its listener and changes the token again.
    const bCfg = config(`127.0.0.2:${pb}`, [`127.0.0.1:${pa}`]);
    b.configure(bCfg.peers!, NEW, null);
    await waitFor(() => [...b.pushers.values()][0]!.live, { timeoutMs: 10_000, what: "B's pusher connected to A with the new token" });
    const moved = config(`127.0.0.1:${pa2}`, [`127.0.0.2:${pb}`]);
    const l = a.buildListener(moved.peers!);
    await l.listen({});
    a.configure(moved.peers!, `${NEW}-again`, l);
    expect(inA('127.0.0.2')!.cutOff, "A's cut off from B after the moved listener's token change").toBe(2);
    expect(cutLines().at(-1), "A's token line after the moved listener").toMatch(/^peers: the token changed: cut off 1 connection\(s\) in that proved the old one \(from 127\.0\.0\.2\),/);
    expect(cutLines(), 'one token line per token change').toHaveLength(2);
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

  /**
   * Host B goes away (a reboot) holding A's `clients` and `onlyOnB` (placed a minute before, while the
   * link was down: a split brain); A unsticks with `unstick` meanwhile; B comes back with what its
   * state file saved, plus `after`: entries B placed after the unstick. Resolves once each host has
   * had the other's whole table (a last entry of each on the other).
   */
  async function awayAndBack(clients: Record<string, string>, onlyOnB: Record<string, string>, unstick: (a: StickTable) => void, after: Record<string, string>) {
    const token = tokenFile();
    const ports = [await freePort(), await freePort()] as const;
    const a = await host(token, ports[0], ports[1]);
    for (const [c, s] of Object.entries(clients)) a.table.set(c, s);
    const b = await host(token, ports[1], ports[0]);
    await waitFor(() => a.pusher.live && b.pusher.live && Object.keys(clients).every((c) => b.table.get(c) !== undefined), { timeoutMs: 10_000, what: "A's entries on B" });
    const saved: Saved[] = Object.keys(clients).map((c) => ({ client: c, ...b.table.entry(c)! }));
    const t0 = performance.now();
    for (const [c, s] of Object.entries(onlyOnB)) saved.push({ client: c, server: s, expires: t0 + 3_500_000, since: t0 - 60_000 });
    await b.sync.close();
    await waitFor(() => !a.pusher.live, { timeoutMs: 10_000, what: "A's pusher to notice B gone" });
    unstick(a.table);
    // The placements after it: 50 ms later, well over what the lines' rounding and the wire move them.
    const at = performance.now();
    await waitFor(() => performance.now() > at + 50, { timeoutMs: 1000, what: '50 ms' });
    // B's last line: restore() takes them in expiry order, and the full push in table order.
    const t1 = performance.now();
    for (const [c, s] of Object.entries({ ...after, '10.9.9.8': 'b' })) saved.push({ client: c, server: s, expires: t1 + 3_600_000, since: t1 });
    const b2 = await host(token, ports[1], ports[0], '1h', saved);
    // A's last line: a change once its full push to B is out (it went in the turn A's pusher connected).
    await waitFor(() => a.pusher.live, { timeoutMs: 10_000, what: "A's pusher connected to B again" });
    a.table.set('10.9.9.9', 'a');
    await waitFor(() => b2.table.get('10.9.9.9') === 'a' && a.table.get('10.9.9.8') === 'b', { timeoutMs: 10_000, what: "each host's whole table on the other" });
    return { a: a.table, b: b2.table };
  }

  const servers = (t: StickTable, clients: string[]): (string | undefined)[] => clients.map((c) => t.get(c));

  it('drops on a host that was away the entries unstuck while it was (one client, a server), and does not take them back from it', async () => {
    const { a, b } = await awayAndBack(
      { '10.1.0.1': 'a', '10.1.0.2': 'b', '10.1.0.3': 'b', '10.1.0.4': 'a' },
      {},
      (t) => {
        t.delete('10.1.0.1');
        t.forgetServer('b');
      },
      { '10.1.0.5': 'b' },
    );
    // A keeps what it unstuck unstuck: B's saved copies placed before the unstick are refused.
    expect(servers(a, ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5']), 'A: 10.1.0.1 to 10.1.0.5').toEqual([undefined, undefined, undefined, 'a', 'b']);
    // B dropped them on A's markers, and kept what it placed after the unstick.
    expect(servers(b, ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5']), 'B: 10.1.0.1 to 10.1.0.5').toEqual([undefined, undefined, undefined, 'a', 'b']);
  });

  it('drops on a host that was away the whole table cleared while it was, except what it placed after', async () => {
    const { a, b } = await awayAndBack({ '10.1.0.1': 'a', '10.1.0.2': 'b' }, {}, (t) => void t.clear(), { '10.1.0.5': 'b' });
    expect(servers(a, ['10.1.0.1', '10.1.0.2', '10.1.0.5']), 'A').toEqual([undefined, undefined, 'b']);
    expect(servers(b, ['10.1.0.1', '10.1.0.2', '10.1.0.5']), 'B').toEqual([undefined, undefined, 'b']);
  });

  it('split brain: an unstick of a client removes the other host\'s entry only when it names the same server; a server\'s unstick removes the other host\'s entries to it that this host never had', async () => {
    // 10.1.0.1: a on A, b on B (each placed it while the VRRP adverts were lost). 10.1.0.2 and
    // 10.1.0.3: on B only, to a; 10.1.0.4: on B only, to b, unstuck on A, which had no entry for it.
    const { a, b } = await awayAndBack(
      { '10.1.0.6': 'b' },
      { '10.1.0.1': 'b', '10.1.0.2': 'a', '10.1.0.3': 'a', '10.1.0.4': 'b' },
      (t) => {
        t.set('10.1.0.1', 'a');
        t.delete('10.1.0.1');
        t.forgetServer('a');
        t.delete('10.1.0.4');
      },
      {},
    );
    expect(servers(b, ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.6']), 'B: 10.1.0.1 to 10.1.0.4, 10.1.0.6').toEqual(['b', undefined, undefined, undefined, 'b']);
    expect(servers(a, ['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.6']), 'A: 10.1.0.1 to 10.1.0.4, 10.1.0.6').toEqual(['b', undefined, undefined, undefined, 'b']);
  });

  it('refuses a version-1 peer with a line that says to upgrade both, in /status and the log', async () => {
    // A version-1 listener greets with "LICGATE-PEERS 1"; a pusher that answered would get "NO auth"
    // (the proof names the version).
    const v1 = createServer((sock) => {
      sock.on('error', () => {});
      sock.on('data', () => sock.end('NO auth\n'));
      sock.write('LICGATE-PEERS 1 0123456789abcdef0123456789abcdef\n');
    });
    await new Promise<void>((resolve) => v1.listen(0, '127.0.0.1', resolve));
    open.push(() => new Promise<void>((resolve) => v1.close(() => resolve())));
    const logged: { msg: string; level: number }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l) as { msg: string; level: number }) });
    const port = (v1.address() as AddressInfo).port;
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "127.0.0.1:${await freePort()}", remotes: ["127.0.0.1:${port}"], token_file: ${tokenFile()} }
backends:
  - { name: licenses, stick: source, check: { type: none }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
`);
    const model = new Model(cfg);
    const sync = new PeerSync(() => model, log);
    await sync.start(cfg.peers!, TOKEN, {});
    open.push(() => sync.close());
    const p = [...sync.pushers.values()][0]!;
    await waitFor(() => p.state !== 'connecting', { timeoutMs: 10_000, what: 'the handshake with the version-1 listener to end' });
    const why = 'the other host speaks peers version 1, this one 2; upgrade both';
    expect(p.lastError).toBe(why);
    expect(sync.status()).toMatchObject({ remotes: [{ remote: `127.0.0.1:${port}`, connected: false, state: 'auth-failed', last_error: why }] });
    expect(logged.filter((l) => l.msg.includes(why)).map((l) => [l.level, l.msg])).toEqual([[50, `peers: 127.0.0.1:${port} refused: ${why}; retrying every few seconds, quietly`]]);
  });
});
