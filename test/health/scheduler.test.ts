import fc from 'fast-check';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { createProbe } from '../../src/health/probes/create-probe.js';
import type { Probe, ProbeOutcome, ProbeTarget } from '../../src/health/probes/probe.js';
import { CheckScheduler } from '../../src/health/scheduler.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import { parseAgentLine } from '../../src/serve/agent-reply.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * A probe whose answers the test scripts (no sockets: this file is about timing). It records when
 * it was asked (fake clock) and can hang until its signal aborts, like a probe whose peer is silent.
 */
class ScriptedProbe implements Probe {
  calls: { at: number; port: number }[] = [];
  constructor(private readonly answer: (port: number, n: number) => ProbeOutcome | 'hang' | 'throw') {}
  run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    this.calls.push({ at: Date.now(), port: target.port });
    const a = this.answer(target.port, this.calls.filter((c) => c.port === target.port).length);
    if (a === 'throw') return Promise.reject(new Error('probe exploded'));
    if (a === 'hang') return new Promise((resolve) => signal.addEventListener('abort', () => resolve({ ok: false, reason: 'timeout' })));
    return Promise.resolve(a);
  }
}

function backend(servers: number, check: string, events = new ModelEvents()): Backend {
  const list = Array.from({ length: servers }, (_, i) => `      - { name: s${i}, address: "127.0.0.1:${30000 + i}" }`).join('\n');
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }\nbackends:\n  - name: b\n    check: ${check}\n    servers:\n${list}\n`, 'sched.yaml');
  return new Backend(cfg.backends[0]!, events);
}

const CHECK = '{ type: tcp, inter: 1000ms, fastinter: 100ms, downinter: 5000ms, rise: 2, fall: 3, timeout: 50ms }';
const ok = (): ProbeOutcome => ({ ok: true, reason: 'ok' });
const bad = (): ProbeOutcome => ({ ok: false, reason: 'refused' });

let schedulers: CheckScheduler[] = [];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  for (const s of schedulers) s.stop();
  schedulers = [];
  vi.useRealTimers();
});

function start(b: Backend, probe: Probe, events = new ModelEvents()): CheckScheduler {
  const s = new CheckScheduler(b, b.cfg.check, probe, events);
  schedulers.push(s);
  s.start();
  return s;
}

describe('CheckScheduler', () => {
  it('uses inter when fully UP, fastinter while transitional, downinter when fully DOWN (with at most 5% jitter)', async () => {
    // Script for the one server: S F F F S S → UP, UP 2/3, UP 1/3, DOWN, DOWN 1/2, UP.
    const script = [ok, bad, bad, bad, ok, ok, ok];
    const probe = new ScriptedProbe((_p, n) => (script[n - 1] ?? ok)());
    const b = backend(1, CHECK);
    const texts: string[] = [];
    start(b, probe);
    const srv = b.servers[0]!;
    const t0 = Date.now();
    // Walk the fake clock forward and note the server's text after each check.
    for (let i = 0; i < script.length; i++) {
      const before = probe.calls.length;
      await vi.advanceTimersToNextTimerAsync();
      // A check ran exactly when the timer fired.
      if (probe.calls.length > before) texts.push(srv.stateText);
      else i--;
    }
    expect(texts).toEqual(['UP', 'UP 2/3', 'UP 1/3', 'DOWN', 'DOWN 1/2', 'UP', 'UP']);
    const gaps = probe.calls.slice(1).map((c, i) => c.at - probe.calls[i]!.at);
    // The interval after each check follows the phase that check left the server in.
    const expected = [1000, 100, 100, 5000, 100, 1000];
    expect(gaps).toHaveLength(expected.length);
    gaps.forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual(Math.floor(expected[i]! * 0.95));
      expect(g).toBeLessThanOrEqual(expected[i]!);
    });
    expect(probe.calls[0]!.at).toBe(t0);
  });

  it('checks a server that passive health marked DOWN again at fastinter, not a whole inter later (HAProxy on-error)', async () => {
    const probe = new ScriptedProbe(ok);
    const b = backend(1, '{ type: tcp, inter: 30s, fastinter: 500ms, downinter: 30s, rise: 2, fall: 3, timeout: 50ms }');
    start(b, probe);
    await vi.advanceTimersByTimeAsync(0);
    const srv = b.servers[0]!;
    expect(srv.stateText).toBe('UP');
    await vi.advanceTimersByTimeAsync(1000);
    // One refused connect on live traffic (a license server restarting) with observe_errors 1.
    srv.connectFailed('connection refused', 1);
    expect(srv.stateText).toBe('DOWN');
    const t1 = Date.now();
    // It answers checks again: rise (2) checks at fastinter bring it back, well before inter.
    await vi.advanceTimersByTimeAsync(1000);
    const after = probe.calls.slice(1).map((c) => c.at - t1);
    expect(after).toHaveLength(2);
    expect(after[0]).toBeLessThanOrEqual(500);
    expect(after[1]! - after[0]!).toBeGreaterThanOrEqual(475); // DOWN 1/2: transitional, fastinter
    expect(srv.stateText).toBe('UP');
  });

  it('checks the last server that can take clients at fastinter after its connect error, though passive health leaves it UP', async () => {
    // It answers the first check, then nothing: dead, with no other server to send clients to.
    const probe = new ScriptedProbe((_p, n) => (n === 1 ? ok() : bad()));
    const b = backend(1, '{ type: tcp, inter: 30s, fastinter: 500ms, downinter: 30s, rise: 2, fall: 2, timeout: 50ms }');
    start(b, probe);
    await vi.advanceTimersByTimeAsync(1000);
    const srv = b.servers[0]!;
    expect(srv.stateText).toBe('UP');
    srv.connectFailed('connect timeout after 500ms', 1, null, b.takesClientsAlone(srv));
    expect(srv.stateText).toBe('UP');
    // fall (2) checks at fastinter mark it DOWN, not fall whole inters (a minute) later.
    await vi.advanceTimersByTimeAsync(1100);
    expect(probe.calls.length - 1, 'checks after the connect error').toBe(2);
    expect(srv.stateText).toBe('DOWN');
  });

  it('spreads the first checks of a backend over min(inter, 200ms)', async () => {
    const probe = new ScriptedProbe(ok);
    const t0 = Date.now();
    start(backend(4, '{ type: tcp, inter: 2s }'), probe);
    await vi.advanceTimersByTimeAsync(199);
    expect(probe.calls.map((c) => [c.port, c.at - t0])).toEqual([
      [30000, 0],
      [30001, 50],
      [30002, 100],
      [30003, 150],
    ]);
  });

  it('spreads over inter itself when inter is shorter than 200ms', async () => {
    const probe = new ScriptedProbe(ok);
    const t0 = Date.now();
    start(backend(4, '{ type: tcp, inter: 100ms }'), probe);
    await vi.advanceTimersByTimeAsync(80);
    expect(probe.calls.map((c) => c.at - t0)).toEqual([0, 25, 50, 75]);
  });

  it('aborts a silent probe at the check timeout and counts it as a failure', async () => {
    const probe = new ScriptedProbe(() => 'hang');
    const b = backend(1, CHECK);
    const done: { ok: boolean; reason: string; durationMs: number }[] = [];
    const events = new ModelEvents();
    events.on('check-done', (e) => done.push(e));
    start(b, probe, events);
    await vi.advanceTimersByTimeAsync(50);
    expect(done).toEqual([]);
    // At the timeout, what has arrived is read first: the abort comes after one more poll (1 ms).
    await vi.advanceTimersByTimeAsync(1);
    expect(done.map((d) => [d.ok, d.reason])).toEqual([[false, 'timeout']]);
    expect(b.servers[0]!.stateText).toBe('DOWN');
    expect(b.servers[0]!.lastCheck?.reason).toBe('timeout');
  });

  it('turns a probe that throws into a failed check with the error as reason, and keeps checking', async () => {
    const probe = new ScriptedProbe((_p, n) => (n === 1 ? 'throw' : ok()));
    const b = backend(1, CHECK);
    start(b, probe);
    await vi.advanceTimersByTimeAsync(0);
    expect(b.servers[0]!.lastCheck).toMatchObject({ ok: false, reason: 'check error: probe exploded' });
    expect(b.servers[0]!.firstCheckDone).toBe(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(b.servers[0]!.lastCheck).toMatchObject({ ok: true });
  });

  it('probes check.port instead of the service port when set', async () => {
    const probe = new ScriptedProbe(ok);
    start(backend(2, '{ type: tcp, port: 27100 }'), probe);
    await vi.advanceTimersByTimeAsync(150);
    expect(probe.calls.map((c) => c.port)).toEqual([27100, 27100]);
  });

  it('stops: no check runs after stop(), and an in-flight probe is aborted', async () => {
    const probe = new ScriptedProbe(() => 'hang');
    const b = backend(1, '{ type: tcp, timeout: 10s }');
    const s = start(b, probe);
    await vi.advanceTimersByTimeAsync(0);
    expect(probe.calls).toHaveLength(1);
    s.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(probe.calls).toHaveLength(1);
    // The aborted probe's result is discarded, not recorded as a failure.
    expect(b.servers[0]!.lastCheck).toBeNull();
  });

  it('runNow checks at once and the rhythm resumes from there', async () => {
    const probe = new ScriptedProbe(ok);
    const b = backend(1, CHECK);
    const s = start(b, probe);
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(300);
    expect(probe.calls).toHaveLength(1);
    await s.runNow(b.servers[0]!);
    expect(probe.calls).toHaveLength(2);
    const at = probe.calls[1]!.at;
    await vi.advanceTimersByTimeAsync(1000);
    expect(probe.calls).toHaveLength(3);
    expect(probe.calls[2]!.at - at).toBeGreaterThanOrEqual(950);
  });
});

/** What the agent does with each read: a line, close without one, or hold the read until it times out. */
type AgentAnswer = string | 'close' | 'silent';

describe('CheckScheduler with a type agent check: admin states and agent replies in any order (real agent socket)', () => {
  it.each(['down ready', 'ready down', 'fail ready', 'stopped ready'])('a reply "%s" that ends the agent\'s MAINT leaves it DOWN in one change: no failback and failover, no DOWN marked', async (reply) => {
    vi.useRealTimers();
    let answer = 'up ready 100%';
    const agent = createServer((sock) => {
      sock.on('error', () => sock.destroy());
      sock.end(`${answer}\n`);
    });
    await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
    const port = (agent.address() as AddressInfo).port;
    const events = new ModelEvents();
    const cfg = loadConfigText(
      `status: { listen: "127.0.0.1:0" }\nbackends:\n  - name: b\n    on_marked_down: shutdown-sessions\n    check: { type: agent, port: ${port}, inter: 1h, fastinter: 1h, downinter: 1h, rise: 2, fall: 2, timeout: 1000ms }\n    servers:\n      - { name: main, address: "127.0.0.1:30000" }\n      - { name: spare, address: "127.0.0.1:30001", tier: 1 }\n`,
      'sched.yaml',
    );
    const b = new Backend(cfg.backends[0]!, events);
    const srv = b.servers[0]!;
    // Not started: only `main` is checked, each time by runNow; `spare` stays UP as it started.
    const s = new CheckScheduler(b, b.cfg.check, createProbe(b.cfg.check)!, events);
    schedulers.push(s);
    try {
      await s.runNow(srv);
      // No weight: a 0% would be sticky and keep the server out of its tier after the MAINT too.
      answer = 'down maint #maintenance';
      await s.runNow(srv);
      expect({ state: srv.stateText, tier: b.servingTier }).toEqual({ state: 'MAINT (agent)', tier: 1 });
      const seen: string[] = [];
      events.on('server-state', (e) => seen.push(`${e.server}: ${e.from} -> ${e.to}`));
      events.on('tier-change', (e) => seen.push(`tier: ${e.reason}`));
      events.on('shutdown-sessions', (e) => seen.push(`shutdown-sessions: ${e.server.name}`));
      answer = reply;
      await s.runNow(srv);
      expect(seen, 'what one reply that ends the MAINT and says down did').toEqual(['main: MAINT (agent) -> DOWN']);
      expect({ state: srv.stateText, tier: b.servingTier }).toEqual({ state: 'DOWN', tier: 1 });
    } finally {
      await new Promise((r) => agent.close(r));
    }
  });

  it('counts no check and logs no DOWN in any MAINT; leaving every MAINT is UP 1/fall (or DRAIN) with a check at once, DOWN at once by a reply that says down; one check at a time', async () => {
    vi.useRealTimers();
    const answers: AgentAnswer[] = ['down maint 0% #maintenance', 'up ready 100%', 'down ready', 'drain', '50%', 'maint', 'ready', 'down', 'hello', 'close', 'silent'];
    const op = fc.oneof(
      fc.record({ admin: fc.constantFrom('maint' as const, 'ready' as const, 'drain' as const) }),
      fc.record({ say: fc.constantFrom(...answers) }),
      fc.constant({ check: true as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        let answer: AgentAnswer = 'up ready 100%';
        const held = new Set<Socket>();
        const agent = createServer((sock) => {
          sock.on('error', () => sock.destroy());
          if (answer === 'silent') held.add(sock);
          else sock.end(answer === 'close' ? '' : `${answer}\n`);
        });
        await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
        const events = new ModelEvents();
        const b = backend(1, `{ type: agent, port: ${(agent.address() as AddressInfo).port}, inter: 1h, fastinter: 1h, downinter: 1h, rise: 2, fall: 2, timeout: 100ms }`, events);
        const srv = b.servers[0]!;
        const real = createProbe(b.cfg.check)!;
        let running = 0;
        let most = 0;
        let done = 0;
        const wrong: string[] = [];
        const probe: Probe = {
          run: async (t, signal) => {
            most = Math.max(most, ++running);
            try {
              return await real.run(t, signal);
            } finally {
              running--;
            }
          },
        };
        events.on('check-done', (e) => {
          done++;
          if (srv.inMaint) wrong.push(`a check counted (${e.ok ? 'passed' : 'failed'}) in ${srv.stateText}`);
        });
        events.on('server-state', (e) => {
          if (!e.from.startsWith('MAINT') || e.to.startsWith('MAINT')) return;
          // One reply is one change: the agent's reply that ends its MAINT and says down leaves it DOWN.
          const health = parseAgentLine(answer === 'close' || answer === 'silent' ? '' : answer).health;
          const saysDown = e.reason.startsWith('agent') && health !== null && health !== 'up';
          if (saysDown ? e.to !== 'DOWN' : !/^(UP 1\/2|DRAIN 1\/2|DRAIN \(agent\))/.test(e.to)) wrong.push(`${e.from} -> ${e.to} (${e.reason})`);
          // The check made on leaving: one started now, or the reply that ended it counted at once.
          const before = done;
          queueMicrotask(() => running > 0 || done > before || wrong.push(`no check on ${e.from} -> ${e.to}`));
        });
        const s = new CheckScheduler(b, b.cfg.check, probe, events);
        const settle = async (): Promise<void> => {
          await waitFor(() => running === 0, { timeoutMs: 2000, intervalMs: 5, what: 'the check under way to end' });
          await new Promise((r) => setImmediate(r));
        };
        try {
          s.start();
          await waitFor(() => srv.firstCheckDone, { timeoutMs: 2000, intervalMs: 5, what: 'the first check' });
          for (const o of ops) {
            if ('admin' in o) srv.setAdmin(o.admin, 'admin');
            else if ('say' in o) answer = o.say;
            else await s.runNow(srv);
            await settle();
          }
        } finally {
          s.stop();
          for (const h of held) h.destroy();
          await new Promise((r) => agent.close(r));
        }
        expect({ wrong, most }).toEqual({ wrong: [], most: 1 });
      }),
      { seed: 41, numRuns: 100 },
    );
  }, 30_000);
});
