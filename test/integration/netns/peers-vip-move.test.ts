/**
 * The stick table shared between the two hosts of a keepalived pair (`peers`), proven with the
 * real parts: keepalived moves the VIP from a host that dies to the other, and a FlexLM client that
 * held a license on lic2 comes back to lic2 through the other host, not to lic1 (whose vendor
 * daemon would grant it a second license while lic2 still counts the first, or deny its ticket).
 *
 *   client1 192.0.2.10   FlexLM client: one checkout through the VIP (→ lic1), then checks in
 *   client2 192.0.2.11   FlexLM client: holds a license through the VIP (→ lic2), heartbeats,
 *                        reconnects (lmgrd step, then vendor step) when its session breaks
 *   lb1     192.0.2.12   keepalived (shipped config, MASTER) + `licgate run`, peers → lb2
 *   lb2     192.0.2.13   keepalived (shipped config, BACKUP) + `licgate run`, peers → lb1
 *   lic1    192.0.2.14   `licgate simulate --flexlm` (lmgrd 27000, vendor daemon 27001)
 *   lic2    192.0.2.15   `licgate simulate --flexlm`
 *   VIP     192.0.2.100  (keepalived-pair.ts)
 *
 * Both proxies run the proxy role of examples/proxy.yaml: lmgrd and vendor frontends sharing one
 * backend, `balance: roundrobin`, `stick: source`. Placement is deterministic: lb1 has had no
 * client before client1, so its round-robin gives client1 lic1 and client2 lic2; lb2 has had none
 * at all, so without the shared table its first pick for client2 would be lic1.
 * lb1 dies as in ha-scenarios (licgate and keepalived SIGKILLed): keepalived on lb2 takes the VIP
 * after three missed adverts plus a skew, and the time from the kill to client2's granted
 * re-checkout is printed. Then lb1 comes back (a fresh licgate with an empty table, keepalived as
 * BACKUP), learns the table from lb2, and the VIP is moved back to it as keepalived.conf documents
 * (keepalived restarted on lb2): client2 lands on lic2 again, now through lb1. The tests run in order.
 *
 * Run: npx vitest run test/integration/netns/peers-vip-move.test.ts --testTimeout 120000 --hookTimeout 120000
 * (as root; needs ip, keepalived, curl; builds nothing: run `npx tsc -p .` first).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KEEPALIVED_TOOLS, KeepalivedPair, VIP, type Lb } from './keepalived-pair.js';
import { createLab, type Lab, type LabProcess } from './lab.js';
import { startFlexlmHeldSession, type HeldSession } from './license-clients.js';
import { LICENSE_PORT, adminCall, assertBuilt, proxyConfig, serverState, startProxy, startSimulator, waitAdminStatus } from './licgate-hosts.js';
import { missingTools, requireTools } from '../../helpers/require-tools.js';
import { waitFor } from '../../helpers/wait-for.js';

const TOOLS = [...KEEPALIVED_TOOLS];
const HOSTS = ['client1', 'client2', 'lb1', 'lb2', 'lic1', 'lic2'] as const;
const SIMS = ['lic1', 'lic2'] as const;
const LBS = ['lb1', 'lb2'] as const;
const PEERS_PORT = 8406;
const BACKEND = 'licenses';
const CHECK = '{ type: status, inter: 500ms, fastinter: 200ms, fall: 2, rise: 2, timeout: 300ms }';

interface StickEntry {
  client: string;
  server: string;
  sessions: number;
}

interface OpenSession {
  client: string;
  frontend: string;
  server: string;
}

describe('peers: a FlexLM client keeps its license server when the VIP moves to the other licgate host (real keepalived pair)', () => {
  let lab: Lab;
  let pair: KeepalivedPair;
  let anyFailed = false;
  const proxies = new Map<Lb, LabProcess>();
  const clients: HeldSession[] = [];
  /** client2's FlexLM client, holding its license from the first test on. */
  let held: HeldSession;
  const configFile = (lb: Lb) => join(lab.dir, `${lb}.yaml`);

  /** The server `client`'s entry in `lb`'s stick table names, undefined when it has none. */
  async function stuckTo(lb: Lb, client: string): Promise<string | undefined> {
    const r = await adminCall(lab, lb, 'GET', `/backends/${BACKEND}/stick-table?client=${client}`);
    if (r.status !== 200) throw new Error(`${lb} GET stick-table: ${r.status} ${r.error ?? JSON.stringify(r.body)}`);
    return (r.body as { entries: StickEntry[] }).entries[0]?.server;
  }

  async function sessionsOf(lb: Lb, client: string): Promise<OpenSession[]> {
    const r = await adminCall(lab, lb, 'GET', `/sessions?backend=${BACKEND}`);
    if (r.status !== 200) throw new Error(`${lb} GET /sessions: ${r.status} ${r.error ?? JSON.stringify(r.body)}`);
    return (r.body as { sessions: OpenSession[] }).sessions.filter((s) => s.client.startsWith(`${client}:`));
  }

  function flexlmClient(host: 'client1' | 'client2'): HeldSession {
    const c = startFlexlmHeldSession(lab, host, { host: VIP, lmgrdPort: LICENSE_PORT, triggerFile: join(lab.dir, `release-${host}`), label: `flexlm-${host}` });
    clients.push(c);
    return c;
  }

  beforeEach((ctx) => {
    requireTools(TOOLS, ctx);
    ctx.onTestFailed(() => {
      anyFailed = true;
      if (!lab) return;
      console.log(`lab dir (kept): ${lab.dir}`);
      console.log(`VRRP state files: lb1="${pair?.stateLine('lb1')}" lb2="${pair?.stateLine('lb2')}"`);
      for (const c of clients) console.log(`${c.proc.label} events:\n${c.events.map((e) => JSON.stringify(e)).join('\n')}`);
      console.log(lab.logs({ tailBytes: 6000 }));
    });
  });

  beforeAll(async () => {
    if (missingTools(TOOLS).length > 0) return; // each test then fails (CI) or skips (local)
    assertBuilt();
    lab = await createLab({ hosts: HOSTS });
    pair = new KeepalivedPair(lab);
    const tokenFile = join(lab.dir, 'peers.token');
    writeFileSync(tokenFile, randomBytes(24).toString('hex') + '\n', { mode: 0o600 });
    const servers = SIMS.map((name) => ({ name, address: `${lab.addr(name)}:${LICENSE_PORT}`, tier: 0 }));
    for (const lb of LBS) {
      const other = lb === 'lb1' ? 'lb2' : 'lb1';
      const peers = `peers:\n  listen: "${lab.addr(lb)}:${PEERS_PORT}"\n  remotes: ["${lab.addr(other)}:${PEERS_PORT}"]\n  token_file: ${tokenFile}\n`;
      const config = proxyConfig({ failback: 'manual', servers, shutdownGrace: '10s', connectTimeout: '1s', retries: 2, check: CHECK, vrrpStateFile: pair.paths(lb).stateFile, flexlm: true, extra: peers });
      writeFileSync(configFile(lb), config);
    }
    const sims = SIMS.map((name) => startSimulator(lab, name, name, { flexlm: true }));
    for (const [i, p] of sims.entries()) {
      await waitFor(() => p.readLog().includes(`simulator ${SIMS[i]} listening on`), { timeoutMs: 10_000, what: `simulator ${SIMS[i]} listening` });
    }
    for (const lb of LBS) proxies.set(lb, startProxy(lab, lb, configFile(lb)));
    for (const lb of LBS) {
      // A config licgate refuses (exit 2) is told by its log, not by the admin port that never answers.
      await waitAdminStatus(lab, lb, '/health', 200, 10_000).catch((e: Error) => {
        anyFailed = true;
        throw new Error(`${e.message}\nlicgate on ${lb}:\n${proxies.get(lb)!.readLog()}`);
      });
      for (const s of SIMS) await waitFor(async () => (await serverState(lab, lb, s)) === 'UP', { timeoutMs: 10_000, intervalMs: 50, what: `${lb} sees ${s} UP` });
    }
    await pair.startLb1Master();
  }, 90_000);

  afterAll(async () => {
    await pair?.stopAll();
    await lab?.destroy({ keepFiles: anyFailed });
  }, 60_000);

  it('lb1 dies: the client that held a license on lic2 through lb1 reconnects through lb2 to lic2, and its checkout (lmgrd step, vendor step) is granted', async () => {
    const [client1, client2] = [lab.addr('client1'), lab.addr('client2')];

    // Placement through lb1: client1 on lic1 (checks in again), client2 on lic2 (keeps its license).
    const first = flexlmClient('client1');
    expect((await first.waitEvent('granted', 5000)).who).toBe('lic1');
    first.release();
    expect((await first.waitEvent('checkin', 5000)).reply).toBe('OK');
    held = flexlmClient('client2');
    const granted = await held.waitEvent('granted', 5000);
    expect(granted.who).toBe('lic2');
    expect((await held.waitEvent('heartbeat', 5000, granted.t)).who).toBe('lic2');
    expect(await sessionsOf('lb1', client2)).toMatchObject([{ frontend: 'vendor', server: 'lic2' }]);
    expect(await stuckTo('lb1', client1)).toBe('lic1');
    expect(await stuckTo('lb1', client2)).toBe('lic2');

    // lb2 has relayed nothing, yet holds lb1's entries.
    await waitFor(async () => (await stuckTo('lb2', client1)) === 'lic1' && (await stuckTo('lb2', client2)) === 'lic2', {
      timeoutMs: 5000,
      intervalMs: 50,
      what: `lb2's stick table: ${client1} on lic1 and ${client2} on lic2, from lb1 through peers`,
    });
    expect(await sessionsOf('lb2', client2)).toEqual([]);

    // lb1 dies outright, as in ha-scenarios 6.
    const lb1 = proxies.get('lb1')!;
    const t0 = Date.now();
    lb1.signal('SIGKILL', { group: true });
    await Promise.all([lb1.exited, pair.kill('lb1')]);
    const lost = await held.waitEvent('lost', 5000, t0);
    await pair.waitHeldBy('lb2');
    await pair.waitRole('lb2', 'MASTER');

    const again = await held.waitEvent('granted', 15_000, t0);
    const failedRounds = held.events.filter((e) => e.t >= t0 && (e.ev === 'error' || e.ev === 'denied'));
    console.log(
      `[peers vip-move] kill → session lost ${lost.t - t0} ms, re-checkout granted by ${again.who} ${again.t - t0} ms ` +
        `(round ${again.round}, its two steps ${again.ms} ms; failed rounds before it: ${failedRounds.map((e) => `${e.ev} ${e.step ?? ''} ${e.err ?? e.reply ?? ''}`.trim()).join(', ') || 'none'})`,
    );
    expect(again.who, 'the server that granted the re-checkout through lb2').toBe('lic2');
    expect(held.events.filter((e) => e.ev === 'denied')).toEqual([]);
    expect((await held.waitEvent('heartbeat', 5000, again.t)).who).toBe('lic2');
    // lb2 relays the held session to lic2, and lb2's entry still says lic2.
    expect(await sessionsOf('lb2', client2)).toMatchObject([{ frontend: 'vendor', server: 'lic2' }]);
    expect(await stuckTo('lb2', client2)).toBe('lic2');
    expect(await stuckTo('lb2', client1)).toBe('lic1');
  }, 60_000);

  it('lb1 comes back (fresh licgate, no state file): it learns the table from lb2, and when the VIP moves back to lb1 the client again lands on lic2', async () => {
    const [client1, client2] = [lab.addr('client1'), lab.addr('client2')];
    // Where the first test left it: VIP on lb2 (and a stale copy on lb1, whose keepalived was
    // killed, until keepalived starts there again), client2 holding its license on lic2 through lb2.
    await pair.waitHeldBy('lb2');
    expect(await sessionsOf('lb2', client2)).toMatchObject([{ frontend: 'vendor', server: 'lic2' }]);

    // lb1 comes back as after a reboot: a fresh licgate with an empty table, keepalived as BACKUP.
    const tStart = Date.now();
    proxies.set('lb1', startProxy(lab, 'lb1', configFile('lb1')));
    await waitAdminStatus(lab, 'lb1', '/health', 200, 10_000);
    const tHealthy = Date.now();
    const tSynced = await waitFor(async () => (await stuckTo('lb1', client1)) === 'lic1' && (await stuckTo('lb1', client2)) === 'lic2', {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: `lb1's stick table: ${client1} on lic1 and ${client2} on lic2, from lb2 through peers`,
    }).then(() => Date.now());
    for (const s of SIMS) await waitFor(async () => (await serverState(lab, 'lb1', s)) === 'UP', { timeoutMs: 10_000, intervalMs: 50, what: `lb1 sees ${s} UP` });
    pair.start('lb1');
    await pair.waitRole('lb1', 'BACKUP');

    // The VIP moves back the way keepalived.conf documents: restart keepalived on the MASTER.
    const t0 = Date.now();
    await pair.stop('lb2');
    await pair.waitHolders(['lb1']);
    await pair.waitRole('lb1', 'MASTER');
    pair.start('lb2');
    await pair.waitRole('lb2', 'BACKUP');
    // The session through lb2 is reset by lb1 (the new VIP holder) at the client's next heartbeat.
    await held.waitEvent('lost', 5000, t0);
    const again = await held.waitEvent('granted', 15_000, t0);
    console.log(
      `[peers vip-move back] lb1 start → /health 200 ${tHealthy - tStart} ms, → lb2's entries on lb1 ${tSynced - tStart} ms; ` +
        `keepalived restart on lb2 → re-checkout granted by ${again.who} through lb1 ${again.t - t0} ms (round ${again.round})`,
    );
    expect(again.who, 'the server that granted the re-checkout through lb1').toBe('lic2');
    expect(held.events.filter((e) => e.ev === 'denied')).toEqual([]);
    expect((await held.waitEvent('heartbeat', 5000, again.t)).who).toBe('lic2');
    expect(await sessionsOf('lb1', client2)).toMatchObject([{ frontend: 'vendor', server: 'lic2' }]);
  }, 90_000);
});
