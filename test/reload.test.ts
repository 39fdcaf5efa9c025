import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import type { TierChangeEvent } from '../src/model/events.js';
import { Model } from '../src/model/model.js';
import type { Backend } from '../src/model/backend.js';
import type { Server } from '../src/model/server.js';
import { adoptServers, applyConfig, describeChanges, frontendKey, handOverBackends } from '../src/reload.js';
import { agentReportFor } from '../src/serve/agent-reply.js';
import { freePort } from './helpers/free-port.js';
import { startDaemon } from './helpers/in-process-daemon.js';

/** `stick`: true for `stick: source`, or a string of further backend keys to go with it; `keys`: other backend keys. */
function cfg(servers: string, opts: { failback?: string; check?: string; stick?: boolean | string; keys?: string; extra?: string } = {}): Config {
  return loadConfigText(`frontends:
  - { name: lmgrd, listen: 127.0.0.1:27000, backend: b }
backends:
  - name: b
    failback: ${opts.failback ?? 'auto'}
    ${opts.stick ? 'stick: source' : ''}
    ${typeof opts.stick === 'string' ? opts.stick : ''}
    ${opts.keys ?? ''}
    check: ${opts.check ?? '{ type: tcp, rise: 2, fall: 3 }'}
    servers:
${servers}
${opts.extra ?? ''}`, 'test.yaml');
}

const TWO = `      - { name: a, address: 10.0.0.1:27000, weight: 100 }
      - { name: bk, address: 10.0.0.2:27000, weight: 50, backup: true }`;

/** What applyConfig does to the running model's state, without the listeners: adopt early, hand over at commit. */
function carryOver(prev: Model, next: Model): void {
  adoptServers(prev, next);
  handOverBackends(prev, next);
}

/** The model of `next` after a reload from `prev` (carryOver). */
function reloaded(prev: Model, next: Config): Model {
  const m = new Model(next);
  carryOver(prev, m);
  return m;
}

const ok = { ok: true, reason: 'ok', durationMs: 1, at: 0 };
const fail = { ok: false, reason: 'refused', durationMs: 1, at: 0 };

describe('carryOver: a surviving server keeps what was learned at runtime', () => {
  it('keeps health, admin state, a runtime weight and the last check, and shares connection counts', () => {
    const old = new Model(cfg(TWO));
    const a = old.backend('b')!.server('a')!;
    a.checkFailed(fail);
    a.checkFailed(fail);
    expect(a.stateText).toBe('DOWN');
    const bk = old.backend('b')!.server('bk')!;
    bk.setAdmin('drain', 'test');
    bk.setWeight(20, 'test');
    bk.active = 3;
    bk.total = 9;

    const next = new Model(cfg(TWO.replace('weight: 100', 'weight: 80')));
    const events: unknown[] = [];
    next.events.on('server-state', (e) => events.push(e));
    next.events.on('tier-change', (e) => events.push(e));
    carryOver(old, next);
    const na = next.backend('b')!.server('a')!;
    const nbk = next.backend('b')!.server('bk')!;
    expect(na.stateText).toBe('DOWN');
    expect(na.weight).toBe(80); // not changed at runtime: the new config's weight
    expect(na.lastCheck).toEqual(fail);
    expect(nbk.stateText).toBe('DRAIN 1/3'); // never checked: UP 1/3, drained
    expect(nbk.weight).toBe(20); // set at runtime: survives the reload
    expect(nbk.configuredWeight).toBe(50);
    expect([nbk.active, nbk.total]).toEqual([3, 9]);
    // Sessions opened before the reload hold the old object; their end must count on the new one.
    bk.active--;
    expect(nbk.active).toBe(2);
    nbk.active++;
    expect(bk.active).toBe(3);
    expect(events).toEqual([]);
  });

  it('a weight an admin set gives way to a weight the reloaded config changed, as at a start with admin.state_file (HAProxy: srv_iweight)', () => {
    const old = new Model(cfg(TWO));
    old.backend('b')!.server('a')!.setWeight(20, 'test');
    old.backend('b')!.server('bk')!.setWeight(10, 'test');
    const next = reloaded(old, cfg(TWO.replace('weight: 100', 'weight: 80')));
    expect(next.backend('b')!.server('a')!.weight).toBe(80);
    expect(next.backend('b')!.server('bk')!.weight).toBe(10);
  });

  it('keeps the license usage of the last output read whole, which agent.weight_from uses for a feature past a later cut', () => {
    const old = new Model(cfg(TWO));
    const a = old.backend('b')!.server('a')!;
    const whole = { servers: [], vendors: [], features: [{ name: 'MD2', issued: 10, in_use: 3 }], errors: [] };
    a.checkSucceeded({ ...ok, at: 5, license: whole });
    a.checkSucceeded({ ...ok, at: 9, license: { ...whole, features: [], truncated: true } });
    const next = new Model(cfg(TWO));
    carryOver(old, next);
    expect(next.backend('b')!.server('a')!.lastWholeLicense).toEqual({ license: whole, at: 5 });
  });

  it('a reload that retunes only when and how long the lmstat check runs keeps its count read whole: the next cut output is not "not counted yet"', () => {
    const lmstat = (tuning: string, argv = 'lmutil, lmstat, -a, -c, "{port}@{host}"') => cfg(TWO, { check: `{ type: exec, argv: [${argv}], parse: lmstat${tuning} }` });
    const old = new Model(lmstat(''));
    const a = old.backend('b')!.server('a')!;
    const whole = { servers: [], vendors: [], features: [{ name: 'MD2', issued: 10, in_use: 3 }], errors: [] };
    const cut = { ...whole, features: [], truncated: true };
    a.checkSucceeded({ ...ok, at: performance.now(), license: whole });
    a.checkSucceeded({ ...ok, at: performance.now(), license: cut });
    const md2 = { feature: 'MD2', min_percent: 10 };
    // Right after the reload (the last check, checked once), then the agent reply after the next output, cut at peak use.
    const after = (next: Config) => {
      const s = reloaded(old, next).backend('b')!.server('a')!;
      const atReload = [s.lastCheck?.license, s.firstCheckDone];
      s.checkSucceeded({ ...ok, at: performance.now(), license: cut });
      const reply = agentReportFor([s], md2);
      return [...atReload, reply.weightPercent, reply.comment.replace(/ \d+s ago/, '')];
    };
    const kept = [cut, true, 70, 'MD2 7/10 free; output since cut before MD2'];
    expect(after(lmstat(''))).toEqual(kept);
    expect(after(lmstat(', inter: 1m, fastinter: 5s, downinter: 30s'))).toEqual(kept);
    expect(after(lmstat(', rise: 3, fall: 5, timeout: 20s, read_limit: 65536'))).toEqual(kept);
    // Another command (or server port) is another reading: counted again from its first output read whole.
    expect(after(lmstat('', 'lmutil, lmstat, -a, -c, "27001@{host}"'))).toEqual([undefined, false, 10, 'MD2 not counted yet: output cut before it']);
  });

  it('a server whose address changed starts over; a new rise/fall maps the health onto the new scale', () => {
    const old = new Model(cfg(TWO));
    const a = old.backend('b')!.server('a')!;
    a.setAdmin('maint', 'test');
    const bk = old.backend('b')!.server('bk')!;
    bk.checkSucceeded(ok);
    expect(bk.stateText).toBe('UP');
    const next = new Model(cfg(TWO.replace('10.0.0.1:', '10.0.0.9:'), { check: '{ type: tcp, rise: 3, fall: 5 }' }));
    carryOver(old, next);
    expect(next.backend('b')!.server('a')!.admin).toBe('ready');
    const nbk = next.backend('b')!.server('bk')!;
    expect(nbk.stateText).toBe('UP');
    expect(nbk.health.health).toBe(3 + 5 - 1);
    // The same check on another scale: what it read last still stands.
    expect(nbk.firstCheckDone).toBe(true);
    expect(nbk.lastCheck).toEqual(ok);
  });

  it('a reload that changes fall or rise keeps the failures a transitional server has counted (UP 2/3 stays one failure down)', () => {
    const old = new Model(cfg(TWO));
    const a = old.backend('b')!.server('a')!;
    a.checkSucceeded(ok);
    a.checkFailed(fail);
    expect(a.stateText).toBe('UP 2/3'); // one failure counted, two more to DOWN
    const texts = (check: string): string => {
      const next = new Model(cfg(TWO, { check }));
      carryOver(old, next);
      return next.backend('b')!.server('a')!.stateText;
    };
    expect(texts('{ type: tcp, rise: 2, fall: 5 }')).toBe('UP 4/5');
    expect(texts('{ type: tcp, rise: 3, fall: 3 }')).toBe('UP 2/3');
    expect(texts('{ type: tcp, rise: 2, fall: 2 }')).toBe('UP 1/2');
    // A fall no higher than the failures counted leaves the last one: a reload marks nothing DOWN.
    a.checkFailed(fail);
    expect(a.stateText).toBe('UP 1/3');
    expect(texts('{ type: tcp, rise: 2, fall: 2 }')).toBe('UP 1/2');
    expect(texts('{ type: tcp, rise: 2, fall: 6 }')).toBe('UP 4/6');
  });

  it('a DOWN server whose reload turns its check off (type none) is in service again: nothing would ever check it back up', () => {
    const old = new Model(cfg(TWO));
    const a = old.backend('b')!.server('a')!;
    a.checkFailed(fail);
    expect(a.stateText).toBe('DOWN');
    expect(old.backend('b')!.servingTier).toBe(1);

    const next = new Model(cfg(TWO, { check: '{ type: none }' }));
    carryOver(old, next);
    for (const nb of next.backends.values()) nb.reconsider('config reload');
    const na = next.backend('b')!.server('a')!;
    expect(na.stateText).toBe('no check');
    expect(na.usable).toBe(true);
    expect(next.backend('b')!.servingTier).toBe(0);
  });

  it('failback manual: a reload does not move service back to a recovered active tier', () => {
    const old = new Model(cfg(TWO, { failback: 'manual' }));
    const b = old.backend('b')!;
    const a = b.server('a')!;
    a.checkFailed(fail);
    a.checkFailed(fail);
    expect(b.servingTier).toBe(1);
    a.checkSucceeded(ok);
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('UP');
    expect(b.servingTier).toBe(1);

    const next = new Model(cfg(TWO, { failback: 'manual' }));
    const changes: TierChangeEvent[] = [];
    next.events.on('tier-change', (e) => changes.push(e));
    carryOver(old, next);
    for (const nb of next.backends.values()) nb.reconsider('config reload');
    expect(next.backend('b')!.servingTier).toBe(1);
    expect(changes).toEqual([]);

    // With failback auto, the reload is what sends service back to the active tier, announced once.
    const auto = new Model(cfg(TWO, { failback: 'auto' }));
    auto.events.on('tier-change', (e) => changes.push(e));
    carryOver(old, auto);
    expect(auto.backend('b')!.servingTier).toBe(1);
    auto.backend('b')!.reconsider('config reload');
    expect(auto.backend('b')!.servingTier).toBe(0);
    expect(changes).toEqual([{ backend: 'b', from: 1, to: 0, reason: 'backup -> active: config reload' }]);
  });

  it('hands the stick table over and forgets entries of removed servers', () => {
    const three = `${TWO}\n      - { name: c, address: 10.0.0.3:27000 }`;
    const old = new Model(cfg(three, { stick: true }));
    const table = old.backend('b')!.stick!;
    table.set('192.0.2.1', 'a');
    table.set('192.0.2.2', 'c');
    const next = new Model(cfg(TWO, { stick: true }));
    carryOver(old, next);
    expect(next.backend('b')!.stick).toBe(table);
    expect(table.get('192.0.2.1')).toBe('a');
    expect(table.get('192.0.2.2')).toBeUndefined();
  });

  it('hands the stick table over when stick_ttl or stick_size changed, with the new ttl and size', () => {
    const old = new Model(cfg(TWO, { stick: true }));
    const table = old.backend('b')!.stick!;
    const now = Date.now();
    for (let i = 1; i <= 3; i++) table.set(`192.0.2.${i}`, 'a', now + i);
    const next = new Model(cfg(TWO, { stick: 'stick_ttl: 2h\n    stick_size: 2' }));
    carryOver(old, next);
    const kept = next.backend('b')!.stick!;
    expect(kept).toBe(table);
    // stick_size 2: the least recently active entry went; the others live on to the new ttl.
    expect(kept.get('192.0.2.1', now + 4)).toBeUndefined();
    expect(kept.get('192.0.2.2', now + 2 * 3_600_000)).toBe('a');
    expect(kept.get('192.0.2.3', now + 2 * 3_600_000 + 3)).toBeUndefined();
  });

  it('init_state: a server kept across a reload keeps its state, one the reload adds starts in its own', () => {
    const oldCfg = cfg(TWO);
    const old = new Model(oldCfg);
    expect(old.backend('b')!.server('a')!.stateText).toBe('UP 1/3');
    const nextCfg = cfg(`${TWO.replace('weight: 100 }', 'weight: 100, init_state: fully-down }')}
      - { name: c, address: 10.0.0.3:27000, init_state: down }`);
    const next = new Model(nextCfg);
    const events: unknown[] = [];
    next.events.on('server-state', (e) => events.push(e));
    carryOver(old, next);
    expect(next.backend('b')!.servers.map((s) => s.stateText)).toEqual(['UP 1/3', 'UP 1/3', 'DOWN 1/2']);
    expect(next.backend('b')!.server('c')!.eligible).toBe(false);
    expect(events).toEqual([]);
    expect(describeChanges(oldCfg, nextCfg)).toEqual([
      'backend b: server a init_state up -> fully-down (from the next start; its state now is kept)',
      'backend b: server c added (10.0.0.3:27000, tier 0, weight 1)',
    ]);
  });
});

describe('a change on the running server while the reload binds its listeners', () => {
  it('is what the successor starts with at the commit: health, admin state, weight, agent and last check; the counts stay shared', () => {
    const withAgent = cfg(TWO, { keys: 'agent_port: 27200' });
    const old = new Model(withAgent);
    const a = old.backend('b')!.server('a')!;
    a.setWeight(20, 'admin');
    const next = new Model(cfg(TWO, { keys: 'agent_port: 27200' }));
    adoptServers(old, next);
    const na = next.backend('b')!.server('a')!;
    expect([na.stateText, na.weight]).toEqual(['UP 1/3', 20]);

    // Meanwhile, in the config still running: a failed check, an admin drain and weight reset, an agent reply.
    a.checkFailed(fail);
    a.setAdmin('drain', 'admin');
    a.setWeight(100, 'admin');
    const view = { state: 'up' as const, weightPercent: 10, maxconn: 5, reason: 'agent says "up 10% maxconn:5"' };
    a.setAgent(view, 'agent');
    a.active = 2;
    expect(old.backend('b')!.servingTier).toBe(1);

    handOverBackends(old, next);
    expect([na.stateText, na.admin, na.weight, na.agent, na.lastCheck]).toEqual(['DOWN', 'drain', 100, view, fail]);
    expect(next.backend('b')!.servingTier).toBe(1);
    expect(na.active).toBe(2);
    na.active--;
    expect(a.active).toBe(1);
  });
});

describe('a session opened before reloads', () => {
  it('frees its slot in the config running now, after two reloads: the queued connection there is woken', () => {
    const full = `      - { name: a, address: 10.0.0.1:27000, maxconn: 1 }`;
    const first = new Model(cfg(full));
    const a = first.backend('b')!.server('a')!;
    first.backend('b')!.acquire(a, '192.0.2.1');
    const second = new Model(cfg(full));
    carryOver(first, second);
    const now = new Model(cfg(full));
    carryOver(second, now);
    let woken = 0;
    expect(now.backend('b')!.enqueue({ wake: () => woken++, movedTo: () => {} })).toBe(true);
    expect(now.backend('b')!.server('a')!.active).toBe(1);
    first.backend('b')!.release(a, '192.0.2.1');
    expect([woken, now.backend('b')!.queued, now.backend('b')!.server('a')!.active]).toEqual([1, 0, 0]);
  });
});

/** Backend b with server a (maxconn 2, unchecked) at 10.0.0.1:`port`. */
const withA = (port: number): Config => cfg(`      - { name: a, address: 10.0.0.1:${port}, maxconn: 2 }`, { check: '{ type: none }' });

/** A model running withA(27000), and a's two sessions of clients 192.0.2.1 and 192.0.2.2 open on it. */
function twoSessionsOnA(): { first: Model; b0: Backend; a0: Server } {
  const first = new Model(withA(27000));
  const b0 = first.backend('b')!;
  const a0 = b0.server('a')!;
  b0.acquire(a0, '192.0.2.1');
  b0.acquire(a0, '192.0.2.2');
  return { first, b0, a0 };
}

describe('a server removed by a reload and added back while its sessions are open', () => {
  it('counts them at the same address; at another it is another license server and starts at 0; none is counted twice or lost', () => {
    const at = withA;
    const without = cfg(`      - { name: other, address: 10.0.0.9:27000 }`, { check: '{ type: none }' });
    const { first, b0, a0 } = twoSessionsOnA();
    const removed = new Model(without);
    carryOver(first, removed);
    const back = new Model(at(27000));
    carryOver(removed, back);
    const a1 = back.backend('b')!.server('a')!;
    expect([a1.active, a1.usable]).toEqual([2, false]);
    b0.release(a0, '192.0.2.1');
    expect([a1.active, a1.usable]).toEqual([1, true]);

    const moved = new Model(at(27001));
    carryOver(back, moved);
    const a2 = moved.backend('b')!.server('a')!;
    expect([a2.active, a1.active]).toEqual([0, 1]);
    const again = new Model(at(27000));
    carryOver(moved, again);
    const a3 = again.backend('b')!.server('a')!;
    expect(a3.active).toBe(1);
    b0.release(a0, '192.0.2.2');
    expect([a3.active, a2.active, a0.active]).toEqual([0, 0, 0]);
    const last = new Model(without);
    carryOver(again, last);
    expect(last.backend('b')!.retired).toEqual([]);
  });
});

describe('a backend removed by a reload and added back while its sessions are open', () => {
  it('its servers count them at the same address, a session ending wakes its queue, and it is forgotten once they end', () => {
    // The frontend points at another backend for a maintenance window; b is gone from the file.
    const without = loadConfigText(`frontends:
  - { name: lmgrd, listen: 127.0.0.1:27000, backend: spare }
backends:
  - name: spare
    check: { type: none }
    servers:
      - { name: other, address: 10.0.0.9:27000 }
`, 'test.yaml');
    const { first, b0, a0 } = twoSessionsOnA();
    // Removed, and a reload that leaves it out again must not lose it.
    const back = reloaded(reloaded(reloaded(first, without), without), withA(27000));
    const b1 = back.backend('b')!;
    const a1 = b1.server('a')!;
    expect([a1.active, a1.usable]).toEqual([2, false]);
    let woken = 0;
    expect(b1.enqueue({ wake: () => woken++, movedTo: () => {} })).toBe(true);
    b0.release(a0, '192.0.2.1');
    expect([a1.active, a1.usable, woken, b1.queued]).toEqual([1, true, 1, 0]);

    // Removed again, added back at another address (another license server), then at the first.
    const moved = reloaded(reloaded(back, without), withA(27001));
    const a2 = moved.backend('b')!.server('a')!;
    expect([a2.active, a1.active]).toEqual([0, 1]);
    const again = reloaded(reloaded(moved, without), withA(27000));
    const b3 = again.backend('b')!;
    const a3 = b3.server('a')!;
    expect(a3.active).toBe(1);
    b3.acquire(a3, '192.0.2.3');
    expect(b3.enqueue({ wake: () => woken++, movedTo: () => {} })).toBe(true);
    b0.release(a0, '192.0.2.2');
    expect([a3.active, a2.active, a0.active, woken]).toEqual([1, 0, 1, 2]);
    // Removed with a session open, which ends while it is out: the next reload forgets it.
    const last = reloaded(again, without);
    expect(last.removed.size).toBe(1);
    b3.release(a3, '192.0.2.3');
    expect(a0.active).toBe(0);
    expect(reloaded(last, without).removed.size).toBe(0);
  });
});

describe('passive health across a reload: a connect launched before it reports to the old server', () => {
  const observe3 = { keys: 'observe_errors: 3' };

  /** The old model with a fully UP, and its successor in `next` once the reload committed. */
  function reloaded(): { a: Server; na: Server; next: Model } {
    const old = new Model(cfg(TWO, observe3));
    const a = old.backend('b')!.server('a')!;
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('UP');
    a.connectFailed('connection refused', 3);
    const next = new Model(cfg(TWO, observe3));
    carryOver(old, next);
    return { a, na: next.backend('b')!.server('a')!, next };
  }

  it('observe_errors consecutive errors mark the running server DOWN though a reload fell between them', () => {
    const { a, na, next } = reloaded();
    const events: string[] = [];
    next.events.on('server-state', (e) => events.push(`${e.server} ${e.to}`));
    a.connectFailed('connection refused', 3); // in flight across the reload
    na.connectFailed('connection refused', 3);
    expect(na.stateText).toBe('DOWN');
    expect(na.connectErrors).toBe(3);
    // Announced by the running model: new sessions go to the backup.
    expect(events).toEqual(['a DOWN']);
    expect(next.backend('b')!.servingTier).toBe(1);
  });

  it('a success reported to the old server ends the run of errors', () => {
    const { a, na } = reloaded();
    a.connectFailed('connection refused', 3);
    a.connectSucceeded(); // the connect in flight across the reload answered
    na.connectFailed('connection refused', 3);
    na.connectFailed('connection refused', 3);
    expect(na.stateText).toBe('UP');
  });

  it('a connect launched before its server was removed and added back (same address) reports to the one added back', () => {
    const first = new Model(cfg(TWO, observe3));
    const a1 = first.backend('b')!.server('a')!;
    first.backend('b')!.acquire(a1, '192.0.2.1'); // its connect is in flight
    const removed = new Model(cfg('      - { name: bk, address: 10.0.0.2:27000, weight: 50, backup: true }', observe3));
    carryOver(first, removed);
    const back = new Model(cfg(TWO, observe3));
    carryOver(removed, back);
    const a3 = back.backend('b')!.server('a')!;
    a1.connectFailed('connection refused', 3);
    a3.connectFailed('connection refused', 3);
    a3.connectFailed('connection refused', 3);
    expect([a1.live() === a3, a3.stateText, a3.connectErrors]).toEqual([true, 'DOWN', 3]);
  });

  it('a reload that fails before its commit leaves the running server counting on its own', () => {
    const old = new Model(cfg(TWO, observe3));
    const a = old.backend('b')!.server('a')!;
    adoptServers(old, new Model(cfg(TWO, observe3))); // the listeners then fail to bind: no handOverBackends
    for (let i = 0; i < 3; i++) a.connectFailed('connection refused', 3);
    expect(a.stateText).toBe('DOWN');
  });
});

describe("the agent's word across a reload", () => {
  const drained = (s: Server): void => s.setAgent({ state: 'drain', weightPercent: 10, maxconn: 5, reason: 'agent says "drain 10% maxconn:5"' }, 'agent');
  const carried = (from: Config, to: Config): unknown[] => {
    const old = new Model(from);
    drained(old.backend('b')!.server('a')!);
    const next = new Model(to);
    carryOver(old, next);
    const na = next.backend('b')!.server('a')!;
    return [na.stateText, na.effectiveWeight, na.maxconn];
  };
  const aux = (check: string, agent = 'agent_port: 27200') => cfg(TWO, { check, keys: agent });

  it('the auxiliary agent (agent_port) keeps its drain, weight % and maxconn when only the health check changed', () => {
    expect(carried(aux('{ type: tcp, inter: 2s }'), aux('{ type: tcp, inter: 3s }'))).toEqual(['DRAIN (agent)', 10, 5]);
    expect(carried(aux('{ type: tcp }'), aux('{ type: status }'))).toEqual(['DRAIN (agent)', 10, 5]);
  });

  it('another agent port, agent_send or agent check starts without it', () => {
    const fresh = ['UP 1/3', 100, 0];
    expect(carried(aux('{ type: tcp }'), aux('{ type: tcp }', 'agent_port: 27201'))).toEqual(fresh);
    expect(carried(aux('{ type: tcp }'), aux('{ type: tcp }', 'agent_port: 27200\n    agent_send: "flexlm\\n"'))).toEqual(fresh);
    expect(carried(aux('{ type: tcp }'), cfg(TWO, { check: '{ type: agent, port: 27200 }' }))).toEqual(fresh);
    const agentCheck = (keys: string) => cfg(TWO, { check: `{ type: agent, ${keys} }` });
    expect(carried(agentCheck('port: 27200'), agentCheck('port: 27201'))).toEqual(fresh);
    expect(carried(agentCheck('port: 27200'), agentCheck('port: 27200, send: "flexlm\\n"'))).toEqual(fresh);
  });

  it('an agent check retuned only in its timing keeps it', () => {
    const agentCheck = (timing: string) => cfg(TWO, { check: `{ type: agent, port: 27200, ${timing} }` });
    expect(carried(agentCheck('inter: 2s'), agentCheck('inter: 2s'))).toEqual(['DRAIN (agent)', 10, 5]);
    expect(carried(agentCheck('inter: 2s'), agentCheck('inter: 3s, fastinter: 1s, downinter: 5s'))).toEqual(['DRAIN (agent)', 10, 5]);
    expect(carried(agentCheck('rise: 2, fall: 3'), agentCheck('rise: 3, fall: 2, timeout: 3s, read_limit: 4096'))).toEqual(['DRAIN (agent)', 10, 5]);
  });
});

describe('connections queued when a reload commits', () => {
  it('move to the successor in order; a sticky one whose server was removed joins its backend queue', () => {
    const servers = `      - { name: a, address: 10.0.0.1:27000, maxconn: 1 }
      - { name: c, address: 10.0.0.3:27000, maxconn: 1 }`;
    const old = new Model(cfg(servers, { stick: true }));
    const ob = old.backend('b')!;
    for (const s of ob.servers) ob.acquire(s, '192.0.2.1');
    const seen: string[] = [];
    // Woken, a waiter takes the slot, as a connector would (on the backend it was moved to).
    const wake = (id: string): void => {
      seen.push(`${id} woken`);
      const nb = next.backend('b')!;
      nb.acquire(nb.server('a')!, '192.0.2.2');
    };
    const waiter = (id: string) => ({ wake: () => wake(id), movedTo: (to: unknown) => seen.push(`${id} moved${to === next.backend('b') ? '' : ' elsewhere'}`) });
    expect([ob.enqueue(waiter('q1')), ob.enqueueOn(ob.server('c')!, waiter('onC')), ob.enqueue(waiter('q2'))]).toEqual([true, true, true]);
    const next = new Model(cfg(`      - { name: a, address: 10.0.0.1:27000, maxconn: 1 }`, { stick: true }));
    carryOver(old, next);
    expect([ob.queued, next.backend('b')!.queued]).toEqual([0, 3]);
    expect(seen).toEqual(['q1 moved', 'q2 moved', 'onC moved']);
    // A slot on a, freed by a session of the old config, goes to the oldest.
    ob.release(ob.server('a')!, '192.0.2.1');
    expect(seen.slice(3)).toEqual(['q1 woken']);
  });
});

describe('describeChanges', () => {
  it('says what a reload changes, in words', () => {
    const old = cfg(TWO);
    const next = cfg(`      - { name: a, address: 10.0.0.1:27000, weight: 70 }
      - { name: dr, address: 10.9.0.1:27000, tier: 2 }`, { check: '{ type: tcp, rise: 2, fall: 4 }', extra: '  - { name: other, servers: [{ name: x, address: 10.0.0.7:1 }] }' });
    expect(describeChanges(old, next)).toEqual([
      'backend b: server a weight 100 -> 70',
      'backend b: server dr added (10.9.0.1:27000, tier 2, weight 1)',
      'backend b: server bk removed',
      'backend b: check changed',
      'backend other added',
    ]);
    expect(describeChanges(old, cfg(TWO))).toEqual([]);
    expect(describeChanges(old, { ...old, vrrp: { state_file: '/run/licgate/vrrp-state' } })).toEqual(['vrrp.state_file none -> /run/licgate/vrrp-state']);
  });

  it('prints a changed duration as a duration, as the admin writes it, not as milliseconds', () => {
    const old = cfg(TWO, { stick: 'stick_ttl: 30m', keys: 'connect_timeout: 2s\n    connect_race: 0s\n    queue_timeout: 2s\n    agent_port: 5555\n    agent_inter: 2s' });
    const next = cfg(TWO, { stick: 'stick_ttl: 8h', keys: 'connect_timeout: 500ms\n    connect_race: 250ms\n    queue_timeout: 1m\n    agent_port: 5555\n    agent_inter: 1500ms' });
    expect(describeChanges(old, next)).toEqual([
      'backend b: stick_ttl 30m -> 8h',
      'backend b: connect_timeout 2s -> 500ms',
      'backend b: connect_race 0ms -> 250ms',
      'backend b: queue_timeout 2s -> 1m',
      'backend b: agent_inter 2s -> 1500ms',
    ]);
    // Not a duration: as before.
    expect(describeChanges(old, cfg(TWO, { stick: 'stick_ttl: 30m\n    stick_size: 10', keys: 'connect_timeout: 2s\n    connect_race: 0s\n    queue_timeout: 2s\n    agent_port: 5555\n    agent_inter: 2s' }))).toEqual(['backend b: stick_size 100000 -> 10']);
    // shutdown_delay too: applied at the next stop, so a reload that changes it changes something.
    expect(describeChanges(old, { ...old, shutdown_grace: 90_000, shutdown_delay: 500 })).toEqual(['shutdown_grace 30s -> 90s', 'shutdown_delay 3s -> 500ms']);
  });

  it('an address written another way is the same address: [::0] is [::], 2001:DB8::11 is 2001:db8::11', () => {
    const text = (listen: string, server: string, status: string): string =>
      `status: { listen: "${status}" }\nfrontends:\n  - { name: lmgrd, listen: "${listen}", backend: b }\nbackends:\n  - name: b\n    servers: [{ name: a, address: "${server}" }]\n`;
    const old = loadConfigText(text('[::0]:27000', '[2001:DB8::11]:27000', '[0:0::1]:27100'), 'test.yaml');
    const next = loadConfigText(text('[::]:27000', '[2001:db8::11]:27000', '[::1]:27100'), 'test.yaml');
    expect(frontendKey(next.frontends[0]!)).toBe(frontendKey(old.frontends[0]!));
    expect(describeChanges(old, next)).toEqual([]);
  });

  it('matches frontends by listen address (port 0: by name too)', () => {
    const f = cfg(TWO).frontends[0]!;
    expect(frontendKey(f)).toBe('127.0.0.1:27000');
    expect(frontendKey({ ...f, name: 'renamed' })).toBe('127.0.0.1:27000');
    expect(frontendKey({ ...f, listen: { host: '127.0.0.1', port: 0 } })).toBe('lmgrd@127.0.0.1:0');
  });
});

describe('random reload sequences with sessions open (remove, add back, move, refused reloads)', () => {
  /** Server a and c: absent, or at one of two addresses; backend b present or not (the frontend then uses spare). */
  const config = fc.record({ b: fc.boolean(), a: fc.constantFrom(0, 1, 2), c: fc.constantFrom(0, 1, 2) });
  type Cfg = { b: boolean; a: number; c: number };
  const text = (c: Cfg): Config => {
    const server = (name: string, at: number): string => (at === 0 ? '' : `      - { name: ${name}, address: 10.0.0.${at}:27000 }\n`);
    const b = c.b && (c.a > 0 || c.c > 0) ? `  - name: b\n    check: { type: tcp }\n    observe_errors: 2\n    servers:\n${server('a', c.a)}${server('c', c.c)}` : '';
    return loadConfigText(`frontends:\n  - { name: lmgrd, listen: 127.0.0.1:27000, backend: ${b ? 'b' : 'spare'} }\nbackends:\n${b}  - name: spare\n    check: { type: none }\n    servers:\n      - { name: o, address: 10.0.0.9:27000 }\n`, 'random.yaml');
  };
  const op = fc.oneof(
    fc.record({ reload: config }),
    fc.record({ refused: config }),
    fc.record({ open: fc.nat(5) }),
    fc.record({ close: fc.nat(20) }),
  );

  it('live() of every old server and backend is the running one of its name and address, or itself; each open session counts once on the running server', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        let model = new Model(text({ b: true, a: 1, c: 1 }));
        const servers = new Set<Server>();
        const backends = new Set<Backend>();
        const sessions: { backend: Backend; server: Server }[] = [];
        const seen = (m: Model): void => {
          for (const b of m.backends.values()) {
            backends.add(b);
            for (const sv of b.servers) servers.add(sv);
          }
        };
        seen(model);
        for (const o of ops) {
          if ('reload' in o) {
            const next = new Model(text(o.reload));
            carryOver(model, next);
            model = next;
            seen(model);
          } else if ('refused' in o) adoptServers(model, new Model(text(o.refused)));
          else if ('open' in o) {
            const b = model.backend('b');
            const sv = b?.servers[o.open % b.servers.length];
            if (b && sv) {
              b.acquire(sv, `192.0.2.${sessions.length}`);
              sessions.push({ backend: b, server: sv });
            }
          } else if (sessions.length > 0) {
            const [x] = sessions.splice(o.close % sessions.length, 1);
            x!.backend.release(x!.server, 'gone');
          }
          const running = model.backend('b');
          for (const old of servers) {
            const live = old.live();
            const r = running?.server(old.name);
            // The same license server (name and address), the last of its line.
            expect([live.name, live.address.host, live.live()]).toEqual([old.name, old.address.host, live]);
            if (r && r.countsWith(old)) expect(live).toBe(r);
          }
          for (const old of backends) {
            expect(old.live.live).toBe(old.live);
            if (old.live !== old && running && old.live !== running) expect(old.live.name).toBe(old.name);
          }
          if (running) for (const old of backends) if (old.holdingSessions.length > 0 && old.name === 'b') expect(old.live).toBe(running);
          for (const r of running?.servers ?? []) expect(r.active).toBe(sessions.filter((x) => x.server.countsWith(r)).length);
        }
      }),
      { seed: 41, numRuns: 300 },
    );
  });
});

describe('peers.token_file moved to another file at a reload', () => {
  it('says a new token in the reload line when the new file holds another token, and nothing of a token when it holds the same', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reload-peers-'));
    const file = (name: string, token: string): string => {
      writeFileSync(join(dir, name), `${token}\n`, { mode: 0o600 });
      return join(dir, name);
    };
    const [first, same, other] = [file('first', 'reload-peers-token-0123456789'), file('same', 'reload-peers-token-0123456789'), file('other', 'reload-peers-token-rotated-0123456789')];
    const port = await freePort();
    const yaml = (tokenFile: string) => `status: { listen: "127.0.0.1:0" }
peers: { listen: "127.0.0.1:${port}", remotes: ["127.0.0.2:${port}"], token_file: ${tokenFile} }
backends:
  - { name: licenses, stick: source, check: { type: none }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
`;
    const d = await startDaemon(yaml(first));
    try {
      const tokenLine = (changes: string[]) => changes.filter((c) => c.startsWith('peers.token_file'));
      expect(tokenLine(await applyConfig(d, loadConfigText(yaml(same), 'reload.yaml'))), 'a file with the same token').toEqual([]);
      expect(tokenLine(await applyConfig(d, loadConfigText(yaml(other), 'reload.yaml'))), 'a file with another token').toEqual(['peers.token_file: a new token; the peers connections that proved the old one are cut off, and reconnect with the new one']);
    } finally {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
