import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents, type TierChangeEvent } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

const result = (ok: boolean) => ({ ok, reason: ok ? 'check passed' : 'connection refused', durationMs: 1, at: 0 });
const down = (s: Server): void => {
  for (let i = 0; i < 5; i++) s.checkFailed(result(false));
};
const up = (s: Server): void => {
  for (let i = 0; i < 5; i++) s.checkSucceeded(result(true));
};

const FOUR_SERVERS = `      - { name: a1, address: "10.0.0.11:27000", weight: 100 }
      - { name: a2, address: "10.0.0.12:27000", weight: 100 }
      - { name: b1, address: "10.0.1.11:27000", backup: true }
      - { name: dr, address: "10.9.0.11:27000", tier: 2 }
`;

function make(failback: 'auto' | 'manual' = 'auto', extra = '', servers = FOUR_SERVERS): { b: Backend; tiers: TierChangeEvent[]; s: (n: string) => Server } {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: licenses
    failback: ${failback}
    check: { type: status, rise: 2, fall: 2 }
    servers:
${servers}${extra}`);
  const events = new ModelEvents();
  const tiers: TierChangeEvent[] = [];
  events.on('tier-change', (e) => tiers.push(e));
  const b = new Backend(cfg.backends[0]!, events);
  return { b, tiers, s: (n) => b.server(n)! };
}

/** A backend "l" with these servers (YAML flow maps) and backend options ("stick: source"). */
function backendWith(servers: string[], ...options: string[]): Backend {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: l
${options.map((o) => `    ${o}\n`).join('')}    servers:
${servers.map((l) => `      - ${l}\n`).join('')}`);
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

function names(b: Backend, n: number): string[] {
  return Array.from({ length: n }, () => b.choose('10.1.1.1', null)?.name ?? 'none');
}

describe('tiers: active → backup → DR', () => {
  it('serves from the active tier while any active server is usable; the backup stays idle', () => {
    const { b, tiers, s } = make();
    expect(b.servingTier).toBe(0);
    expect(new Set(names(b, 20))).toEqual(new Set(['a1', 'a2']));
    down(s('a1'));
    expect(b.servingTier).toBe(0);
    expect(new Set(names(b, 10))).toEqual(new Set(['a2']));
    expect(tiers).toEqual([]);
  });

  it('moves to the backup when every active is down, and to DR when the backup is down too', () => {
    const { b, tiers, s } = make();
    down(s('a1'));
    down(s('a2'));
    expect(b.servingTier).toBe(1);
    expect(names(b, 3)).toEqual(['b1', 'b1', 'b1']);
    down(s('b1'));
    expect(b.servingTier).toBe(2);
    expect(names(b, 2)).toEqual(['dr', 'dr']);
    down(s('dr'));
    expect(b.servingTier).toBeNull();
    expect(b.choose('10.1.1.1', null)).toBeNull();
    expect(b.running).toBe(false);
    expect(tiers.map((t) => [t.from, t.to])).toEqual([
      [0, 1],
      [1, 2],
      [2, null],
    ]);
    expect(tiers[0]!.reason).toBe('active -> backup: a2 DOWN: connection refused');
  });

  it('failback auto: a recovered active takes new connections again', () => {
    const { b, tiers, s } = make('auto');
    down(s('a1'));
    down(s('a2'));
    up(s('a2'));
    expect(b.servingTier).toBe(0);
    expect(names(b, 3)).toEqual(['a2', 'a2', 'a2']);
    expect(tiers.map((t) => [t.from, t.to])).toEqual([
      [0, 1],
      [1, 0],
    ]);
  });

  it('failback manual: stays on the backup after the active recovers, until the backup fails or an admin says so', () => {
    const { b, tiers, s } = make('manual');
    down(s('a1'));
    down(s('a2'));
    up(s('a1'));
    up(s('a2'));
    expect(s('a1').stateText).toBe('UP');
    expect(b.servingTier).toBe(1);
    expect(names(b, 5)).toEqual(['b1', 'b1', 'b1', 'b1', 'b1']);
    b.failback('admin');
    expect(b.servingTier).toBe(0);
    expect(tiers.map((t) => [t.from, t.to, t.reason])).toEqual([
      [0, 1, 'active -> backup: a2 DOWN: connection refused'],
      [1, 0, 'backup -> active: admin'],
    ]);
  });

  it('failback manual: when the tier in use fails, the best usable tier takes over', () => {
    const { b, s } = make('manual');
    down(s('a1'));
    down(s('a2'));
    up(s('a1'));
    expect(b.servingTier).toBe(1);
    down(s('b1'));
    expect(b.servingTier).toBe(0);
    expect(names(b, 2)).toEqual(['a1', 'a1']);
  });

  it('DR sites at tiers 2 and 3: a move between them says which (tier 2 keeps the bare "dr"), not "dr -> dr"', () => {
    const { b, tiers, s } = make('manual', '', `      - { name: a1, address: "10.0.0.11:27000" }
      - { name: dr2, address: "10.9.0.11:27000", tier: 2 }
      - { name: dr3, address: "10.9.1.11:27000", tier: 3 }
`);
    down(s('a1'));
    down(s('dr2'));
    expect(b.servingTier).toBe(3);
    up(s('dr2'));
    b.failback('admin');
    expect(b.servingTier).toBe(2);
    expect(tiers.map((t) => [t.from, t.to, t.reason])).toEqual([
      [0, 2, 'active -> dr: a1 DOWN: connection refused'],
      [2, 3, 'dr -> dr tier 3: dr2 DOWN: connection refused'],
      [3, 2, 'dr tier 3 -> dr: admin'],
    ]);
  });

  it('a retry may leave the serving tier: after both actives failed a connect, the next candidate is the backup', () => {
    const { b, s } = make();
    const first = b.choose('10.1.1.1', null)!;
    const second = b.choose('10.1.1.1', [first])!;
    expect(new Set([first.name, second.name])).toEqual(new Set(['a1', 'a2']));
    expect(b.choose('10.1.1.1', [first, second])!.name).toBe('b1');
    expect(b.choose('10.1.1.1', [first, second, s('b1')])!.name).toBe('dr');
    expect(b.choose('10.1.1.1', [first, second, s('b1'), s('dr')])).toBeNull();
  });

  it('DRAIN and MAINT take a server out of selection; DRAIN still counts as Running for STATUS, MAINT does not', () => {
    const { b, s } = make();
    s('a1').setAdmin('drain', 'admin');
    s('a2').setAdmin('maint', 'admin');
    expect(b.servingTier).toBe(1);
    expect(b.running).toBe(true);
    expect(b.upCount).toBe(3);
    expect(s('a1').stateText).toBe('DRAIN 1/2'); // never checked: UP 1/2, drained
    expect(s('a2').stateText).toBe('MAINT');
    for (const n of ['b1', 'dr']) s(n).setAdmin('maint', 'admin');
    expect(b.servingTier).toBeNull();
    // Only the drained a1 is left: alive (Running) but taking no new connections.
    expect(b.running).toBe(true);
    expect(b.upCount).toBe(1);
    expect(b.choose('10.1.1.1', null)).toBeNull();
    s('a1').setAdmin('maint', 'admin');
    expect(b.running).toBe(false);
  });

  it('a tier whose servers all have weight 0 does not serve', () => {
    const { b, s } = make();
    s('a1').setWeight(0, 'admin');
    s('a2').setWeight(0, 'admin');
    expect(b.servingTier).toBe(1);
    expect(b.running).toBe(true);
    s('a2').setWeight(10, 'admin');
    expect(b.servingTier).toBe(0);
    expect(names(b, 3)).toEqual(['a2', 'a2', 'a2']);
  });

  it('a server at maxconn is skipped for new connections but keeps its tier serving', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }', '{ name: b, address: "10.0.1.11:27000", backup: true }']);
    const a = b.server('a')!;
    expect(b.choose('c', null)!.name).toBe('a');
    a.active = 1;
    expect(a.usable).toBe(false);
    expect(a.eligible).toBe(true);
    expect(b.servingTier).toBe(0);
    // The retry path (tried list) may spill to the backup; plain choose tries the other tiers too.
    expect(b.choose('c', null)!.name).toBe('b');
    a.active = 0;
    expect(b.choose('c', null)!.name).toBe('a');
  });

  it("a sticky client's own server comes back even when full (the caller queues on it), never on a retry", () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }', '{ name: a2, address: "10.0.0.12:27000" }'], 'stick: source');
    const a = b.server('a')!;
    b.stick!.set('c', 'a');
    a.active = 1;
    expect([b.choose('c', null)!.name, a.usable]).toEqual(['a', false]);
    expect(b.choose('c', [a])!.name).toBe('a2');
    b.stick!.set('c', 'a');
    a.setAdmin('drain', 'admin');
    expect(b.choose('c', null)!.name).toBe('a2');
  });

  it("a second step (server_port frontend) keeps its client's server in any tier, also drained; a first step goes to the serving tier and moves the entry", () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000" }', '{ name: bk, address: "10.0.1.11:27000", backup: true, maxconn: 1 }'], 'stick: source');
    const bk = b.server('bk')!;
    expect(b.servingTier).toBe(0);
    b.stick!.set('c', 'bk');
    expect(b.choose('c', null, true)!.name).toBe('bk');
    // Full: it comes back for the caller to queue on it, as in the serving tier; never on a retry.
    bk.active = 1;
    expect([b.choose('c', null, true)!.name, bk.usable]).toEqual(['bk', false]);
    expect(b.choose('c', [bk], true)!.name).toBe('a');
    bk.active = 0;
    b.stick!.set('c', 'bk');
    // Drained (admin or agent drain, weight 0): no new clients, but a checkout under way finishes
    // there, as HAProxy sends persistent clients to a DRAIN server; never on a retry.
    bk.setAdmin('drain', 'admin');
    expect([b.choose('c', null, true)!.name, b.stick!.get('c')]).toEqual(['bk', 'bk']);
    expect(b.choose('c', [bk], true)!.name).toBe('a');
    b.stick!.set('c', 'bk');
    bk.setAdmin('ready', 'admin');
    bk.setAgent({ state: 'drain', weightPercent: null, maxconn: null, reason: 'agent says "drain"' }, 'agent');
    expect(b.choose('c', null, true)!.name).toBe('bk');
    bk.setAgent(null, 'agent');
    bk.setWeight(0, 'admin');
    expect(b.choose('c', null, true)!.name).toBe('bk');
    bk.setWeight(1, 'admin');
    // Down or in maintenance: placed in the serving tier, and the entry follows.
    bk.setAdmin('maint', 'admin');
    expect(b.choose('c', null, true)!.name).toBe('a');
    expect(b.stick!.get('c')).toBe('a');
    bk.setAdmin('ready', 'admin');
    b.stick!.set('c', 'bk');
    down(bk);
    expect(b.choose('c', null, true)!.name).toBe('a');
    up(bk);
    // A first step (lmgrd) goes to the serving tier and takes the entry along: its second step follows.
    b.stick!.set('c', 'bk');
    expect(b.choose('c', null)!.name).toBe('a');
    expect(b.choose('c', null, true)!.name).toBe('a');
  });

  it('a second step queued on its drained server takes the next slot there; a first step queued there is placed elsewhere; maint releases the rest', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }', '{ name: a2, address: "10.0.0.12:27000" }'], 'stick: source');
    const a = b.server('a')!;
    b.acquire(a, 'holder');
    const placed: Record<string, string> = {};
    // What a Connector does when started or woken: queue on its server while that one is full.
    const connect = (key: string, secondStep: boolean): void => {
      const w = { wake: () => start(), movedTo: () => {} };
      const start = (): void => {
        const s = b.choose(key, null, secondStep)!;
        if (s.maxconn > 0 && s.active >= s.maxconn) {
          expect(b.enqueueOn(s, w)).toBe(true);
        } else {
          b.acquire(s, key);
          placed[key] = s.name;
        }
      };
      start();
    };
    for (const key of ['vendor', 'lmgrd', 'vendor2']) b.stick!.set(key, 'a');
    connect('vendor', true);
    connect('lmgrd', false);
    expect(b.queued).toBe(2);
    // The drain places the first step elsewhere; the second step stays queued on a.
    a.setAdmin('drain', 'admin');
    expect([placed, b.queued]).toEqual([{ lmgrd: 'a2' }, 1]);
    b.release(a, 'holder');
    expect([placed, b.queued, a.active]).toEqual([{ lmgrd: 'a2', vendor: 'a' }, 0, 1]);
    // Down or in maintenance, a drained server releases its queued second steps too.
    connect('vendor2', true);
    expect(b.queued).toBe(1);
    a.setAdmin('maint', 'admin');
    expect([placed.vendor2, b.queued]).toEqual(['a2', 0]);
  });

  it('a slot freed on a drained server goes to the next second step queued there when the first one woken follows its moved entry elsewhere', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }', '{ name: a2, address: "10.0.0.12:27000" }'], 'stick: source');
    const a = b.server('a')!;
    b.acquire(a, 'holder');
    const placed: string[] = [];
    const connect = (key: string, secondStep: boolean): void => {
      const w = { wake: () => start(), movedTo: () => {} };
      const start = (): void => {
        const s = b.choose(key, null, secondStep)!;
        if (s.full) expect(b.enqueueOn(s, w)).toBe(true);
        else {
          b.acquire(s, key);
          placed.push(`${key}${secondStep ? ' vendor' : ' lmgrd'} on ${s.name}`);
        }
      };
      start();
    };
    // Two hosts' vendor connections wait for a's slot; a is drained.
    for (const key of ['terminal-server', 'workstation']) b.stick!.set(key, 'a');
    connect('terminal-server', true);
    connect('workstation', true);
    a.setAdmin('drain', 'admin');
    // Another user of the terminal server starts a checkout: its lmgrd connection goes to a2, and
    // the host's entry (keyed by address) with it.
    connect('terminal-server', false);
    b.release(a, 'holder');
    expect([placed, b.queued, a.active]).toEqual([['terminal-server lmgrd on a2', 'terminal-server vendor on a2', 'workstation vendor on a'], 0, 1]);
  });

  it('a server with an overdue connect is passed over while another can take the session, in any tier', () => {
    const { b, tiers, s } = make();
    s('a1').overdue = 1;
    expect(new Set(names(b, 10))).toEqual(new Set(['a2']));
    // Both actives overdue: the backup takes new sessions, as the race would have sent them there,
    // and the serving tier stays (nothing is DOWN).
    s('a2').overdue = 1;
    expect(new Set(names(b, 10))).toEqual(new Set(['b1']));
    expect(b.servingTier).toBe(0);
    // Every server overdue: the serving tier's servers are tried anyway (something may answer).
    s('b1').overdue = 1;
    s('dr').overdue = 2;
    expect(new Set(names(b, 20))).toEqual(new Set(['a1', 'a2']));
    s('a1').overdue = 0;
    expect(new Set(names(b, 10))).toEqual(new Set(['a1']));
    expect(tiers).toEqual([]);
  });

  it('a sticky client leaves its server while that server has an overdue connect, and only if another can take it', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000" }', '{ name: a2, address: "10.0.0.12:27000" }'], 'stick: source');
    const a = b.server('a')!;
    b.stick!.set('c', 'a');
    a.overdue = 1;
    expect(b.choose('c', null)!.name).toBe('a2');
    expect(b.stick!.get('c')).toBe('a2');
    // Its own server overdue and the only other one out of service: it stays.
    b.stick!.set('c', 'a');
    b.server('a2')!.setAdmin('maint', 'admin');
    expect(b.choose('c', null)!.name).toBe('a');
    expect(b.stick!.get('c')).toBe('a');
  });

  it('with stick: source, a second step whose client has no entry (expired, licgate restarted, table full) passes over an overdue server as any connection; one with an entry stays', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", weight: 100 }', '{ name: a2, address: "10.0.0.12:27000", weight: 1 }'], 'stick: source');
    const a = b.server('a')!;
    a.overdue = 1;
    a.secondStepsOverdue = 1;
    expect([b.choose('no-entry', null, true)!.name, b.stick!.get('no-entry')]).toEqual(['a2', 'a2']);
    b.stick!.set('entry', 'a');
    expect(b.choose('entry', null, true)!.name).toBe('a');
  });

  it("with balance: source, a client's lmgrd and vendor connections pass over the same overdue servers: a vendor daemon slow to accept moves neither, a host gone silent both", () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000" }', '{ name: a2, address: "10.0.0.12:27000" }'], 'balance: source');
    const a = b.server('a')!;
    const client = ['10.1.1.1', '10.1.1.2', '10.1.1.3', '10.1.1.4'].find((k) => b.choose(k, null)!.name === 'a')!;
    const steps = (): string[] => [b.choose(client, null)!.name, b.choose(client, null, true)!.name];
    // Another client's vendor connect to a is overdue (its vendor daemon is busy): this client's
    // checkout starting now must reach a with both connections, as its vendor connection waits for a.
    a.overdue = 1;
    a.secondStepsOverdue = 1;
    expect(steps()).toEqual(['a', 'a']);
    // An lmgrd connect to a is overdue too (the host went silent): both connections go to a2 at once.
    a.overdue = 2;
    expect(steps()).toEqual(['a2', 'a2']);
    // A retry after a refused vendor connect keeps to the same rule.
    expect(b.choose(client, [a], true)!.name).toBe('a2');
  });

  it('with balance: source, both steps of a client whose hashed server is drained or full go to the next server by the hash: no record says its lmgrd connection went there', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }', '{ name: a2, address: "10.0.0.12:27000" }'], 'balance: source');
    const a = b.server('a')!;
    const client = ['10.1.1.1', '10.1.1.2', '10.1.1.3', '10.1.1.4'].find((k) => b.choose(k, null)!.name === 'a')!;
    const steps = (): string[] => [b.choose(client, null)!.name, b.choose(client, null, true)!.name];
    a.setAdmin('drain', 'admin');
    expect(steps()).toEqual(['a2', 'a2']);
    a.setAdmin('ready', 'admin');
    b.acquire(a, 'another client');
    expect(steps()).toEqual(['a2', 'a2']);
    b.release(a, 'another client');
    expect(steps()).toEqual(['a', 'a']);
  });

  it('clients waiting on a full backup server are released when the serving tier moves away from it', () => {
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000" }', '{ name: bk, address: "10.0.1.11:27000", backup: true, maxconn: 1 }'], 'stick: source');
    b.server('a')!.setAdmin('maint', 'admin');
    expect(b.servingTier).toBe(1);
    const bk = b.server('bk')!;
    bk.active = 1;
    let woken = 0;
    expect(b.enqueueOn(bk, { wake: () => woken++, movedTo: () => {} })).toBe(true);
    expect([b.queued, woken]).toEqual([1, 0]);
    b.server('a')!.setAdmin('ready', 'admin');
    expect([b.servingTier, b.queued, woken]).toEqual([0, 0, 1]);
  });
});

describe('the queues at max_queue', () => {
  // A crowd queued at a full server whose clients leave (reset, or a queue_timeout they share) in
  // whatever order: each leaving one used to be searched for in the backend queue, then its server's.
  // max_queue goes to 1,000,000; at 60,000 (about what LimitNOFILE=65536 lets wait) that took
  // 0.35-0.45 s, at 100,000 3.4 s; unlinked from linked lists, 20-40 ms.
  it('100,000 queued connections leaving in any order take little CPU, and those left are woken oldest first', () => {
    const n = 100_000;
    const b = backendWith(['{ name: a, address: "10.0.0.11:27000", maxconn: 1 }'], 'stick: source', `max_queue: ${n}`);
    const a = b.server('a')!;
    b.acquire(a, '192.0.2.1');
    const woken: number[] = [];
    // Half in the backend queue, half sticky clients queued on a: a leaving one is in either.
    // Woken, a waiter takes the slot, as a connector would.
    const waiters = Array.from({ length: n }, (_, i) => ({ id: i, wake: () => (woken.push(i), b.acquire(a, '192.0.2.2')), movedTo: () => {} }));
    for (const w of waiters) if (!(w.id % 2 ? b.enqueueOn(a, w) : b.enqueue(w))) throw new Error(`waiter ${w.id} not queued`);
    expect(b.queued).toBe(n);
    // A fixed shuffle (a linear congruential generator), so that a failure is the same on every run.
    const order = waiters.slice();
    for (let i = n - 1, x = 1; i > 0; i--) {
      x = (x * 48271) % 2147483647;
      const j = x % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const stay = new Set([0, 1, 2, 3, 4, 5]);
    const before = process.cpuUsage();
    for (const w of order) if (!stay.has(w.id)) b.dequeue(w, w.id % 3 === 0);
    const used = process.cpuUsage(before);
    // About 50 ms here; the quadratic search this guards against took 3.4 s. The bound leaves room
    // for a loaded machine: it failed at 250 once while another engineer's namespace tests ran.
    expect((used.user + used.system) / 1000).toBeLessThan(1000);
    expect([b.queued, b.queueTimeouts]).toEqual([stay.size, Math.ceil(n / 3) - 2]);
    // Each freed slot on a goes to its own sticky waiters first (they can go nowhere else), oldest first.
    b.release(a, '192.0.2.1');
    for (let i = 1; i < stay.size; i++) b.release(a, '192.0.2.2');
    expect(woken).toEqual([1, 3, 5, 0, 2, 4]);
    expect([b.queued, a.active]).toEqual([0, 1]);
  });
});

describe('servers that start DOWN (init_state) and the serving tier', () => {
  /** a1, a2 active with `init_state: down`, b1 backup UP at start. */
  const starting = (failback: 'auto' | 'manual'): ReturnType<typeof make> =>
    make(failback, '', `      - { name: a1, address: "10.0.0.11:27000", init_state: down }
      - { name: a2, address: "10.0.0.12:27000", init_state: down }
      - { name: b1, address: "10.0.1.11:27000", backup: true }
`);

  it('failback manual: the active tier serves once one of its servers passes its first check, after another failed its own; no tier change', () => {
    const { b, tiers, s } = starting('manual');
    expect(b.servingTier).toBe(1);
    s('a1').checkFailed(result(false));
    expect([s('a1').stateText, b.servingTier]).toEqual(['DOWN', 1]);
    s('a2').checkSucceeded(result(true));
    expect(b.servingTier).toBe(0);
    expect(names(b, 2)).toEqual(['a2', 'a2']);
    expect(tiers).toEqual([]);
  });

  it('failback manual: when every active server failed its first check, the backup is the tier in use, announced as a failover once, and keeps serving when they recover', () => {
    const { b, tiers, s } = starting('manual');
    s('a1').checkFailed(result(false));
    expect(tiers).toEqual([]);
    s('a2').checkFailed(result(false));
    // What init_state up announces when the active tier fails its first checks: an admin must learn
    // that the backup serves, which failback: manual holds until they fail back.
    expect(tiers.map((t) => [t.from, t.to])).toEqual([[0, 1]]);
    expect(tiers[0]!.reason).toMatch(/^active -> backup: a2 DOWN/);
    up(s('a1'));
    expect(s('a1').stateText).toBe('UP');
    expect(b.servingTier).toBe(1);
    expect(names(b, 2)).toEqual(['b1', 'b1']);
    expect(tiers).toHaveLength(1);
  });

  it('failback manual, fully-down: a server still rising after its first passed check (DOWN 1/2) has not failed; its tier serves once UP, no tier change', () => {
    const { b, tiers, s } = make('manual', '', `      - { name: a1, address: "10.0.0.11:27000", init_state: fully-down }
      - { name: b1, address: "10.0.1.11:27000", backup: true }
`);
    expect(b.servingTier).toBe(1);
    s('a1').checkSucceeded(result(true));
    expect([s('a1').stateText, b.servingTier]).toEqual(['DOWN 1/2', 1]);
    expect(tiers).toEqual([]);
    s('a1').checkSucceeded(result(true));
    expect([s('a1').stateText, b.servingTier]).toEqual(['UP', 0]);
    expect(names(b, 2)).toEqual(['a1', 'a1']);
    expect(tiers).toEqual([]);
  });

  it('failback manual, fully-down: a check failing after a passed one ends the wait: the backup is a failover, held when the server recovers', () => {
    const { b, tiers, s } = make('manual', '', `      - { name: a1, address: "10.0.0.11:27000", init_state: fully-down }
      - { name: b1, address: "10.0.1.11:27000", backup: true }
`);
    s('a1').checkSucceeded(result(true));
    s('a1').checkFailed(result(false));
    expect(tiers.map((t) => [t.from, t.to])).toEqual([[0, 1]]);
    up(s('a1'));
    expect([s('a1').stateText, b.servingTier]).toEqual(['UP', 1]);
    expect(tiers).toHaveLength(1);
  });

  it('failback manual: an admin taking the active servers out before their first checks (maint, drain) is a failover then, held when they pass', () => {
    const { b, tiers, s } = starting('manual');
    s('a1').setAdmin('maint', 'ctl');
    expect(tiers).toEqual([]);
    s('a2').setAdmin('drain', 'ctl');
    // As init_state up announces the drain of the last active server: with the reason that made it.
    expect(tiers.map((t) => [t.from, t.to, t.reason])).toEqual([[0, 1, 'active -> backup: a2 DOWN 1/2: ctl']]);
    s('a2').setAdmin('ready', 'ctl');
    s('a2').checkSucceeded(result(true));
    expect([s('a2').stateText, b.servingTier]).toEqual(['UP', 1]);
    expect(tiers).toHaveLength(1);
  });

  it('failback auto: the first check of a server that starts DOWN is no failback; a failover after it is announced as ever', () => {
    const { b, tiers, s } = starting('auto');
    s('a1').checkSucceeded(result(true));
    expect(b.servingTier).toBe(0);
    expect(tiers).toEqual([]);
    down(s('a1'));
    s('a2').checkFailed(result(false));
    expect(tiers.map((t) => [t.from, t.to])).toEqual([[0, 1]]);
  });
});
