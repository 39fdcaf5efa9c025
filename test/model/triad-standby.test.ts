import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents, type ServerStateEvent } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

const master = (host: string) => ({ ok: true, reason: `lmgrd UP (MASTER) [3/3 servers UP], vendor d UP, 1 feature (${host})`, durationMs: 1, at: 0 });
const standby = (host: string) => ({ ok: true, standby: true, master: host, reason: `triad standby: ${host} is MASTER [3/3 servers UP]`, durationMs: 1, at: 0 });
const refused = { ok: false, reason: 'lmgrd on h1 DOWN', durationMs: 1, at: 0 };

/** A FlexLM triad h1..h3 (rise 3, fall 3) behind `stick: source`, h1 the MASTER, plus a backup. */
function triad(balance = 'roundrobin', failback = 'auto') {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: flexlm
    balance: ${balance}
    failback: ${failback}
${balance === 'source' ? '' : '    stick: source\n'}    on_marked_down: shutdown-sessions
    check: { type: exec, argv: [lmutil, lmstat, -a, -c, "{port}@{host}"], parse: lmstat, rise: 3, fall: 3 }
    servers:
      - { name: h1, address: "h1:27000" }
      - { name: h2, address: "h2:27000" }
      - { name: h3, address: "h3:27000" }
      - { name: spare, address: "spare:27000", backup: true }
`);
  const events = new ModelEvents();
  const changes: ServerStateEvent[] = [];
  const shutdowns: string[] = [];
  events.on('server-state', (e) => changes.push(e));
  events.on('shutdown-sessions', (e) => shutdowns.push(e.server.name));
  const b = new Backend(cfg.backends[0]!, events);
  const s = (n: string): Server => b.server(n)!;
  for (let i = 0; i < 3; i++) {
    s('h1').checkSucceeded(master('h1'));
    s('h2').checkSucceeded(standby('h1'));
    s('h3').checkSucceeded(standby('h1'));
    s('spare').checkSucceeded(master('spare'));
  }
  return { b, s, changes, shutdowns };
}

const clients = (b: Backend, n: number, secondStep = false): string[] =>
  Array.from({ length: n }, (_, i) => b.choose(`10.1.1.${i}`, null, secondStep)?.name ?? 'none');

describe('a FlexLM triad standby (UP, not MASTER)', () => {
  it('takes no new client: every one goes to the MASTER, and the backup stays idle', () => {
    const { b, s } = triad();
    expect(s('h2').stateText).toBe('UP (standby)');
    expect(s('h2').up).toBe(true);
    expect(s('h2').eligible).toBe(false);
    expect(b.servingTier).toBe(0);
    expect(new Set(clients(b, 12))).toEqual(new Set(['h1']));
    // With the backup in maintenance the MASTER is the last server that can take clients: its
    // connect errors leave it UP (Server.connectFailed).
    s('spare').setAdmin('maint', 'test');
    expect(b.takesClientsAlone(s('h1'))).toBe(true);
  });

  it('takes no client whose stick entry names it, first or second step, and is not marked DOWN', () => {
    const { b, s, changes, shutdowns } = triad();
    // h2 was the MASTER when the client came; the next check finds h1 MASTER, h2 a standby.
    s('h2').checkSucceeded(master('h2'));
    const stuck = Array.from({ length: 6 }, (_, i) => `10.2.2.${i}`).find((c) => b.choose(c, null)?.name === 'h2')!;
    expect(stuck).toBeDefined();
    s('h2').checkSucceeded(standby('h1'));
    expect(changes.at(-1)).toEqual({ backend: 'flexlm', server: 'h2', from: 'UP', to: 'UP (standby)', reason: 'triad standby: h1 is MASTER [3/3 servers UP]', usableChanged: true });
    expect(b.choose(stuck, null, true)?.name).toBe('h1');
    expect(b.choose(stuck, null)?.name).toBe('h1');
    expect(b.stick!.get(stuck)).toBe('h1');
    expect(shutdowns).toEqual([]);
    expect(s('h2').health.up).toBe(true);
  });

  it('takes clients from the check that finds it MASTER, with no rise to wait for', () => {
    const { b, s } = triad();
    // h1 went away and came back; h2 was elected MASTER meanwhile, and its next check says so.
    s('h2').checkSucceeded(master('h2'));
    expect(s('h2').stateText).toBe('UP');
    expect(new Set(clients(b, 12))).toEqual(new Set(['h1', 'h2']));
    s('h1').checkSucceeded(standby('h2'));
    expect(new Set(clients(b, 12))).toEqual(new Set(['h2']));
  });

  it('counts for no tier: with the MASTER DOWN and the others standby, the backup serves', () => {
    const { b, s } = triad();
    for (let i = 0; i < 3; i++) s('h1').checkFailed(refused);
    expect(s('h1').stateText).toBe('DOWN');
    expect(b.servingTier).toBe(1);
    expect(new Set(clients(b, 6))).toEqual(new Set(['spare']));
  });

  it('stays a standby across a reload until the new check says otherwise', () => {
    const { b, s } = triad();
    const next = new Backend(b.cfg, new ModelEvents());
    for (const n of ['h1', 'h2', 'h3', 'spare']) next.server(n)!.adoptRuntime(s(n), false, true);
    next.adoptRuntime(b);
    expect(next.server('h2')!.stateText).toBe('UP (standby)');
    expect(new Set(clients(next, 12))).toEqual(new Set(['h1']));
    next.server('h2')!.checkSucceeded(master('h2'));
    expect(next.server('h2')!.stateText).toBe('UP');
  });

  it.each(['source', 'leastconn'])('is passed over by balance: %s too', (balance) => {
    const { b } = triad(balance);
    expect(new Set(clients(b, 12))).toEqual(new Set(['h1']));
  });

  it('with failback: manual, a MASTER handover keeps the triad tier, as long as the named MASTER is a live member of it', () => {
    const { b, s } = triad('roundrobin', 'manual');
    // h2 takes the MASTER role; h1's check comes first and finds it a standby of h2.
    s('h1').checkSucceeded(standby('h2'));
    // Meanwhile new clients borrow the backup, as with any tier that cannot serve for a moment.
    expect(b.servingTier).toBe(0);
    expect(new Set(clients(b, 3))).toEqual(new Set(['spare']));
    s('h2').checkSucceeded(master('h2'));
    expect(b.servingTier).toBe(0);
    expect(new Set(clients(b, 6))).toEqual(new Set(['h2']));

    // The member named MASTER is in maintenance: that is no handover, the backup serves.
    s('h3').setAdmin('maint', 'test');
    s('h2').checkSucceeded(standby('h3'));
    expect(b.servingTier).toBe(1);
    expect(new Set(clients(b, 3))).toEqual(new Set(['spare']));
  });
});
