import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { Model } from '../../src/model/model.js';
import { errorClass, Metrics, stateLabel } from '../../src/observe/metrics.js';
import { Frontend, type FrontendHooks } from '../../src/proxy/frontend.js';
import type { SessionRecord } from '../../src/proxy/session.js';
import { parseSamples, sample } from '../helpers/prom-text.js';

const YAML = (servers: string) => `frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: tcp }
    servers:
${servers}`;
const AB = `      - { name: a, address: 10.0.0.1:1 }\n      - { name: c, address: 10.0.0.2:1, backup: true }`;

const noHooks: FrontendHooks = { sessionEnded: () => {}, sessionConnected: () => {}, attemptFailed: () => {}, attemptRaced: () => {}, acceptFailed: () => {}, denied: () => {} };

/** A model and a (never listening) frontend the metrics read, as the daemon's are. */
function setup(servers = AB) {
  const cfg = loadConfigText(YAML(servers), 'm.yaml');
  const src = { version: '9.9.9', model: new Model(cfg), frontends: [] as Frontend[], retired: new Set<Frontend>(), shuttingDown: false, cfg: cfg as Pick<Config, 'vrrp'> };
  src.frontends.push(new Frontend(cfg.frontends[0]!, src.model.backend('b')!, noHooks));
  const m = new Metrics(src, () => null, { processMetrics: false });
  m.watch(src.model.events);
  const b = src.model.backend('b')!;
  // What a session passes to the hooks: the frontend's name and backend when it was accepted.
  return { cfg, src, m, fe: src.frontends[0]!, b, route: { frontendName: 'fe', backend: b } };
}

function ended(server: string | null, end: SessionRecord['end'], bytes = [10, 20], retries = 0): SessionRecord {
  return { client: '127.0.0.1:1', frontend: 'fe', backend: 'b', server, bytes_in: bytes[0]!, bytes_out: bytes[1]!, duration_ms: 1, end, retries };
}

describe('labels', () => {
  it('maps HAProxy state text to one of five state labels', () => {
    expect(['UP', 'UP 1/3', 'DOWN', 'DOWN 1/2', 'DOWN (agent)', 'DRAIN', 'MAINT', 'no check'].map(stateLabel)).toEqual(['UP', 'UP', 'DOWN', 'DOWN', 'DOWN', 'DRAIN', 'MAINT', 'NOCHECK']);
  });

  it('classes connect failures as refused, reset, timeout or other', () => {
    expect(['connection refused', 'connection reset', 'connect timeout after 3000ms', 'EHOSTUNREACH'].map(errorClass)).toEqual(['refused', 'reset', 'timeout', 'other']);
  });
});

describe('Metrics', () => {
  it('counts sessions from the hooks exactly and mirrors the model at scrape time', async () => {
    const { m, route, b } = setup();
    const a = b.server('a')!;
    for (let i = 0; i < 3; i++) m.sessionConnected(route, a, i === 2 ? 1 : 0);
    m.attemptFailed(route, a, 'connection refused');
    m.attemptRaced(route, a);
    m.attemptRaced(route, a);
    m.sessionEnded(ended('a', 'closed'));
    m.sessionEnded(ended('a', 'server-reset', [5, 0]));
    m.sessionEnded(ended(null, 'no-server', [0, 0], 2));
    b.acquire(a, '127.0.0.1');
    a.setWeight(7, 'test');
    const text = await m.render();
    const l = { frontend: 'fe', backend: 'b', server: 'a' };
    expect(sample(text, 'licgate_connections_total', l)).toBe(3);
    expect(sample(text, 'licgate_connections_active', l)).toBe(1);
    expect(sample(text, 'licgate_bytes_in_total', l)).toBe(15);
    expect(sample(text, 'licgate_bytes_out_total', l)).toBe(20);
    expect(sample(text, 'licgate_connect_errors_total', { ...l, reason: 'refused' })).toBe(1);
    expect(sample(text, 'licgate_connect_races_total', l)).toBe(2);
    // 1 retry on a connected session + 2 on the session that failed on all 3 attempts.
    expect(sample(text, 'licgate_connect_retries_total', { frontend: 'fe', backend: 'b' })).toBe(3);
    expect(sample(text, 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end: 'no-server' })).toBe(1);
    expect(sample(text, 'licgate_server_active_connections', { backend: 'b', server: 'a' })).toBe(1);
    expect(sample(text, 'licgate_server_weight', { backend: 'b', server: 'a' })).toBe(7);
    expect(sample(text, 'licgate_server_configured_weight', { backend: 'b', server: 'a' })).toBe(1);
    expect(sample(text, 'licgate_build_info', { version: '9.9.9' })).toBe(1);
    expect(sample(text, 'licgate_process_resident_memory_bytes')).toBeUndefined();
  });

  it('licgate_sessions_ended_total: its help names every end a session log line can carry', async () => {
    const { m } = setup();
    // Keyed by every end the type allows: a new end that the help misses fails to compile here.
    const every = { closed: 1, 'client-reset': 1, 'server-reset': 1, 'client-error': 1, 'server-error': 1, 'idle-timeout': 1, shutdown: 1, 'server-down': 1, admin: 1, 'no-server': 1, status: 1, 'client-gone': 1 } satisfies Record<SessionRecord['end'], 1>;
    const ends = Object.keys(every);
    const help = (await m.render()).split('\n').find((l) => l.startsWith('# HELP licgate_sessions_ended_total '))!;
    expect(ends.filter((e) => !new RegExp(`[ ,(]${e}[,) ]`).test(help))).toEqual([]);
  });

  it('a scrape gives the event loop a turn after each metric family: relays are not held up while prom-client builds the whole text', async () => {
    const { m } = setup();
    let turns = 0;
    let scraping = true;
    const turn = (): void => {
      if (!scraping) return;
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
    const text = await m.render();
    scraping = false;
    const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
    expect(families).toBeGreaterThan(30);
    expect(turns).toBeGreaterThanOrEqual(families - 1);
  });

  it('counts checks, transitions and failovers from model events', async () => {
    const { m, b, src } = setup();
    const a = b.server('a')!;
    const fail = { ok: false, reason: 'refused', durationMs: 30, at: 0 };
    a.checkFailed(fail); // UP 1/3 -> DOWN: rise 2 starts at the edge
    b.server('c')!.checkSucceeded({ ok: true, reason: 'ok', durationMs: 2, at: 0 });
    src.model.events.emit('check-done', { backend: 'b', server: 'a', ok: false, durationMs: 30, reason: 'refused' });
    const text = await m.render();
    expect(sample(text, 'licgate_server_transitions_total', { backend: 'b', server: 'a', to: 'DOWN' })).toBe(1);
    // A check that leaves c UP is no transition (the series exists from 0: see zeroTransitions).
    expect(sample(text, 'licgate_server_transitions_total', { backend: 'b', server: 'c', to: 'UP' })).toBe(0);
    expect(sample(text, 'licgate_backend_failovers_total', { backend: 'b', from: 'active', to: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_backend_serving_tier', { backend: 'b' })).toBe(1);
    expect(sample(text, 'licgate_checks_total', { backend: 'b', server: 'a', result: 'failed' })).toBe(1);
    expect(sample(text, 'licgate_check_duration_seconds_bucket', { backend: 'b', server: 'a', le: '0.05' })).toBe(1);
    expect(sample(text, 'licgate_check_duration_seconds_bucket', { backend: 'b', server: 'a', le: '0.025' })).toBe(0);
    expect(sample(text, 'licgate_server_last_check_success', { backend: 'b', server: 'a' })).toBe(0);
  });

  it("checks, transitions and failovers exist from 0 before the first: each server's, and each tier change its backend can make (a reload that adds a tier adds its changes)", async () => {
    const { m, src } = setup(`      - { name: a, address: 10.0.0.1:1 }`);
    const failovers = (text: string): string[] => parseSamples(text).filter((x) => x.name === 'licgate_backend_failovers_total').map((x) => `${x.labels.from}>${x.labels.to}=${x.value}`).sort();
    let text = await m.render();
    for (const result of ['ok', 'failed']) expect(sample(text, 'licgate_checks_total', { backend: 'b', server: 'a', result }), result).toBe(0);
    expect(failovers(text)).toEqual(['active>none=0', 'none>active=0']);

    // Two disaster-recovery tiers: a change from the first to the second is dr to dr.
    const next = setup(`${AB}\n      - { name: dr1, address: 10.0.0.5:1, tier: 2 }\n      - { name: dr2, address: 10.0.0.6:1, tier: 3 }`);
    src.model = next.src.model;
    m.forget(next.cfg);
    text = await m.render();
    for (const server of ['a', 'c', 'dr1', 'dr2']) expect(sample(text, 'licgate_checks_total', { backend: 'b', server, result: 'failed' }), server).toBe(0);
    const tiers = ['active', 'backup', 'dr', 'none'];
    expect(failovers(text)).toEqual(tiers.flatMap((from) => tiers.filter((to) => to !== from || to === 'dr').map((to) => `${from}>${to}=0`)).sort());
  });

  it('after a reload: counters continue by name, series of removed servers go (unless sessions are open)', async () => {
    const { m, route, b, src } = setup(`${AB}\n      - { name: gone, address: 10.0.0.3:1 }\n      - { name: busy, address: 10.0.0.4:1 }`);
    m.sessionConnected(route, b.server('a')!, 0);
    m.sessionEnded(ended('a', 'closed'));
    m.sessionConnected(route, b.server('gone')!, 0);
    m.sessionEnded(ended('gone', 'closed'));
    m.sessionConnected(route, b.server('busy')!, 0);
    src.model.events.emit('check-done', { backend: 'b', server: 'gone', ok: true, durationMs: 1, reason: 'ok' });
    expect(sample(await m.render(), 'licgate_checks_total', { server: 'busy', result: 'ok' })).toBe(0);

    const next = setup();
    src.model = next.src.model;
    m.forget(next.cfg);
    m.sessionConnected(route, src.model.backend('b')!.server('a')!, 0);
    const text = await m.render();
    expect(sample(text, 'licgate_connections_total', { server: 'a' })).toBe(2);
    expect(sample(text, 'licgate_connections_total', { server: 'gone' })).toBeUndefined();
    expect(sample(text, 'licgate_checks_total', { server: 'gone' })).toBeUndefined();
    expect(sample(text, 'licgate_checks_total', { server: 'busy' })).toBeUndefined();
    expect(sample(text, 'licgate_server_transitions_total', { server: 'busy' })).toBeUndefined();
    expect(sample(text, 'licgate_connections_active', { server: 'busy' })).toBe(1);
    expect(sample(text, 'licgate_server_up', { server: 'gone' })).toBeUndefined();
    // The removed server's last session ends: its series go then, not at a later reload.
    m.sessionEnded(ended('busy', 'closed'));
    expect(sample(await m.render(), 'licgate_connections_total', { server: 'busy' })).toBeUndefined();
  });

  it('a reload that removes a frontend with sessions open and a server: that server series of the frontend go at the reload', async () => {
    const { m, route, b, src, fe } = setup(`${AB}\n      - { name: gone, address: 10.0.0.3:1 }`);
    m.sessionConnected(route, b.server('a')!, 0);
    expect(sample(await m.render(), 'licgate_connections_total', { frontend: 'fe', server: 'gone' })).toBe(0);

    // The frontend is removed while its session is open (Daemon.retired), and so is the server.
    const next = loadConfigText(YAML(AB).replace('name: fe,', 'name: other,'), 'm.yaml');
    src.model = new Model(next);
    src.frontends.length = 0;
    src.retired.add(fe);
    m.forget(next);
    const text = await m.render();
    expect(sample(text, 'licgate_connections_active', { frontend: 'fe', server: 'a' })).toBe(1);
    expect(sample(text, 'licgate_connections_total', { frontend: 'fe', server: 'gone' })).toBeUndefined();
    expect(sample(text, 'licgate_connect_errors_total', { frontend: 'fe', server: 'gone', reason: 'refused' })).toBeUndefined();
  });

  it('licgate_vrrp_state: one series per state, 1 for the role in the state file; UNKNOWN without one; none when not configured', async () => {
    const { m, src } = setup();
    expect(sample(await m.render(), 'licgate_vrrp_state', {})).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'licgate-vrrp-'));
    try {
      const file = join(dir, 'vrrp-state');
      src.cfg = { vrrp: { state_file: file } };
      let text = await m.render();
      expect(sample(text, 'licgate_vrrp_state', { state: 'UNKNOWN' })).toBe(1);
      writeFileSync(file, 'INSTANCE VI_LICGATE BACKUP 100 2026-12-04T23:00:00Z\n');
      text = await m.render();
      expect(sample(text, 'licgate_vrrp_state', { vrrp_instance: 'VI_LICGATE', state: 'BACKUP' })).toBe(1);
      for (const st of ['MASTER', 'FAULT', 'STOP', 'DELETED']) expect(sample(text, 'licgate_vrrp_state', { vrrp_instance: 'VI_LICGATE', state: st })).toBe(0);
      expect(sample(text, 'licgate_vrrp_state', { state: 'UNKNOWN' })).toBeUndefined();
      writeFileSync(file, 'INSTANCE VI_LICGATE MASTER 100 2026-12-04T23:00:05Z\n');
      expect(sample(await m.render(), 'licgate_vrrp_state', { state: 'MASTER' })).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
