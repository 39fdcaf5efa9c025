/**
 * keepalived + the virtual IP, end to end, with REAL keepalived in network namespaces.
 *
 * Hosts: lb1, lb2 (keepalived + a stand-in for the licgate proxy) and client. keepalived runs the
 * shipped keepalived/keepalived.conf, changed only where the lab differs (keepalived-pair.ts): the
 * vrrp_script, track_script, priorities, state BACKUP, nopreempt and notify script are the shipped
 * ones. The client probes VIP:27000 every 50 ms; each stand-in answers with its host name, so the
 * test asserts on what a client saw, and prints how long the switch took.
 *
 * The same pair with real licgate proxies and simulated license servers: ha-scenarios.test.ts.
 * keepalived handling (config derivation, pid files, script user, crash) lives in keepalived-pair.ts.
 *
 * Scenarios run in order and each starts from the state the previous one left (asserted).
 */
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AttemptLog, type Attempt } from './attempt-log.js';
import { KEEPALIVED_TOOLS, KeepalivedPair, LBS, VIP, VRRP_INSTANCE, masterDownMs, vrrpTiming, type Lb, type VrrpTiming } from './keepalived-pair.js';
import { createLab, type Lab, type LabProcess } from './lab.js';
import { missingTools, requireTools } from '../../helpers/require-tools.js';
import { holdsFor, waitFor } from '../../helpers/wait-for.js';

const TOOLS = [...KEEPALIVED_TOOLS, 'iptables', 'node'];

const SERVICE_PORT = 27000;
const ADMIN_PORT = 8404;

// -------------------------------------------------------------------------------------------
// Programs run inside the namespaces (argv only, no shell)

/** Stand-in for a licgate proxy: admin /health on 127.0.0.1:8404 (503 while SICK_FILE exists)
 *  and a "frontend" on 0.0.0.0:27000 that answers with the host name and closes. */
const STAND_IN_JS = `
const http = require('node:http'), net = require('node:net'), fs = require('node:fs');
const [name, sickFile, adminPort, servicePort] = process.argv.slice(1);
let listening = 0;
const ready = () => { if (++listening === 2) console.log('stand-in ' + name + ' ready'); };
http.createServer((req, res) => {
  const sick = fs.existsSync(sickFile);
  res.writeHead(sick ? 503 : 200, { 'content-type': 'text/plain' });
  res.end(sick ? 'sick\\n' : 'ok\\n');
}).listen(Number(adminPort), '127.0.0.1', ready);
net.createServer((s) => { s.on('error', () => {}); s.end(name + '\\n'); })
  .listen(Number(servicePort), '0.0.0.0', ready);
`;

/** Client probe: connect to HOST:PORT every INTERVAL ms (TIMEOUT ms each), read the answer,
 *  print one JSON line per attempt: {t: start epoch ms, ms, ok, who, err}. */
const PROBE_JS = `
const net = require('node:net');
const [host, port, interval, timeout] = process.argv.slice(1);
function attempt() {
  const t = Date.now();
  let data = '', done = false;
  const s = net.connect({ host, port: Number(port) });
  const finish = (ok, who, err) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    s.destroy();
    process.stdout.write(JSON.stringify({ t, ms: Date.now() - t, ok, who, err }) + '\\n');
    setTimeout(attempt, Math.max(0, Number(interval) - (Date.now() - t)));
  };
  const timer = setTimeout(() => finish(false, null, 'timeout'), Number(timeout));
  s.setEncoding('utf8');
  s.on('data', (d) => { data += d; });
  s.on('end', () => finish(data.length > 0, data.trim() || null, data ? undefined : 'empty'));
  s.on('error', (e) => finish(false, null, e.code || e.message));
}
attempt();
`;

/** The probe's attempts; `who` is the stand-in's host name. */
type Probe = AttemptLog<Attempt>;

const ms = (n: number) => `${Math.round(n)} ms`;

describe('keepalived moves the VIP between lb1 and lb2 (real keepalived, stand-in licgate)', () => {
  let lab: Lab;
  let pair: KeepalivedPair;
  let probe: Probe;
  let timing: VrrpTiming;
  let anyFailed = false;
  const sickFile = (host: Lb) => join(lab.dir, host, 'sick');
  const state = (host: Lb) => pair.stateLine(host);
  const waitRole = (host: Lb, want: string, timeoutMs?: number) => pair.waitRole(host, want, timeoutMs);
  const holdersAre = (want: string[]) => pair.holdersAre(want);
  const waitHolders = (want: string[], timeoutMs?: number) => pair.waitHolders(want, timeoutMs);
  const waitHeldBy = (host: Lb, timeoutMs?: number) => pair.waitHeldBy(host, timeoutMs);
  const startKeepalived = (host: Lb): LabProcess => pair.start(host);
  const stopKeepalived = (host: Lb): Promise<void> => pair.stop(host);

  function startStandIn(host: Lb): LabProcess {
    return lab.spawn(host, ['node', '-e', STAND_IN_JS, host, sickFile(host), String(ADMIN_PORT), String(SERVICE_PORT)], {
      label: 'stand-in',
    });
  }

  /** The steady state every scenario starts from: `host` alone holds the VIP and answers the client. */
  async function expectSteady(host: Lb): Promise<void> {
    await waitHolders([host]);
    await waitRole(host, 'MASTER');
    await probe.waitSees(host, Date.now(), 5000);
  }

  beforeEach((ctx) => {
    requireTools(TOOLS, ctx);
    ctx.onTestFailed(() => {
      anyFailed = true;
      if (!lab) return;
      console.log(`lab dir (kept): ${lab.dir}`);
      console.log(`state files: lb1="${state('lb1')}" lb2="${state('lb2')}"`);
      console.log(`last probe samples:\n${probe?.samples.slice(-10).map((s) => JSON.stringify(s)).join('\n')}`);
      console.log(lab.logs({ tailBytes: 6000 }));
    });
  });

  beforeAll(async () => {
    if (missingTools(TOOLS).length > 0) return; // each test then fails (CI) or skips (local)
    lab = await createLab({ hosts: ['lb1', 'lb2', 'client'] });
    pair = new KeepalivedPair(lab);
    timing = vrrpTiming(pair.config('lb1'));
    for (const host of LBS) startStandIn(host);
    for (const host of LBS) {
      await waitFor(async () => (await lab.exec(host, ['curl', '-fsS', '--max-time', '1', `http://127.0.0.1:${ADMIN_PORT}/health`])).code === 0, {
        timeoutMs: 10_000,
        what: `stand-in /health on ${host}`,
      });
    }
    probe = new AttemptLog<Attempt>(lab.spawn('client', ['node', '-e', PROBE_JS, VIP, String(SERVICE_PORT), '50', '300'], { label: 'probe' }));
  }, 60_000);

  afterAll(async () => {
    await pair?.stopAll();
    await lab?.destroy({ keepFiles: anyFailed });
  }, 60_000);

  it('a: lb1 starts first and becomes MASTER; lb2 joins as BACKUP; the client reaches lb1 via the VIP', async () => {
    const t0 = Date.now();
    startKeepalived('lb1');
    await waitRole('lb1', 'MASTER');
    await waitHolders(['lb1']);
    const tMaster = Date.now();
    const seen = await probe.waitSees('lb1', t0, 10_000);
    startKeepalived('lb2');
    await waitRole('lb2', 'BACKUP');
    expect(await lab.holders(VIP)).toEqual(['lb1']);
    expect(state('lb1')).toMatch(new RegExp(`^INSTANCE ${VRRP_INSTANCE} MASTER 150 \\d{4}-\\d\\d-\\d\\dT[\\d:]{8}Z$`));
    expect(state('lb2')).toMatch(new RegExp(`^INSTANCE ${VRRP_INSTANCE} BACKUP 100 `));
    expect(seen.who).toBe('lb1');
    console.log(
      `[vrrp a] lb1 MASTER ${ms(tMaster - t0)} after keepalived start; client first answered by lb1 ${ms(seen.t + seen.ms - t0)} after start`,
    );
  }, 60_000);

  it('b: lb1 health 503 → lb1 FAULT, VIP to lb2, client sees lb2', async () => {
    await expectSteady('lb1');
    const t0 = Date.now();
    writeFileSync(sickFile('lb1'), 'sick\n');
    const [tFault, tVip, seen] = await Promise.all([
      waitRole('lb1', 'FAULT').then(() => Date.now()),
      waitHolders(['lb2']).then(() => Date.now()),
      probe.waitSees('lb2', t0, 15_000),
    ]);
    await waitRole('lb2', 'MASTER');
    const out = probe.outage(t0, seen);
    expect(seen.who).toBe('lb2');
    expect(await lab.holders(VIP)).toEqual(['lb2']);
    console.log(
      `[vrrp b] health flip → lb1 FAULT ${ms(tFault - t0)}, VIP only on lb2 ${ms(tVip - t0)}, ` +
        `client first sees lb2 ${ms(seen.t + seen.ms - t0)}; longest time without an answer ${ms(out.noAnswerMs)} ` +
        `(${out.failed} failed probes: ${out.errors.join(', ') || 'none'})`,
    );
  }, 60_000);

  it('b2: lb1 healthy again stays BACKUP (nopreempt); restarting keepalived on lb2 hands the VIP back', async () => {
    await expectSteady('lb2');
    const t0 = Date.now();
    rmSync(sickFile('lb1'), { force: true });
    await waitRole('lb1', 'BACKUP');
    const tBackup = Date.now();
    // No preemption: lb1 (150) must not take the VIP from lb2 (100). 5 s is far beyond lb1's
    // master-down interval (0.85 s, 3.4 s with 1 s adverts), so a preempting lb1 would have taken it.
    await holdsFor(async () => (await holdersAre(['lb2'])) && probe.last()?.who === 'lb2', {
      forMs: 5000,
      intervalMs: 100,
      what: 'VIP stays on lb2 and the client on lb2 while lb1 is healthy (nopreempt)',
    });
    // Manual failback, as documented in keepalived.conf: restart keepalived on the MASTER.
    const t1 = Date.now();
    await stopKeepalived('lb2');
    const [tVip, seen] = await Promise.all([waitHolders(['lb1']).then(() => Date.now()), probe.waitSees('lb1', t1, 10_000)]);
    await waitRole('lb1', 'MASTER');
    await waitRole('lb2', 'STOP', 5000);
    const out = probe.outage(t1, seen);
    startKeepalived('lb2');
    await waitRole('lb2', 'BACKUP');
    expect(await lab.holders(VIP)).toEqual(['lb1']);
    console.log(
      `[vrrp b2] health back → lb1 BACKUP ${ms(tBackup - t0)}, VIP stayed on lb2 for 5 s (nopreempt); ` +
        `stop keepalived on lb2 → VIP on lb1 ${ms(tVip - t1)}, client first sees lb1 ${ms(seen.t + seen.ms - t1)}; ` +
        `longest time without an answer ${ms(out.noAnswerMs)} (${out.failed} failed probes)`,
    );
  }, 60_000);

  it('c: keepalived on lb1 killed with SIGKILL → VIP on lb2, client sees lb2', async () => {
    await expectSteady('lb1');
    const t0 = Date.now();
    // The whole process group: the keepalived parent and its VRRP child die at once, like a crash.
    // (Killing only the parent makes the child exit cleanly and hand over at once.)
    pair.proc('lb1')!.signal('SIGKILL', { group: true });
    const [tVip, seen] = await Promise.all([waitHeldBy('lb2').then(() => Date.now()), probe.waitSees('lb2', t0, 15_000)]);
    await waitRole('lb2', 'MASTER');
    const out = probe.outage(t0, seen);
    const stale = (await lab.holders(VIP)).includes('lb1');
    expect(seen.who).toBe('lb2');
    // The shipped sub-second adverts are in effect: lb2 took over after its master-down interval
    // (3 adverts + skew), not the 3.6 s of whole-second VRRPv2 adverts (what keepalived falls back
    // to, with a warning, when "version 3" is missing). 1 s of margin for polling and a busy machine.
    expect(tVip - t0).toBeLessThan(masterDownMs(timing, 'lb2') + 1000);
    console.log(
      `[vrrp c] SIGKILL keepalived on lb1 → VIP on lb2 ${ms(tVip - t0)}, client first sees lb2 ${ms(seen.t + seen.ms - t0)}; ` +
        `longest time without an answer ${ms(out.noAnswerMs)} (${out.failed} failed probes); ` +
        `lb1 still has the VIP configured: ${stale ? 'yes (nobody removed it)' : 'no'}`,
    );
    // Restarting keepalived on lb1 removes the stale copy and, nopreempt, leaves lb2 MASTER.
    const t1 = Date.now();
    await pair.kill('lb1');
    startKeepalived('lb1');
    await waitRole('lb1', 'BACKUP');
    await waitHolders(['lb2']);
    console.log(`[vrrp c] keepalived restarted on lb1 → BACKUP and stale VIP removed ${ms(Date.now() - t1)}`);
  }, 60_000);

  it('d: link of the MASTER (lb2) dropped → VIP to lb1, client sees lb1', async () => {
    await expectSteady('lb2');
    const t0 = Date.now();
    await lab.linkDown('lb2');
    const [tVip, seen] = await Promise.all([waitHeldBy('lb1').then(() => Date.now()), probe.waitSees('lb1', t0, 15_000)]);
    await waitRole('lb1', 'MASTER');
    await waitRole('lb2', 'FAULT');
    const out = probe.outage(t0, seen);
    expect(seen.who).toBe('lb1');
    console.log(
      `[vrrp d] link down on lb2 → VIP on lb1 ${ms(tVip - t0)}, client first sees lb1 ${ms(seen.t + seen.ms - t0)}; ` +
        `longest time without an answer ${ms(out.noAnswerMs)} (${out.failed} failed probes: ${out.errors.join(', ') || 'none'})`,
    );
    const t1 = Date.now();
    await lab.linkUp('lb2');
    await waitRole('lb2', 'BACKUP');
    await waitHolders(['lb1']);
    console.log(`[vrrp d] link up on lb2 → lb2 BACKUP, VIP only on lb1 ${ms(Date.now() - t1)}`);
  }, 60_000);

  it('e: MASTER (lb1) blackholed → lb2 takes the VIP (timeouts, no RST); after unblackhole one holder remains', async () => {
    await expectSteady('lb1');
    const t0 = Date.now();
    await lab.blackhole('lb1');
    const [tVip, seen] = await Promise.all([waitHeldBy('lb2').then(() => Date.now()), probe.waitSees('lb2', t0, 15_000)]);
    const out = probe.outage(t0, seen);
    expect(seen.who).toBe('lb2');
    // A black hole answers nothing: the client's failed attempts are timeouts, never resets/refusals.
    expect(out.errors.filter((e) => e !== 'timeout')).toEqual([]);
    const split = (await lab.holders(VIP)).join(', ');
    console.log(
      `[vrrp e] blackhole lb1 → VIP on lb2 ${ms(tVip - t0)}, client first sees lb2 ${ms(seen.t + seen.ms - t0)}; ` +
        `longest time without an answer ${ms(out.noAnswerMs)} (${out.failed} failed probes: ${out.errors.join(', ') || 'none'}); ` +
        `VIP configured on: ${split} (lb1 cannot hear lb2: split brain while cut off)`,
    );
    const t1 = Date.now();
    await lab.unblackhole('lb1');
    // Both MASTERs hear each other again; the lower priority (lb2) yields.
    const [tOne, seenBack] = await Promise.all([waitHolders(['lb1']).then(() => Date.now()), probe.waitSees('lb1', t1, 15_000)]);
    await waitRole('lb2', 'BACKUP');
    const back = probe.outage(t1, seenBack);
    console.log(
      `[vrrp e] unblackhole lb1 → VIP only on lb1 ${ms(tOne - t1)}, client first sees lb1 ${ms(seenBack.t + seenBack.ms - t1)}; ` +
        `longest time without an answer ${ms(back.noAnswerMs)} (${back.failed} failed probes)`,
    );
  }, 60_000);
  it('f: VRRP version and advert_int changed on the running pair as keepalived.conf says (stop the BACKUP, reload the MASTER, start the BACKUP): the VIP never leaves lb1', async () => {
    await expectSteady('lb1');
    expect(pair.role('lb2')).toBe('BACKUP');
    expect(timing.version).toBe(3);
    const t0 = Date.now();
    // Back to RFC-default VRRPv2 with 1 s adverts: the fallback the config offers for a segment
    // that stalls. The procedure is the same in either direction.
    const toV2 = (conf: string) => conf.replace(/^[ \t]*version 3[ \t]*\n/m, '').replace(/^([ \t]*advert_int)[ \t]+[\d.]+/m, '$1 1');
    const v2Timing = vrrpTiming(toV2(pair.config('lb1')));
    expect(v2Timing).toMatchObject({ version: 2, advertMs: 1000 });
    const lb1Only = async () => (await holdersAre(['lb1'])) && probe.last()?.who === 'lb1';
    await stopKeepalived('lb2');
    for (const host of LBS) pair.writeConfig(host, toV2(pair.config(host)));
    await pair.reload('lb1');
    startKeepalived('lb2');
    await waitRole('lb2', 'BACKUP');
    const tJoined = Date.now();
    // Had lb1 kept sending VRRPv3, lb2 would hear no MASTER it accepts and take the VIP as well
    // after its master-down interval (3.6 s): both hosts would hold it.
    await holdsFor(lb1Only, { forMs: masterDownMs(v2Timing, 'lb2') + 1000, intervalMs: 50, what: 'VIP only on lb1 after lb2 joined with the new version' });
    expect(probe.failuresStarted(t0)).toEqual([]);
    expect(new Set(probe.successesStarted(t0).map((a) => a.who))).toEqual(new Set(['lb1']));
    expect(pair.role('lb1')).toBe('MASTER');
    expect(pair.role('lb2')).toBe('BACKUP');
    console.log(
      `[vrrp f] VRRPv3 0.25 s → VRRPv2 1 s on the running pair: lb2 BACKUP ${ms(tJoined - t0)} after the stop, ` +
        `every probe since answered by lb1, none failed`,
    );
  }, 60_000);
});
