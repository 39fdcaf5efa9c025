// Failover timing for bench/run.mjs (`--tests failover`): how long new clients wait for the backup
// after the active license server dies, and how many of them see a failure, for licgate (defaults),
// HAProxy as the seed ran it (`check inter 30s fall 3`) and HAProxy tuned for fast failover.
//
// One run = one proxy × one fault, on a FRESH pair of `licgate simulate` servers ("primary", tier 0,
// and "backup", backup tier) and a fresh proxy (pinned like the rest of the bench: proxy on the proxy
// CPU, simulators and this client on the load CPU; everything on 127.0.0.1):
//   1. wait until the proxy reports the primary fully UP (health at rise+fall-1, not "UP 1/3": a
//      fault in the start-up state would be noticed by one failed check instead of `fall`) and the
//      backup UP — HAProxy through its stats socket, licgate through GET /status;
//   2. wait a random part of the proxy's check interval (else the fault would always come just after
//      a check: the worst case for check-driven failover, about 3 × inter for the seed config), then
//      start a new client session every 20 ms (connect, send "HELLO\n", read the reply line, close;
//      10 s deadline: license clients wait long) and hold one extra long-lived session open;
//   3. after 1 s of sessions all answered by the primary (else the run fails), inject the fault on a
//      session tick, just before that tick's session starts:
//        killed     — SIGKILL the primary's process group (its port now answers RST);
//        blackholed — `iptables -I INPUT -i lo -p tcp -d 127.0.0.1 --dport PRIMARY -j DROP` (tagged
//                     with a comment): the server stays alive, SYNs get no answer, connects time out.
//                     Every rule is removed on the normal path, on error, on Ctrl-C/SIGTERM, at exit
//                     (removeBlackholes) and by run.mjs's shell watchdog if the bench is SIGKILLed
//                     (watchdogScript). Needs root and iptables, else the rows say "n/a".
//   4. stop starting sessions 2 s after the switch (or at --failover-cap seconds without one) and wait
//      for the sessions in flight.
// Figures (per run; the table shows medians of --failover-rounds runs, the seed config runs once):
//   time to backup   — fault → the first reply from the backup to a session started after the fault.
//                      A reply, not a start: under a black hole a session started at +20 ms may only
//                      reach the backup after a connect timeout, and the client waited all that time.
//                      Resolution: the 20 ms session period (the fault is aligned on a session tick).
//   failed sessions  — sessions started after the fault (until the end of step 4) that got no reply:
//                      closed without one, reset, refused, wrong reply or the 10 s deadline. The
//                      session of the fault tick itself may still connect to the dying primary (its
//                      listening socket outlives SIGKILL by a few ms) and lose its reply: no proxy can
//                      retry a session whose request was already forwarded, so a 1 there is timing, not the proxy.
//   slowest reply    — the longest wait of a session that did get a reply after the fault: failover
//                      by retry hides the failure but not the wait.
//   slow replies     — how many of those sessions waited over 100 ms (a reply through a proxy takes
//                      about 1 ms here): how long the waiting went on, where slowest reply gives its depth.
// The long-lived session is probed 1 s after the fault (HELLO; reply / closed / reset / no answer in
// 5 s): it goes to the log line and --json only (no proxy can save a session whose server died).
//
// Proxies (each with one frontend and the backend {primary, backup backup}; all check with the STATUS
// line protocol the seed HAProxy's tcp-check speaks and examples/proxy.yaml uses):
//   licgate        — `check: { type: status }` and nothing else: the defaults are the point (inter 2s,
//                    rise 2, fall 3, check timeout 1s, connect_timeout 3s, connect_race 250ms,
//                    retries 2, observe_errors 1).
//   haproxy seed   — `check inter 30s fall 3`, `timeout connect 5s`, HAProxy's default `retries 3`, no
//                    redispatch; no `timeout check`, so a check may take all of `inter`.
//   haproxy tuned  — `inter 500ms`, `observe layer4` with `error-limit 1 on-error mark-down`,
//                    `option redispatch`, `retries 3`, `timeout connect 1s`. `observe layer4` alone
//                    only counts errors towards the default `error-limit 10` with `on-error fail-check`
//                    (a failed check, still `fall` of them needed); mark-down after one error is the
//                    like-for-like setting with licgate's `observe_errors: 1`.
//
// Table choice: the issue asks for the figures "in the same table", so run.mjs adds the failover rows
// to the main table and, only when they are present with HAProxy, one column "haproxy tuned" (a dash
// in every performance row). In failover rows the "haproxy" column is the seed configuration (the
// HAProxy the product replaces), and "direct" (no proxy, nothing to fail over) and "pipe" show a dash.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export const FAULTS = ['killed', 'blackholed'];
export const FAULT_LABELS = { killed: 'process killed', blackholed: 'black-holed server' };
const SESSION_EVERY_MS = 20;
const SESSION_DEADLINE_MS = 10_000;
const STEADY_MS = 1000;
const SETTLE_MS = 2000;
const SLOW_REPLY_MS = 100;
const HELD_PROBE_AFTER_MS = 1000;
const HELD_PROBE_WAIT_MS = 5000;
const NEEDS_IPTABLES = 'n/a (needs root + iptables)';

/** The proxies of the failover runs; `target` is the --only name that selects them. */
export const VARIANTS = {
  'haproxy-seed': { target: 'haproxy', label: 'haproxy (seed)', once: true, interMs: 30_000 },
  'haproxy-tuned': { target: 'haproxy', label: 'haproxy (tuned)', once: false, interMs: 500 },
  licgate: { target: 'licgate', label: 'licgate', once: false, interMs: 2000 },
};

// ───────────────────────────── black holes (iptables) ─────────────────────────────
const RULE_TAG = `licgate-bench-${process.pid}`;
const RULES_FILE = 'iptables-rules'; // in the bench's TMP: one rule spec per line, for the watchdog
const rules = new Map(); // port → spec (argv after -I/-D INPUT)
let rulesPath = null;

const ruleSpec = (port) => ['-i', 'lo', '-p', 'tcp', '-d', '127.0.0.1', '--dport', String(port),
  '-m', 'comment', '--comment', RULE_TAG, '-j', 'DROP'];
const iptables = (...args) => spawnSync('iptables', ['-w', '5', ...args], { encoding: 'utf8', timeout: 10_000 });

/** null when black holes can be made here, else why not. */
export function blackholeUnavailable() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not root';
  const r = iptables('-S', 'INPUT');
  if (r.error || r.status !== 0) return `iptables -S INPUT: ${r.error?.message ?? r.stderr.trim()}`;
  return null;
}

function writeRulesFile() {
  if (!rulesPath) return;
  try { fs.writeFileSync(rulesPath, [...rules.values()].map((s) => `${s.join(' ')}\n`).join('')); } catch { /* TMP gone */ }
}

function addBlackhole(port) {
  const spec = ruleSpec(port);
  rules.set(port, spec); // registered first: whatever happens next, cleanup tries to delete it
  writeRulesFile();
  const r = iptables('-I', 'INPUT', ...spec);
  if (r.error || r.status !== 0) throw new Error(`iptables -I INPUT ${spec.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Delete one rule; true when it is verifiably gone (`iptables -C` no longer finds it). */
function removeBlackhole(port) {
  const spec = rules.get(port);
  if (!spec) return true;
  for (let i = 0; i < 3; i++) { // -D deletes one copy; never more than one was inserted
    if (iptables('-C', 'INPUT', ...spec).status !== 0) break;
    iptables('-D', 'INPUT', ...spec);
  }
  const gone = iptables('-C', 'INPUT', ...spec).status !== 0;
  if (gone) { rules.delete(port); writeRulesFile(); }
  return gone;
}

/** Synchronous, idempotent: run.mjs calls it from every cleanup path (normal, error, signal, exit). */
export function removeBlackholes() {
  for (const port of [...rules.keys()]) removeBlackhole(port);
}

/** Shell lines for run.mjs's watchdog (runs if the bench is SIGKILLed): delete the listed rules. */
export function watchdogScript(tmp, shq) {
  const f = shq(path.join(tmp, RULES_FILE));
  return `[ -s ${f} ] && while read -r spec; do iptables -w 5 -D INPUT $spec 2>/dev/null; done < ${f}`;
}

// ───────────────────────────── configurations ─────────────────────────────
function licgateConf(p) {
  return `admin: { listen: 127.0.0.1:${p.admin} }
log: { level: info, format: json }
frontends:
  - { name: lic, listen: 127.0.0.1:${p.frontend}, backend: licenses }
backends:
  - name: licenses
    check: { type: status }
    servers:
      - { name: primary, address: 127.0.0.1:${p.primary} }
      - { name: backup, address: 127.0.0.1:${p.backup}, backup: true }
`;
}

function haproxyConf(variant, p, sock) {
  const seed = variant === 'haproxy-seed';
  const tuning = seed
    ? '  # the seed: no redispatch, HAProxy\'s default retries 3\n  timeout connect 5s'
    : `  timeout connect 1s
  retries 3
  option redispatch`;
  // observe layer4 alone only counts towards error-limit 10 / on-error fail-check (still `fall` failed
  // checks); one error marking the server down is what licgate's observe_errors: 1 does.
  const server = seed
    ? 'check inter 30s fall 3'
    : 'check inter 500ms fall 3 observe layer4 error-limit 1 on-error mark-down';
  return `global
  nbthread 1
  stats socket ${sock} mode 600 level user

defaults
  mode tcp
${tuning}
  timeout client 1h
  timeout server 1h

frontend lic
  bind 127.0.0.1:${p.frontend}
  default_backend licenses

backend licenses
  option tcp-check
  tcp-check connect
  tcp-check send "STATUS\\r\\n"
  tcp-check expect string "Server Status: Running"
  default-server ${server}
  server primary 127.0.0.1:${p.primary}
  server backup 127.0.0.1:${p.backup} backup
`;
}

// ───────────────────────────── proxy state ─────────────────────────────
function haproxyServerStates(sock) {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    let buf = '';
    const done = (v) => { s.destroy(); resolve(v); };
    s.setTimeout(2000, () => done(null));
    s.on('connect', () => s.write('show stat\n'));
    s.on('data', (d) => { buf += d; });
    s.on('error', () => done(null));
    s.on('end', () => {
      const lines = buf.split('\n');
      const head = (lines[0] ?? '').replace(/^# /, '').split(',');
      const [px, sv, st] = ['pxname', 'svname', 'status'].map((k) => head.indexOf(k));
      if (px < 0 || st < 0) { done(null); return; }
      const states = {};
      for (const l of lines.slice(1)) {
        const f = l.split(',');
        if (f[px] === 'licenses') states[f[sv]] = f[st];
      }
      done(states);
    });
  });
}

function licgateServerStates(adminPort) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: '/status', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        try {
          const b = JSON.parse(body).backends.find((x) => x.name === 'licenses');
          resolve(Object.fromEntries(b.servers.map((s) => [s.name, s.state])));
        } catch { resolve(null); }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

// ───────────────────────────── client sessions ─────────────────────────────
const now = () => performance.now();

/** One session: connect, HELLO, one reply line, close. Resolves the record when it is over. */
function session(port, rec) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let buf = '';
    const finish = (outcome, server = null) => {
      if (rec.outcome) return;
      rec.outcome = outcome;
      rec.server = server;
      rec.end = now();
      clearTimeout(timer);
      sock.destroy();
      resolve(rec);
    };
    const timer = setTimeout(() => finish('timeout'), SESSION_DEADLINE_MS);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('HELLO\n'));
    sock.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        const m = /^HELLO (\S+)\r?$/.exec(buf.slice(0, i));
        if (m) finish('ok', m[1]); else finish('wrong reply');
      } else if (buf.length > 1024) finish('wrong reply');
    });
    sock.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ECONNRESET' ? 'reset' : (e.code ?? 'error').toLowerCase()));
    sock.on('close', () => finish('closed')); // EOF before a whole reply line
  });
}

/** A new session every SESSION_EVERY_MS, on a drift-free schedule; `beforeTick(fn)` runs fn on the next tick. */
function sessionLoop(port) {
  const sessions = [];
  const inflight = new Set();
  let running = true;
  let hook = null;
  const t0 = now();
  let k = 0;
  let timer = null;
  const tick = () => {
    if (!running) return;
    if (hook) { const h = hook; hook = null; h(); }
    const rec = { start: now(), end: null, outcome: null, server: null };
    sessions.push(rec);
    const p = session(port, rec);
    inflight.add(p);
    p.then(() => inflight.delete(p));
    k++;
    timer = setTimeout(tick, Math.max(0, t0 + k * SESSION_EVERY_MS - now()));
  };
  tick();
  return {
    sessions,
    beforeTick(fn) {
      return new Promise((resolve, reject) => {
        hook = () => { try { resolve(fn()); } catch (e) { reject(e); } };
      });
    },
    /** Stop starting sessions; resolves when every session in flight is over. */
    async stop() {
      running = false;
      clearTimeout(timer);
      await Promise.all([...inflight]);
    },
  };
}

/** A long-lived session: HELLO answered by the primary, then kept open; probe() asks again later. */
async function heldSession(port) {
  const sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
  sock.setEncoding('utf8');
  const st = { closedAt: null, how: null, lines: [], sock };
  let buf = '';
  const waiters = [];
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { st.lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); waiters.splice(0).forEach((w) => w()); }
  });
  sock.on('error', (e) => { st.how ??= e.code === 'ECONNRESET' ? 'reset' : (e.code ?? 'error').toLowerCase(); });
  sock.on('close', () => { st.closedAt ??= now(); st.how ??= 'closed'; waiters.splice(0).forEach((w) => w()); });
  st.ask = async (waitMs) => {
    const n = st.lines.length;
    if (st.closedAt === null) sock.write('HELLO\n');
    const until = now() + waitMs;
    while (st.lines.length === n && st.closedAt === null && now() < until) {
      await new Promise((res) => { waiters.push(res); setTimeout(res, Math.max(1, until - now())); });
    }
    return st.lines.length > n ? st.lines[n] : null;
  };
  await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  const first = await st.ask(3000);
  if (first !== 'HELLO primary') throw new Error(`held session: expected "HELLO primary", got ${JSON.stringify(first)} (${st.how ?? 'open'})`);
  return st;
}

// ───────────────────────────── one run ─────────────────────────────
async function runOne(env, variant, fault, tag) {
  const { startChild, stopChild, freePorts, waitFor, isListening, shq } = env;
  const [primary, backup, frontend, admin] = await freePorts(4);
  const p = { primary, backup, frontend, admin };
  const started = [];
  const r = { variant, fault, ports: p };
  let loop = null;
  let held = null;
  try {
    const sim = (name, port) => {
      const c = startChild(`${tag}-${name}`, `${shq(process.execPath)} ${shq(env.licgateMain)} simulate --listen 127.0.0.1:${port} --name ${name}`, { cpu: env.cpuLoad });
      started.push(c);
      return c;
    };
    const simPrimary = sim('primary', primary);
    const simBackup = sim('backup', backup);
    await waitFor(`${tag} primary simulator`, simPrimary, () => isListening(primary), 10_000);
    await waitFor(`${tag} backup simulator`, simBackup, () => isListening(backup), 10_000);

    let cmd;
    let states;
    if (variant === 'licgate') {
      const cfg = path.join(env.tmp, `${tag}.yaml`);
      fs.writeFileSync(cfg, licgateConf(p));
      cmd = env.licgateCmd(cfg);
      states = () => licgateServerStates(admin);
    } else {
      const cfg = path.join(env.tmp, `${tag}.cfg`);
      const sock = path.join(env.tmp, `${tag}.sock`);
      fs.writeFileSync(cfg, haproxyConf(variant, p, sock));
      const chk = spawnSync('haproxy', ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
      if (chk.status !== 0) throw new Error(`haproxy -c failed: ${chk.stdout}${chk.stderr}`);
      cmd = `haproxy -db -f ${shq(cfg)}`;
      states = () => haproxyServerStates(sock);
    }
    const proxy = startChild(tag, cmd, { cpu: env.cpuProxy, stdout: variant === 'licgate' ? env.licgateLog : 'ignore' });
    started.push(proxy);
    await waitFor(`${tag} frontend`, proxy, () => isListening(frontend), 15_000);
    // The seed checks every 30 s: the primary reaches full health (its 2nd passed check) within ~35 s.
    const t0 = now();
    let last = null;
    await waitFor(`${tag}: primary fully UP and backup UP`, proxy, async () => {
      last = await states();
      return last?.primary === 'UP' && /^UP/.test(last?.backup ?? '');
    }, 90_000).catch((e) => { throw new Error(`${e.message} (last seen: ${JSON.stringify(last)})`); });
    r.readyMs = Math.round(now() - t0);
    // A random phase against the proxy's check schedule: right after start-up the fault would always
    // land just after a check of the primary (the worst case for check-driven failover).
    r.phaseDelayMs = Math.round(Math.random() * VARIANTS[variant].interMs);
    await sleep(r.phaseDelayMs);
    if (proxy.exited) throw new Error(`${tag} exited (${proxy.code}) before the fault`);

    // Steady state: every session answered by the primary.
    held = await heldSession(frontend);
    loop = sessionLoop(frontend);
    await sleep(STEADY_MS);
    const before = loop.sessions.filter((s) => s.outcome);
    const bad = before.filter((s) => s.outcome !== 'ok' || s.server !== 'primary');
    if (before.length < STEADY_MS / SESSION_EVERY_MS / 2 || bad.length) {
      throw new Error(`no steady state on the primary before the fault: ${before.length} sessions done in ${STEADY_MS} ms, ${bad.length} not answered by the primary (${[...new Set(bad.map((s) => s.server ?? s.outcome))].join(', ')})`);
    }
    if (env.aborted()) throw new Error(`aborted (${env.aborted()})`);

    // The fault, on a session tick.
    const tFault = await loop.beforeTick(() => {
      if (env.aborted()) throw new Error(`aborted (${env.aborted()})`);
      if (fault === 'killed') {
        const t = now();
        process.kill(-simPrimary.pid, 'SIGKILL');
        return t;
      }
      addBlackhole(primary);
      return now(); // the rule is in place once iptables returns
    });
    r.faultAt = new Date().toISOString();
    const heldProbe = (async () => {
      await sleep(HELD_PROBE_AFTER_MS);
      const reply = await held.ask(HELD_PROBE_WAIT_MS);
      if (reply !== null) return `reply "${reply}"`;
      if (held.closedAt !== null) return `${held.how} at +${Math.round(held.closedAt - tFault)} ms`;
      return `no answer in ${HELD_PROBE_WAIT_MS / 1000} s`;
    })();

    // Watch for the switch: the earliest reply from the backup to a session started after the fault.
    let tSwitch = null;
    let stopAt = tFault + env.capMs;
    while (now() < stopAt) {
      if (env.aborted()) throw new Error(`aborted (${env.aborted()})`);
      if (proxy.exited) throw new Error(`${tag} exited (${proxy.code}) during the failover`);
      if (tSwitch === null) {
        const ends = loop.sessions.filter((s) => s.start >= tFault && s.server === 'backup').map((s) => s.end);
        if (ends.length) { tSwitch = Math.min(...ends); stopAt = tSwitch + SETTLE_MS; }
      }
      await sleep(SESSION_EVERY_MS);
    }
    await loop.stop();
    r.held = await heldProbe;

    const after = loop.sessions.filter((s) => s.start >= tFault);
    const failed = after.filter((s) => s.outcome !== 'ok');
    const ok = after.filter((s) => s.outcome === 'ok');
    const byOutcome = {};
    for (const s of after) {
      const k = s.outcome === 'ok' ? `ok ${s.server}` : s.outcome;
      byOutcome[k] = (byOutcome[k] ?? 0) + 1;
    }
    const firstBackup = after.filter((s) => s.server === 'backup').sort((a, b) => a.start - b.start)[0];
    Object.assign(r, {
      switchMs: tSwitch === null ? null : Math.round(tSwitch - tFault),
      capMs: env.capMs,
      firstBackupStartMs: firstBackup ? Math.round(firstBackup.start - tFault) : null,
      sessionsAfterFault: after.length,
      failed: failed.length,
      outcomes: byOutcome,
      lastFailureStartMs: failed.length ? Math.round(Math.max(...failed.map((s) => s.start)) - tFault) : null,
      slowestReplyMs: ok.length ? Math.round(Math.max(...ok.map((s) => s.end - s.start))) : null,
      slowReplies: ok.filter((s) => s.end - s.start > SLOW_REPLY_MS).length,
      slowestReplyStartMs: ok.length ? Math.round(ok.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a)).start - tFault) : null,
      steadySessions: before.length,
    });
  } catch (err) {
    if (env.aborted()) throw err;
    r.error = err.message.split('\n')[0];
    r.errorDetail = err.message;
  } finally {
    if (loop) await loop.stop().catch(() => {});
    held?.sock.destroy();
    // The rule goes before the primary does: once its port is free, any socket on this machine may
    // be given that port and would have its packets dropped.
    if (fault === 'blackholed' && rules.has(primary)) {
      r.ruleRemoved = removeBlackhole(primary);
      if (!r.ruleRemoved) env.log(`bench: WARNING: could not remove iptables rule ${ruleSpec(primary).join(' ')}`);
    }
    for (const c of started.reverse()) await stopChild(c, 500);
  }
  return r;
}

// ───────────────────────────── all runs, medians, table rows ─────────────────────────────
const fmtMs = (v) => (v === null ? '—' : `${v} ms`);

/**
 * Every run of the failover test. env: { proxies (subset of ['haproxy', 'licgate']), rounds, capMs,
 * tmp, licgateMain, licgateCmd(cfg), licgateLog, cpuProxy, cpuLoad, startChild, stopChild,
 * freePorts, waitFor, isListening, log, shq, aborted() }.
 */
export async function runFailover(env) {
  rulesPath = path.join(env.tmp, RULES_FILE);
  const variants = Object.keys(VARIANTS).filter((v) => env.proxies.includes(VARIANTS[v].target));
  const noBlackhole = blackholeUnavailable();
  if (noBlackhole) env.log(`bench: failover: black-holed runs skipped (${noBlackhole}): ${NEEDS_IPTABLES}`);
  const faults = FAULTS.filter((f) => f !== 'blackholed' || !noBlackhole);
  const runs = [];
  for (let round = 1; round <= env.rounds; round++) {
    for (const variant of variants) {
      if (VARIANTS[variant].once && round > 1) continue;
      for (const fault of faults) {
        if (env.aborted()) return null;
        const tag = `fo-${variant}-${fault}-${round}`;
        const n = VARIANTS[variant].once ? 1 : env.rounds;
        const r = await runOne(env, variant, fault, tag);
        r.round = round;
        runs.push(r);
        const head = `[failover ${Math.min(round, n)}/${n}] ${VARIANTS[variant].label.padEnd(15)} ${fault.padEnd(10)}`;
        if (r.error) { env.log(`${head} ERROR ${r.error}`); continue; }
        const sw = r.switchMs === null ? `no switch in ${env.capMs / 1000} s` : `backup after ${fmtMs(r.switchMs)}`;
        const outcomes = Object.entries(r.outcomes).map(([k, v]) => `${v} ${k}`).join(', ');
        env.log(`${head} ${sw} · ${r.failed} failed of ${r.sessionsAfterFault} sessions (${outcomes}) · slowest reply ${fmtMs(r.slowestReplyMs)}, ${r.slowReplies} over ${SLOW_REPLY_MS} ms · held session: ${r.held}${r.ruleRemoved === false ? ' · ⚠ iptables rule NOT removed' : ''}`);
      }
    }
  }
  // Medians per (variant, fault). A run without a switch counts as +∞ for the time (so the median can
  // be "> cap"); runs that failed to run at all do not count.
  const medians = {};
  for (const variant of variants) {
    medians[variant] = {};
    for (const fault of FAULTS) {
      if (!faults.includes(fault)) { medians[variant][fault] = { unavailable: NEEDS_IPTABLES }; continue; }
      const good = runs.filter((r) => r.variant === variant && r.fault === fault && !r.error);
      const errors = runs.filter((r) => r.variant === variant && r.fault === fault && r.error).length;
      medians[variant][fault] = {
        runs: good.length,
        errors,
        switchMs: medianOf(good.map((r) => (r.switchMs === null ? Infinity : r.switchMs))),
        failed: medianOf(good.map((r) => r.failed)),
        slowestReplyMs: medianOf(good.map((r) => r.slowestReplyMs).filter((v) => v !== null)),
        slowReplies: medianOf(good.map((r) => r.slowReplies)),
      };
    }
  }
  return { variants, capMs: env.capMs, rounds: env.rounds, sessionEveryMs: SESSION_EVERY_MS, sessionDeadlineMs: SESSION_DEADLINE_MS, settleMs: SETTLE_MS, blackholeUnavailable: noBlackhole, medians, runs };
}

function medianOf(xs) {
  const v = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/**
 * Table rows for run.mjs: [{ label, cells: { column → text } }]. Columns: 'haproxy' (the seed
 * config), 'haproxy tuned', 'licgate'; run.mjs puts a dash in the others.
 */
export function failoverRows(fo) {
  const col = { 'haproxy-seed': 'haproxy', 'haproxy-tuned': 'haproxy tuned', licgate: 'licgate' };
  const cap = `> ${Math.round(fo.capMs / 1000)} s`;
  const metrics = [
    { key: 'switchMs', label: 'time to backup, ms', fmt: (v) => (v === Infinity ? cap : Math.round(v).toString()) },
    { key: 'failed', label: 'failed sessions', fmt: count },
    { key: 'slowestReplyMs', label: 'slowest reply, ms', fmt: (v) => Math.round(v).toString() },
    { key: 'slowReplies', label: `replies slower than ${SLOW_REPLY_MS} ms`, fmt: count },
  ];
  const rows = [];
  for (const fault of FAULTS) {
    for (const m of metrics) {
      const cells = {};
      for (const variant of fo.variants) {
        const md = fo.medians[variant][fault];
        if (md.unavailable) cells[col[variant]] = md.unavailable;
        else if (!md.runs) cells[col[variant]] = 'failed';
        else if (md[m.key] === null) cells[col[variant]] = 'n/a';
        else cells[col[variant]] = `${m.fmt(md[m.key])}${md.errors ? '†' : ''}`;
      }
      rows.push({ label: `failover, ${FAULT_LABELS[fault]}: ${m.label}`, cells });
    }
  }
  return rows;
}

/** Footnote lines for the report. */
export function failoverNotes(fo) {
  const cfg = {
    'haproxy-seed': 'haproxy = the seed config (check inter 30s fall 3, timeout connect 5s, retries 3, no redispatch), 1 run',
    'haproxy-tuned': 'haproxy tuned = check inter 500ms, observe layer4 + error-limit 1 on-error mark-down, option redispatch, retries 3, timeout connect 1s',
    licgate: 'licgate = its defaults (check: { type: status })',
  };
  const many = fo.variants.filter((v) => !VARIANTS[v].once).map((v) => VARIANTS[v].label);
  const notes = [
    `failover rows: fresh primary+backup \`licgate simulate\` servers per run; a new session (connect, HELLO, reply) every ${SESSION_EVERY_MS} ms, ${SESSION_DEADLINE_MS / 1000} s deadline; the fault comes at a random phase of the proxy's check interval, on a session tick, after 1 s of replies from the primary.`,
    `  time to backup = fault → first reply from the backup; failed sessions = started after the fault (until ${SETTLE_MS / 1000} s after the switch) and got no reply; slowest reply = longest wait of a session that got one; slower than ${SLOW_REPLY_MS} ms = how many such sessions waited that long.`,
    `  ${fo.variants.map((v) => cfg[v]).join('; ')}${many.length ? `; ${many.join(' and ')}: medians of ${fo.rounds} run(s)` : ''}. Every proxy checks with STATUS.`,
  ];
  if (fo.runs.some((r) => r.error)) notes.push('† some runs of this cell failed (see the [failover] lines and --json)');
  return notes;
}
