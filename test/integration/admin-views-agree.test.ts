/**
 * Everything an admin can read says the same thing, under random operations: GET /status,
 * GET /metrics, `licgate ctl servers`, the STATUS reply and the agent reply of one real
 * `licgate run`, driven by a seeded random walk of admin calls, license servers stopped and
 * started, reloads (SIGHUP and POST /admin/reload) that add, remove and rename servers and
 * backends and change weights and tiers, and client sessions opened and closed.
 *
 * LICGATE_AGREE_SEEDS=1-200 (a range or a comma list) runs other seeds; a failure names its seed
 * and the steps that led to it.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stateLabel } from '../../src/observe/metrics.js';
import { parseAgentLine } from '../../src/serve/agent-reply.js';
import { LicenseClient } from '../helpers/license-client.js';
import { parseSamples, type Sample } from '../helpers/prom-text.js';
import { runCli, startInProcessSimulator, startProxy, stopAll, type ProxyProcess, type StatusJson } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';
import { freePort } from './haproxy-lab.js';

const TOKEN = 'agree-test-token-0123456789abcdef';
const SIMS = 4;
const STEPS = 24;
const tokenDir = mkdtempSync(join(tmpdir(), 'licgate-agree-'));
const tokenFile = join(tokenDir, 'admin.token');
writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
afterAll(() => rmSync(tokenDir, { recursive: true, force: true }));
afterEach(() => stopAll());

/** mulberry32: small, seedable, good enough to pick steps. */
function rng(seed: number): { int(n: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
  };
}

interface ServerPlan {
  sim: number;
  name: string;
  weight: number;
  tier: number;
}
interface BackendPlan {
  name: string;
  failback: 'auto' | 'manual';
  servers: ServerPlan[];
}
/** The config a step reloads: frontend names and ports stay in two slots, so a rename keeps its address. */
interface Plan {
  frontends: { name: string; backend: string }[];
  backends: BackendPlan[];
}

function yaml(plan: Plan, ports: readonly number[], simPorts: readonly number[]): string {
  const fes = plan.frontends.map((f, i) => `  - { name: ${f.name}, listen: "127.0.0.1:${ports[i]}", backend: ${f.backend} }`);
  const bes = plan.backends.map(
    (b) =>
      `  - name: ${b.name}\n    failback: ${b.failback}\n    retries: 3\n` +
      // Fast checks, so a stopped or started server settles within a few hundred ms.
      `    check: { type: tcp, inter: 150ms, fastinter: 100ms, downinter: 150ms, rise: 1, fall: 1, timeout: 300ms }\n    servers:\n` +
      b.servers.map((s) => `      - { name: ${s.name}, address: "127.0.0.1:${simPorts[s.sim]}", weight: ${s.weight}, tier: ${s.tier} }`).join('\n'),
  );
  return (
    `admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }\nlog: { level: info, format: json }\nshutdown_grace: 500ms\nshutdown_delay: 0s\n` +
    `status: { listen: "127.0.0.1:0", backend: b1 }\nagent: { listen: "127.0.0.1:0", backend: b1 }\n` +
    `frontends:\n${fes.join('\n')}\nbackends:\n${bes.join('\n')}\n`
  );
}

function randomServers(r: ReturnType<typeof rng>, prefix: string): ServerPlan[] {
  const out: ServerPlan[] = [];
  for (let sim = 0; sim < SIMS; sim++) {
    if (!r.chance(0.7)) continue;
    out.push({ sim, name: `${prefix}${sim}${r.chance(0.3) ? 'r' : ''}`, weight: r.pick([0, 1, 10, 50, 100]), tier: r.pick([0, 0, 1, 2]) });
  }
  if (out.length === 0) out.push({ sim: r.int(SIMS), name: `${prefix}x`, weight: 10, tier: 0 });
  return out;
}

function randomPlan(r: ReturnType<typeof rng>): Plan {
  const b2 = r.pick(['b2', 'b2', 'b2x', null]);
  const backends: BackendPlan[] = [{ name: 'b1', failback: r.pick(['auto', 'manual']), servers: randomServers(r, 's') }];
  if (b2) backends.push({ name: b2, failback: r.pick(['auto', 'manual']), servers: randomServers(r, 't') });
  const frontends: Plan['frontends'] = [{ name: r.pick(['fa', 'fa', 'fa2']), backend: 'b1' }];
  // The second frontend may go (its sessions go on) and come back at its port.
  if (r.chance(0.8)) frontends.push({ name: r.pick(['fb', 'fb', 'fb2']), backend: b2 ?? 'b1' });
  return { frontends, backends };
}

function post(adminUrl: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(adminUrl + path, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: no answer within 5 s`))).on('error', reject);
    req.end(body === null ? undefined : JSON.stringify(body));
  });
}

/** One line-protocol exchange on a control port: what the peer wrote before it closed. */
function exchange(port: number, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    s.on('end', () => resolve(text)).on('error', reject);
    s.setTimeout(3000, () => s.destroy(new Error(`no reply on port ${port} within 3 s`)));
    s.write(send);
  });
}

function key(s: Sample): string {
  return `${s.name}{${Object.entries(s.labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
}

/** The parts of GET /status compared here beyond the harness's StatusJson. */
type FullServer = StatusJson['backends'][number]['servers'][number] & { effective_weight: number; configured_weight: number; admin: string; tier_name: string };
type FullStatus = Omit<StatusJson, 'backends'> & { backends: (Omit<StatusJson['backends'][number], 'servers'> & { servers: FullServer[] })[] };

/** A frontend's listener: a reload that keeps its address renames it, one that removes it leaves it to its sessions. */
interface Listener {
  name: string;
}

interface Held {
  client: LicenseClient;
  /** The frontend name it was accepted under: its sessions' series keep it. */
  frontend: string;
  listener: Listener;
}

/** The disagreements between what the admin can read now; empty when all sources agree. */
async function disagreements(p: ProxyProcess, listening: { status: number; agent: number }, plan: Plan, listeners: readonly (Listener | null)[], held: readonly Held[], counters: Map<string, number>): Promise<string[]> {
  const st = (await p.get('/status')).json as FullStatus;
  const metricsText = (await p.get('/metrics')).body;
  const ctl = await runCli(['ctl', '--url', p.adminUrl, 'servers']);
  const statusReply = await exchange(listening.status, 'STATUS\r\n');
  const agentReply = await exchange(listening.agent, '');
  const st2 = (await p.get('/status')).json as StatusJson;
  const out: string[] = [];
  // The sources were read one after another: only a state that held across them is compared.
  const brief = (s: FullStatus | StatusJson): string => JSON.stringify([s.backends.map((b) => [b.name, b.tier, b.servers.map((x) => [x.name, x.state, x.weight, x.active])]), s.frontends.map((f) => [f.name, f.active])]);
  if (brief(st) !== brief(st2)) return ['/status changed while the sources were read'];

  const samples = parseSamples(metricsText);
  const m = (name: string, labels: Record<string, string>): number | undefined => samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  const mSum = (name: string, labels: Record<string, string>): number => samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
  const ctlRows = new Map(ctl.stdout.split('\n').slice(1).map((l) => l.split(/ {2,}/)).filter((c) => c.length >= 7).map((c) => [`${c[0]}/${c[1]}`, c]));
  if (ctl.code !== 0) out.push(`ctl servers exited ${ctl.code}: ${ctl.stderr}`);

  const cfgBackends = new Map(plan.backends.map((b) => [b.name, new Set(b.servers.map((s) => s.name))]));
  for (const b of st.backends) {
    const bl = { backend: b.name };
    if (m('licgate_backend_serving_tier', bl) !== (b.serving_tier ?? -1)) out.push(`${b.name}: serving tier ${b.serving_tier} in /status, ${m('licgate_backend_serving_tier', bl)} in metrics`);
    const upServers = Number(b.servers_up.split('/')[0]);
    if (m('licgate_backend_up_servers', bl) !== upServers) out.push(`${b.name}: ${b.servers_up} up in /status, ${m('licgate_backend_up_servers', bl)} in metrics`);
    for (const s of b.servers) {
      const sl = { backend: b.name, server: s.name };
      const id = `${b.name}/${s.name}`;
      if (m('licgate_server_weight', sl) !== s.effective_weight) out.push(`${id}: effective weight ${s.effective_weight} in /status, ${m('licgate_server_weight', sl)} in metrics`);
      if (m('licgate_server_state', { ...sl, state: stateLabel(s.state) }) !== 1) out.push(`${id}: state ${s.state} in /status, not 1 for ${stateLabel(s.state)} in licgate_server_state`);
      if (m('licgate_server_active_connections', sl) !== s.active) out.push(`${id}: ${s.active} active in /status, ${m('licgate_server_active_connections', sl)} in metrics`);
      if (m('licgate_server_tier', sl) !== s.tier) out.push(`${id}: tier ${s.tier} in /status, ${m('licgate_server_tier', sl)} in metrics`);
      if (m('licgate_server_usable', sl) !== (s.usable ? 1 : 0)) out.push(`${id}: usable ${s.usable} in /status, ${m('licgate_server_usable', sl)} in metrics`);
      const row = ctlRows.get(id);
      if (!row) out.push(`${id}: in /status, not in ctl servers`);
      else {
        const state = s.admin !== 'ready' && !s.state.startsWith(s.admin.toUpperCase()) ? `${s.state}, admin ${s.admin}` : s.state;
        if (row[2] !== state) out.push(`${id}: state "${state}" in /status, "${row[2]}" in ctl`);
        if (row[4] !== `${s.effective_weight}/${s.configured_weight}`) out.push(`${id}: weight ${s.effective_weight}/${s.configured_weight} in /status, ${row[4]} in ctl`);
        if (row[5] !== String(s.active)) out.push(`${id}: ${s.active} active in /status, ${row[5]} in ctl`);
        if (row[6] !== String(s.total)) out.push(`${id}: ${s.total} total in /status, ${row[6]} in ctl`);
        if (row[3]!.endsWith('*') !== (s.tier === b.serving_tier)) out.push(`${id}: ctl marks tier ${row[3]}, /status serves tier ${b.serving_tier}`);
      }
    }
  }
  if (ctlRows.size !== st.backends.reduce((n, b) => n + b.servers.length, 0)) out.push(`ctl lists ${ctlRows.size} servers, /status ${st.backends.reduce((n, b) => n + b.servers.length, 0)}`);

  for (const f of st.frontends) {
    const mine = held.filter((h) => h.listener === listeners.find((l) => l?.name === f.name)).length;
    if (f.active !== mine) out.push(`frontend ${f.name}: ${f.active} active in /status, ${mine} sessions open on its listener`);
  }
  // The frontend gauges count by listener name, also a listener a reload removed while it had sessions.
  for (const name of new Set([...st.frontends.map((f) => f.name), ...held.map((h) => h.listener.name)])) {
    const mine = held.filter((h) => h.listener.name === name).length;
    const gauge = m('licgate_frontend_active_connections', { frontend: name });
    if ((gauge ?? 0) !== mine) out.push(`frontend ${name}: ${gauge} active in metrics, ${mine} sessions open on listeners of that name`);
  }
  // A session counts under the frontend name it was accepted with (a reload may rename its
  // listener, or remove it): only the sum over every name is the open sessions.
  const open = held.length;
  const serverActive = st.backends.reduce((n, b) => n + b.servers.reduce((k, s) => k + s.active, 0), 0);
  if (mSum('licgate_connections_active', {}) !== open) out.push(`${open} sessions open, ${mSum('licgate_connections_active', {})} summed over licgate_connections_active`);
  if (serverActive > open) out.push(`${open} sessions open, ${serverActive} active summed over /status servers`);

  // STATUS reply: the backend it reports (b1) as /status has it.
  const b1 = st.backends.find((b) => b.name === 'b1')!;
  const expected = `Server Status: ${b1.running ? 'Running' : 'Down'}\r\nBackend: b1\r\nTier: ${b1.tier}\r\nServers: ${b1.servers_up} up\r\n`;
  if (statusReply !== expected) out.push(`STATUS reply ${JSON.stringify(statusReply)}, /status says ${JSON.stringify(expected)}`);

  // Agent reply for b1, from /status (no agent, no weight_from: runtime weights of the UP servers).
  const agent = parseAgentLine(agentReply);
  const servers = b1.servers;
  const notMaint = servers.filter((s) => !s.state.startsWith('MAINT'));
  const ready = notMaint.filter((s) => s.admin !== 'drain');
  const isUp = (s: { state: string }): boolean => /^(UP|DRAIN)/.test(s.state);
  const up = notMaint.some(isUp);
  const weight = ready.filter((s) => !up || isUp(s)).reduce((n, s) => n + s.weight, 0);
  const configured = servers.reduce((n, s) => n + s.configured_weight, 0);
  const pct = weight <= 0 ? 0 : configured <= 0 ? 100 : Math.max(1, Math.round((100 * weight) / configured));
  const want = { health: up ? 'up' : 'down', admin: ready.length ? 'ready' : notMaint.length ? 'drain' : 'maint', weightPercent: pct };
  if (agent.health !== want.health || agent.admin !== want.admin || agent.weightPercent !== want.weightPercent) out.push(`agent reply ${JSON.stringify(agentReply)}, /status gives ${JSON.stringify(want)}`);

  // Series only for names of the running config, or of sessions still open.
  const openFrontends = new Set(held.flatMap((h) => [h.frontend, h.listener.name]));
  const servedFrontends = new Set(st.frontends.map((f) => f.name));
  for (const s of samples) {
    const { backend, server, frontend } = s.labels;
    const activePair = frontend !== undefined && server !== undefined ? m('licgate_connections_active', { frontend, backend: backend!, server }) : undefined;
    if (frontend !== undefined && !servedFrontends.has(frontend) && !openFrontends.has(frontend)) out.push(`${key(s)}: frontend ${frontend} is gone and has no session open`);
    const activeRoute = frontend !== undefined && backend !== undefined && mSum('licgate_connections_active', { frontend, backend }) > 0;
    if (backend !== undefined && !cfgBackends.has(backend) && !(server !== undefined ? activePair !== undefined && activePair > 0 : activeRoute)) out.push(`${key(s)}: backend ${backend} is gone`);
    if (backend !== undefined && server !== undefined && cfgBackends.has(backend) && !cfgBackends.get(backend)!.has(server) && !(activePair !== undefined && activePair > 0)) out.push(`${key(s)}: server ${backend}/${server} is gone`);
  }

  // Counters never go down while their series lasts.
  const seen = new Set<string>();
  for (const s of samples) {
    if (!s.name.endsWith('_total') || s.name.startsWith('licgate_process_')) continue;
    const k = key(s);
    seen.add(k);
    const before = counters.get(k);
    if (before !== undefined && s.value < before) out.push(`${k} went down from ${before} to ${s.value}`);
  }
  if (out.length === 0) {
    for (const k of [...counters.keys()]) if (!seen.has(k)) counters.delete(k);
    for (const s of samples) if (seen.has(key(s))) counters.set(key(s), s.value);
  }
  return out;
}

async function walk(seed: number, steps: number): Promise<void> {
  const r = rng(seed);
  const sims = await Promise.all(Array.from({ length: SIMS }, (_, i) => startInProcessSimulator(`sim${i}`)));
  const simPorts = sims.map((s) => s.port);
  const live: (Awaited<ReturnType<typeof startInProcessSimulator>> | null)[] = [...sims];
  let plan = randomPlan(r);
  // The frontends' ports, by slot: a renamed frontend stays where it listens.
  const ports = [await freePort(), await freePort()];
  const p = await startProxy(yaml(plan, ports, simPorts));
  const listening = { status: p.listening.status!, agent: p.listening.agent! };
  const held: Held[] = [];
  const listeners: (Listener | null)[] = [0, 1].map((i) => (plan.frontends[i] ? { name: plan.frontends[i]!.name } : null));
  const counters = new Map<string, number>();
  const log: string[] = [`seed ${seed}: start ${JSON.stringify(plan)}`];
  try {
    for (let step = 0; step < steps; step++) {
      const kind = r.pick(['admin', 'admin', 'sim', 'reload', 'open', 'open', 'close']);
      if (kind === 'admin') {
        const b = r.pick(plan.backends);
        if (r.chance(0.15)) {
          const res = await post(p.adminUrl, `/admin/backends/${b.name}/failback`, null);
          log.push(`failback ${b.name} → ${res.status}`);
        } else {
          const s = r.pick(b.servers);
          const body = r.chance(0.5) ? { state: r.pick(['ready', 'drain', 'maint']) } : { weight: r.chance(0.5) ? r.pick([0, 1, 7, 100]) : `${r.pick([0, 33, 50, 150])}%` };
          const res = await post(p.adminUrl, `/admin/backends/${b.name}/servers/${s.name}`, body);
          log.push(`${b.name}/${s.name} ${JSON.stringify(body)} → ${res.status}`);
          expect(res.status, log.join('\n')).toBe(200);
        }
      } else if (kind === 'sim') {
        const i = r.int(SIMS);
        const sim = live[i];
        if (sim) {
          await sim.close();
          live[i] = null;
          log.push(`sim${i} stopped`);
        } else {
          live[i] = await startInProcessSimulator(`sim${i}`, { port: simPorts[i] });
          log.push(`sim${i} started`);
        }
      } else if (kind === 'reload') {
        plan = randomPlan(r);
        const how = r.pick(['SIGHUP', 'POST']);
        const before = p.logs.filter((l) => String(l.msg).startsWith('config reload')).length;
        writeFileSync(p.configFile, yaml(plan, ports, simPorts));
        if (how === 'SIGHUP') p.child.kill('SIGHUP');
        else expect((await post(p.adminUrl, '/admin/reload', null)).status, log.join('\n')).toBe(200);
        await waitFor(() => p.logs.filter((l) => String(l.msg).startsWith('config reload')).length > before, { timeoutMs: 10_000, what: 'the reload log line' });
        const last = p.logs.filter((l) => String(l.msg).startsWith('config reload')).at(-1)!;
        for (let i = 0; i < listeners.length; i++) {
          const f = plan.frontends[i];
          if (!f) listeners[i] = null;
          else if (listeners[i]) listeners[i]!.name = f.name;
          else listeners[i] = { name: f.name };
        }
        log.push(`reload (${how}) ${JSON.stringify(plan)}: ${last.msg}`);
        expect(String(last.msg), log.join('\n')).toMatch(/^config reloaded/);
      } else if (kind === 'open') {
        const slot = r.int(plan.frontends.length);
        const frontend = plan.frontends[slot]!.name;
        try {
          const client = await LicenseClient.connect(ports[slot]!, { timeoutMs: 3000 });
          try {
            const who = await client.hello();
            held.push({ client, frontend, listener: listeners[slot]! });
            log.push(`session on ${frontend} → ${who}`);
          } catch (e) {
            client.destroy();
            log.push(`session on ${frontend} failed: ${(e as Error).message}`);
          }
        } catch (e) {
          log.push(`connect to ${frontend} failed: ${(e as Error).message}`);
        }
      } else if (held.length > 0) {
        const h = held.splice(r.int(held.length), 1)[0]!;
        await h.client.close().catch(() => h.client.destroy());
        log.push(`session on ${h.frontend} closed`);
      }
      // A session whose server stopped may end on its own: only those still open are held.
      let last: string[] = [];
      try {
        await waitFor(
          async () => {
            for (let i = held.length - 1; i >= 0; i--) if (held[i]!.client.socket.destroyed || held[i]!.client.socket.readableEnded) held.splice(i, 1);
            last = await disagreements(p, listening, plan, listeners, held, counters);
            return last.length === 0;
          },
          { timeoutMs: 5000, intervalMs: 100, what: 'every source to agree' },
        );
      } catch {
        throw new Error(`seed ${seed}, step ${step}: the sources disagree:\n  ${last.join('\n  ')}\nsteps:\n  ${log.join('\n  ')}`);
      }
    }
  } finally {
    for (const h of held) h.client.destroy();
    for (const s of live) await s?.close();
  }
}

function seeds(): number[] {
  const spec = process.env.LICGATE_AGREE_SEEDS;
  // Seeds 1 and 4 found the series a removed frontend kept for servers its reload removed.
  if (!spec) return [1, 4];
  return spec.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

describe('what an admin reads agrees, under a seeded random walk', () => {
  for (const seed of seeds()) {
    it(`seed ${seed}: /status, /metrics, ctl servers, STATUS and agent replies agree after every step`, async () => {
      await walk(seed, Number(process.env.LICGATE_AGREE_STEPS ?? STEPS));
    });
  }
});
