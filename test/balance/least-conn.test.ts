import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

function backend(servers: { name: string; weight?: number }[]): Backend {
  const cfg = loadConfigText(
    `backends:
  - name: licenses
    balance: leastconn
    check: { type: none }
    servers:
${servers.map((s, i) => `      - { name: ${s.name}, address: 127.0.0.1:${1000 + i}, weight: ${s.weight ?? 1} }`).join('\n')}
status: { listen: 127.0.0.1:0 }
`,
    'leastconn.yaml',
  );
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

/** Opens a connection the way the connector does: choose, then hold a slot until released. */
function hold(b: Backend, client: string): Server {
  const s = b.choose(client, null)!;
  b.acquire(s, client);
  return s;
}

const active = (b: Backend): Record<string, number> => Object.fromEntries(b.servers.map((s) => [s.name, s.active]));

describe('LeastConn with held connections', () => {
  it('sends new connections to the servers with fewer held ones until the load is even', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const a = b.server('a')!;
    for (let i = 0; i < 4; i++) b.acquire(a, `held-${i}`); // four long license sessions on a
    const picks = Array.from({ length: 8 }, (_, i) => hold(b, `c${i}`).name);
    expect(picks.filter((n) => n === 'a')).toHaveLength(0);
    expect(active(b)).toEqual({ a: 4, b: 4, c: 4 });
    // Even now: the next three go one to each.
    expect(new Set(Array.from({ length: 3 }, (_, i) => hold(b, `d${i}`).name))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('a server whose sessions end gets the next connections', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }]);
    const held: [Server, string][] = [];
    for (let i = 0; i < 10; i++) held.push([hold(b, `c${i}`), `c${i}`]);
    expect(active(b)).toEqual({ a: 5, b: 5 });
    for (const [s, key] of held.filter(([s]) => s.name === 'b').slice(0, 3)) b.release(s, key);
    expect(active(b)).toEqual({ a: 5, b: 2 });
    expect([hold(b, 'n1').name, hold(b, 'n2').name, hold(b, 'n3').name]).toEqual(['b', 'b', 'b']);
  });

  it('loads servers in proportion to their weights', () => {
    const b = backend([{ name: 'big', weight: 3 }, { name: 'small', weight: 1 }]);
    for (let i = 0; i < 40; i++) hold(b, `c${i}`);
    expect(active(b)).toEqual({ big: 30, small: 10 });
  });

  it('shares ties evenly when connections are short (nothing held)', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const s = b.choose(`c${i}`, null)!;
      counts[s.name] = (counts[s.name] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 100, b: 100, c: 100 });
  });

  it('shares ties evenly among the servers left when one between them is out of service', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }]);
    b.server('b')!.setAdmin('maint', 'test');
    const counts: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const s = b.choose(`c${i}`, null)!;
      counts[s.name] = (counts[s.name] ?? 0) + 1;
    }
    expect(counts).toEqual({ a: 100, c: 100, d: 100 });
  });

  it('skips servers that are not usable and those already tried for this connection', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    b.server('b')!.setAdmin('maint', 'test');
    const a = b.server('a')!;
    for (let i = 0; i < 20; i++) expect(b.choose(`c${i}`, [a])!.name).toBe('c');
  });
});
