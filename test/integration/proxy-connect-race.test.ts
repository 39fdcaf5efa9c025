import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { askLmgrd, vendorCheckout, type LmgrdReply } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { helloOnce } from '../helpers/license-client.js';
import { startProxy, startSimulator, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { sample } from '../helpers/prom-text.js';
import { fillAcceptQueue, startSilentListener, type SilentListener } from '../helpers/silent-listener.js';
import { waitFor } from '../helpers/wait-for.js';

// connect_race (src/proxy/connector.ts): a connect still unanswered after 250 ms is raced by one to
// the next server. The "primary" here is black-holed: a stopped listener whose accept queue is full,
// so SYNs get no answer, as behind a dead path.

const listeners: SilentListener[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await stopAll();
  await stopFlexlmSimulators();
  await Promise.all(listeners.splice(0).map((l) => l.stop()));
});

async function silentServer(): Promise<SilentListener> {
  const l = await startSilentListener();
  listeners.push(l);
  return l;
}

/** licgate with one frontend and the backend "licenses"; `backend` holds its options and servers (YAML, indented 4). */
function startRaceProxy(backend: string): Promise<ProxyProcess> {
  // shutdown_delay 0: nothing here tests the stop, and the default would add 3 s to each test.
  return startProxy(`
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
${backend}`);
}

/** A black-holed primary and a live backup (a simulator, backup tier). */
async function setup(backendExtra: string, check = '{ type: none }'): Promise<{ proxy: ProxyProcess; primary: SilentListener }> {
  const primary = await silentServer();
  const backup = await startSimulator('backup');
  const proxy = await startRaceProxy(`    check: ${check.replace('BACKUP_PORT', String(backup.port))}
${backendExtra}
    servers:
      - { name: primary, address: "127.0.0.1:${primary.port}" }
      - { name: backup, address: "127.0.0.1:${backup.port}", backup: true }
`);
  return { proxy, primary };
}

/** A raw client connection through the proxy, held until the test ends. */
function open(port: number): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  sockets.push(s);
  return s;
}

async function timedHello(port: number): Promise<{ by: string; ms: number }> {
  const t0 = performance.now();
  const by = await helloOnce(port, { timeoutMs: 20_000 });
  return { by, ms: performance.now() - t0 };
}

async function races(proxy: ProxyProcess, server: string, frontend = 'lmgrd'): Promise<number> {
  return sample((await proxy.get('/metrics')).body, 'licgate_connect_races_total', { frontend, backend: 'licenses', server }) ?? 0;
}

describe('connect_race', () => {
  it('a black-holed server costs a new session the race delay, not connect_timeout', async () => {
    const { proxy } = await setup('    connect_timeout: 10s');
    const r = await timedHello(proxy.port);
    expect(r.by).toBe('backup');
    // It did try the primary first (waited for the race delay), and did not wait for connect_timeout.
    expect(r.ms).toBeGreaterThanOrEqual(240);
    expect(r.ms).toBeLessThan(5000);
    expect(await races(proxy, 'primary')).toBe(1);
    // The backup's connect time is learned; the primary never answered.
    expect((await proxy.server('licenses', 'backup')).connect_ms).toBeLessThan(250);
    expect((await proxy.server('licenses', 'primary')).connect_ms).toBeNull();
    // JSON log lines are written in batches: wait for the line rather than read the logs at once.
    const line = await waitFor(() => proxy.logs.find((l) => l.msg === 'connect to server unanswered; racing the next server'), { timeoutMs: 5000, intervalMs: 20, what: 'the race log line' });
    expect(line).toMatchObject({ server: 'primary', next: 'backup', after_ms: 250 });
    // The primary's attempt goes on (connect_timeout 10 s) and is overdue, so with check type none
    // keeping the primary UP, new sessions still go straight to the backup: not tried, not raced.
    expect((await proxy.server('licenses', 'primary')).connects_overdue).toBe(1);
    expect(sample((await proxy.get('/metrics')).body, 'licgate_server_connects_overdue', { backend: 'licenses', server: 'primary' })).toBe(1);
    expect(await timedHello(proxy.port)).toMatchObject({ by: 'backup' });
    expect(await timedHello(proxy.port)).toMatchObject({ by: 'backup' });
    expect(await races(proxy, 'primary')).toBe(1);
    expect((await proxy.server('licenses', 'primary')).active).toBe(1); // only the first session's attempt
  }, 30_000);

  it('connect_race: 0 turns it off: the session waits connect_timeout, then is retried', async () => {
    const { proxy } = await setup('    connect_timeout: 1500ms\n    connect_race: 0');
    const r = await timedHello(proxy.port);
    expect(r.by).toBe('backup');
    expect(r.ms).toBeGreaterThanOrEqual(1490);
    expect(await races(proxy, 'primary')).toBe(0);
  }, 30_000);

  it('races come out of the retries budget: with retries 0 there is no second attempt', async () => {
    const { proxy } = await setup('    connect_timeout: 1s\n    retries: 0');
    const t0 = performance.now();
    await expect(helloOnce(proxy.port, { timeoutMs: 20_000 })).rejects.toThrow();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
    expect(await races(proxy, 'primary')).toBe(0);
    expect((await proxy.server('licenses', 'backup')).total).toBe(0);
  }, 30_000);

  it('an attempt that lost the race still times out against its server: passive health marks it DOWN', async () => {
    // Checks go to the backup's port, so they pass for both servers: only the session's own connect
    // attempt can take the primary DOWN (observe_errors 1, the default).
    const { proxy } = await setup('    connect_timeout: 1s', '{ type: tcp, port: BACKUP_PORT, inter: 60s }');
    expect((await proxy.server('licenses', 'primary')).state).toBe('UP');
    const r = await timedHello(proxy.port);
    expect(r.by).toBe('backup');
    expect(r.ms).toBeLessThan(1000); // answered before the primary's attempt even timed out
    const down = await waitFor(async () => {
      const s = await proxy.server('licenses', 'primary');
      return s.state === 'DOWN' ? s : null;
    }, { timeoutMs: 5000, intervalMs: 20, what: 'the primary DOWN after its raced attempt timed out' });
    expect(down.connect_errors).toBe(1);
    const line = await waitFor(() => proxy.logs.find((l) => l.msg === 'connect to server failed; its session had already gone to another server'), { timeoutMs: 5000, intervalMs: 20, what: 'the log line of the raced attempt that failed' });
    expect(line).toMatchObject({ server: 'primary', reason: 'connect timeout after 1000ms' });
    // Now DOWN, the primary is not tried: the next session goes to the backup without a race.
    expect(await timedHello(proxy.port)).toMatchObject({ by: 'backup' });
    expect(await races(proxy, 'primary')).toBe(1);
  }, 30_000);

  it('a slow server that answers after losing the race is not counted against', async () => {
    const { proxy, primary } = await setup('    connect_timeout: 5s', '{ type: tcp, port: BACKUP_PORT, inter: 60s }');
    const r = await timedHello(proxy.port);
    expect(r.by).toBe('backup');
    // The losing attempt is still under way, holding its slot on the primary.
    expect((await proxy.server('licenses', 'primary')).active).toBe(1);
    // The primary's listener runs again: it accepts what waits, and the attempt's SYN, retransmitted
    // by the kernel about 1 s after the first, completes: the attempt is closed unused.
    primary.resume();
    await waitFor(async () => (await proxy.server('licenses', 'primary')).active === 0, { timeoutMs: 8000, intervalMs: 20, what: 'the raced attempt on the primary to finish' });
    const s = await proxy.server('licenses', 'primary');
    expect(s.state).toBe('UP');
    expect(s.connect_errors).toBe(0);
    // Its connect took a SYN retransmit (over 1 s): not a sample of the path (Karn's rule).
    expect(s.connect_ms).toBeNull();
    expect(proxy.logs.filter((l) => l.msg?.startsWith('connect to server failed'))).toEqual([]);
    // It answered, so it is not overdue any more: the next session goes to it, the active tier.
    expect(s.connects_overdue).toBe(0);
    open(proxy.port);
    await waitFor(async () => (await proxy.server('licenses', 'primary')).total === 1, { timeoutMs: 5000, intervalMs: 20, what: 'a new session on the primary' });
    expect(await races(proxy, 'primary')).toBe(1);
  }, 30_000);

  it('a race after a reload goes to a server of the new config, not to one the reload removed', async () => {
    // The session's first connect is under way on the black-holed primary when a reload replaces the
    // backup "old" by "new". The race, 1.5 s later, must choose from the running config.
    const primary = await silentServer();
    const old = await startSimulator('old');
    const fresh = await startSimulator('new');
    const backend = (backup: string, port: number): string => `    connect_timeout: 10s
    connect_race: 1500ms
    check: { type: none }
    servers:
      - { name: primary, address: "127.0.0.1:${primary.port}" }
      - { name: ${backup}, address: "127.0.0.1:${port}", backup: true }
`;
    const proxy = await startRaceProxy(backend('old', old.port));
    const hello = timedHello(proxy.port);
    await waitFor(async () => (await proxy.server('licenses', 'primary')).active === 1, { timeoutMs: 5000, intervalMs: 20, what: 'the connect to the primary under way' });
    proxy.reload(`
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
${backend('new', fresh.port)}`);
    await waitFor(async () => (await proxy.backend('licenses')).servers.some((s) => s.name === 'new'), { timeoutMs: 5000, intervalMs: 20, what: 'the reload to put "new" in place' });
    expect(await races(proxy, 'primary')).toBe(0); // the reload came first
    const r = await hello;
    expect(r.by).toBe('new');
    expect(r.ms).toBeGreaterThanOrEqual(1490);
    expect(await races(proxy, 'primary')).toBe(1);
    const line = await waitFor(() => proxy.logs.find((l) => l.msg === 'connect to server unanswered; racing the next server'), { timeoutMs: 5000, intervalMs: 20, what: 'the race log line' });
    expect(line).toMatchObject({ server: 'primary', next: 'new' });
  }, 30_000);

  it('a sticky client stays on the server that won the race, not on the one raced last', async () => {
    // Two black-holed servers in one tier: the client's first connect goes to "a" (weight 2), is
    // raced to "b" after 250 ms (choose() moves the stick entry to b), then a resumes and wins
    // with its SYN retransmit while b stays silent. The entry must follow the winner: the client's
    // next connection goes straight to a; with the entry left on b it would go to b and be raced.
    const a = await silentServer();
    const b = await silentServer();
    const proxy = await startRaceProxy(`    stick: source
    connect_timeout: 5s
    check: { type: none }
    servers:
      - { name: a, address: "127.0.0.1:${a.port}", weight: 2 }
      - { name: b, address: "127.0.0.1:${b.port}", weight: 1 }
`);
    open(proxy.port);
    await waitFor(async () => (await races(proxy, 'a')) === 1, { timeoutMs: 5000, intervalMs: 20, what: 'the connect to a raced to b' });
    a.resume();
    await waitFor(async () => (await proxy.server('licenses', 'a')).total === 1, { timeoutMs: 5000, intervalMs: 20, what: 'a to win the race with its SYN retransmit' });
    expect((await proxy.server('licenses', 'b')).total).toBe(0);
    open(proxy.port);
    await waitFor(async () => (await proxy.server('licenses', 'a')).total === 2, { timeoutMs: 5000, intervalMs: 20, what: 'the second connection on a' });
    expect(await races(proxy, 'b')).toBe(0);
    expect(await races(proxy, 'a')).toBe(1);
  }, 30_000);

  it.each([['stick: source'], ['balance: source']])("a vendor-daemon connection (server_port, %s) waits for its own server's SYN retransmit (raced or sent elsewhere, its checkout is denied); a checkout starting meanwhile keeps both connections on one server", async (keeps) => {
    const { lmgrdPort, vendorPort, sims, proxy } = await startFlexlmLab(['a', 'b'], [keeps, 'check: { type: none }', 'connect_timeout: 5s']);
    // Clients ask lmgrd until three of them got their tickets from the same server.
    const asked: { client: { host: string; lmgrdPort: number; localAddress: string }; lmgrd: LmgrdReply; server: string }[] = [];
    let mates: (typeof asked)[number][] = [];
    for (let i = 2; mates.length < 3; i++) {
      const client = { host: '127.0.0.1', lmgrdPort, localAddress: `127.0.0.${i}` };
      const before = (await proxy.server('licenses', 'a')).total;
      const lmgrd = await askLmgrd(client);
      const got = { client, lmgrd, server: (await proxy.server('licenses', 'a')).total > before ? 'a' : 'b' };
      asked.push(got);
      mates = asked.filter((x) => x.server === got.server);
    }
    const [first, second, third] = mates as [(typeof asked)[number], (typeof asked)[number], (typeof asked)[number]];
    const own = second.server;
    const other = own === 'a' ? 'b' : 'a';
    const sim = sims[own]!;

    // Its vendor daemon stops accepting for a moment (a busy vendor daemon): the process is stopped
    // and its accept queue filled, so the next SYN goes unanswered and Linux retransmits it 1 s later.
    sim.child.kill('SIGSTOP');
    sockets.push(...(await fillAcceptQueue(sim.spec.host, vendorPort, 5000)));
    const checkout1 = vendorCheckout(first.client, first.lmgrd);
    await waitFor(async () => (await proxy.server('licenses', own)).connects_overdue === 1, { timeoutMs: 5000, intervalMs: 20, what: `the vendor connect to ${own} to be overdue` });
    // Another client of that server comes for its vendor daemon while the first one waits.
    const otherTotal = (await proxy.server('licenses', other)).total;
    const checkout2 = vendorCheckout(second.client, second.lmgrd);
    await waitFor(async () => (await proxy.server('licenses', own)).connects_overdue === 2 || (await proxy.server('licenses', other)).total > otherTotal, { timeoutMs: 5000, intervalMs: 20, what: 'the second vendor connect to wait on its server or go to the other' });
    // A third client of that server starts a checkout meanwhile: its lmgrd and vendor connections
    // must reach one server (with balance: source, the hash alone decides both).
    const lmgrd3 = askLmgrd(third.client);
    await waitFor(async () => (await proxy.server('licenses', own)).total + (await proxy.server('licenses', other)).total > asked.length, { timeoutMs: 5000, intervalMs: 20, what: "the third client's lmgrd connection to be placed" });
    sim.child.kill('SIGCONT');
    const got = [];
    for (const checkout of [await checkout1, await checkout2]) {
      checkout.vendor.destroy();
      got.push(checkout.granted ? `granted by ${checkout.detail.replace(/-\d+$/, '')}` : `denied: ${checkout.detail}`);
    }
    expect(got).toEqual([`granted by ${own}`, `granted by ${own}`]);
    const checkout3 = await vendorCheckout(third.client, await lmgrd3);
    checkout3.vendor.destroy();
    expect(checkout3.granted ? 'granted' : `denied: ${checkout3.detail}`).toBe('granted');
    expect(await races(proxy, own, 'vendor')).toBe(0);
  }, 60_000);
});
