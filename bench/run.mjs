#!/usr/bin/env node
// licgate performance comparison: licgate vs HAProxy (TCP mode, nbthread 1) vs a direct connection,
// side by side in ONE run on this machine, reported as medians and a licgate/haproxy ratio; and
// failover timing (licgate vs HAProxy seed and tuned configs). See "Performance method" in the design notes.
//
//   npm run bench                        # tsc, then this script with defaults
//   node bench/run.mjs [--rounds 5] [--only direct,haproxy,licgate] [--with-relay] [--with-native] [--with-pipe]
//                      [--idle-conns 6000] [--idle-rounds 3] [--json FILE] [--pin split|none]
//                      [--duration 5] [--iperf-time 4] [--tests rps,cps,rate,bulk,idle,failover] [--keep-tmp]
//                      [--rate 2000]  (rate: new connections/s offered to every target alike, h2load)
//                      [--quiet-wait SECONDS]  (shared machine: wait up to this long before each
//                                               load step for other processes to calm down)
//                      [--failover-rounds 3] [--failover-cap 240]  (failover: runs per proxy and
//                                               fault, and seconds to wait for a switch; bench/failover.mjs)
//
// Undocumented on purpose (validation aid): --licgate-cmd "CMD" runs `CMD --config FILE` instead of
// `node FLAGS dist/cli/licgate.cjs run --config FILE`, e.g.
// --licgate-cmd "node bench/pipe-proxy.mjs". FLAGS are the Node flags of licgate's launcher line
// (`#!/usr/bin/env -S node FLAGS` in dist/cli/licgate.cjs, which is how systemd and the npm bin
// start it), run with this script's Node; the stand-ins (--with-relay: licgate's relay alone,
// bench/handle-relay.mjs; --with-native: a relay in C on Node's loop, bench/native-relay.mjs,
// compiled with cc; --with-pipe: a bare pipe() proxy, bench/pipe-proxy.mjs) get the same flags, so
// the Node columns differ only in their code (and licgate's libuv pool of 8 threads, which licgate.cjs
// sets for its host name lookups; the data path does not use the pool).
//
// Needs: haproxy, nginx, wrk, iperf3, h2load (nghttp2-client), taskset (util-linux); for
// --with-native a C compiler (cc, or $CC) and this Node's headers; root + iptables
// for the black-holed failover rows (else they say n/a; failover method: header of
// bench/failover.mjs). Everything binds 127.0.0.1 only and every load step is bounded in time.
// Every child runs in its own process group; all groups are killed (and iptables rules removed) on
// exit, on Ctrl-C, on error, and (via a tiny shell watchdog) even if this process is SIGKILLed.
//
// Pinning (--pin split, the default on >= 2 CPUs): the proxy under test runs alone on CPU 0; the load
// generators (wrk, iperf3 -c, the idle-connection opener), the backends (nginx, iperf3 -s, the
// holder) and this script share CPU 1. So every column gets the same client+backend budget and the
// proxy gets one whole core, which is what `nbthread 1` HAProxy and a single-threaded Node event
// loop can use. The "proxy CPU µs" rows are the cost numbers; "proxy CPU busy" says whether the
// proxy or the shared client+backend core was the bottleneck of a throughput row. The cost is not
// fixed: a write or connect that wakes a sleeping nginx on the other CPU pays for the wakeup in
// the proxy's system time, dear in a virtual machine, so "nginx sleeps per connection" is printed
// beside it (how often the proxy's pacing let the backend fall asleep).
//
// Fixed rate (test "rate"): wrk's closed loop lets a faster proxy run at a higher rate, where the
// kernel's cost per connection is lower (fewer sleeping peers to wake), so "CPU per connection
// (close)" compares the two proxies at different loads. h2load opens new connections at the same
// --rate for every target (an open loop: the next connection does not wait for the previous one),
// one request each with Connection: close, and the proxy's CPU and the latency are read at that rate.
// A target that cannot keep up shows a rate below the one offered, flagged in its round line.
//
// Method notes: targets alternate inside each round (direct, haproxy, licgate, then the stand-ins
// asked for) to cancel drift; tables show medians. Idle memory is ΔVmRSS of the proxy's process group
// over N held connections, measured on a FRESH proxy instance per sample (allocators keep their
// high-water mark, so a second sample in the same process reads ~0), in the first --idle-rounds
// rounds. Each load step also measures CPU used by other processes on the CPUs it uses (shared
// machines); samples above 10 % of a core are flagged and left out of a median while 2+ clean ones
// remain.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { failoverNotes, failoverRows, removeBlackholes, runFailover, watchdogScript } from './failover.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const ALL_TARGETS = ['direct', 'haproxy', 'licgate', 'relay', 'native', 'pipe'];
/** The stand-in proxies a `--with-NAME` option adds, and their scripts in bench/ (run like licgate). */
const STAND_INS = { relay: 'handle-relay.mjs', native: 'native-relay.mjs', pipe: 'pipe-proxy.mjs' };
const RATE_STEPS_PER_S = 100; // h2load --rate-period 10ms: the offered connections arrive in 100 bursts a second
const ALL_TESTS = ['rps', 'cps', 'rate', 'bulk', 'idle', 'failover'];
const PERF_TESTS = ['rps', 'cps', 'rate', 'bulk', 'idle']; // the ones that use the long-lived targets and backends

// ───────────────────────────── options ─────────────────────────────
let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      only: { type: 'string' },
      'with-pipe': { type: 'boolean', default: false },
      'with-relay': { type: 'boolean', default: false },
      'with-native': { type: 'boolean', default: false },
      'idle-conns': { type: 'string', default: '6000' },
      'idle-rounds': { type: 'string', default: '3' },
      json: { type: 'string' },
      pin: { type: 'string', default: 'split' },
      duration: { type: 'string', default: '5' },
      'iperf-time': { type: 'string', default: '4' },
      connections: { type: 'string', default: '50' },
      rate: { type: 'string', default: '2000' },
      tests: { type: 'string', default: ALL_TESTS.join(',') },
      'licgate-cmd': { type: 'string' },
      'licgate-log': { type: 'string', default: '/dev/null' },
      'keep-tmp': { type: 'boolean', default: false },
      'quiet-wait': { type: 'string', default: '0' },
      'failover-rounds': { type: 'string', default: '3' },
      'failover-cap': { type: 'string', default: '240' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }));
} catch (err) {
  process.stderr.write(`bench: ${err.message} (try --help)\n`);
  process.exit(2);
}
if (opt.help) {
  process.stdout.write(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n')
    .slice(1, 14).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
  process.exit(0);
}
const intOpt = (name, min, max) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < min || n > max) die(`--${name} must be an integer in ${min}..${max}`);
  return n;
};
const ROUNDS = intOpt('rounds', 1, 100);
const IDLE_CONNS = intOpt('idle-conns', 1, 1_000_000);
const DURATION = intOpt('duration', 1, 600);
const IPERF_TIME = intOpt('iperf-time', 1, 600);
const CONNS = intOpt('connections', 1, 10_000);
const RATE = intOpt('rate', 100, 100_000);
if (RATE % RATE_STEPS_PER_S !== 0) die(`--rate must be a multiple of ${RATE_STEPS_PER_S} (h2load opens connections every ${1000 / RATE_STEPS_PER_S} ms)`);
const IDLE_ROUNDS = Math.min(ROUNDS, intOpt('idle-rounds', 1, 100));
const QUIET_WAIT = intOpt('quiet-wait', 0, 3600);
const TESTS = opt.tests.split(',').map((s) => s.trim()).filter(Boolean);
for (const t of TESTS) if (!ALL_TESTS.includes(t)) die(`--tests: unknown test "${t}" (${ALL_TESTS.join(', ')})`);
const PERF = TESTS.some((t) => PERF_TESTS.includes(t));
const FAILOVER_ROUNDS = intOpt('failover-rounds', 1, 100);
const FAILOVER_CAP = intOpt('failover-cap', 10, 3600);
let TARGETS = opt.only ? opt.only.split(',').map((s) => s.trim()).filter(Boolean) : ['direct', 'haproxy', 'licgate'];
for (const s of Object.keys(STAND_INS)) if (opt[`with-${s}`] && !TARGETS.includes(s)) TARGETS.push(s);
for (const t of TARGETS) if (!ALL_TARGETS.includes(t)) die(`--only: unknown target "${t}" (${ALL_TARGETS.join(', ')})`);
TARGETS = ALL_TARGETS.filter((t) => TARGETS.includes(t)); // fixed order: direct, haproxy, licgate, relay, native, pipe
const NPROC = os.availableParallelism();
const PIN = opt.pin === 'split' && NPROC >= 2;
if (!['split', 'none'].includes(opt.pin)) die('--pin must be split or none');
const CPU_PROXY = 0;
const CPU_LOAD = 1;
const NOISY_PCT = 10; // other-process CPU (% of one core) above which a sample is flagged as disturbed

function die(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}
let outputGone = false; // whoever read our output went away (`npm run bench | head`): see stop()
const log = (msg) => { if (!outputGone) process.stderr.write(`${msg}\n`); };

// ───────────────────────────── children & cleanup ─────────────────────────────
const children = new Set(); // { name, proc, pid, exited, code, stderrFile }
const ourGroups = new Set(); // every process group this bench created, for the interference check
let backendGroup = null; // nginx's process group, for its wakeups per connection
let TMP = null;
let pgidFile = null;
let watchdog = null;
let cleaning = false;

const shq = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`);
/** This script's Node with the flags of licgate's launcher line (see the header). */
const NODE_AS_SHIPPED = [process.execPath, ...launcherFlags(path.join(ROOT, 'dist', 'cli', 'licgate.cjs'))].map(shq).join(' ');
function launcherFlags(main) {
  let first = '';
  try {
    first = fs.readFileSync(main, 'utf8').split('\n', 1)[0];
  } catch {
    return []; // not built: reported where the licgate column is set up
  }
  const m = /^#!\S*env -S node((?:\s+--\S+)*)\s*$/.exec(first);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}
// Raise the soft fd limit as far as allowed (root without CAP_SYS_RESOURCE keeps the hard limit).
const ULIMIT = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null;';

/**
 * Start a long-running child in its own process group. `cmdline` is a shell string that must
 * `exec` into the real program so the child's pid is the program's pid.
 */
function startChild(name, cmdline, { cpu = null, stdout = 'ignore', stdin = 'ignore' } = {}) {
  const stderrFile = path.join(TMP, `${name}.stderr`);
  const errFd = fs.openSync(stderrFile, 'a');
  const outFd = typeof stdout === 'string' && stdout !== 'ignore' && stdout !== 'pipe'
    ? fs.openSync(stdout, 'a') : stdout;
  const argv = ['sh', '-c', `${ULIMIT} exec ${cmdline}`];
  if (PIN && cpu !== null) argv.unshift('taskset', '-c', String(cpu));
  const proc = spawn(argv[0], argv.slice(1), { detached: true, stdio: [stdin, outFd, errFd], cwd: ROOT });
  fs.closeSync(errFd);
  if (typeof outFd === 'number') fs.closeSync(outFd);
  const child = { name, proc, pid: proc.pid, exited: false, code: null, stderrFile };
  children.add(child);
  ourGroups.add(proc.pid);
  if (pgidFile && proc.pid) fs.appendFileSync(pgidFile, `${proc.pid}\n`);
  proc.on('exit', (code, sig) => { child.exited = true; child.code = code ?? sig; });
  proc.on('error', (err) => { child.exited = true; child.code = err.message; });
  return child;
}

/**
 * Run a bounded command to completion (own process group, killed on timeout), capturing stdout.
 * A wrapping shell reports the command's CPU time (`times`), so the interference check can count it
 * as ours although the process is gone by the time we look: resolves { code, stdout, stderr, ticks }.
 */
function runCapture(name, argv, { cpu = null, timeoutMs }) {
  return new Promise((resolve, reject) => {
    if (aborting) { reject(new Error(`aborted (${aborting})`)); return; }
    const wrapped = ['sh', '-c', '"$@"; rc=$?; echo "@times" >&2; times >&2; exit $rc', 'sh', ...argv];
    const full = PIN && cpu !== null ? ['taskset', '-c', String(cpu), ...wrapped] : wrapped;
    const proc = spawn(full[0], full.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    const child = { name, proc, pid: proc.pid, exited: false, code: null, stderrFile: null };
    children.add(child);
    ourGroups.add(proc.pid);
    if (pgidFile && proc.pid) fs.appendFileSync(pgidFile, `${proc.pid}\n`);
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
    proc.on('error', (e) => { err += e.message; });
    proc.on('close', (code, sig) => {
      clearTimeout(timer);
      child.exited = true;
      children.delete(child);
      let ticks = 0;
      const at = err.lastIndexOf('@times\n');
      if (at >= 0) {
        // second line of `times`: user and system time of the shell's children, e.g. "0m1.230000s 0m2.5s"
        const kids = err.slice(at + 7).split('\n')[1] ?? '';
        for (const m of kids.matchAll(/(\d+)m([\d.]+)s/g)) ticks += (Number(m[1]) * 60 + Number(m[2])) * CLK_TCK;
        err = err.slice(0, at);
      }
      if (aborting) reject(new Error(`aborted (${aborting})`));
      else resolve({ code: code ?? sig, stdout: out, stderr: err, ticks });
    });
  });
}

function killGroup(child, sig) {
  if (!child.pid) return;
  try { process.kill(-child.pid, sig); } catch { /* already gone */ }
}

async function stopChild(child, graceMs = 2000) {
  if (!child) return;
  killGroup(child, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (!child.exited && Date.now() < until) await sleep(50);
  killGroup(child, 'SIGKILL'); // also reaps grandchildren (nginx workers) left in the group
  children.delete(child);
}

async function cleanup() {
  if (cleaning) return;
  cleaning = true;
  removeBlackholes(); // first: the iptables rules outlive this process
  await Promise.all([...children].map((c) => stopChild(c)));
  removeBlackholes(); // again: a step still running when a signal came may have added one
  if (watchdog) killGroup(watchdog, 'SIGKILL');
  if (TMP && !opt['keep-tmp']) fs.rmSync(TMP, { recursive: true, force: true });
}

function cleanupSync() { // last resort on 'exit': synchronous only
  removeBlackholes();
  for (const c of children) killGroup(c, 'SIGKILL');
  if (watchdog) killGroup(watchdog, 'SIGKILL');
  if (TMP && !opt['keep-tmp']) { try { fs.rmSync(TMP, { recursive: true, force: true }); } catch { /* ignore */ } }
}
process.on('exit', cleanupSync);
let aborting = null; // set by a signal: every pending step rejects and no report is printed
/** Once, whatever asks first: every pending step rejects, children and black holes go, then exit. */
function stop(why, code) {
  if (aborting) return;
  aborting = why;
  log(`\nbench: ${why}, stopping children`);
  cleanup().finally(() => process.exit(code));
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => stop(sig, sig === 'SIGINT' ? 130 : 143));
// Node ignores SIGPIPE, so a closed reader shows up as EPIPE on the next write. Unhandled, each one
// was an uncaughtException whose log line failed again: a loop that spun at full CPU and grew to GBs
// and never reached the exit. Stop the way SIGPIPE would have.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', () => {
    outputGone = true;
    stop('output closed', 141);
  });
}
process.on('uncaughtException', (err) => {
  log(`bench: ${err.stack || err}`);
  cleanup().finally(() => process.exit(1));
});
process.on('unhandledRejection', (err) => {
  log(`bench: ${err?.stack || err}`);
  cleanup().finally(() => process.exit(1));
});

/** If this process dies without running its handlers (SIGKILL), kill every group it started. */
function startWatchdog() {
  pgidFile = path.join(TMP, 'pgids');
  fs.writeFileSync(pgidFile, '');
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done
for g in $(cat ${shq(pgidFile)} 2>/dev/null); do kill -KILL -$g 2>/dev/null; done
${watchdogScript(TMP, shq)}
${opt['keep-tmp'] ? '' : `rm -rf ${shq(TMP)}`}`;
  const proc = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  proc.unref();
  watchdog = { name: 'watchdog', proc, pid: proc.pid };
  ourGroups.add(proc.pid);
}

function tail(file, n = 15) {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return ''; }
}

// ───────────────────────────── /proc helpers ─────────────────────────────
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function groupPids(pgid) {
  const pids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // f[0]=state f[1]=ppid f[2]=pgrp
      if (Number(f[2]) === pgid) pids.push(Number(d));
    } catch { /* raced with exit */ }
  }
  return pids;
}
/**
 * Voluntary context switches of a process group's processes: each one is a sleep that traffic then
 * had to wake it from. For nginx's worker, per connection, it shows how much of the backend's (and
 * the kernel's) work a proxy's pacing causes: a wakeup on another CPU is dear in a virtual machine.
 */
function groupSleeps(pgid) {
  let n = 0;
  for (const pid of groupPids(pgid)) {
    try {
      const m = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) n += Number(m[1]);
    } catch { /* raced */ }
  }
  return n;
}
function groupRssKB(pgid) {
  let kb = 0;
  for (const pid of groupPids(pgid)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch { /* raced */ }
  }
  return kb;
}
function groupCpuTicks(pgid) {
  let t = 0;
  for (const pid of groupPids(pgid)) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // utime = f[11], stime = f[12]
      t += Number(f[11]) + Number(f[12]);
    } catch { /* raced */ }
  }
  return t;
}
function groupFds(pgid) {
  let n = 0;
  for (const pid of groupPids(pgid)) {
    try { n += fs.readdirSync(`/proc/${pid}/fd`).length; } catch { /* raced */ }
  }
  return n;
}
function isListening(port) {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const f of ['/proc/net/tcp']) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    for (const l of lines) {
      const c = l.trim().split(/\s+/);
      if (c[1] === hex && c[3] === '0A') return true;
    }
  }
  return false;
}
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
async function sampleMedian(fn, n, everyMs) {
  const xs = [];
  for (let i = 0; i < n; i++) { if (i) await sleep(everyMs); xs.push(fn()); }
  return median(xs);
}

/**
 * Interference check: CPU used during a measurement by anything this bench did not start (other
 * users of a shared machine, package installs, test runs, cron…) plus hypervisor steal, in % of
 * one core. Computed per CPU as a residual, so short-lived processes that came and went are caught
 * too: busy time in /proc/stat (user+nice+system+irq+softirq) minus the time of our own process
 * groups, of this script, of kernel threads (ksoftirqd/kworkers carry our loopback traffic) and of
 * our finished load generator (`extraTicks`, on CPU_LOAD), plus steal. With pinning only the CPUs
 * the measurement uses count (`cpus`): other work on the idle proxy core does not disturb a direct
 * run. Tick-based, so ±1–2 % noise.
 */
function cpuSnapshot() {
  const procs = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // f[36] = CPU last run on
      procs.set(Number(d), { ppid: Number(f[1]), pgid: Number(f[2]), ticks: Number(f[11]) + Number(f[12]), cpu: Number(f[36]) });
    } catch { /* raced */ }
  }
  const busy = [];
  const steal = [];
  for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s/.exec(line);
    if (!m) continue;
    const c = line.trim().split(/\s+/).map(Number); // cpuN user nice system idle iowait irq softirq steal
    busy[Number(m[1])] = c[1] + c[2] + c[3] + c[6] + c[7];
    steal[Number(m[1])] = c[8] || 0;
  }
  return { procs, busy, steal, at: process.hrtime.bigint() };
}
function otherCpuPct(a, b, { extraTicks = 0, cpus = null, detail = null } = {}) {
  const seconds = Number(b.at - a.at) / 1e9;
  const n = b.busy.length;
  const perCpu = PIN; // pinned: every one of our processes sits on a known CPU
  const ours = new Array(n).fill(0);
  const live = new Array(n).fill(0); // foreign processes still alive (the rest came and went)
  ours[perCpu ? CPU_LOAD : 0] += extraTicks;
  for (const [pid, p] of b.procs) {
    const dt = p.ticks - (a.procs.get(pid)?.ticks ?? 0);
    const cpu = perCpu && p.cpu >= 0 && p.cpu < n ? p.cpu : 0;
    if (pid === process.pid || pid === 2 || p.ppid === 2 || ourGroups.has(p.pgid)) ours[cpu] += dt;
    else live[cpu] += dt;
  }
  const pct = (t) => (seconds > 0 ? (t / CLK_TCK / seconds) * 100 : 0);
  const sum = (xs, idx) => idx.reduce((acc, i) => acc + (xs[i] || 0), 0);
  const all = [...Array(n).keys()];
  const groups = perCpu ? all.map((i) => [i]) : [all]; // unpinned: one pool
  const other = new Array(n).fill(0);
  for (const g of groups) {
    const busy = sum(b.busy, g) - sum(a.busy, g);
    const st = sum(b.steal, g) - sum(a.steal, g);
    other[g[0]] = Math.max(0, busy - sum(ours, g)) + st;
  }
  const use = perCpu && cpus ? cpus : all;
  if (detail) Object.assign(detail, { perCpuPct: other.map(pct), otherLivePct: pct(sum(live, all)), cpusCounted: use });
  return pct(sum(other, use));
}

async function freePorts(n) {
  const servers = [];
  const ports = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise((res, rej) => { s.once('error', rej); s.listen(0, '127.0.0.1', res); });
    servers.push(s);
    ports.push(s.address().port);
  }
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

async function waitFor(what, child, pred, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (aborting) throw new Error(`aborted (${aborting})`);
    if (child?.exited) throw new Error(`${child.name} exited (${child.code}) while waiting for ${what}\n${tail(child.stderrFile)}`);
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error(`timeout waiting for ${what}${child ? `\n${tail(child.stderrFile)}` : ''}`);
}

function httpProbe(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n'));
    s.on('data', (d) => { buf += d; if (/^HTTP\/1\.1 200[\s\S]*\r\n\r\nok\n/.test(buf)) done(true); });
    s.on('error', () => done(false));
    s.on('end', () => done(/^HTTP\/1\.1 200/.test(buf)));
  });
}

// ───────────────────────────── backends ─────────────────────────────
function nginxConf(port) {
  return `daemon off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${TMP}/nginx.pid;
error_log ${TMP}/nginx-error.log warn;
events { worker_connections 10000; multi_accept on; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 1h;
  client_body_temp_path ${TMP}/nginx-body;
  proxy_temp_path ${TMP}/nginx-proxy;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 200 "ok\\n"; }
  }
}
`;
}

// Holder: accepts and keeps idle connections, discards input; answers "count" on stdin with "count N".
const HOLDER_JS = `
const net = require('node:net');
let n = 0;
const srv = net.createServer((s) => { n++; s.on('data', () => {}); s.on('error', () => {}); s.on('close', () => { n--; }); });
srv.listen({ host: '127.0.0.1', port: Number(process.argv[1]), backlog: 4096 });
let buf = '';
process.stdin.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); if (l === 'count') process.stdout.write('count ' + n + '\\n'); } });
process.stdin.on('end', () => process.exit(0));
`;

// Opener: opens N connections (at most C connecting at once), sends one small non-STATUS line on each,
// prints "opened OK FAILED"; on "status" prints "status OPEN DROPPED"; on "close" destroys all and exits.
const OPENER_JS = `
const net = require('node:net');
const [port, N, C] = process.argv.slice(1).map(Number);
const socks = [];
let started = 0, ok = 0, failed = 0, dropped = 0, pending = 0, closing = false;
function pump() {
  while (pending < C && started < N) {
    started++; pending++;
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let connected = false;
    s.on('connect', () => { connected = true; ok++; pending--; s.write('hello licgate bench\\n'); pump(); check(); });
    s.on('error', () => {});
    s.on('close', () => { if (!connected) { failed++; pending--; pump(); check(); } else if (!closing) dropped++; });
    s.on('data', () => {});
    socks.push(s);
  }
}
let reported = false;
function check() { if (!reported && ok + failed === N) { reported = true; process.stdout.write('opened ' + ok + ' ' + failed + '\\n'); } }
pump();
let buf = '';
process.stdin.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1);
  if (l === 'status') process.stdout.write('status ' + (ok - dropped) + ' ' + dropped + '\\n');
  if (l === 'close') { closing = true; for (const s of socks) s.destroy(); setTimeout(() => process.exit(0), 50); } } });
process.stdin.on('end', () => process.exit(0));
`;

/** Line-oriented request/reply over a child's stdin/stdout. */
function lineChannel(child) {
  let buf = '';
  const waiters = [];
  child.proc.stdout.setEncoding('utf8');
  child.proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.findIndex((x) => line.startsWith(x.prefix));
      if (w >= 0) waiters.splice(w, 1)[0].resolve(line);
    }
  });
  return {
    send(line) { child.proc.stdin.write(`${line}\n`); },
    expect(prefix, timeoutMs) {
      return new Promise((resolve, reject) => {
        const w = { prefix, resolve: (l) => { clearTimeout(t); resolve(l); } };
        const t = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`${child.name}: no "${prefix}" within ${timeoutMs} ms`)); }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

// ───────────────────────────── proxies ─────────────────────────────
function haproxyConf(p, nofile) {
  // maxconn 20000 makes HAProxy want ~40k fds; where the hard limit is lower (and cannot be raised)
  // "no strict-limits" lets it start with a warning instead of refusing (the idle test stays far below).
  const strict = nofile && nofile < 2 * 20000 + 100 ? '\n  no strict-limits' : '';
  return `global
  nbthread 1
  maxconn 20000${strict}

defaults
  mode tcp
  maxconn 20000
  timeout connect 5s
  timeout client 1h
  timeout server 1h

frontend http
  bind 127.0.0.1:${p.http}
  default_backend nginx
backend nginx
  server n1 127.0.0.1:${p.nginx} check inter 2s

frontend bulk
  bind 127.0.0.1:${p.bulk}
  default_backend iperf
backend iperf
  server i1 127.0.0.1:${p.iperf}

frontend idle
  bind 127.0.0.1:${p.idle}
  default_backend holder
backend holder
  server h1 127.0.0.1:${p.holder}
`;
}

// The two frontends of the brief plus "idle" (to the holder, for the idle-memory test). No checks on
// iperf (iperf3 -s treats any extra connection as a client) nor on the holder (its count must be exact).
function licgateConf(p) {
  return `admin: { listen: 127.0.0.1:${p.admin} }
log: { level: info, format: json }
frontends:
  - { name: http, listen: 127.0.0.1:${p.http}, backend: nginx }
  - { name: bulk, listen: 127.0.0.1:${p.bulk}, backend: iperf }
  - { name: idle, listen: 127.0.0.1:${p.idle}, backend: holder }
backends:
  - name: nginx
    check: { type: tcp, inter: 2s }
    servers: [ { name: n1, address: 127.0.0.1:${p.nginx} } ]
  - name: iperf
    check: { type: none }
    servers: [ { name: i1, address: 127.0.0.1:${p.iperf} } ]
  - name: holder
    check: { type: none }
    servers: [ { name: h1, address: 127.0.0.1:${p.holder} } ]
`;
}

/**
 * Start one proxy instance (`tag` names its files: the long-lived "haproxy", or a fresh
 * "haproxy-idle-3" for one idle-memory sample). Resolves when its frontends listen and, unless
 * `httpProbe` is false, an HTTP request through it reaches nginx. Never throws: sets `failed`.
 */
async function startTarget(name, tag, { backendPorts, nofile, licgateMain }, { probe = true } = {}) {
  const [http, bulk, idle, admin] = await freePorts(4);
  const p = { http, bulk, idle, admin, ...backendPorts };
  const t = { name, tag, child: null, ports: p, failed: null, cmd: null };
  try {
    if (name === 'haproxy') {
      const cfg = path.join(TMP, `${tag}.cfg`);
      fs.writeFileSync(cfg, haproxyConf(p, nofile));
      const chk = spawnSync('haproxy', ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
      if (chk.status !== 0) throw new Error(`haproxy -c failed: ${chk.stdout}${chk.stderr}`);
      t.cmd = `haproxy -db -f ${shq(cfg)}`;
    } else {
      const cfg = path.join(TMP, `${tag}.yaml`);
      fs.writeFileSync(cfg, licgateConf(p));
      if (STAND_INS[name]) t.cmd = `${NODE_AS_SHIPPED} ${shq(path.join(HERE, STAND_INS[name]))} --config ${shq(cfg)}`;
      else if (opt['licgate-cmd']) t.cmd = `${opt['licgate-cmd']} --config ${shq(cfg)}`;
      else t.cmd = `${NODE_AS_SHIPPED} ${shq(licgateMain)} run --config ${shq(cfg)}`;
    }
    t.child = startChild(tag, t.cmd, { cpu: CPU_PROXY, stdout: name === 'licgate' ? opt['licgate-log'] : 'ignore' });
    await waitFor(`${tag} frontends`, t.child, () => isListening(http) && isListening(bulk) && isListening(idle), 15000);
    if (probe) await waitFor(`${tag} to proxy HTTP to nginx`, t.child, () => httpProbe(http), 15000);
  } catch (err) {
    if (!aborting) log(`bench: ${tag} failed to start: ${err.message}`);
    t.failed = err.message.split('\n')[0];
    await stopChild(t.child);
  }
  return t;
}

// ───────────────────────────── measurements ─────────────────────────────
function toMs(s) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s);
  if (!m) return null;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2]];
}

function parseWrk(out) {
  const num = (re) => { const m = re.exec(out); return m ? m[1] : null; };
  const r = {
    rps: Number(num(/^Requests\/sec:\s+([\d.]+)/m)),
    requests: Number(num(/^\s*(\d+) requests in /m)),
    p50: toMs(num(/^\s*50%\s+(\S+)/m) ?? ''),
    p99: toMs(num(/^\s*99%\s+(\S+)/m) ?? ''),
    errors: 0,
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (se) {
    r.socketErrors = { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] };
    // With "Connection: close" wrk counts the server's close as a read error on some builds; keep
    // connect/write/timeout as real errors and report read separately.
    r.errors += +se[1] + +se[3] + +se[4];
  }
  const non2xx = num(/Non-2xx or 3xx responses:\s+(\d+)/);
  if (non2xx) { r.non2xx = Number(non2xx); r.errors += r.non2xx; }
  if (!Number.isFinite(r.rps)) r.rps = null;
  return r;
}

/**
 * On a shared machine: before a load step, wait (at most --quiet-wait seconds in total per step)
 * until other processes used <= NOISY_PCT of a core over the last half second.
 */
async function awaitQuiet() {
  if (QUIET_WAIT <= 0) return;
  const until = Date.now() + QUIET_WAIT * 1000;
  for (;;) {
    const a = cpuSnapshot();
    await sleep(500);
    if (otherCpuPct(a, cpuSnapshot()) <= NOISY_PCT || Date.now() >= until || aborting) return;
  }
}

/**
 * Runs one load generator on the load CPU, once the machine is quiet, and reads around it what the
 * proxy's process group (pgid; null for the direct connection) used, the backend's sleeps, and the
 * CPU other processes took on the CPUs involved.
 */
async function underLoad(name, argv, pgid, timeoutMs) {
  await awaitQuiet();
  const snap = cpuSnapshot();
  const t0 = pgid ? groupCpuTicks(pgid) : 0;
  const s0 = backendGroup ? groupSleeps(backendGroup) : 0;
  const w0 = process.hrtime.bigint();
  const res = await runCapture(name, argv, { cpu: CPU_LOAD, timeoutMs });
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const ticks = pgid ? groupCpuTicks(pgid) - t0 : null;
  const sleeps = backendGroup ? groupSleeps(backendGroup) - s0 : null;
  const detail = {};
  const otherCpu = otherCpuPct(snap, cpuSnapshot(), { extraTicks: res.ticks, cpus: pgid ? null : [CPU_LOAD], detail });
  return { res, wall, ticks, sleeps, otherCpu, detail };
}

async function wrk(port, close, pgid, seconds = DURATION) {
  const args = ['wrk', '-t1', `-c${CONNS}`, `-d${seconds}s`, '--latency'];
  if (close) args.push('-H', 'Connection: close');
  args.push(`http://127.0.0.1:${port}/`);
  const { res, wall, ticks, sleeps, otherCpu, detail } = await underLoad('wrk', args, pgid, (seconds + 20) * 1000);
  if (res.code !== 0) return { error: `wrk exit ${res.code}: ${res.stderr.trim().slice(0, 300)}` };
  const r = parseWrk(res.stdout);
  r.otherCpuPct = otherCpu;
  r.otherCpuDetail = detail;
  if (r.rps === null) return { error: `cannot parse wrk output: ${res.stdout.slice(0, 300)}` };
  if (sleeps !== null && r.requests > 0) r.backendSleepsPerReq = sleeps / r.requests;
  if (pgid && r.requests > 0) {
    r.proxyCpuUsPerReq = (ticks / CLK_TCK) * 1e6 / r.requests;
    r.proxyCpuPct = (ticks / CLK_TCK) / wall * 100;
  }
  return r;
}

/**
 * The rate test: RATE new connections a second for `seconds`, offered alike to every target
 * (h2load, open loop), one request each with Connection: close. Latency is h2load's per-request time
 * from its --log-file (request sent to response complete; the TCP handshake to the proxy is the
 * kernel's and is left out).
 */
async function h2load(port, pgid, seconds = DURATION) {
  const n = RATE * seconds;
  const logFile = path.join(TMP, `h2load-${port}.log`);
  fs.rmSync(logFile, { force: true });
  const args = ['h2load', '--h1', '-H', 'Connection: close', '-c', String(n), '-n', String(n),
    '-r', String(RATE / RATE_STEPS_PER_S), '--rate-period', `${1000 / RATE_STEPS_PER_S}ms`, '--log-file', logFile,
    `http://127.0.0.1:${port}/`];
  const { res, ticks, otherCpu, detail } = await underLoad('h2load', args, pgid, (seconds * 3 + 20) * 1000);
  const done = /^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded,/m.exec(res.stdout);
  const fin = /^finished in ([\d.]+)(ms|s),/m.exec(res.stdout);
  if (res.code !== 0 || !done || !fin) return { error: `h2load exit ${res.code}: ${(res.stderr.trim() || res.stdout).slice(0, 300)}` };
  const ok = Number(done[1]);
  // h2load's own time from its first connection to its last response; the helper's wall also counts its start.
  const wall = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
  let times = [];
  try {
    times = fs.readFileSync(logFile, 'utf8').split('\n').map((l) => l.split('\t')).filter((f) => f[1] === '200').map((f) => Number(f[2]) / 1000).sort((a, b) => a - b);
  } catch { /* no log: reported below */ }
  if (!times.length) return { error: 'h2load wrote no successful request to its log' };
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  const r = { offered: RATE, achieved: ok / wall, p50: at(0.5), p99: at(0.99), errors: n - ok, otherCpuPct: otherCpu, otherCpuDetail: detail };
  // The last connections are opened `seconds` in; a target that fell behind finishes later.
  if (r.achieved < RATE * 0.95) r.warning = `fell behind: ${r.achieved.toFixed(0)} of ${RATE} connections/s`;
  if (pgid && ok > 0) {
    r.proxyCpuUsPerConn = (ticks / CLK_TCK) * 1e6 / ok;
    r.proxyCpuPct = (ticks / CLK_TCK) / wall * 100;
  }
  return r;
}

async function iperf(port, pgid) {
  const { res, ticks, otherCpu, detail } = await underLoad('iperf3-c', ['iperf3', '-c', '127.0.0.1', '-p', String(port), '-t', String(IPERF_TIME), '-J'],
    pgid, (IPERF_TIME + 20) * 1000);
  let j;
  try { j = JSON.parse(res.stdout); } catch { return { error: `iperf3 exit ${res.code}: ${(res.stdout + res.stderr).slice(0, 300)}` }; }
  if (j.error) return { error: `iperf3: ${j.error}` };
  const bps = j?.end?.sum_received?.bits_per_second;
  if (typeof bps !== 'number') return { error: 'iperf3: no end.sum_received.bits_per_second' };
  const bytes = j.end.sum_received.bytes;
  const r = { gbps: bps / 1e9, otherCpuPct: otherCpu, otherCpuDetail: detail };
  if (pgid && bytes) r.proxyCpuNsPerKB = (ticks / CLK_TCK) * 1e9 / (bytes / 1024);
  return r;
}

async function holderCount(holder) {
  holder.ch.send('count');
  return Number((await holder.ch.expect('count', 2000)).split(' ')[1]);
}

/** Open n idle connections to port from a separate process; resolves once all connected or failed. */
async function openConns(port, n, tag) {
  const child = startChild(tag, `${shq(process.execPath)} -e ${shq(OPENER_JS)} ${port} ${n} 200`,
    { cpu: CPU_LOAD, stdout: 'pipe', stdin: 'pipe' });
  const ch = lineChannel(child);
  const [, ok, failed] = (await ch.expect('opened', 60000)).split(' ').map(Number);
  return {
    ok, failed, ch,
    /** Drop every connection at once (SIGKILL: the kernel closes them) without waiting for the holder. */
    async kill() { await stopChild(child, 0); },
    async close(holder) {
      try { ch.send('close'); } catch { /* gone */ }
      await waitFor(`${tag} to exit`, null, () => child.exited, 5000).catch(() => {});
      await stopChild(child, 100);
      await waitFor('holder to drain', holder.child, async () => (await holderCount(holder)) === 0, 15000);
    },
  };
}

async function idleMemory(t, { holder }) {
  const pgid = t.child.pid;
  const t0 = Date.now();
  await waitFor('holder to be empty', holder.child, async () => (await holderCount(holder)) === 0, 15000);
  // Warm-up: the first connections pay for lazily compiled code and one-time allocations.
  const warm = await openConns(t.ports.idle, 200, 'opener-warm');
  await waitFor('warm-up connections to reach the holder', t.child, async () => (await holderCount(holder)) >= warm.ok, 15000);
  await warm.close(holder);
  await sleep(200);
  const before = await sampleMedian(() => groupRssKB(pgid), 5, 50);
  const fdsBefore = groupFds(pgid);

  const r = { conns: IDLE_CONNS };
  const conns = await openConns(t.ports.idle, IDLE_CONNS, 'opener');
  try {
    r.opened = conns.ok;
    r.failed = conns.failed;
    // Wait until the proxy has connected every accepted connection to the holder and its fd count
    // stopped moving.
    let held = -1;
    let lastFds = -1;
    let stable = 0;
    const until = Date.now() + 30000;
    while (Date.now() < until) {
      held = await holderCount(holder);
      const fds = groupFds(pgid);
      stable = held >= r.opened && fds === lastFds ? stable + 1 : 0;
      lastFds = fds;
      if (stable >= 2) break;
      await sleep(100);
    }
    r.held = held;
    r.proxyFdsAdded = lastFds - fdsBefore;
    if (t.child.exited) throw new Error(`${t.tag} exited during the idle test`);
    await sleep(200);
    const after = await sampleMedian(() => groupRssKB(pgid), 5, 50);
    conns.ch.send('status');
    const st = (await conns.ch.expect('status', 5000)).split(' ').map(Number);
    r.stillOpen = st[1];
    r.dropped = st[2];
    r.rssBeforeKB = before;
    r.rssAfterKB = after;
    const n = Math.min(r.held, r.stillOpen);
    if (n > 0) r.kbPerConn = (after - before) / n;
    if (n < IDLE_CONNS) r.warning = `only ${n}/${IDLE_CONNS} connections were held end to end`;
  } finally {
    // This instance is thrown away: kill the opener and the proxy, then let the holder drain.
    await conns.kill();
    await stopChild(t.child, 500);
    await waitFor('holder to drain', holder.child, async () => (await holderCount(holder)) === 0, 15000)
      .catch((e) => { r.warning = (r.warning ? `${r.warning}; ` : '') + e.message.split('\n')[0]; });
  }
  r.ms = Date.now() - t0;
  return r;
}

// ───────────────────────────── main ─────────────────────────────
let preflightBusy = null;
async function main() {
  const wallStart = Date.now();
  TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'licgate-bench-'));
  startWatchdog();
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', String(CPU_LOAD), String(process.pid)], { stdio: 'ignore' });
  { // pre-flight: is somebody else using this machine right now?
    const a = cpuSnapshot();
    await sleep(1000);
    const busy = otherCpuPct(a, cpuSnapshot());
    preflightBusy = busy;
    if (busy > NOISY_PCT) log(`bench: warning: other processes are using ${busy.toFixed(0)}% of a core right now; results will be noisy${QUIET_WAIT ? '' : ' (--quiet-wait SECONDS helps on a shared machine)'}`);
  }

  for (const bin of [...(PERF ? ['wrk', 'iperf3', 'nginx'] : []), ...(TESTS.includes('rate') ? ['h2load'] : []), ...(TARGETS.includes('haproxy') ? ['haproxy'] : []), ...(PIN ? ['taskset'] : [])]) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) die(`${bin} not found in PATH`);
  }

  const licgateMain = path.join(ROOT, 'dist', 'cli', 'licgate.cjs');
  if (!fs.existsSync(licgateMain)) {
    // The relay column runs licgate's built relay too (bench/handle-relay.mjs imports dist/).
    const unbuilt = TARGETS.filter((t) => t === 'relay' || (t === 'licgate' && !opt['licgate-cmd']));
    if (unbuilt.length) log(`bench: licgate not built (${path.relative(ROOT, licgateMain)} missing; run \`npm run build\`): skipping the ${unbuilt.join(' and ')} column${unbuilt.length > 1 ? 's' : ''}`);
    TARGETS = TARGETS.filter((t) => !unbuilt.includes(t));
  }
  if (TARGETS.includes('native')) {
    // Compiled before any round starts, so a missing compiler costs the column, not a failed round.
    const built = spawnSync(process.execPath, [path.join(HERE, STAND_INS.native), '--build'], { encoding: 'utf8' });
    if (built.status !== 0) {
      log(`bench: ${(built.stderr || '').trim() || `native-relay.mjs --build exited ${built.status}`}: skipping the native column`);
      TARGETS = TARGETS.filter((t) => t !== 'native');
    }
  }
  const nofile = Number(spawnSync('sh', ['-c', `${ULIMIT} ulimit -n`], { encoding: 'utf8' }).stdout.trim());
  if (TESTS.includes('idle') && nofile && 2 * IDLE_CONNS + 200 > nofile) {
    log(`bench: warning: --idle-conns ${IDLE_CONNS} needs ~${2 * IDLE_CONNS + 200} fds in the proxy; the limit here is ${nofile}`);
  }

  const haproxyVersion = (spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout || '').split('\n')[0].replace(/^HAProxy version\s+/, '').split(' ')[0] || 'n/a';
  const nginxVersion = PERF ? (spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr || '').trim().replace(/^nginx version:\s*/, '') : 'nginx not used';
  const targets = [];
  let iperfServer = null;
  let startIperf = null;
  let holder = null;
  let iperfPort = null;
  let ctx = null;
  if (!PERF) { // failover only: it starts its own servers and proxies
    for (const name of TARGETS) targets.push({ name, child: null, ports: {}, failed: null, cmd: null });
  } else {
    const ports = await freePorts(3);
    const [nginxPort, , holderPort] = ports;
    iperfPort = ports[1];

    // Backends (on the load CPU).
    fs.writeFileSync(path.join(TMP, 'nginx.conf'), nginxConf(nginxPort));
    const nginx = startChild('nginx', `nginx -e ${shq(TMP)}/nginx-error.log -p ${shq(TMP)} -c ${shq(TMP)}/nginx.conf`, { cpu: CPU_LOAD });
    backendGroup = nginx.pid;
    startIperf = () => startChild('iperf3-s', `iperf3 -s -B 127.0.0.1 -p ${iperfPort}`, { cpu: CPU_LOAD });
    iperfServer = startIperf();
    holder = { child: startChild('holder', `${shq(process.execPath)} -e ${shq(HOLDER_JS)} ${holderPort}`, { cpu: CPU_LOAD, stdout: 'pipe', stdin: 'pipe' }) };
    holder.ch = lineChannel(holder.child);
    await waitFor('nginx', nginx, () => isListening(nginxPort), 10000);
    await waitFor('iperf3 -s', iperfServer, () => isListening(iperfPort), 10000);
    await waitFor('holder', holder.child, () => isListening(holderPort), 10000);
    await waitFor('nginx to answer', nginx, () => httpProbe(nginxPort), 10000);

    // Targets.
    const backendPorts = { nginx: nginxPort, iperf: iperfPort, holder: holderPort };
    ctx = { backendPorts, nofile, licgateMain };
    for (const name of TARGETS) {
      if (name === 'direct') targets.push({ name, child: null, ports: { http: nginxPort, bulk: iperfPort, idle: null }, failed: null });
      else targets.push(await startTarget(name, name, ctx));
    }
  }

  // Warm-up (JIT, buffer pools, TIME_WAIT steady state): 1 s of each HTTP load per target.
  if (TESTS.includes('rps') || TESTS.includes('cps')) {
    for (const t of targets.filter((x) => !x.failed && x.child)) {
      await wrk(t.ports.http, false, null, 1);
      await wrk(t.ports.http, true, null, 1);
    }
  }
  if (TESTS.includes('rate')) { // warm-up: a first round on a cold JIT showed 2-3x the p99 of later ones
    for (const t of targets.filter((x) => !x.failed && x.child)) await h2load(t.ports.http, null, 1);
  }

  const rows = [];
  for (let round = 1; PERF && round <= ROUNDS; round++) {
    for (const t of targets) {
      if (t.failed) continue;
      if (t.child?.exited) { t.failed = `exited (${t.child.code})`; log(`bench: ${t.name} ${t.failed}\n${tail(t.child.stderrFile)}`); continue; }
      const pgid = t.child?.pid ?? null;
      const row = { round, target: t.name };
      const note = [];
      if (TESTS.includes('rps')) {
        row.rps = await wrk(t.ports.http, false, pgid);
        if (!row.rps.error) note.push(`rps ${row.rps.rps.toFixed(0)} p50 ${+row.rps.p50.toFixed(3)}ms p99 ${+row.rps.p99.toFixed(3)}ms`);
      }
      if (TESTS.includes('cps')) {
        row.cps = await wrk(t.ports.http, true, pgid);
        if (!row.cps.error) note.push(`cps ${row.cps.rps.toFixed(0)}`);
      }
      if (TESTS.includes('rate')) {
        row.rate = await h2load(t.ports.http, pgid);
        if (!row.rate.error) note.push(`rate ${RATE}/s p99 ${+row.rate.p99.toFixed(3)}ms${row.rate.proxyCpuUsPerConn ? ` cpu ${row.rate.proxyCpuUsPerConn.toFixed(0)}µs/conn` : ''}`);
      }
      if (TESTS.includes('bulk')) {
        if (iperfServer.exited) { iperfServer = startIperf(); await waitFor('iperf3 -s', iperfServer, () => isListening(iperfPort), 10000); }
        row.bulk = await iperf(t.ports.bulk, pgid);
        if (row.bulk.error) { await stopChild(iperfServer); iperfServer = startIperf(); await waitFor('iperf3 -s', iperfServer, () => isListening(iperfPort), 10000); }
        else note.push(`bulk ${row.bulk.gbps.toFixed(1)} Gbit/s`);
      }
      if (TESTS.includes('idle') && t.name !== 'direct' && round <= IDLE_ROUNDS) {
        // A fresh instance per sample: allocators keep their high-water mark (HAProxy's pools, glibc,
        // V8's heap), so a second ΔRSS in the same process reads ~0 and would say nothing.
        const fresh = await startTarget(t.name, `${t.name}-idle-${round}`, ctx, { probe: false });
        if (fresh.failed) row.idle = { error: `fresh instance: ${fresh.failed}` };
        else {
          try { row.idle = await idleMemory(fresh, { holder }); } catch (err) { row.idle = { error: err.message.split('\n')[0] }; }
          await stopChild(fresh.child, 500);
        }
        if (row.idle.kbPerConn !== undefined) note.push(`idle ${row.idle.kbPerConn.toFixed(2)} KB/conn`);
      }
      if (t.child?.exited) { // died during this round: none of its samples from this round count
        for (const k of ['rps', 'cps', 'rate', 'bulk']) if (row[k]) row[k] = { error: `${t.name} exited (${t.child.code})` };
      }
      for (const k of ['rps', 'cps', 'rate', 'bulk', 'idle']) {
        if (row[k]?.error) note.push(`${k} ERROR ${row[k].error}`);
        if (row[k]?.errors) note.push(`${k} ${row[k].errors} errors`);
        if (row[k]?.warning) note.push(`${k}: ${row[k].warning}`);
        if (row[k]?.otherCpuPct > NOISY_PCT) note.push(`⚠ ${k}: other processes used ${row[k].otherCpuPct.toFixed(0)}% of a core`);
      }
      log(`[round ${round}/${ROUNDS}] ${t.name.padEnd(8)} ${note.join(' · ')}`);
      rows.push(row);
    }
  }

  if (aborting) return;
  const fo = TESTS.includes('failover') ? await failover(licgateMain) : null;
  if (aborting) return;

  // ───────── report ─────────
  const cols = targets.map((t) => t.name);
  // Failover rows: "haproxy" is the seed config there, and the tuned HAProxy gets its own column
  // (a dash in the performance rows); see bench/failover.mjs.
  const foRows = fo ? failoverRows(fo) : [];
  if (fo?.variants.includes('haproxy-tuned')) cols.splice(cols.indexOf('haproxy') + 1, 0, 'haproxy tuned');
  // Median per (metric, target). Samples taken while other processes used > NOISY_PCT of a core are
  // left out when at least 2 clean ones remain (all of them with 1 round); otherwise all samples
  // count and the cell is starred. Every sample stays in --json.
  const tainted = new Set();
  const med = (target, m) => {
    const samples = rows.filter((r) => r.target === target).map((r) => {
      let v;
      try { v = m.get(r); } catch { v = undefined; }
      return { v, noisy: (r[m.test]?.otherCpuPct ?? 0) > NOISY_PCT };
    }).filter((x) => typeof x.v === 'number' && Number.isFinite(x.v));
    const clean = samples.filter((x) => !x.noisy);
    if (clean.length >= Math.min(2, samples.length)) return median(clean.map((x) => x.v));
    tainted.add(`${m.key}/${target}`);
    return median(samples.map((x) => x.v));
  };
  const metrics = [
    { key: 'rps', label: `requests/s (keep-alive, wrk -c${CONNS})`, get: (r) => r.rps.rps, fmt: (v) => v.toFixed(0), test: 'rps' },
    { key: 'rps_p50', label: 'latency p50, ms (keep-alive)', get: (r) => r.rps.p50, fmt: (v) => v.toFixed(3), test: 'rps' },
    { key: 'rps_p99', label: 'latency p99, ms (keep-alive)', get: (r) => r.rps.p99, fmt: (v) => v.toFixed(3), test: 'rps' },
    { key: 'cps', label: 'new connections/s (Connection: close)', get: (r) => r.cps.rps, fmt: (v) => v.toFixed(0), test: 'cps' },
    { key: 'cps_p99', label: 'latency p99, ms (Connection: close)', get: (r) => r.cps.p99, fmt: (v) => v.toFixed(3), test: 'cps' },
    { key: 'rate_p50', label: `latency p50, ms (${RATE} new connections/s offered, h2load)`, get: (r) => r.rate.p50, fmt: (v) => v.toFixed(3), test: 'rate' },
    { key: 'rate_p99', label: `latency p99, ms (${RATE} new connections/s offered)`, get: (r) => r.rate.p99, fmt: (v) => v.toFixed(3), test: 'rate' },
    { key: 'bulk', label: 'bulk throughput, Gbit/s (iperf3)', get: (r) => r.bulk.gbps, fmt: (v) => v.toFixed(2), test: 'bulk' },
    { key: 'idle', label: `idle memory per connection, KB (${IDLE_CONNS} conns)`, get: (r) => r.idle.kbPerConn, fmt: (v) => v.toFixed(2), test: 'idle' },
    { key: 'cpu_req', label: 'proxy CPU per request, µs (keep-alive)', get: (r) => r.rps.proxyCpuUsPerReq, fmt: (v) => v.toFixed(2), test: 'rps' },
    { key: 'cpu_conn', label: 'proxy CPU per connection, µs (close)', get: (r) => r.cps.proxyCpuUsPerReq, fmt: (v) => v.toFixed(2), test: 'cps' },
    { key: 'cpu_rate', label: `proxy CPU per connection, µs (${RATE}/s offered)`, get: (r) => r.rate.proxyCpuUsPerConn, fmt: (v) => v.toFixed(2), test: 'rate' },
    { key: 'cpu_pct', label: 'proxy CPU busy, % of one core (keep-alive)', get: (r) => r.rps.proxyCpuPct, fmt: (v) => v.toFixed(0), test: 'rps' },
    { key: 'cpu_pct_close', label: 'proxy CPU busy, % of one core (close)', get: (r) => r.cps.proxyCpuPct, fmt: (v) => v.toFixed(0), test: 'cps' },
    { key: 'cpu_pct_rate', label: `proxy CPU busy, % of one core (${RATE}/s offered)`, get: (r) => r.rate.proxyCpuPct, fmt: (v) => v.toFixed(0), test: 'rate' },
    { key: 'wake_conn', label: 'nginx sleeps per connection (close)', get: (r) => r.cps.backendSleepsPerReq, fmt: (v) => v.toFixed(2), test: 'cps' },
  ].filter((m) => TESTS.includes(m.test));
  const ratioCols = [];
  if (cols.includes('haproxy') && metrics.length) {
    for (const c of ['licgate', ...Object.keys(STAND_INS)]) if (cols.includes(c)) ratioCols.push(c);
  }
  const medians = {};
  for (const m of metrics) {
    medians[m.key] = {};
    for (const c of cols) if (c !== 'haproxy tuned') medians[m.key][c] = med(c, m);
  }
  const cell = (m, c) => {
    if (c === 'haproxy tuned') return '—';
    const t = targets.find((x) => x.name === c);
    if (t?.failed && medians[m.key][c] === null) return 'failed';
    if (c === 'direct' && (m.key === 'idle' || m.key.startsWith('cpu'))) return '—';
    const v = medians[m.key][c];
    return v === null ? 'n/a' : `${m.fmt(v)}${tainted.has(`${m.key}/${c}`) ? '*' : ''}`;
  };
  const ratio = (m, c) => {
    const a = medians[m.key][c];
    const b = medians[m.key].haproxy;
    return a !== null && b ? `${(a / b).toFixed(2)}×` : 'n/a';
  };
  const header = ['metric', ...cols, ...ratioCols.map((c) => `${c}/haproxy`)];
  const tableRow = (cells) => `| ${cells.join(' | ')} |`;
  const lines = [
    tableRow(header),
    `|${header.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...metrics.map((m) => tableRow([m.label, ...cols.map((c) => cell(m, c)), ...ratioCols.map((c) => ratio(m, c))])),
    ...foRows.map((r) => tableRow([r.label, ...cols.map((c) => r.cells[c] ?? '—'), ...ratioCols.map(() => '—')])),
  ];
  const command = process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).map(shq).join(' ')}` : ''}`
    : ['node', path.relative(process.cwd(), fileURLToPath(import.meta.url)) || 'bench/run.mjs', ...process.argv.slice(2)].map(shq).join(' ');
  const others = rows.flatMap((r) => ['rps', 'cps', 'rate', 'bulk'].map((k) => r[k]?.otherCpuPct)).filter((x) => typeof x === 'number');
  const noisy = others.filter((x) => x > NOISY_PCT).length;
  const fmtPct = (v) => (v === null ? 'n/a' : `${v.toFixed(0)}%`);
  const meta = {
    date: new Date().toISOString(),
    nproc: NPROC,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    haproxy: haproxyVersion,
    nginx: nginxVersion,
    command,
    rounds: ROUNDS,
    pin: PIN ? `proxy on CPU ${CPU_PROXY}; wrk, iperf3, nginx, holder, opener, bench on CPU ${CPU_LOAD}` : 'none',
    wrk: `-t1 -c${CONNS} -d${DURATION}s --latency`,
    ...(TESTS.includes('rate') ? { h2load: `--h1 -H 'Connection: close' at ${RATE} new connections/s for ${DURATION}s` } : {}),
    iperf3: `-t ${IPERF_TIME}`,
    idleConns: IDLE_CONNS,
    nofile,
    wallSeconds: Math.round((Date.now() - wallStart) / 1000),
    otherCpuPctAtStart: preflightBusy,
    quietWait: QUIET_WAIT,
    targets: Object.fromEntries(targets.map((t) => [t.name, { failed: t.failed, cmd: t.cmd }])),
    ...(fo ? { failoverRounds: FAILOVER_ROUNDS, failoverCapSeconds: FAILOVER_CAP } : {}),
  };
  const behind = rows.filter((r) => r.rate?.warning);
  const out = [
    '',
    `licgate bench — ${meta.date} · nproc ${NPROC} · node ${meta.node} · haproxy ${haproxyVersion} · ${meta.nginx} · medians of ${[...(PERF ? [`${ROUNDS} round(s)`] : []), ...(fo ? [`${FAILOVER_ROUNDS} failover run(s)`] : [])].join(', ') || 'nothing'} · pinning: ${meta.pin} · licgate runs as \`${opt['licgate-cmd'] ?? `node ${launcherFlags(path.join(ROOT, 'dist', 'cli', 'licgate.cjs')).join(' ')} dist/cli/licgate.cjs run`.replace(/ +/g, ' ')}\``,
    `command: \`${command}\``,
    '',
    ...lines,
    '',
    ...(tainted.size ? ['* median includes samples disturbed by other processes (fewer than 2 clean samples)'] : []),
    ...behind.map((r) => `${r.target} fell behind the offered rate in round ${r.round} (${r.rate.achieved.toFixed(0)} of ${RATE} connections/s): its fixed-rate figures there are not at equal load`),
    ...(fo ? failoverNotes(fo) : []),
    ...(others.length ? [`interference: other processes + steal used median ${fmtPct(median(others))}, max ${fmtPct(Math.max(...others))} of one core during measurements; ${noisy} of ${others.length} samples above ${NOISY_PCT}%${noisy ? ' (flagged ⚠ in the [round] lines, left out of a median where 2+ clean samples remain; a quiet machine gives steadier numbers)' : ''}`] : []),
    `wall time ${meta.wallSeconds} s`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  if (opt.json) {
    fs.writeFileSync(opt.json, `${JSON.stringify({ meta, medians, disturbedMedians: [...tainted], rounds: rows, failover: fo }, (k, v) => (v === Infinity ? 'Infinity' : v), 2)}\n`);
    log(`bench: raw results written to ${opt.json}`);
  }
}

/**
 * Failover timings (bench/failover.mjs): time for new sessions to reach the backup after the active
 * server dies, and the sessions that failed meanwhile, for licgate, HAProxy seed and HAProxy tuned.
 */
async function failover(licgateMain) {
  const proxies = TARGETS.filter((t) => t === 'haproxy' || t === 'licgate');
  if (!proxies.length) { log('bench: failover: no proxy selected (--only haproxy,licgate): skipped'); return null; }
  if (!fs.existsSync(licgateMain)) { // the simulators are `licgate simulate`, whichever proxy runs
    log(`bench: failover: skipped, ${path.relative(ROOT, licgateMain)} missing (run \`npm run build\`)`);
    return null;
  }
  return runFailover({
    proxies,
    rounds: FAILOVER_ROUNDS,
    capMs: FAILOVER_CAP * 1000,
    tmp: TMP,
    licgateMain,
    licgateCmd: (cfg) => (opt['licgate-cmd'] ? `${opt['licgate-cmd']} --config ${shq(cfg)}` : `${NODE_AS_SHIPPED} ${shq(licgateMain)} run --config ${shq(cfg)}`),
    licgateLog: opt['licgate-log'],
    cpuProxy: CPU_PROXY,
    cpuLoad: CPU_LOAD,
    startChild,
    stopChild,
    freePorts,
    waitFor,
    isListening,
    log,
    shq,
    aborted: () => aborting,
  });
}

main()
  .then(async () => {
    if (aborting) return; // the signal handler cleans up and exits
    await cleanup();
    process.exit(0);
  })
  .catch(async (err) => {
    if (aborting) return;
    log(`bench: ${err.stack || err}`);
    await cleanup();
    process.exit(1);
  });
