import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents, type ServerStateEvent } from '../../src/model/events.js';

const ok = { ok: true, reason: 'passed', durationMs: 1, at: 0 };
const bad = { ok: false, reason: 'connection refused', durationMs: 1, at: 0 };

function make(check = '{ type: status, rise: 2, fall: 3 }', observe = 1, onMarkedDown = '') {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    observe_errors: ${observe}
    ${onMarkedDown && `on_marked_down: ${onMarkedDown}`}
    check: ${check}
    servers:
      - { name: a, address: "10.0.0.11:27000", weight: 10 }
      - { name: b, address: "10.0.0.12:27000", backup: true }
`);
  const events = new ModelEvents();
  const changes: ServerStateEvent[] = [];
  events.on('server-state', (e) => changes.push(e));
  const shutdowns: string[] = [];
  events.on('shutdown-sessions', (e) => shutdowns.push(`${e.backend}/${e.server.name}${e.port === null ? '' : ` port ${e.port}`}`));
  const be = new Backend(cfg.backends[0]!, events);
  return { be, a: be.server('a')!, changes, shutdowns, observeErrors: observe, events };
}

describe('Server state', () => {
  it('starts "UP 1/3" (HAProxy: up, but one failure takes it down) and not yet checked', () => {
    const { a } = make();
    expect(a.stateText).toBe('UP 1/3');
    expect(a.usable).toBe(true);
    expect(a.firstCheckDone).toBe(false);
  });

  it('reports each change once, with from/to and whether usability changed', () => {
    const { a, changes } = make();
    a.checkSucceeded(ok);
    a.checkSucceeded(ok);
    a.checkFailed(bad);
    a.checkFailed(bad);
    a.checkFailed(bad);
    a.checkFailed(bad);
    expect(changes.map((c) => [c.from, c.to, c.usableChanged, c.reason])).toEqual([
      ['UP 1/3', 'UP', false, 'passed'],
      ['UP', 'UP 2/3', false, 'connection refused'],
      ['UP 2/3', 'UP 1/3', false, 'connection refused'],
      ['UP 1/3', 'DOWN', true, 'connection refused'],
    ]);
    expect(a.lastCheck).toEqual(bad);
    expect(a.firstCheckDone).toBe(true);
  });

  it('stateSince moves only when the first word (UP/DOWN/…) changes', () => {
    const { a } = make();
    a.stateSince = 1;
    a.checkSucceeded(ok);
    a.checkFailed(bad);
    expect(a.stateText).toBe('UP 2/3');
    expect(a.stateSince).toBe(1);
    a.checkFailed(bad);
    a.checkFailed(bad);
    expect(a.stateText).toBe('DOWN');
    expect(a.stateSince).toBeGreaterThan(1);
  });

  it('MAINT and DRAIN win over health in the state text; "no check" for type none', () => {
    const { a } = make();
    a.checkSucceeded(ok);
    a.setAdmin('drain', 'admin');
    expect([a.stateText, a.usable]).toEqual(['DRAIN', false]);
    a.setAdmin('maint', 'admin');
    expect([a.stateText, a.usable]).toEqual(['MAINT', false]);
    a.setAdmin('ready', 'admin');
    // Not checked in maintenance: back UP with one failure of margin until its next check (HAProxy).
    expect([a.stateText, a.usable]).toEqual(['UP 1/3', true]);
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('UP');
    const n = make('{ type: none }').a;
    expect([n.stateText, n.usable, n.firstCheckDone]).toEqual(['no check', true, true]);
    n.setAdmin('drain', 'admin');
    expect(n.stateText).toBe('DRAIN');
  });

  it('comes out of MAINT in its init_state (HAProxy 3.1): down stays DOWN, and no client, until a check passes; no DOWN is reported', () => {
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
    check: { type: status, rise: 2, fall: 3 }
    servers:
      - { name: a, address: "10.0.0.11:27000", init_state: down }
      - { name: b, address: "10.0.0.12:27000", init_state: fully-up }
`);
    const events = new ModelEvents();
    const changes: string[] = [];
    events.on('server-state', (e) => changes.push(`${e.server} ${e.from} -> ${e.to}`));
    const be = new Backend(cfg.backends[0]!, events);
    const [a, b] = [be.server('a')!, be.server('b')!];
    expect([a.stateText, b.stateText]).toEqual(['DOWN 1/2', 'UP']);
    a.checkSucceeded(ok);
    for (const s of [a, b]) s.setAdmin('maint', 'admin');
    for (const s of [a, b]) s.setAdmin('ready', 'admin');
    expect([a.stateText, a.usable, b.stateText]).toEqual(['DOWN 1/2', false, 'UP']);
    a.checkSucceeded(ok);
    expect([a.stateText, a.usable]).toEqual(['UP', true]);
    expect(changes).toEqual(['a DOWN 1/2 -> UP', 'a UP -> MAINT', 'b UP -> MAINT', 'a MAINT -> DOWN 1/2', 'b MAINT -> UP', 'a DOWN 1/2 -> UP']);
  });

  it('pauses health checks in MAINT, the admin\'s or the agent\'s, but not a type agent check in the agent\'s own MAINT (it is how that ends); /ready does not wait for a paused server', () => {
    const view = (state: 'maint' | 'up') => ({ state, weightPercent: null, maxconn: null, reason: state });
    const { be, a } = make();
    expect(a.checksPaused).toBe(false);
    a.setAdmin('maint', 'admin');
    expect(a.checksPaused).toBe(true);
    be.server('b')!.checkSucceeded(ok);
    expect(be.allChecked).toBe(true); // a never checked, but in maintenance
    a.setAdmin('ready', 'admin');
    expect([a.checksPaused, be.allChecked]).toEqual([false, false]);
    a.setAgent(view('maint'), 'agent');
    expect(a.checksPaused).toBe(true);
    const byAgent = make('{ type: agent, port: 27200 }').a;
    let checkedNow = 0;
    byAgent.checkNow = () => checkedNow++;
    byAgent.checkFailed(bad);
    byAgent.setAgent(view('maint'), 'agent');
    expect([byAgent.stateText, byAgent.checksPaused, byAgent.healthPaused]).toEqual(['MAINT (agent)', false, true]);
    byAgent.setAdmin('maint', 'admin');
    expect(byAgent.checksPaused).toBe(true);
    // The admin's ready resumes the agent check, which still counts nothing under the agent's MAINT.
    byAgent.setAdmin('ready', 'admin');
    expect([byAgent.stateText, byAgent.checksPaused, checkedNow]).toEqual(['MAINT (agent)', false, 1]);
    // Out of the agent's MAINT, its health is as old as the MAINT: UP 1/fall, as out of the admin's.
    byAgent.setAgent(view('up'), 'agent');
    expect([byAgent.stateText, checkedNow]).toEqual(['UP 1/3', 2]);
  });

  it('says who drained or put a server in maintenance, and keeps the failing checks of a drained server visible (HAProxy)', () => {
    const { a } = make();
    a.checkSucceeded(ok);
    const agent = (state: 'drain' | 'maint' | 'down' | 'up') => a.setAgent({ state, weightPercent: null, maxconn: null, reason: `agent says "${state}"` }, 'agent');
    agent('drain');
    expect([a.stateText, a.admin, a.usable]).toEqual(['DRAIN (agent)', 'ready', false]);
    agent('maint');
    expect(a.stateText).toBe('MAINT (agent)');
    a.setAdmin('maint', 'admin');
    expect(a.stateText).toBe('MAINT');
    a.setAdmin('drain', 'admin');
    agent('drain');
    // Out of the agent's maintenance: one failure of margin until its next check.
    expect(a.stateText).toBe('DRAIN 1/3');
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('DRAIN');
    agent('up');
    a.checkFailed(bad);
    expect(a.stateText).toBe('DRAIN 2/3');
    a.checkFailed(bad);
    a.checkFailed(bad);
    expect(a.stateText).toBe('DOWN');
    const n = make('{ type: none }').a;
    n.setAgent({ state: 'down', weightPercent: null, maxconn: null, reason: 'agent says "down"' }, 'agent');
    expect([n.stateText, n.usable]).toEqual(['DOWN (agent)', false]);
  });

  it('an agent "down" overrides a passing check; its weight percentage scales the weight', () => {
    const { a } = make();
    a.setAgent({ state: 'down', weightPercent: null, maxconn: null, reason: 'no license' }, 'agent');
    expect([a.stateText, a.up, a.usable]).toEqual(['DOWN (agent)', false, false]);
    a.setAgent({ state: 'up', weightPercent: 50, maxconn: null, reason: '' }, 'agent');
    expect([a.up, a.effectiveWeight]).toEqual([true, 5]);
    a.setAgent({ state: 'up', weightPercent: 0, maxconn: null, reason: '' }, 'agent');
    expect(a.usable).toBe(false);
  });

  it('a change to or from weight 0 (admin or agent 0%) is told as "UP (weight 0)", not "UP -> UP", also in the failover reason', () => {
    const { a, changes, events } = make();
    const tiers: string[] = [];
    events.on('tier-change', (e) => tiers.push(e.reason));
    a.checkSucceeded(ok);
    a.checkSucceeded(ok);
    a.setWeight(0, 'admin API');
    a.setWeight(10, 'admin API');
    a.setAgent({ state: 'up', weightPercent: 0, maxconn: null, reason: '0%' }, 'agent');
    expect(changes.slice(1).map((c) => [c.from, c.to, c.usableChanged])).toEqual([
      ['UP', 'UP (weight 0)', true],
      ['UP (weight 0)', 'UP', true],
      ['UP', 'UP (weight 0)', true],
    ]);
    expect(a.stateText).toBe('UP');
    expect(tiers[0]).toBe('active -> backup: a UP (weight 0): admin API');
  });

  it("an agent percentage gives a whole weight, rounded down as HAProxy's, but a non-zero one never drops to 0 (an admin's weight 0 stays 0)", () => {
    const { a } = make();
    const pct = (weightPercent: number): number => (a.setAgent({ state: 'up', weightPercent, maxconn: null, reason: `${weightPercent}%` }, 'agent'), a.effectiveWeight);
    expect([pct(33), pct(99), pct(163), pct(5)]).toEqual([3, 9, 16, 1]);
    expect(a.usable).toBe(true);
    a.setWeight(0, 'admin');
    expect([pct(50), a.usable]).toEqual([0, false]);
  });

  it("an agent's maxconn replaces the configured one while it stands; 0 lifts the limit", () => {
    const { a, changes } = make();
    const before = changes.length;
    a.active = 1;
    expect([a.maxconn, a.usable]).toEqual([0, true]);
    a.setAgent({ state: 'up', weightPercent: null, maxconn: 1, reason: '' }, 'agent');
    expect([a.maxconn, a.configuredMaxconn, a.usable, a.eligible]).toEqual([1, 0, false, true]);
    a.setAgent({ state: 'up', weightPercent: null, maxconn: 0, reason: '' }, 'agent');
    expect([a.maxconn, a.usable]).toEqual([0, true]);
    a.setAgent(null, 'agent gone from config');
    expect(a.maxconn).toBe(0);
    // A full server is still UP and in its tier: no state event, only a slot count.
    expect(changes.length).toBe(before);
  });
});

describe('passive health (observe_errors)', () => {
  it('observe_errors 1: one failed connect marks the server DOWN at once; checks bring it back through rise', () => {
    const { a, changes } = make();
    a.connectFailed('connection refused', 1);
    expect(a.stateText).toBe('DOWN');
    expect(changes.at(-1)).toMatchObject({ from: 'UP 1/3', to: 'DOWN', reason: 'passive: connection refused', usableChanged: true });
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('DOWN 1/2');
    a.checkSucceeded(ok);
    expect(a.stateText).toBe('UP');
    expect(a.connectErrors).toBe(1);
  });

  it('observe_errors 3: only 3 consecutive errors count; a good connect resets the run', () => {
    const { a } = make(undefined, 3);
    a.connectFailed('refused', 3);
    a.connectFailed('refused', 3);
    a.connectSucceeded();
    a.connectFailed('refused', 3);
    a.connectFailed('refused', 3);
    expect(a.up).toBe(true);
    a.connectFailed('refused', 3);
    expect(a.stateText).toBe('DOWN');
    expect(a.connectErrors).toBe(5);
  });

  it('observe_errors 0 never marks down; an unchecked server is never marked down by traffic', () => {
    const { a } = make(undefined, 0);
    for (let i = 0; i < 10; i++) a.connectFailed('refused', 0);
    expect(a.up).toBe(true);
    const n = make('{ type: none }').a;
    for (let i = 0; i < 10; i++) n.connectFailed('refused', 1);
    expect(n.usable).toBe(true);
  });
});

describe('on_marked_down: shutdown-sessions', () => {
  const agent = (state: 'up' | 'down' | 'drain' | 'maint') => ({ state, weightPercent: null, maxconn: null, reason: state });

  it('asks for the sessions to close when checks, passive health or the agent mark the server DOWN (HAProxy srv_set_stopped)', () => {
    const { a, shutdowns } = make('{ type: status, rise: 1, fall: 1 }', 1, 'shutdown-sessions');
    a.checkFailed(bad);
    expect(shutdowns).toEqual(['l/a']);
    a.checkFailed(bad); // already DOWN: nothing new
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1);
    expect(shutdowns).toEqual(['l/a', 'l/a']);
    a.checkSucceeded(ok);
    a.setAgent(agent('down'), 'agent down');
    expect(shutdowns).toEqual(['l/a', 'l/a', 'l/a']);
    // Drained, a server still UP serves its sessions; one marked DOWN then closes them.
    a.setAgent(null, 'agent gone');
    a.setAdmin('drain', 'admin');
    a.checkFailed(bad);
    expect(shutdowns).toEqual(['l/a', 'l/a', 'l/a', 'l/a']);
  });

  it('leaves them to a drain, a MAINT (the admin\'s or the agent\'s), a weight of 0, and a DOWN server failing on in MAINT', () => {
    const { a, shutdowns } = make('{ type: status, rise: 1, fall: 1 }', 1, 'shutdown-sessions');
    a.setAdmin('drain', 'admin');
    a.setAdmin('maint', 'admin');
    a.checkFailed(bad);
    a.setAdmin('ready', 'admin');
    a.checkSucceeded(ok);
    a.setAgent(agent('drain'), 'agent drain');
    a.setAgent(agent('maint'), 'agent maint');
    a.setAgent(agent('down'), 'agent down in maint');
    a.setAgent(null, 'agent gone');
    a.setWeight(0, 'admin');
    expect(a.up).toBe(true);
    expect(shutdowns).toEqual([]);
  });

  it('a DOWN on a vendor port asks for that port\'s sessions only; its own check failing then asks for the rest', () => {
    const { a, shutdowns } = make('{ type: status, rise: 1, fall: 1 }', 1, 'shutdown-sessions');
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27001);
    expect(shutdowns).toEqual(['l/a port 27001']);
    a.checkFailed({ ...bad, reason: 'Layer4 check passed, but port 27001, where a connect on live traffic failed: connection refused' }, true);
    expect(shutdowns).toEqual(['l/a port 27001']);
    a.checkFailed(bad);
    a.checkFailed(bad); // the rest once
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a']);
    // Back UP, a DOWN on its own port (lmgrd's) ends them all, and a check failing after it nothing more.
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27000);
    a.checkFailed(bad);
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27001);
    a.checkSucceeded(ok); // UP again on its checks: the sessions a DOWN kept are its own again
    a.checkFailed(bad);
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a', 'l/a', 'l/a port 27001', 'l/a']);
  });

  it('a DOWN on a vendor port, then MAINT and ready (UP): a check failing on its own port asks for all, once; one failing on that port only, for that port', () => {
    const { a, shutdowns } = make('{ type: status, rise: 1, fall: 1 }', 1, 'shutdown-sessions');
    const onVendorPort = { ...bad, reason: 'Layer4 check passed, but port 27001, where a connect on live traffic failed: connection refused' };
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27001);
    a.setAdmin('maint', 'admin');
    a.setAdmin('ready', 'admin');
    expect(a.stateText).toBe('UP');
    a.checkFailed(bad);
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a']);
    a.setAdmin('maint', 'admin');
    a.setAdmin('ready', 'admin');
    a.checkFailed(onVendorPort, true); // still held for that port (failedPort): its sessions only
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a', 'l/a port 27001']);
  });

  it("a DOWN on a vendor port: the agent's down then asks for the rest, once; in MAINT, not", () => {
    const { a, shutdowns } = make('{ type: status, rise: 1, fall: 1 }', 1, 'shutdown-sessions');
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27001);
    a.setAgent(agent('down'), 'agent down');
    a.setAgent(agent('down'), 'agent down again');
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a']);
    a.setAgent(null, 'agent gone');
    a.checkSucceeded(ok);
    a.connectFailed('connection refused', 1, 27001);
    a.setAdmin('maint', 'admin');
    a.setAgent(agent('down'), 'agent down in maint');
    expect(shutdowns).toEqual(['l/a port 27001', 'l/a', 'l/a port 27001']);
  });

  it('is off by default: a server marked DOWN keeps its sessions', () => {
    const { a, shutdowns, changes } = make('{ type: status, rise: 1, fall: 1 }');
    a.checkFailed(bad);
    expect(changes.at(-1)).toMatchObject({ to: 'DOWN' });
    expect(shutdowns).toEqual([]);
  });
});
