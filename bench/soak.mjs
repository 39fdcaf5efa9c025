#!/usr/bin/env node
// Soak: many long-lived sessions through licgate while the config is reloaded (SIGHUP), server
// weights are changed through the admin API and a churn of short connections runs. Every byte is
// checked end to end. Prints one JSON summary line (last line of stdout) and exits non-zero when a
// session was dropped, a byte was wrong, or sessions were left over.
//
//   node bench/soak.mjs [--conns 9900] [--duration 600] [--churn 150] [--reload-every 5] [--weight-every 2]
//
// Loopback only. It re-executes itself (and so licgate) under prlimit at the hard descriptor limit.
// licgate needs two descriptors per proxied session: where the hard limit is 20,000 (this project's
// machines), about 9,990 sessions is the most one process can hold, hence the default of 9,900.
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { once } from 'node:events';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { values: opt } = parseArgs({
  options: {
    conns: { type: 'string', default: '9900' },
    duration: { type: 'string', default: '600' },
    churn: { type: 'string', default: '150' },
    'reload-every': { type: 'string', default: '5' },
    'weight-every': { type: 'string', default: '2' },
    quiet: { type: 'boolean', default: false },
  },
});
const NOFILE = Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || 65536;
if (!process.env.LICGATE_SOAK_CHILD) {
  const r = spawnSync('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, LICGATE_SOAK_CHILD: '1' } });
  process.exit(r.status ?? 1);
}

const CONNS = Number(opt.conns);
const DURATION_MS = Number(opt.duration) * 1000;
const CHURN_PER_S = Number(opt.churn);
const log = (...a) => opt.quiet || console.error(new Date().toISOString().slice(11, 19), ...a);
const dir = mkdtempSync(join(tmpdir(), 'licgate-soak-'));
const children = [];
const cleanup = () => {
  for (const c of children) try { process.kill(c.pid, 'SIGKILL'); } catch {}
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

// Echo servers: the "license servers". A separate process, so their memory and CPU are not ours.
const ECHO = `const net=require('net');const s=net.createServer({allowHalfOpen:true},c=>{c.on('error',()=>{});c.pipe(c)});s.maxConnections=1e6;s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
async function startEcho() {
  const c = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  const [line] = await once(c.stdout, 'data');
  return Number(String(line).trim());
}
const echoPorts = [await startEcho(), await startEcho(), await startEcho()];

const token = randomBytes(24).toString('hex');
writeFileSync(join(dir, 'token'), token + '\n');
const cfgFile = join(dir, 'licgate.yaml');
function writeConfig(variant) {
  const servers = [
    `      - { name: s1, address: 127.0.0.1:${echoPorts[0]}, weight: ${variant % 2 ? 100 : 50} }`,
    `      - { name: s2, address: 127.0.0.1:${echoPorts[1]}, weight: ${variant % 2 ? 50 : 100} }`,
    ...(variant % 3 === 1 ? [`      - { name: s3, address: 127.0.0.1:${echoPorts[2]}, weight: 25 }`] : []),
  ];
  writeFileSync(cfgFile, `admin: { listen: 127.0.0.1:0, token_file: ${join(dir, 'token')} }
log: { level: info, format: json }
shutdown_grace: 5s
frontends:
  - { name: soak, listen: 127.0.0.1:0, backend: echo }
backends:
  - name: echo
    check: { type: tcp, inter: 1s, fastinter: 300ms, timeout: 500ms }
    servers:
${servers.join('\n')}
`);
}
writeConfig(0);
const lg = spawn(process.execPath, [join(root, 'dist/cli/licgate.cjs'), 'run', '--config', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
children.push(lg);
let lgLog = '';
lg.stderr.on('data', (d) => (lgLog += d));
let logLines = 0;
lg.stdout.on('data', (d) => { for (const b of d) if (b === 10) logLines++; });
// The admin port is 0 in the config: find it from the listening sockets of the licgate process.
async function findPorts() {
  for (let i = 0; i < 200; i++) {
    const ss = spawnSync('ss', ['-ltnpH'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`pid=${lg.pid},`));
    const ports = ss.map((l) => Number(l.split(/\s+/)[3].split(':').pop()));
    if (ports.length >= 2) {
      for (const p of ports) {
        try {
          const r = await fetch(`http://127.0.0.1:${p}/status`);
          const st = await r.json();
          return { admin: p, frontend: st.frontends[0].port };
        } catch {}
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`licgate did not start: ${lgLog}`);
}
const { admin, frontend } = await findPorts();
const api = `http://127.0.0.1:${admin}`;
const status = async () => (await fetch(`${api}/status`)).json();
const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${lg.pid}/status`, 'utf8'))[1]);
log(`licgate pid ${lg.pid} frontend ${frontend} admin ${admin}; echo servers ${echoPorts.join(',')}`);

const stats = { held: 0, longFailed: 0, longRounds: 0, churnOk: 0, churnFailed: 0, churnErrors: {}, bytesVerified: 0, reloads: 0, reloadFailed: 0, weightChanges: 0, weightFailed: 0 };

/** One long-lived session: every `everyMs` it sends a numbered message and checks the echo. */
function longSession(i) {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port: frontend, localAddress: `127.0.${1 + (i % 200)}.${2 + Math.floor(i / 200) % 250}` });
    let expect = '';
    let got = '';
    let alive = true;
    const fail = (why) => {
      if (!alive) return;
      alive = false;
      stats.longFailed++;
      if (stats.longFailed <= 5) log(`long session ${i} failed: ${why}`);
      sock.destroy();
    };
    sock.setEncoding('latin1');
    sock.on('error', (e) => fail(e.code ?? e.message));
    sock.on('close', () => fail('closed'));
    sock.on('data', (d) => {
      got += d;
      if (got.length > expect.length) return fail('more bytes than sent');
      if (!expect.startsWith(got)) return fail('bytes differ');
      if (got.length === expect.length) {
        stats.bytesVerified += got.length;
        stats.longRounds++;
        got = expect = '';
        session.pending?.();
      }
    });
    const session = {
      alive: () => alive,
      round() {
        return new Promise((res) => {
          if (!alive) return res(false);
          const msg = `#${i}:${stats.longRounds}:${randomBytes(12).toString('hex')}\n`;
          expect = msg;
          session.pending = () => { session.pending = null; res(true); };
          sock.write(msg);
        });
      },
      close() { alive = false; sock.destroy(); },
    };
    sock.on('connect', () => { stats.held++; resolve(session); });
  });
}

async function churnOne() {
  const payload = randomBytes(1024);
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port: frontend, localAddress: `127.1.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}` });
    const chunks = [];
    let n = 0;
    const done = (ok, why) => {
      if (ok) stats.churnOk++;
      else { stats.churnFailed++; stats.churnErrors[why] = (stats.churnErrors[why] ?? 0) + 1; }
      sock.destroy();
      resolve();
    };
    sock.setTimeout(10_000, () => done(false, 'timeout'));
    sock.on('error', (e) => done(false, e.code ?? e.message));
    sock.on('connect', () => sock.end(payload));
    sock.on('data', (d) => { chunks.push(d); n += d.length; });
    sock.on('end', () => {
      const got = Buffer.concat(chunks, n);
      if (got.equals(payload)) { stats.bytesVerified += n; done(true); } else done(false, `got ${n} bytes, differ`);
    });
  });
}

// Ramp up the long-lived sessions in batches so the accept queue is never the thing measured.
const sessions = [];
const t0 = Date.now();
for (let i = 0; i < CONNS; i += 500) {
  const batch = [];
  for (let j = i; j < Math.min(CONNS, i + 500); j++) batch.push(longSession(j));
  sessions.push(...(await Promise.all(batch)));
}
log(`held ${stats.held} sessions in ${Date.now() - t0} ms; RSS ${Math.round(rssKb() / 1024)} MB`);
await Promise.all(sessions.map((s) => s.round()));

const rss = [];
const started = Date.now();
const warmupMs = Math.min(30_000, DURATION_MS / 4);
let running = true;
const timers = [
  setInterval(() => rss.push({ t: Date.now() - started, kb: rssKb() }), 1000),
  setInterval(() => {
    stats.reloads++;
    writeConfig(stats.reloads);
    process.kill(lg.pid, 'SIGHUP');
  }, Number(opt['reload-every']) * 1000),
  setInterval(async () => {
    const server = Math.random() < 0.5 ? 's1' : 's2';
    const weight = 1 + Math.floor(Math.random() * 256);
    try {
      const r = await fetch(`${api}/admin/backends/echo/servers/${server}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ weight }) });
      if (r.ok) stats.weightChanges++;
      else stats.weightFailed++;
    } catch { stats.weightFailed++; }
  }, Number(opt['weight-every']) * 1000),
];
// Churn: a steady rate of short connections, each checked byte for byte.
const churners = (async () => {
  const inflight = new Set();
  while (running) {
    const tick = Date.now();
    for (let k = 0; k < CHURN_PER_S / 10; k++) {
      const p = churnOne().then(() => inflight.delete(p));
      inflight.add(p);
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - tick))));
  }
  await Promise.all(inflight);
})();
// Every long session does a round every few seconds, spread over the interval.
const roundEveryMs = 5000;
const rounder = (async () => {
  while (running) {
    const tick = Date.now();
    const slice = Math.ceil(sessions.length / 10);
    for (let k = 0; k < 10 && running; k++) {
      await Promise.all(sessions.slice(k * slice, (k + 1) * slice).map((s) => s.round()));
      await new Promise((r) => setTimeout(r, Math.max(0, (roundEveryMs / 10) - ((Date.now() - tick) % (roundEveryMs / 10)))));
    }
  }
})();
while (Date.now() - started < DURATION_MS) {
  await new Promise((r) => setTimeout(r, 1000));
  if (!opt.quiet && (Date.now() - started) % 30_000 < 1000) log(`t=${Math.round((Date.now() - started) / 1000)}s rss=${Math.round(rssKb() / 1024)}MB churn ok=${stats.churnOk} failed=${stats.churnFailed} long failed=${stats.longFailed} reloads=${stats.reloads} weights=${stats.weightChanges}`);
}
running = false;
for (const t of timers) clearInterval(t);
await churners;
await rounder;
// A final round on every long session proves none was dropped along the way.
const finalOk = (await Promise.all(sessions.map((s) => s.round()))).filter(Boolean).length;
const st = await status();
const activeDuring = st.frontends[0].active;
for (const s of sessions) s.close();
let left = -1;
for (let i = 0; i < 200; i++) {
  left = (await status()).frontends[0].active;
  if (left === 0) break;
  await new Promise((r) => setTimeout(r, 50));
}
const after = rss.filter((r) => r.t >= warmupMs);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? 0; };
const firstWindow = after.slice(0, Math.max(1, Math.floor(after.length / 5))).map((r) => r.kb);
const lastWindow = after.slice(-Math.max(1, Math.floor(after.length / 5))).map((r) => r.kb);
const summary = {
  conns: CONNS,
  duration_s: Math.round((Date.now() - started) / 1000),
  held: stats.held,
  alive_at_end: finalOk,
  active_in_licgate_at_end: activeDuring,
  dropped: CONNS - finalOk,
  long_failed: stats.longFailed,
  long_rounds: stats.longRounds,
  churn_ok: stats.churnOk,
  churn_failed: stats.churnFailed,
  churn_errors: stats.churnErrors,
  bytes_verified: stats.bytesVerified,
  reloads: stats.reloads,
  weight_changes: stats.weightChanges,
  weight_failed: stats.weightFailed,
  rss_mb_after_warmup_median: Math.round(median(firstWindow) / 1024),
  rss_mb_end_median: Math.round(median(lastWindow) / 1024),
  rss_growth_pct: Math.round((100 * (median(lastWindow) - median(firstWindow))) / Math.max(1, median(firstWindow))),
  sessions_left_after_close: left,
  log_lines: logLines,
};
console.log(JSON.stringify(summary));
lg.kill('SIGTERM');
await once(lg, 'exit');
const bad = summary.dropped > 0 || summary.long_failed > 0 || summary.churn_failed > 0 || summary.sessions_left_after_close !== 0 || summary.weight_failed > 0;
process.exit(bad ? 1 : 0);
