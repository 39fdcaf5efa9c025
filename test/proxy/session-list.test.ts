import { describe, expect, it } from 'vitest';
import { SessionList, type Listed } from '../../src/proxy/session-list.js';

class Member implements Listed {
  slPrev: Listed | null = null;
  slNext: Listed | null = null;
  constructor(readonly id: number) {}
}

const ids = (l: SessionList<Member>): number[] => {
  const out: number[] = [];
  l.forEach((m) => out.push(m.id));
  return out;
};

describe('SessionList', () => {
  it('keeps members in joining order, counts them, and clears the links of one that leaves', () => {
    const l = new SessionList<Member>();
    const m = [1, 2, 3, 4].map((i) => new Member(i));
    for (const x of m) l.add(x);
    expect(ids(l)).toEqual([1, 2, 3, 4]);
    expect(l.size).toBe(4);
    l.delete(m[1]!);
    l.delete(m[0]!);
    l.delete(m[3]!);
    expect(ids(l)).toEqual([3]);
    expect(l.size).toBe(1);
    for (const x of [m[0]!, m[1]!, m[3]!]) expect([x.slPrev, x.slNext]).toEqual([null, null]);
    // Leaving twice, or a member never added, changes nothing.
    l.delete(m[1]!);
    l.delete(new Member(9));
    expect(ids(l)).toEqual([3]);
    expect(l.size).toBe(1);
    l.delete(m[2]!);
    expect(l.size).toBe(0);
    expect(ids(l)).toEqual([]);
    l.add(m[0]!);
    expect(ids(l)).toEqual([1]);
  });

  it('forEach visits as a Set would when members leave or join during the visit', () => {
    const l = new SessionList<Member>();
    const m = [1, 2, 3, 4, 5].map((i) => new Member(i));
    for (const x of m) l.add(x);
    const seen: number[] = [];
    l.forEach((x) => {
      seen.push(x.id);
      if (x.id === 1) l.delete(x); // the one visited ends
      if (x.id === 2) l.delete(m[2]!); // ending one ends the next (a woken queued connect that fails)
      if (x.id === 4) l.add(new Member(6)); // one joins: visited too
    });
    expect(seen).toEqual([1, 2, 4, 5, 6]);
    expect(ids(l)).toEqual([2, 4, 5, 6]);
    expect(l.size).toBe(4);
  });

  it('forEach inside forEach: members the inner visit ends are skipped by the outer one too', () => {
    const l = new SessionList<Member>();
    const m = [1, 2, 3, 4].map((i) => new Member(i));
    for (const x of m) l.add(x);
    const outer: number[] = [];
    const inner: number[] = [];
    l.forEach((x) => {
      outer.push(x.id);
      if (x.id === 1) l.forEach((y) => { inner.push(y.id); if (y.id === 2) l.delete(y); });
    });
    expect(inner).toEqual([1, 2, 3, 4]);
    expect(outer).toEqual([1, 3, 4]);
    expect(ids(l)).toEqual([1, 3, 4]);
  });

  it('forEach after a visitor threw starts again from the first member', () => {
    const l = new SessionList<Member>();
    for (const i of [1, 2, 3]) l.add(new Member(i));
    expect(() => l.forEach((x) => { if (x.id === 2) throw new Error('boom'); })).toThrow('boom');
    expect(ids(l)).toEqual([1, 2, 3]);
  });
});
