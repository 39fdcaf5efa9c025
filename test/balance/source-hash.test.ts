import { describe, expect, it } from 'vitest';
import { SourceHash } from '../../src/balance/source-hash.js';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

function backend(servers: { name: string; weight?: number }[]): Backend {
  const cfg = loadConfigText(
    `backends:
  - name: licenses
    balance: source
    check: { type: none }
    servers:
${servers.map((s, i) => `      - { name: ${s.name}, address: 127.0.0.1:${1000 + i}, weight: ${s.weight ?? 1} }`).join('\n')}
status: { listen: 127.0.0.1:0 }
`,
    'source.yaml',
  );
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

const clients = Array.from({ length: 6000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

function mapping(pick: (key: string) => Server | null): Map<string, string> {
  return new Map(clients.map((c) => [c, pick(c)!.name]));
}

function shares(m: Map<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m.values()) out[s] = (out[s] ?? 0) + 1 / m.size;
  return out;
}

describe('SourceHash (weighted rendezvous)', () => {
  it('is deterministic: the same client gets the same server from any instance', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const other = new SourceHash();
    for (const c of clients.slice(0, 500)) expect(other.pick(b.servers, () => true, c)).toBe(b.choose(c, null));
  });

  it('spreads clients by weight', () => {
    const three = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const equal = shares(mapping((c) => three.choose(c, null)));
    for (const s of ['a', 'b', 'c']) expect(Math.abs(equal[s]! - 1 / 3)).toBeLessThan(0.03);
    const b = backend([{ name: 'big', weight: 3 }, { name: 'small', weight: 1 }]);
    const weighted = shares(mapping((c) => b.choose(c, null)));
    expect(Math.abs(weighted.big! - 0.75)).toBeLessThan(0.03);
  });

  it("losing a server moves only that server's clients, and its return moves exactly those back", () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const before = mapping((c) => b.choose(c, null));
    b.server('b')!.setAdmin('maint', 'test');
    const during = mapping((c) => b.choose(c, null));
    let moved = 0;
    for (const c of clients) {
      if (before.get(c) === 'b') {
        expect(during.get(c)).not.toBe('b');
        moved++;
      } else expect(during.get(c)).toBe(before.get(c));
    }
    expect(moved).toBeGreaterThan(clients.length / 4);
    // The moved clients spread over both survivors, not all onto one.
    const to = shares(new Map([...during].filter(([c]) => before.get(c) === 'b')));
    expect(to.a).toBeGreaterThan(0.35);
    expect(to.c).toBeGreaterThan(0.35);
    b.server('b')!.setAdmin('ready', 'test');
    expect(mapping((c) => b.choose(c, null))).toEqual(before);
  });

  it('a retry excludes the tried server the same way a DOWN server is excluded', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const before = mapping((c) => b.choose(c, null));
    b.server('c')!.setAdmin('maint', 'test');
    const without = mapping((c) => b.choose(c, null));
    b.server('c')!.setAdmin('ready', 'test');
    const c = b.server('c')!;
    for (const key of clients) {
      if (before.get(key) === 'c') expect(b.choose(key, [c])!.name).toBe(without.get(key));
    }
  });

  it('a weight change moves clients only towards the server that gained weight', () => {
    const b = backend([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    const before = mapping((c) => b.choose(c, null));
    b.server('a')!.setWeight(2, 'test');
    const after = mapping((c) => b.choose(c, null));
    let moved = 0;
    for (const c of clients) {
      if (after.get(c) !== before.get(c)) {
        expect(after.get(c)).toBe('a');
        moved++;
      }
    }
    // a's share goes from 1/3 to 1/2: about 1/6 of all clients move.
    expect(Math.abs(moved / clients.length - 1 / 6)).toBeLessThan(0.03);
  });
});
