import { describe, expect, it } from 'vitest';
import type { Linked } from '../../src/io/intrusive-list.js';
import { SessionList } from '../../src/proxy/session-list.js';

class Member implements Linked<Member> {
  listPrev: Member | null = null;
  listNext: Member | null = null;
  constructor(readonly id: number) {}
}

const ids = (l: SessionList<Member>): number[] => {
  const out: number[] = [];
  l.forEach((m) => out.push(m.id));
  return out;
};

describe('SessionList', () => {
  it('keeps members in joining order and counts them; leaving twice changes nothing', () => {
    const l = new SessionList<Member>();
    const m = [1, 2, 3, 4].map((i) => new Member(i));
    for (const x of m) l.add(x);
    expect(ids(l)).toEqual([1, 2, 3, 4]);
    l.delete(m[1]!);
    l.delete(m[1]!);
    l.delete(new Member(9));
    expect(ids(l)).toEqual([1, 3, 4]);
    expect(l.size).toBe(3);
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
