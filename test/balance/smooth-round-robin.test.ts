import { describe, expect, it } from 'vitest';
import { SmoothRoundRobin } from '../../src/balance/smooth-round-robin.js';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

/** A real backend (one tier) built through the config loader, so weights are validated as in production. */
function backend(weights: Record<string, number>): Backend {
  const servers = Object.entries(weights)
    .map(([name, w], i) => `      - { name: ${name}, address: "127.0.0.1:${20000 + i}", weight: ${w} }`)
    .join('\n');
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }\nbackends:\n  - name: b\n    check: { type: tcp }\n    servers:\n${servers}\n`, 'swrr.yaml');
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

function picks(b: Backend, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += b.choose('10.0.0.1', null)?.name ?? '-';
  return out;
}

describe('smooth weighted round-robin', () => {
  it('weights 5,1,1 give exactly a a b a c a a, repeating', () => {
    expect(picks(backend({ a: 5, b: 1, c: 1 }), 7 * 4)).toBe('aabacaa'.repeat(4));
  });

  it('weights 100,50 give a b a, repeating: two a to one b, never two b or three a in a row', () => {
    const seq = picks(backend({ a: 100, b: 50 }), 300);
    expect(seq).toBe('aba'.repeat(100));
    // The same cycle as "a a b" (rotated by one); what matters is the 2:1 spread without bursts.
    expect(seq.slice(1, 301) + seq[0]).toBe('baa'.repeat(100));
    expect(seq).not.toMatch(/bb|aaa/);
  });

  it('equal weights alternate strictly', () => {
    expect(picks(backend({ a: 1, b: 1, c: 1 }), 9)).toBe('abcabcabc');
  });

  it('never picks a server of weight 0, in config or set at run time', () => {
    const b = backend({ a: 0, b: 3, c: 1 });
    expect(picks(b, 40)).not.toContain('a');
    // 40 picks are 10 whole cycles of 3+1, so the next ones start a cycle again: b b c b.
    expect(picks(b, 8)).toBe('bbcbbbcb');
    b.server('b')!.setWeight(0, 'test');
    expect(picks(b, 10)).toBe('cccccccccc');
    b.server('c')!.setWeight(0, 'test');
    expect(b.choose('10.0.0.1', null)).toBeNull();
  });

  it('follows a runtime weight change from the next pick', () => {
    const b = backend({ a: 1, b: 1 });
    expect(picks(b, 4)).toBe('abab');
    b.server('a')!.setWeight(3, 'test');
    const seq = picks(b, 400);
    expect([...seq].filter((c) => c === 'a').length).toBe(300);
  });

  it('skips a server that is not usable and keeps the others in their smooth order', () => {
    const b = backend({ a: 5, b: 1, c: 1 });
    const down = b.server('c')!;
    for (let i = 0; i < 3; i++) down.checkFailed({ ok: false, reason: 'test', durationMs: 0, at: 0 });
    expect(down.usable).toBe(false);
    const seq = picks(b, 600);
    expect(seq).not.toContain('c');
    expect([...seq].filter((x) => x === 'a').length).toBe(500);
    expect(seq).not.toMatch(/bb/);
  });

  it('works on its own over any list and predicate, without allocating per pick', () => {
    const b = backend({ a: 2, b: 1 });
    const rr = new SmoothRoundRobin();
    const list: readonly Server[] = b.servers;
    let s = '';
    for (let i = 0; i < 6; i++) s += rr.pick(list, () => true)!.name;
    expect(s).toBe('abaaba');
    expect(rr.pick(list, () => false)).toBeNull();
  });
});

describe('smooth weighted round-robin after a weight change', () => {
  it('a heavy server lowered to the weight of the other alternates with it at once, with no burst from its old score', () => {
    const b = backend({ a: 1, b: 100 });
    expect([...picks(b, 101)].filter((c) => c === 'a')).toHaveLength(1);
    // Just after a's pick the scores are about a -100, b +100.
    while (picks(b, 1) !== 'a');
    b.server('b')!.setWeight(1, 'admin');
    expect(picks(b, 20)).toBe('ab'.repeat(10));
  });

  it('an agent scaling its server down (out of tokens) gets a fresh cycle too', () => {
    const b = backend({ a: 100, b: 100 });
    b.server('a')!.setAgent({ state: 'up', weightPercent: 1, maxconn: null, reason: 'agent says "1%"' }, 'agent');
    while (picks(b, 1) !== 'a');
    b.server('b')!.setAgent({ state: 'up', weightPercent: 1, maxconn: null, reason: 'agent says "1%"' }, 'agent');
    expect(picks(b, 20)).toMatch(/^(ab){10}$|^(ba){10}$/);
  });

  it('keeps the spread of the new weights from there on', () => {
    const b = backend({ a: 5, b: 1, c: 1 });
    picks(b, 3);
    b.server('c')!.setWeight(5, 'admin');
    const seq = picks(b, 11 * 3);
    expect([...seq].filter((c) => c === 'a')).toHaveLength(15);
    expect([...seq].filter((c) => c === 'c')).toHaveLength(15);
    expect(seq).not.toMatch(/aaa|ccc|bb/);
  });
});
