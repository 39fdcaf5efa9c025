import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StickTable } from '../../src/balance/stick-table.js';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';

const HOUR = 3_600_000;

describe('StickTable', () => {
  it('restores saved entries in expiry order, clamped to the ttl, past ones left out, not marked dirty; a new client marks it', () => {
    const t = new StickTable(HOUR, 2);
    const n = t.restore([
      { client: 'late', server: 'b', expiresIn: 5 * HOUR, sinceAgo: 1000 },
      { client: 'gone', server: 'a', expiresIn: 0, sinceAgo: 1000 },
      { client: 'early', server: 'a', expiresIn: 1000, sinceAgo: 2000 },
    ], 10_000);
    expect([n, t.dirty, t.clients(10_000)]).toEqual([2, false, ['early', 'late']]);
    expect(t.entry('late', 10_000)).toEqual({ server: 'b', since: 9000, expires: 10_000 + HOUR, sessions: 0 });
    expect(t.get('early', 11_000)).toBeUndefined();
    t.set('new', 'a', 11_000);
    expect(t.dirty).toBe(true);
  });

  it('a known client connecting again or ending its last session marks the table refreshed, not dirty; a move or a drop marks it dirty', () => {
    const t = new StickTable(HOUR, 100);
    t.set('10.0.0.1', 'a', 0);
    expect([t.dirty, t.refreshed]).toEqual([true, false]);
    t.dirty = false;
    t.set('10.0.0.1', 'a', 1000);
    t.sessionOpened('10.0.0.1');
    t.sessionClosed('10.0.0.1', 2000);
    expect([t.dirty, t.refreshed, t.entry('10.0.0.1', 2000)?.expires]).toEqual([false, true, 2000 + HOUR]);
    t.set('10.0.0.1', 'b', 3000);
    expect(t.dirty).toBe(true);
    t.dirty = false;
    t.delete('10.0.0.1', 4000);
    expect(t.dirty).toBe(true);
  });

  it('restores 400,000 saved entries into a stick_size of 100,000 (a size lowered since) within 3 s, keeping those with the most time left', () => {
    const t = new StickTable(8 * HOUR, 100_000);
    const saved = Array.from({ length: 400_000 }, (_, i) => ({ client: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, server: 'a', expiresIn: HOUR + i, sinceAgo: 0 }));
    const t0 = performance.now();
    const n = t.restore(saved, 0);
    const ms = performance.now() - t0;
    const clients = t.clients(0);
    expect([n, clients.length, clients[0], clients.at(-1)]).toEqual([100_000, 100_000, saved[300_000]!.client, saved[399_999]!.client]);
    expect(ms).toBeLessThan(3000);
  });

  it('keeps an entry for ttl after the last connection, and each new connection refreshes it', () => {
    const t = new StickTable(HOUR, 100);
    t.set('10.0.0.1', 'a', 0);
    expect(t.get('10.0.0.1', HOUR - 1)).toBe('a');
    t.set('10.0.0.1', 'a', HOUR - 1);
    expect(t.get('10.0.0.1', 2 * HOUR - 2)).toBe('a');
    expect(t.get('10.0.0.1', 2 * HOUR - 1)).toBeUndefined();
  });

  it('does not expire while the client has a session open; the ttl counts from the end of its last one', () => {
    const t = new StickTable(HOUR, 100);
    t.set('10.0.0.1', 'a', 0);
    t.sessionOpened('10.0.0.1');
    t.sessionOpened('10.0.0.1');
    // A license held for a working day: only heartbeats, no new connection.
    expect(t.get('10.0.0.1', 10 * HOUR)).toBe('a');
    t.sweep(20 * HOUR);
    expect(t.get('10.0.0.1', 20 * HOUR)).toBe('a');
    t.sessionClosed('10.0.0.1', 21 * HOUR);
    expect(t.get('10.0.0.1', 23 * HOUR)).toBe('a'); // one session still open
    t.sessionClosed('10.0.0.1', 24 * HOUR);
    expect(t.clientsWithSessions).toBe(0);
    expect(t.get('10.0.0.1', 25 * HOUR - 1)).toBe('a');
    expect(t.get('10.0.0.1', 25 * HOUR)).toBeUndefined();
  });

  it('ignores a close for a client it does not count (no negative counts)', () => {
    const t = new StickTable(HOUR, 100);
    t.sessionClosed('10.0.0.9', 0);
    t.set('10.0.0.9', 'a', 0);
    expect(t.clientsWithSessions).toBe(0);
    expect(t.get('10.0.0.9', HOUR)).toBeUndefined();
  });

  it('re-placing an entry keeps the session count and refreshes it', () => {
    const t = new StickTable(HOUR, 100);
    t.set('c', 'a', 0);
    t.sessionOpened('c');
    t.set('c', 'b', 5 * HOUR);
    expect(t.get('c', 50 * HOUR)).toBe('b');
    t.sessionClosed('c', 50 * HOUR);
    expect(t.get('c', 51 * HOUR)).toBeUndefined();
  });

  it('size counts live entries only (expired ones are swept from the oldest end)', () => {
    const t = new StickTable(HOUR, 100);
    t.set('a', 's', 0);
    t.set('b', 's', 10);
    t.set('c', 's', 20);
    t.sessionOpened('a');
    t.sweep(HOUR + 15); // b expired; a expired but connected (refreshed); c alive
    t.sweep(HOUR + 15);
    expect(t.get('b', HOUR + 15)).toBeUndefined();
    expect(t.get('a', HOUR + 15)).toBe('s');
    expect(t.get('c', HOUR + 15)).toBe('s');
    // Real clock: a fresh table with entries set "now" counts them all.
    const live = new StickTable(HOUR, 100);
    for (let i = 0; i < 5; i++) live.set(`k${i}`, 's');
    expect(live.size).toBe(5);
    const expired = new StickTable(1000, 100);
    for (let i = 0; i < 5; i++) expired.set(`k${i}`, 's', performance.now() - 2000);
    expect(expired.size).toBe(0);
  });

  it('evicts the least recently active entry at maxSize, stepping over clients with open sessions', () => {
    const t = new StickTable(HOUR, 3);
    t.set('a', 's1', 0);
    t.set('b', 's1', 1);
    t.set('c', 's1', 2);
    t.get('a', 3);
    t.set('a', 's1', 3); // a is now the most recent
    t.set('d', 's2', 4); // evicts b, the least recently active
    expect(t.get('b', 5)).toBeUndefined();
    expect([t.get('a', 5), t.get('c', 5), t.get('d', 5)]).toEqual(['s1', 's1', 's2']);
    t.sessionOpened('c'); // c is oldest now, but connected
    t.set('e', 's2', 6); // steps over c and evicts a
    expect(t.get('a', 7)).toBeUndefined();
    expect([t.get('c', 7), t.get('d', 7), t.get('e', 7)]).toEqual(['s1', 's2', 's2']);
  });

  it('stays within maxSize even when every entry has a session open', () => {
    const t = new StickTable(HOUR, 20);
    for (let i = 0; i < 100; i++) {
      t.set(`k${i}`, 's', i);
      t.sessionOpened(`k${i}`);
    }
    let live = 0;
    for (let i = 0; i < 100; i++) if (t.get(`k${i}`, 200) !== undefined) live++;
    expect(live).toBe(20);
  });

  it('resize (a reload changed stick_ttl or stick_size) keeps the entries, moves each expiry by the change, and evicts the least recently active', () => {
    const t = new StickTable(HOUR, 10);
    t.set('old', 'a', 0);
    t.set('held', 'a', 1);
    t.sessionOpened('held');
    t.set('mid', 'b', 2);
    t.set('new', 'b', 3);
    t.resize(2 * HOUR, 10, 4);
    // Last activity plus the new ttl: 'old' (activity at 0) lives until 2h, no longer until 1h.
    expect(t.get('old', 2 * HOUR - 1)).toBe('a');
    expect(t.get('mid', 2 * HOUR + 1)).toBe('b');
    expect(t.get('old', 2 * HOUR + 1)).toBeUndefined();
    t.resize(HOUR / 2, 2, 5);
    // Shrunk to 2: 'held', the least recently active, has a session open and is stepped over; 'mid'
    // is then the oldest and goes.
    expect(t.get('held', 6)).toBe('a');
    expect(t.get('mid', 6)).toBeUndefined();
    expect(t.get('new', 6)).toBe('b');
    // The shorter ttl counts from the last activity too: 'new' (at 3) is gone at 3 + ttl/2.
    expect(t.get('new', 3 + HOUR / 2)).toBeUndefined();
  });
});

describe('StickTable shared with peers', () => {
  const tracked = (t: StickTable): { pending: Set<string>; servers: Set<string>; cleared: boolean; wake: () => void; wakes: number } => {
    const p = { pending: new Set<string>(), servers: new Set<string>(), cleared: false, wakes: 0, wake: () => p.wakes++ };
    t.peers = p;
    return p;
  };

  it('notes new, moved and dropped clients for the peers, not a client that only connected again, and wakes once per batch', () => {
    const t = new StickTable(HOUR, 100);
    const p = tracked(t);
    t.set('10.0.0.1', 'a', 0);
    t.set('10.0.0.2', 'a', 0);
    t.set('10.0.0.1', 'a', 1000);
    expect([[...p.pending], p.wakes]).toEqual([['10.0.0.1', '10.0.0.2'], 1]);
    p.pending.clear();
    t.set('10.0.0.1', 'b', 2000);
    t.delete('10.0.0.2', 2000);
    expect([...p.pending]).toEqual(['10.0.0.1', '10.0.0.2']);
    t.clear(3000);
    expect([p.pending.size, p.cleared]).toEqual([0, true]);
  });

  it('applies a pushed entry without noting it (no echo), capped at its ttl; a client with sessions here, or a more recent assignment, keeps its entry', () => {
    const t = new StickTable(HOUR, 100);
    const p = tracked(t);
    expect(t.applyPeer('10.0.0.1', 'b', 5 * HOUR, 1000, 10_000)).toBe('applied');
    expect(t.entry('10.0.0.1', 10_000)).toEqual({ server: 'b', since: 9000, expires: 10_000 + HOUR, sessions: 0 });
    expect(p.pending.size).toBe(0);
    // Held here: the peer's move is not taken.
    t.set('10.0.0.2', 'a', 10_000);
    t.sessionOpened('10.0.0.2');
    expect(t.applyPeer('10.0.0.2', 'b', HOUR, 0, 20_000)).toBe('kept');
    // Assigned here 1 s ago, there 5 s ago: this host's is the more recent.
    t.set('10.0.0.3', 'a', 19_000);
    expect(t.applyPeer('10.0.0.3', 'b', HOUR, 5000, 20_000)).toBe('kept');
    expect(t.applyPeer('10.0.0.3', 'b', HOUR, 500, 20_000)).toBe('applied');
    expect(t.get('10.0.0.3', 20_000)).toBe('b');
    t.unstuckByPeer('10.0.0.3', 'b', 20_000, 20_000);
    t.clearedByPeer(20_000, 20_000);
    expect([p.cleared, [...p.pending]]).toEqual([false, ['10.0.0.2', '10.0.0.3']]);
  });

  it('two hosts that place a client on different servers within the wire delay of each other agree on one server, not swap', () => {
    // Each line's age counts from when it was written, so the time on the wire makes the other
    // host's placement look later than it was: each host took the other's, A ending on s1, B on s2.
    const [a, b] = [new StickTable(HOUR, 100), new StickTable(HOUR, 100)];
    a.set('10.0.0.1', 's2', 1000);
    b.set('10.0.0.1', 's1', 1001);
    a.applyPeer('10.0.0.1', 's1', HOUR, 0, 1006);
    b.applyPeer('10.0.0.1', 's2', HOUR, 0, 1005);
    expect([a.get('10.0.0.1', 1010), b.get('10.0.0.1', 1010)]).toEqual(['s1', 's1']);
    // Placed well apart, the more recent still wins on both.
    a.set('10.0.0.2', 's1', 1000);
    b.set('10.0.0.2', 's2', 1100);
    a.applyPeer('10.0.0.2', 's2', HOUR, 0, 1105);
    b.applyPeer('10.0.0.2', 's1', HOUR, 0, 1005);
    expect([a.get('10.0.0.2', 1110), b.get('10.0.0.2', 1110)]).toEqual(['s2', 's2']);
  });

  it("remembers unsticks for stick_ttl, stick_size of them at most (the oldest go first), and refuses a peer's entry placed before one that covers it", () => {
    const t = new StickTable(HOUR, 2);
    tracked(t);
    t.set('10.0.0.1', 'a', 0);
    t.delete('10.0.0.1', 10_000);
    t.delete('10.0.0.2', 20_000);
    // Placed at 5000, before the unstick at 10,000, on the server it was unstuck from: refused. On
    // another server (a split brain), or placed after: taken.
    expect(t.applyPeer('10.0.0.1', 'a', HOUR, 10_000, 15_000)).toBe('unstuck');
    expect(t.applyPeer('10.0.0.1', 'b', HOUR, 10_000, 15_000)).toBe('applied');
    expect(t.applyPeer('10.0.0.1', 'a', HOUR, 4000, 15_000)).toBe('applied');
    // 10.0.0.2 had no entry here: its marker covers every server.
    expect(t.applyPeer('10.0.0.2', 'b', HOUR, 10_000, 25_000)).toBe('unstuck');
    t.forgetServer('b', 30_000);
    expect([t.applyPeer('10.0.0.5', 'b', HOUR, 2000, 30_000), t.applyPeer('10.0.0.6', 'a', HOUR, 2000, 30_000)]).toEqual(['unstuck', 'applied']);
    t.delete('10.0.0.3', 40_000);
    expect(t.unstucks(40_000), 'after a third client: the oldest gone').toEqual({ clients: [['10.0.0.2', '*', 20_000], ['10.0.0.3', '*', 0]], servers: [['b', 10_000]], clearedAgo: null });
    expect(t.unstucks(30_000 + HOUR), 'a ttl after the server\'s').toEqual({ clients: [['10.0.0.3', '*', HOUR - 10_000]], servers: [], clearedAgo: null });
    t.clear(50_000);
    expect(t.unstucks(60_000), 'the clear covers the others').toEqual({ clients: [], servers: [], clearedAgo: 10_000 });
    expect(t.applyPeer('10.0.0.7', 'a', HOUR, 20_000, 60_000)).toBe('unstuck');
  });

  it('a reload that lowers stick_size keeps that many client markers, the newest', () => {
    const t = new StickTable(HOUR, 5);
    tracked(t);
    for (let i = 1; i <= 5; i++) t.delete(`10.0.0.${i}`, i * 1000);
    t.resize(HOUR, 2, 6000);
    t.delete('10.0.0.6', 7000);
    expect(t.unstucks(7000).clients.map(([c]) => c)).toEqual(['10.0.0.5', '10.0.0.6']);
  });

  it('keeps an entry placed just after an unstick on the other host, though the marker arrived later than it was made (the wire, a busy loop, rounding)', () => {
    // A unstuck at 1000 (one client, a server, the whole table); the lines reached this host (B) 20 ms
    // later, its loop busy. The clients connected again on A at 1005 (S lines, 5 ms on the wire),
    // or here at 1012, after the unstick but before its line came.
    const t = new StickTable(HOUR, 100);
    tracked(t);
    for (const c of ['10.0.0.4', '10.0.0.5', '10.0.0.6']) t.set(c, 'a', 1012);
    t.unstuckByPeer('10.0.0.1', 'a', 1020, 1020);
    t.serverUnstuckByPeer('a', 1020, 1020);
    t.clearedByPeer(1020, 1020);
    expect(['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((c) => t.applyPeer(c, 'a', HOUR, 20, 1030)), "A's entries placed after its unstick").toEqual(['applied', 'applied', 'applied']);
    expect(['10.0.0.4', '10.0.0.5', '10.0.0.6'].map((c) => t.get(c, 1030)), 'entries placed here after the unstick').toEqual(['a', 'a', 'a']);
  });

  it('an unstick that comes back from the other host at each reconnect, a little later each time, drops nothing placed after it', () => {
    // The full push sends received markers too: A's own marker returns at every reconnect, 15 ms
    // later each round trip. The client connected again 2 ms after the unstick and went to a again.
    for (const unstick of ['client', 'server', 'all'] as const) {
      const t = new StickTable(HOUR, 100);
      tracked(t);
      t.set('10.0.0.1', 'a', 0);
      if (unstick === 'client') t.delete('10.0.0.1', 1000);
      else if (unstick === 'server') t.forgetServer('a', 1000);
      else t.clear(1000);
      t.set('10.0.0.1', 'a', 1002);
      let at = 1000;
      for (let i = 1; i <= 100; i++) {
        at += 15;
        const now = 1000 + i * 5000;
        if (unstick === 'client') t.unstuckByPeer('10.0.0.1', 'a', at, now);
        else if (unstick === 'server') t.serverUnstuckByPeer('a', at, now);
        else t.clearedByPeer(at, now);
        at = 1000 + i * 5000 - (unstick === 'client' ? t.unstuckEntry('10.0.0.1', now)!.ago : unstick === 'server' ? t.serverUnstuckAgo('a', now)! : t.clearedAgo(now)!);
      }
      expect([t.get('10.0.0.1', 600_000), at], `${unstick}: the client's entry and the marker's time after 100 reconnects`).toEqual(['a', 1000]);
    }
  });

  it("frees a pushed entry that expired behind newer ones: no live entry is evicted for it, size does not count it, a held one stays", () => {
    // A peer's entry goes to the map's end though it expires before the entries ahead of it.
    const t = new StickTable(HOUR, 3);
    t.set('a', 's1', 0);
    t.set('b', 's1', 0);
    t.applyPeer('p', 's2', 1000, 0, 0);
    t.set('c', 's1', 2000);
    expect([t.get('a', 2000), t.get('b', 2000), t.get('c', 2000), t.get('p', 2000)], 'a, b, c, p').toEqual(['s1', 's1', 's1', undefined]);
    // One held by a session is refreshed by the sweep instead; a reload's new ttl moves both.
    const h = new StickTable(HOUR, 100);
    h.set('a', 's1', 0);
    h.applyPeer('p', 's2', 1000, 0, 0);
    h.applyPeer('q', 's2', 1000, 0, 0);
    h.sessionOpened('q');
    h.resize(2 * HOUR, 100, 500);
    expect(h.clients(HOUR + 900)).toEqual(['a', 'p', 'q']);
    expect(h.clients(HOUR + 1100)).toEqual(['a', 'q']);
    const live = new StickTable(HOUR, 100);
    live.set('a', 's1');
    live.applyPeer('p', 's2', 1, 0, performance.now() - 10);
    expect(live.size, 'live entries').toBe(1);
  });

  it('lists no expired entry without a session, and keeps the size, after any mix of local and pushed entries', () => {
    const client = fc.integer({ min: 0, max: 9 }).map((c) => `c${c}`);
    const dt = fc.integer({ min: 0, max: 500 });
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), c: client, dt }),
      fc.record({ k: fc.constant('peer' as const), c: client, dt, n: fc.integer({ min: -10, max: 1200 }) }),
      fc.record({ k: fc.constant('open' as const), c: client, dt: fc.constant(0) }),
      fc.record({ k: fc.constant('close' as const), c: client, dt }),
      fc.record({ k: fc.constant('delete' as const), c: client, dt }),
      fc.record({ k: fc.constant('resize' as const), c: client, dt, n: fc.integer({ min: 200, max: 1500 }), size: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const t = new StickTable(1000, 5);
      let now = 0;
      let max = 5;
      const held = new Map<string, number>();
      for (const o of ops) {
        now += o.dt;
        if (o.k === 'set') t.set(o.c, 's', now);
        else if (o.k === 'peer') t.applyPeer(o.c, 's', o.n, 0, now);
        else if (o.k === 'open') {
          t.sessionOpened(o.c);
          held.set(o.c, (held.get(o.c) ?? 0) + 1);
        } else if (o.k === 'close') {
          t.sessionClosed(o.c, now);
          const n = held.get(o.c) ?? 0;
          if (n > 1) held.set(o.c, n - 1);
          else held.delete(o.c);
        } else if (o.k === 'delete') t.delete(o.c, now);
        else t.resize(o.n, (max = o.size), now);
        const listed = t.clients(now);
        expect(listed.length).toBeLessThanOrEqual(max);
        for (const k of listed) {
          const e = t.entry(k, now);
          expect(e !== undefined && (e.expires > now || held.has(k)), `${k} listed at ${now}, expired`).toBe(true);
        }
      }
    }), { numRuns: 2000 });
  });

  it('admits a new client into a full table of pushed entries by looking at the due ones, not by scanning them all', () => {
    // The other host's whole table arrived behind a local entry that expires later, so every pushed
    // entry is late; they expire one by one, and each new client, evicting, finds one due.
    const n = 100_000;
    const t = new StickTable(HOUR, n);
    t.set('local', 's', 0);
    for (let i = 1; i < n; i++) t.applyPeer(`p${i}`, 's', (i * HOUR) / n, 0, 0);
    const clients = 500;
    // Work counted, not timed: every entry the sweep looks at is one get on the table's map. A scan
    // of the 100,000 took about 4.7 ms per client; the heap looks at the one or two due.
    const entries = (t as unknown as { entries: Map<string, unknown> }).entries;
    const get = entries.get.bind(entries);
    let looked = 0;
    entries.get = (k: string) => (looked++, get(k));
    let now = 0;
    for (let i = 0; i < clients; i++) t.set(`new${i}`, 's', (now += HOUR / n + 0.01));
    entries.get = get;
    expect(looked, `entries looked at for ${clients} new clients`).toBeLessThan(clients * 10);
    expect(t.clients(now)).toHaveLength(n);
    expect(t.entry(`p${clients}`, now)).toBeUndefined();
    expect(t.entry(`p${clients + 1}`, now)?.server).toBe('s');
  });

  it("does not take the server of a pushed entry that has no time left (expires_in 0)", () => {
    const t = new StickTable(HOUR, 100);
    t.set('10.0.0.1', 'a', 0);
    // Placed there more recently than here, but already expiring there: nothing to take.
    const r = t.applyPeer('10.0.0.1', 'b', 0, 0, 1000);
    expect(t.get('10.0.0.1', 1000), "this host's server").toBe('a');
    expect(r).toBe('kept');
    expect(t.applyPeer('10.0.0.2', 'b', 0, 0, 1000)).toBe('applied');
    expect(t.get('10.0.0.2', 1000)).toBeUndefined();
  });

  it("asks for a refresh only when this host's entry outlives what the peers were told and their copy is near its end", () => {
    const t = new StickTable(HOUR, 100);
    t.set('10.0.0.1', 'a', 0);
    expect(t.peerEntry('10.0.0.1', 0)).toEqual({ server: 'a', expiresIn: HOUR, sinceAgo: 0 });
    // Connected again: this host's entry moves on, the peers' copy still has most of its hour.
    t.set('10.0.0.1', 'a', 60_000);
    expect(t.peerStale('10.0.0.1', HOUR / 2, 60_000)).toBe(false);
    expect(t.peerStale('10.0.0.1', HOUR / 2, HOUR / 2 + 1)).toBe(true);
    // A client holding a session is told as if it ended now.
    t.sessionOpened('10.0.0.1');
    expect(t.peerEntry('10.0.0.1', HOUR)).toEqual({ server: 'a', expiresIn: HOUR, sinceAgo: HOUR });
    expect(t.peerStale('10.0.0.1', HOUR / 2, HOUR + 1000)).toBe(false);
  });
});


describe('StickTable: the admin clears entries (clear table)', () => {
  const list = (t: StickTable, now: number): [string, string, number, number, number][] =>
    t.clients(now).map((k) => {
      const e = t.entry(k, now)!;
      return [k, e.server, e.since, e.expires, e.sessions];
    });

  it('lists live entries least recently active first, with each client\'s open sessions and the time it was put on its server', () => {
    const t = new StickTable(HOUR, 100);
    for (const [client, server, at] of [['10.0.0.1', 'a', 0], ['10.0.0.2', 'b', 10], ['10.0.0.3', 'a', 20]] as const) t.set(client, server, at);
    t.sessionOpened('10.0.0.2');
    t.set('10.0.0.1', 'a', 30); // refreshed: most recent now, still on a since 0
    t.set('10.0.0.3', 'b', 40); // moved: on b since 40
    expect(list(t, 50)).toEqual([
      ['10.0.0.2', 'b', 10, 10 + HOUR, 1],
      ['10.0.0.1', 'a', 0, 30 + HOUR, 0],
      ['10.0.0.3', 'b', 40, 40 + HOUR, 0],
    ]);
    // An expired entry is not listed; one held by a session is.
    expect(list(t, 35 + HOUR).map(([k]) => k)).toEqual(['10.0.0.3', '10.0.0.2']);
    expect(t.entry('10.0.0.3', 35 + HOUR)).toEqual({ server: 'b', since: 40, expires: 40 + HOUR, sessions: 0 });
    expect(t.entry('10.0.0.1', 35 + HOUR)).toBeUndefined();
  });

  it('clears one client, the clients of a server, or every entry, and says how many live ones went', () => {
    const t = new StickTable(HOUR, 100);
    t.set('gone', 'a', 0); // expired by the time of the clears: not counted
    for (const [k, s] of [['c1', 'a'], ['c2', 'a'], ['c3', 'b'], ['c4', 'b']] as const) t.set(k, s, HOUR / 2);
    expect(t.forgetServer('a', HOUR + 1)).toBe(2);
    expect(t.delete('gone', HOUR + 1)).toBe(false);
    expect(t.delete('c3', HOUR + 1)).toBe(true);
    expect(t.delete('c3', HOUR + 1)).toBe(false);
    expect(list(t, HOUR + 1).map(([k]) => k)).toEqual(['c4']);
    expect(t.clear(HOUR + 2)).toBe(1);
    expect(list(t, HOUR + 2)).toEqual([]);
  });

  it('keeps the session counts of cleared entries: the sessions ending later neither go negative nor bring the entry back', () => {
    const t = new StickTable(HOUR, 100);
    t.set('c', 'a', 0);
    t.sessionOpened('c');
    t.sessionOpened('c');
    expect(t.forgetServer('a', 10)).toBe(1);
    t.sessionClosed('c', 20);
    t.sessionClosed('c', 30);
    t.sessionClosed('c', 40); // one too many: ignored
    expect(t.get('c', 50)).toBeUndefined();
    expect(t.clientsWithSessions).toBe(0);
    expect(list(t, 50)).toEqual([]);
  });

  it('a client that connects again after the clear, while its old sessions run, keeps its new entry until the last of them ends', () => {
    const t = new StickTable(HOUR, 100);
    t.set('c', 'a', 0);
    t.sessionOpened('c'); // a license held on a
    expect(t.clear(10)).toBe(1);
    t.set('c', 'b', 20); // its next checkout, balanced afresh, goes to b
    t.sessionOpened('c');
    expect(list(t, 30)).toEqual([['c', 'b', 20, 20 + HOUR, 2]]);
    t.sessionClosed('c', 40); // the old session on a ends: the one on b still holds the entry
    expect(t.get('c', 10 * HOUR)).toBe('b');
    t.sessionClosed('c', 11 * HOUR);
    expect(t.get('c', 12 * HOUR - 1)).toBe('b');
    expect(t.get('c', 12 * HOUR)).toBeUndefined();
  });
});

function backend(extra: string, servers: string): Backend {
  const cfg = loadConfigText(
    `backends:
  - name: licenses
${extra}
    check: { type: tcp, rise: 1, fall: 1 }
    servers:
${servers}
status: { listen: 127.0.0.1:0 }
`,
    'stick.yaml',
  );
  const b = new Backend(cfg.backends[0]!, new ModelEvents());
  for (const s of b.servers) up(b, s.name);
  return b;
}

const result = { reason: 'test', durationMs: 0, at: 0 };
const up = (b: Backend, name: string): void => b.server(name)!.checkSucceeded({ ...result, ok: true });
const down = (b: Backend, name: string): void => b.server(name)!.checkFailed({ ...result, ok: false });

describe('Backend with stick: source', () => {
  const equalPair = `      - { name: a, address: 127.0.0.1:1001 }
      - { name: b, address: 127.0.0.1:1002 }`;

  it('sends every connection of a client to its first server, and spreads clients by the balancer', () => {
    const b = backend('    stick: source', equalPair);
    const first = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let i = 2; i <= 40; i++) {
        const key = `127.0.0.${i}`;
        const s = b.choose(key, null)!.name;
        if (round === 0) first.set(key, s);
        else expect(s).toBe(first.get(key));
      }
    }
    const onA = [...first.values()].filter((s) => s === 'a').length;
    expect([onA, 39 - onA]).toEqual([20, 19]); // round-robin placement of new clients
    expect(b.stick!.size).toBe(39);
  });

  it('re-places a client whose server went DOWN, and it stays on the new server after the old one returns', () => {
    const b = backend('    stick: source', equalPair);
    expect(b.choose('c1', null)!.name).toBe('a');
    down(b, 'a');
    expect(b.choose('c1', null)!.name).toBe('b');
    up(b, 'a');
    expect(b.server('a')!.usable).toBe(true);
    for (let i = 0; i < 5; i++) expect(b.choose('c1', null)!.name).toBe('b');
  });

  it('re-places a client whose server failed its connect (retry), so its next connection follows', () => {
    const b = backend('    stick: source\n    retries: 2', equalPair);
    const a = b.choose('c1', null)!;
    expect(a.name).toBe('a');
    // The connector's retry after a refused connect: `a` is excluded for this connection.
    expect(b.choose('c1', [a])!.name).toBe('b');
    expect(b.choose('c1', null)!.name).toBe('b');
  });

  it('re-places a client whose server is drained or in maintenance', () => {
    const b = backend('    stick: source', equalPair);
    expect(b.choose('c1', null)!.name).toBe('a');
    b.server('a')!.setAdmin('drain', 'test');
    expect(b.choose('c1', null)!.name).toBe('b');
    b.server('a')!.setAdmin('ready', 'test');
    expect(b.choose('c1', null)!.name).toBe('b');
  });

  it('failback auto: a client stuck on the backup returns to the recovered active tier; failback manual: it stays', () => {
    const tiers = `      - { name: primary, address: 127.0.0.1:1001 }
      - { name: backup, address: 127.0.0.1:1002, backup: true }`;
    for (const failback of ['auto', 'manual'] as const) {
      const b = backend(`    stick: source\n    failback: ${failback}`, tiers);
      expect(b.choose('c1', null)!.name).toBe('primary');
      down(b, 'primary');
      expect(b.choose('c1', null)!.name).toBe('backup');
      up(b, 'primary');
      expect(b.choose('c1', null)!.name).toBe(failback === 'auto' ? 'primary' : 'backup');
    }
  });

  it('counts open sessions per client through acquire/release', () => {
    const b = backend('    stick: source', equalPair);
    const s = b.choose('c1', null)!;
    b.acquire(s, 'c1');
    b.acquire(s, 'c1');
    const t = b.choose('c2', null)!;
    b.acquire(t, 'c2');
    expect(b.stick!.clientsWithSessions).toBe(2);
    b.release(s, 'c1');
    expect(b.stick!.clientsWithSessions).toBe(2);
    b.release(s, 'c1');
    b.release(t, 'c2');
    expect(b.stick!.clientsWithSessions).toBe(0);
    expect(s.active + t.active).toBe(0);
  });

  it('without stick, nothing is remembered and the round-robin alternates a client between servers', () => {
    const b = backend('', equalPair);
    expect(b.stick).toBeNull();
    expect([b.choose('c1', null)!.name, b.choose('c1', null)!.name]).toEqual(['a', 'b']);
    const s = b.server('a')!;
    b.acquire(s, 'c1');
    b.release(s, 'c1');
    expect(s.active).toBe(0);
  });
});
