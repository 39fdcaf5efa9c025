import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PEER_VERSION } from '../../src/peers/peer-codec.js';
import { flexlmCheckout } from '../helpers/flexlm-client.js';
import { freePort, startFlexlmSimulator, stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { runCli, startProxy, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Two licgate hosts of a keepalived pair share their stick tables (`peers`): a FlexLM client placed
 * on a server through one host meets the same server through the other after the VIP moves, instead
 * of a second license checked out on the other server. Host A's frontends are on 127.0.0.1, B's on
 * 127.0.2.1, the servers a and b on 127.0.1.1 and 127.0.1.2; the peers listen on 127.0.0.1.
 */
const TOKEN = 'peers-test-token-0123456789abcdef';
const ADMIN_TOKEN = 'peers-test-admin-0123456789abcdef';
const dirs: string[] = [];
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Pair {
  lmgrdPort: number;
  peerPorts: { a: number; b: number };
  files: { token: string; admin: string; state: { a: string; b: string } };
  yaml(host: 'a' | 'b', ports?: { a: number; b: number }): string;
  a: ProxyProcess;
  b: ProxyProcess;
}

/** `stateFiles`: each host keeps admin.state_file (files.state), so a restarted one restores its stick table. */
async function startPair(stateFiles = false): Promise<Pair> {
  const [lmgrdPort, vendorPort] = [await freePort(['127.0.0.1', '127.0.2.1', '127.0.1.1', '127.0.1.2']), await freePort(['127.0.0.1', '127.0.2.1', '127.0.1.1', '127.0.1.2'])];
  const peerPorts = { a: await freePort(), b: await freePort() };
  await startFlexlmSimulator({ name: 'a', host: '127.0.1.1', lmgrdPort, vendorPort });
  await startFlexlmSimulator({ name: 'b', host: '127.0.1.2', lmgrdPort, vendorPort });
  const dir = mkdtempSync(join(tmpdir(), 'licgate-peers-'));
  dirs.push(dir);
  const files = { token: join(dir, 'peers.token'), admin: join(dir, 'admin.token'), state: { a: join(dir, 'a.state'), b: join(dir, 'b.state') } };
  writeFileSync(files.token, `${TOKEN}\n`, { mode: 0o600 });
  writeFileSync(files.admin, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  const yaml = (host: 'a' | 'b', ports = peerPorts): string => {
    const ip = host === 'a' ? '127.0.0.1' : '127.0.2.1';
    const [mine, other] = host === 'a' ? [ports.a, ports.b] : [ports.b, ports.a];
    return `admin: { listen: "127.0.0.1:0", token_file: "${files.admin}"${stateFiles ? `, state_file: "${files.state[host]}"` : ''} }
peers:
  listen: 127.0.0.1:${mine}
  remotes: [127.0.0.1:${other}]
  token_file: ${files.token}
frontends:
  - { name: lmgrd, listen: "${ip}:${lmgrdPort}", backend: licenses }
  - { name: vendor, listen: "${ip}:${vendorPort}", backend: licenses, server_port: ${vendorPort} }
backends:
  - name: licenses
    balance: roundrobin
    stick: source
    check: { type: status, inter: 1s }
    servers:
      - { name: a, address: "127.0.1.1:${lmgrdPort}" }
      - { name: b, address: "127.0.1.2:${lmgrdPort}" }
`;
  };
  const [a, b] = [await startProxy(yaml('a')), await startProxy(yaml('b'))];
  return { lmgrdPort, peerPorts, files, yaml, a, b };
}

const entries = async (p: ProxyProcess): Promise<number | null> => (await p.backend('licenses')).stick_entries;
const viaA = (client: string, pair: Pair) => flexlmCheckout({ host: '127.0.0.1', lmgrdPort: pair.lmgrdPort, localAddress: client });
const viaB = (client: string, pair: Pair) => flexlmCheckout({ host: '127.0.2.1', lmgrdPort: pair.lmgrdPort, localAddress: client });

/** The other host's pusher has connected and proved the token (A's /status says so for B's). */
async function synced(p: ProxyProcess): Promise<void> {
  await waitFor(async () => ((await p.get('/status')).json as { peers?: { remotes: { connected: boolean }[] } }).peers?.remotes.every((r) => r.connected), { timeoutMs: 10_000, what: 'the pusher to its remote connected' });
}

const peersOfB = async (pair: Pair) => ((await pair.b.get('/status')).json as { peers: { incoming: { peer: string; connected: boolean }[] } }).peers;

/** A raw peer connection from the test: the greeting, then our AUTH line proved with `token`. */
async function rawPeer(port: number, token: string): Promise<{ sock: Socket; lines: string[]; closed: Promise<void> }> {
  const sock = connect({ host: '127.0.0.1', port });
  const lines: string[] = [];
  let buf = '';
  sock.setEncoding('latin1').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.on('error', () => {});
  const greeting = await waitFor(() => lines[0], { timeoutMs: 5000, what: 'the peers greeting' });
  const nonce = greeting.split(' ')[2]!;
  const mine = '0123456789abcdef0123456789abcdef';
  sock.write(`AUTH ${mine} ${createHmac('sha256', token).update(`LICGATE-PEERS ${PEER_VERSION} push 127.0.0.1 ${port} ${nonce}`).digest('hex')}\n`);
  return { sock, lines, closed };
}

/**
 * A pair with state files: 127.0.0.2 on a and 127.0.0.3 on b through A, both in B's state file;
 * then B stops (a reboot) and the admin unsticks 127.0.0.3 on A, its server going away.
 */
async function unstuckWhileBDown(): Promise<Pair> {
  const pair = await startPair(true);
  await synced(pair.a);
  await synced(pair.b);
  expect((await viaA('127.0.0.2', pair)).server).toBe('a');
  expect((await viaA('127.0.0.3', pair)).server).toBe('b');
  const savedOnB = (): string => (existsSync(pair.files.state.b) ? readFileSync(pair.files.state.b, 'utf8') : '');
  await waitFor(() => savedOnB().includes('"127.0.0.2"') && savedOnB().includes('"127.0.0.3"'), { timeoutMs: 15_000, what: "A's two entries in B's state file" });
  await pair.b.stop();
  const unstick = await runCli(['ctl', '--url', pair.a.adminUrl, '--token-file', pair.files.admin, 'unstick', 'licenses', '127.0.0.3']);
  expect(unstick.code, unstick.stderr).toBe(0);
  return pair;
}

/** Entry lines `p` received from its peers since it started. */
const receivedBy = async (p: ProxyProcess): Promise<number> => ((await p.get('/status')).json as { peers: { incoming: { received: number }[] } }).peers.incoming.reduce((n, i) => n + i.received, 0);

describe('peers: stick tables shared by the hosts of a keepalived pair', () => {
  it('sends a client stuck to the second server through A to that server through B, drops it on B at unstick on A, and gives a restarted B the whole table', async () => {
    const pair = await startPair();
    await synced(pair.a);
    await synced(pair.b);
    // Round-robin on A: the first client to a, the second to b.
    expect((await viaA('127.0.0.2', pair)).server).toBe('a');
    expect((await viaA('127.0.0.3', pair)).server).toBe('b');
    await waitFor(async () => (await entries(pair.b)) === 2, { timeoutMs: 10_000, what: "A's two entries on B" });
    // B's own first pick would be a; the shared entry sends the client to b.
    expect((await viaB('127.0.0.3', pair)).server).toBe('b');
    expect((await viaB('127.0.0.2', pair)).server).toBe('a');
    // What an admin sees: A pushing to B, B applying what A sent.
    expect((await pair.a.get('/metrics')).body).toContain(`licgate_peer_connected{peer="127.0.0.1:${pair.peerPorts.b}"} 1`);
    expect((await pair.b.get('/metrics')).body).toMatch(/licgate_peer_updates_total\{peer="127\.0\.0\.1",direction="applied"\} [2-9]/);
    expect(((await pair.b.get('/status')).json as { peers: unknown }).peers).toMatchObject({ incoming: [{ peer: '127.0.0.1', connected: true, skipped: 0, cut_off: 0 }] });

    const unstick = await runCli(['ctl', '--url', pair.a.adminUrl, '--token-file', pair.files.admin, 'unstick', 'licenses', '127.0.0.3']);
    expect(unstick.code, unstick.stderr).toBe(0);
    await waitFor(async () => (await entries(pair.b)) === 1, { timeoutMs: 10_000, what: 'the unstuck entry gone from B' });

    // B restarts with an empty table; A pushes its whole table when B's listener is back.
    await pair.b.stop();
    for (const c of ['127.0.0.4', '127.0.0.5', '127.0.0.6']) await viaA(c, pair);
    const b2 = await startProxy(pair.yaml('b'));
    await waitFor(async () => (await entries(b2)) === 4, { timeoutMs: 15_000, what: "A's four entries on the restarted B" });
    for (const c of ['127.0.0.2', '127.0.0.4', '127.0.0.5', '127.0.0.6']) {
      const server = async (p: ProxyProcess): Promise<string | undefined> => ((await p.get(`/backends/licenses/stick-table?client=${c}`)).json as { entries: { server: string }[] }).entries[0]?.server;
      expect(await server(b2), c).toBe(await server(pair.a));
    }
  });

  it('does not take back from a host restored from its state file an entry unstuck while it was down, and drops it there', async () => {
    const pair = await unstuckWhileBDown();
    const b2 = await startProxy(pair.yaml('b'));
    // Its count now may already be 1: A's full push can be in before the first request.
    expect(b2.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('stick table of licenses restored')).map((l) => l.restored)).toEqual([2]);
    await waitFor(async () => (await receivedBy(pair.a)) >= 2, { timeoutMs: 15_000, what: "B's two restored entries sent to A" });
    expect(await entries(pair.a), "A's entries after B's whole table").toBe(1);
    await waitFor(async () => (await entries(b2)) === 1, { timeoutMs: 10_000, what: "the entry unstuck on A gone from B" });
    expect(((await b2.get('/backends/licenses/stick-table?client=127.0.0.2')).json as { entries: { server: string }[] }).entries.map((e) => e.server)).toEqual(['a']);
  });

  it('keeps its unsticks in its state file: restarted before the other host is back, it still refuses the entries it unstuck', async () => {
    const pair = await unstuckWhileBDown();
    await pair.a.stop();
    const a2 = await startProxy(pair.yaml('a'));
    expect(await entries(a2), "A's entries restored from its state file").toBe(1);
    const b2 = await startProxy(pair.yaml('b'));
    await waitFor(async () => (await receivedBy(a2)) >= 2, { timeoutMs: 15_000, what: "B's two restored entries sent to the restarted A" });
    expect(await entries(a2), "A's entries after B's whole table").toBe(1);
    await waitFor(async () => (await entries(b2)) === 1, { timeoutMs: 10_000, what: 'the entry unstuck on A gone from B' });
  });

  it('a reload that keeps peers keeps the connection; one that moves the listener, and the other host\'s reload to follow it, sync again', async () => {
    const pair = await startPair();
    await synced(pair.a);
    const remote = async (p: ProxyProcess) => ((await p.get('/status')).json as { peers: { remotes: { connected: boolean; since: string; entries_sent: number }[] } }).peers.remotes[0]!;
    const since = (await remote(pair.a)).since;
    const reloaded = async (p: ProxyProcess, n: number) => waitFor(() => p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload')).length === n && p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload')).at(-1), { timeoutMs: 10_000, what: `reload ${n}` });
    pair.a.reload(pair.yaml('a'));
    expect((await reloaded(pair.a, 1)).msg).toMatch(/: no changes$/);
    expect(await remote(pair.a)).toMatchObject({ connected: true, since });

    // B's listener moves; A still pushes to the old port until its own reload follows.
    const moved = { a: pair.peerPorts.a, b: await freePort() };
    pair.b.reload(pair.yaml('b', moved));
    expect((await reloaded(pair.b, 1)).msg).toContain('peers changed');
    await waitFor(async () => !(await remote(pair.a)).connected, { timeoutMs: 10_000, what: "A's pusher to lose B's old listener" });
    expect((await viaA('127.0.0.2', pair)).server).toBe('a');
    pair.a.reload(pair.yaml('a', moved));
    expect((await reloaded(pair.a, 2)).msg).toContain(`peers changed (remotes 127.0.0.1:${pair.peerPorts.b} -> 127.0.0.1:${moved.b})`);
    await waitFor(async () => (await entries(pair.b)) === 1, { timeoutMs: 10_000, what: "A's entry on B at its new listener" });
  });

  it('a rotated token cuts the links at the first reload, and the second host\'s reload links them again with nothing lost', async () => {
    const pair = await startPair();
    await synced(pair.a);
    await synced(pair.b);
    expect((await viaA('127.0.0.2', pair)).server).toBe('a');
    await waitFor(async () => (await entries(pair.b)) === 1, { timeoutMs: 10_000, what: "A's entry on B" });
    const peersOf = async (p: ProxyProcess) => ((await p.get('/status')).json as { peers: { remotes: { connected: boolean; state: string; last_error: string | null }[]; incoming: { connected: boolean; cut_off: number; last_cut_off: string | null }[] } }).peers;
    const lines = (p: ProxyProcess, text: string) => p.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes(text));
    const reloadLine = (p: ProxyProcess) => waitFor(() => lines(p, 'config reload').at(-1), { timeoutMs: 10_000, what: 'the reload line' });

    // The admin writes the new token file on both hosts (here the one file both read), reloads A, then B.
    writeFileSync(pair.files.token, 'peers-test-token-rotated-0123456789\n', { mode: 0o600 });
    pair.a.reload(pair.yaml('a'));
    expect((await reloadLine(pair.a)).msg).toContain('peers.token_file: a new token; the peers connections that proved the old one are cut off');
    // Each host's retries are refused by the other: B's connection in cut once for the rotation and
    // at least once more for its old token, A's pusher refused at least twice.
    await waitFor(async () => {
      const [a, b] = [await peersOf(pair.a), await peersOf(pair.b)];
      return a.remotes[0]!.state === 'auth-failed' && b.remotes[0]!.state === 'auth-failed' && a.incoming[0]!.cut_off >= 2 && b.incoming[0]!.cut_off >= 2;
    }, { timeoutMs: 15_000, what: 'each host refusing the other\'s retries' });
    expect(lines(pair.a, 'peers: the token changed: cut off 1 connection(s) in that proved the old one (from 127.0.0.1)')).toHaveLength(1);
    // Logged once each, as a token that differs is today, however many retries.
    expect(lines(pair.a, `peers: 127.0.0.1:${pair.peerPorts.b} refused: the remote refused our token`)).toHaveLength(1);
    expect(lines(pair.b, `peers: 127.0.0.1:${pair.peerPorts.a} refused: the remote's token changed and refuses ours`)).toHaveLength(1);
    expect(lines(pair.a, 'peers: cut off 127.0.0.1: wrong token')).toHaveLength(1);
    const shown = await runCli(['ctl', '--url', pair.a.adminUrl, 'peers']);
    expect(shown.code, 'ctl peers on A between the reloads').toBe(1);
    expect(shown.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${pair.peerPorts.b}\\s+auth-failed\\s+.*the remote refused our token`, 'm'));

    // Clients placed on either host between the reloads.
    expect((await viaA('127.0.0.3', pair)).server).toBe('b');
    expect((await viaB('127.0.0.4', pair)).server).toBe('a');
    expect([await entries(pair.a), await entries(pair.b)], 'A\'s and B\'s entries between the reloads').toEqual([2, 2]);

    const t0 = performance.now();
    pair.b.reload(pair.yaml('b'));
    await waitFor(async () => (await peersOf(pair.a)).remotes[0]!.connected && (await peersOf(pair.b)).remotes[0]!.connected, { timeoutMs: 10_000, what: 'A and B linked again' });
    // B's reload itself (the config read again) is in this time: its pusher does not wait out a backoff.
    expect(performance.now() - t0, 'ms from B\'s reload to both linked').toBeLessThan(2000);
    await waitFor(async () => (await entries(pair.a)) === 3 && (await entries(pair.b)) === 3, { timeoutMs: 10_000, what: 'three entries on each host' });
    const server = async (p: ProxyProcess, c: string): Promise<string | undefined> => ((await p.get(`/backends/licenses/stick-table?client=${c}`)).json as { entries: { server: string }[] }).entries[0]?.server;
    expect([await server(pair.b, '127.0.0.3'), await server(pair.a, '127.0.0.4')], "A's client on B, B's on A").toEqual(['b', 'a']);
  });

  it('cuts off a connected peer whose address a reload removed from remotes, and applies nothing it sends after', async () => {
    const pair = await startPair();
    await synced(pair.a);
    const raw = await rawPeer(pair.peerPorts.b, TOKEN);
    await waitFor(() => raw.lines.find((l) => l.startsWith('OK ')), { timeoutMs: 5000, what: 'OK from B' });
    let gone = false;
    void raw.closed.then(() => (gone = true));
    // B's other host is now 127.0.0.3 (A replaced): 127.0.0.1's connections must not push on.
    pair.b.reload(pair.yaml('b').replace(`remotes: [127.0.0.1:${pair.peerPorts.a}]`, `remotes: [127.0.0.3:${pair.peerPorts.a}]`));
    await waitFor(() => pair.b.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload') && l.msg.includes('peers changed')), { timeoutMs: 10_000, what: "B's reload" });
    if (!gone) raw.sock.write('S licenses 127.0.0.9 b 127.0.1.2:' + pair.lmgrdPort + ' 3600000 0\n');
    await waitFor(() => gone, { timeoutMs: 5000, what: 'B to cut off the peer from 127.0.0.1, no longer in its remotes' });
    await waitFor(async () => (await peersOfB(pair)).incoming.every((i) => !i.connected), { timeoutMs: 5000, what: "B's incoming peers all disconnected" });
    expect(await entries(pair.b)).toBe(0);
  });

  it('refuses a peer with the wrong token, logs it and applies nothing it sends', async () => {
    const pair = await startPair();
    const raw = await rawPeer(pair.peerPorts.b, 'not-the-token-0123456789abcdef');
    raw.sock.write('S licenses 127.0.0.9 b 127.0.1.2:1 3600000 0\n');
    await raw.closed;
    expect(raw.lines).toContain('NO auth');
    await waitFor(() => pair.b.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('peers: cut off 127.0.0.1: wrong token')), { timeoutMs: 5000, what: "B's log line about the wrong token" });
    expect(await entries(pair.b)).toBe(0);
  });

  it('cuts off a peer that sends garbage while the real peer keeps syncing', async () => {
    const pair = await startPair();
    await synced(pair.a);
    const raw = await rawPeer(pair.peerPorts.b, TOKEN);
    await waitFor(() => raw.lines.find((l) => l.startsWith('OK ')), { timeoutMs: 5000, what: 'OK from B' });
    raw.sock.write('GARBAGE \x00\x01 not a peers line\n');
    await raw.closed;
    await waitFor(() => pair.b.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('peers: cut off 127.0.0.1: expected an update line')), { timeoutMs: 5000, what: "B's log line about the garbage" });
    expect((await viaA('127.0.0.2', pair)).server).toBe('a');
    expect((await viaA('127.0.0.3', pair)).server).toBe('b');
    await waitFor(async () => (await entries(pair.b)) === 2, { timeoutMs: 10_000, what: "A's entries on B after the garbage peer" });
    expect((await viaB('127.0.0.3', pair)).server).toBe('b');
  });
});
