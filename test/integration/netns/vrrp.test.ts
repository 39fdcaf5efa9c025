/**
 * keepalived + the virtual IP, end to end, with REAL keepalived in network namespaces.
 *
 * Hosts: lb1, lb2 (keepalived + a stand-in for the licgate proxy) and client. keepalived runs the
 * shipped keepalived/keepalived.conf, changed only where the lab differs (see deriveConfig): the
 * vrrp_script, track_script, priorities, state BACKUP, nopreempt and notify script are the shipped
 * ones. The client probes VIP:27000 every 50 ms; each stand-in answers with its host name, so the
 * test asserts on what a client saw, and prints how long the switch took.
 *
 * Next step (real licgate): replace startStandIn() with `licgate run --config lbN.yaml` (admin on
 * 127.0.0.1:8404, frontend on 27000) and add hosts lic1, lic2, dr1 running `licgate simulate`;
 * "sick" then means stopping the simulators or setting the servers to MAINT.
 *
 * Scenarios run in order and each starts from the state the previous one left (asserted).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLab, type Lab, type LabProcess } from './lab.js';
import { missingTools, requireTools } from '../../helpers/require-tools.js';
import { holdsFor, waitFor } from '../../helpers/wait-for.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SHIPPED_CONF = join(REPO, 'keepalived', 'keepalived.conf');
const NOTIFY_SCRIPT = join(REPO, 'keepalived', 'licgate-vrrp-notify.sh');
const TOOLS = ['ip', 'keepalived', 'iptables', 'curl', 'node'];

const VIP = '192.0.2.100';
const SERVICE_PORT = 27000;
const ADMIN_PORT = 8404;
const INSTANCE = 'VI_LICGATE';
/** Scripts run unprivileged as in production (there: licgate); nobody exists everywhere. */
const SCRIPT_USER = 'nobody';
const LBS = ['lb1', 'lb2'] as const;
type Lb = (typeof LBS)[number];
/** Unique per run (each run also has its own L2 segment, so this is belt and braces). */
const VRID = 1 + (process.pid % 250);

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

interface Sample {
  t: number;
  ms: number;
  ok: boolean;
  who: string | null;
  err?: string;
}

class Probe {
  readonly samples: Sample[] = [];
  constructor(readonly proc: LabProcess) {
    const rl = createInterface({ input: proc.child.stdout! });
    rl.on('line', (line) => {
      try {
        this.samples.push(JSON.parse(line) as Sample);
      } catch {
        /* not a sample */
      }
    });
  }

  /** First answer from `who` in an attempt started at or after `since`. */
  firstFrom(who: string, since: number): Sample | undefined {
    return this.samples.find((s) => s.t >= since && s.ok && s.who === who);
  }

  last(): Sample | undefined {
    return this.samples.at(-1);
  }

  async waitSees(who: string, since: number, timeoutMs: number): Promise<Sample> {
    return waitFor(() => this.firstFrom(who, since), {
      timeoutMs,
      intervalMs: 20,
      what: `client answered by ${who} (last sample: ${JSON.stringify(this.last())})`,
    });
  }

  /**
   * Between `since` and the first answer from `who`: the longest time without any answer
   * (end of one answer to end of the next), and the failed attempts with their errors.
   */
  outage(since: number, until: Sample): { noAnswerMs: number; failed: number; errors: string[] } {
    const window = this.samples.filter((s) => s.t + s.ms >= since - 1000 && s.t <= until.t);
    let prevEnd: number | undefined;
    let noAnswerMs = 0;
    for (const s of window) {
      if (!s.ok) continue;
      const end = s.t + s.ms;
      if (prevEnd !== undefined) noAnswerMs = Math.max(noAnswerMs, end - prevEnd);
      prevEnd = end;
    }
    const failedSamples = window.filter((s) => !s.ok && s.t >= since);
    return { noAnswerMs, failed: failedSamples.length, errors: [...new Set(failedSamples.map((s) => s.err ?? '?'))] };
  }
}

// -------------------------------------------------------------------------------------------

/**
 * The shipped config with the lab's differences: script user, notify script path and state file,
 * interface, VIP and VRID. Every change must find its target exactly once, so a shipped file
 * that no longer looks like this fails loudly instead of testing something else.
 */
function deriveConfig(shipped: string, notifyScript: string, stateFile: string): string {
  const edits: Array<{ what: string; re: RegExp; to: string }> = [
    { what: 'script_user', re: /^([ \t]*script_user)[ \t]+\S+[ \t]*$/m, to: `$1 ${SCRIPT_USER}` },
    { what: 'notify', re: /^([ \t]*notify)[ \t]+"[^"\n]*licgate-vrrp-notify\.sh"[ \t]*$/m, to: `$1 "${notifyScript} ${stateFile}"` },
    { what: 'interface', re: /^([ \t]*interface)[ \t]+\S+[ \t]*$/m, to: '$1 eth0' },
    { what: 'virtual_router_id', re: /^([ \t]*virtual_router_id)[ \t]+\d+/m, to: `$1 ${VRID}` },
    {
      what: 'virtual_ipaddress',
      re: /^([ \t]*virtual_ipaddress[ \t]*\{)[^}]*\}/m,
      to: `$1\n        ${VIP}/24\n    }`,
    },
  ];
  let text = shipped;
  for (const e of edits) {
    const global = new RegExp(e.re.source, e.re.flags + 'g');
    const n = [...text.matchAll(global)].length;
    if (n !== 1) throw new Error(`shipped keepalived.conf: expected one ${e.what} line, found ${n}; update deriveConfig`);
    text = text.replace(e.re, e.to);
  }
  for (const need of [/^[ \t]*advert_int 1\b/m, /^[ \t]*track_script \{/m, /^[ \t]*state BACKUP\b/m]) {
    if (!need.test(text)) throw new Error(`shipped keepalived.conf: no ${need} (the timings below assume it)`);
  }
  return text;
}

function userIds(user: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

const ms = (n: number) => `${Math.round(n)} ms`;

describe('keepalived moves the VIP between lb1 and lb2 (real keepalived, stand-in licgate)', () => {
  let lab: Lab;
  let probe: Probe;
  let anyFailed = false;
  const keepalived = new Map<Lb, LabProcess>();
  const paths = (host: Lb) => {
    const base = join(lab.dir, host);
    return {
      base,
      conf: join(base, 'keepalived.conf'),
      pid: join(base, 'keepalived.pid'),
      vrrpPid: join(base, 'vrrp.pid'),
      stateFile: join(base, 'run', 'vrrp-state'),
      sick: join(base, 'sick'),
    };
  };

  const state = (host: Lb): string => {
    try {
      return readFileSync(paths(host).stateFile, 'utf8').trim();
    } catch {
      return '';
    }
  };
  /** VRRP role as recorded by the shipped notify script. */
  const role = (host: Lb): string | undefined => state(host).split(' ')[2];
  const waitRole = (host: Lb, want: string, timeoutMs = 15_000) =>
    waitFor(() => role(host) === want, { timeoutMs, intervalMs: 20, what: `${host} ${want} (state file: "${state(host)}")` });
  const holdersAre = async (want: string[]) => (await lab.holders(VIP)).join(',') === want.join(',');
  const waitHolders = (want: string[], timeoutMs = 15_000) =>
    waitFor(() => holdersAre(want), { timeoutMs, intervalMs: 20, what: `VIP ${VIP} held by exactly [${want.join(', ')}]` });
  const waitHeldBy = (host: Lb, timeoutMs = 15_000) =>
    waitFor(async () => (await lab.holders(VIP)).includes(host), { timeoutMs, intervalMs: 20, what: `VIP ${VIP} on ${host}` });

  function startKeepalived(host: Lb): LabProcess {
    const p = paths(host);
    // -n foreground (the lab owns the process) · -l log to stdout (the lab's log file) · -G not to
    // this machine's syslog · -D detailed · -P VRRP only (no checker/BFD children) · -i picks the
    // @lb1/@lb2 lines · -p/-r pid files in the lab dir: the defaults (/run/keepalived.pid,
    // /run/vrrp.pid) are shared by every namespace and a second instance would refuse to start.
    const proc = lab.spawn(
      host,
      ['keepalived', '-n', '-l', '-G', '-D', '-P', '-f', p.conf, '-i', host, '-p', p.pid, '-r', p.vrrpPid],
      { label: 'keepalived' },
    );
    keepalived.set(host, proc);
    return proc;
  }

  async function stopKeepalived(host: Lb): Promise<void> {
    await keepalived.get(host)?.stop({ timeoutMs: 5000 });
  }

  function startStandIn(host: Lb): LabProcess {
    return lab.spawn(host, ['node', '-e', STAND_IN_JS, host, paths(host).sick, String(ADMIN_PORT), String(SERVICE_PORT)], {
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
    const { uid, gid } = userIds(SCRIPT_USER);
    // keepalived's script security refuses scripts a non-root user could modify, so the notify
    // script runs from a root-owned copy (a checkout may belong to a normal user).
    const bin = join(lab.dir, 'bin');
    mkdirSync(bin, { mode: 0o755 });
    const notify = join(bin, 'licgate-vrrp-notify.sh');
    copyFileSync(NOTIFY_SCRIPT, notify);
    chmodSync(notify, 0o755);
    const shipped = readFileSync(SHIPPED_CONF, 'utf8');
    for (const host of LBS) {
      const p = paths(host);
      mkdirSync(join(p.base, 'run'), { recursive: true, mode: 0o755 });
      chownSync(join(p.base, 'run'), uid, gid); // like /run/licgate, owned by the script user
      writeFileSync(p.conf, deriveConfig(shipped, notify, p.stateFile));
      startStandIn(host);
    }
    for (const host of LBS) {
      await waitFor(async () => (await lab.exec(host, ['curl', '-fsS', '--max-time', '1', `http://127.0.0.1:${ADMIN_PORT}/health`])).code === 0, {
        timeoutMs: 10_000,
        what: `stand-in /health on ${host}`,
      });
    }
    probe = new Probe(lab.spawn('client', ['node', '-e', PROBE_JS, VIP, String(SERVICE_PORT), '50', '300'], { label: 'probe' }));
  }, 60_000);

  afterAll(async () => {
    for (const host of LBS) await stopKeepalived(host).catch(() => {});
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
    expect(state('lb1')).toMatch(new RegExp(`^INSTANCE ${INSTANCE} MASTER 150 \\d{4}-\\d\\d-\\d\\dT[\\d:]{8}Z$`));
    expect(state('lb2')).toMatch(new RegExp(`^INSTANCE ${INSTANCE} BACKUP 100 `));
    expect(seen.who).toBe('lb1');
    console.log(
      `[vrrp a] lb1 MASTER ${ms(tMaster - t0)} after keepalived start; client first answered by lb1 ${ms(seen.t + seen.ms - t0)} after start`,
    );
  }, 60_000);

  it('b: lb1 health 503 → lb1 FAULT, VIP to lb2, client sees lb2', async () => {
    await expectSteady('lb1');
    const t0 = Date.now();
    writeFileSync(paths('lb1').sick, 'sick\n');
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
    rmSync(paths('lb1').sick, { force: true });
    await waitRole('lb1', 'BACKUP');
    const tBackup = Date.now();
    // No preemption: lb1 (150) must not take the VIP from lb2 (100). 5 s > lb1's master-down
    // interval (3 x advert_int + skew = 3.4 s), so a preempting lb1 would have taken it by then.
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
    keepalived.get('lb1')!.signal('SIGKILL', { group: true });
    const [tVip, seen] = await Promise.all([waitHeldBy('lb2').then(() => Date.now()), probe.waitSees('lb2', t0, 15_000)]);
    await waitRole('lb2', 'MASTER');
    const out = probe.outage(t0, seen);
    const stale = (await lab.holders(VIP)).includes('lb1');
    expect(seen.who).toBe('lb2');
    console.log(
      `[vrrp c] SIGKILL keepalived on lb1 → VIP on lb2 ${ms(tVip - t0)}, client first sees lb2 ${ms(seen.t + seen.ms - t0)}; ` +
        `longest time without an answer ${ms(out.noAnswerMs)} (${out.failed} failed probes); ` +
        `lb1 still has the VIP configured: ${stale ? 'yes (nobody removed it)' : 'no'}`,
    );
    // Restarting keepalived on lb1 removes the stale copy and, nopreempt, leaves lb2 MASTER.
    const t1 = Date.now();
    await keepalived.get('lb1')!.exited;
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
});
