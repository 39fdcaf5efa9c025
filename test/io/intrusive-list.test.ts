import { describe, expect, it } from 'vitest';
import { IntrusiveList, type Linked } from '../../src/io/intrusive-list.js';

class Member implements Linked<Member> {
  listPrev: Member | null = null;
  listNext: Member | null = null;
  constructor(readonly id: number) {}
}

const ids = (l: IntrusiveList<Member>): number[] => {
  const out: number[] = [];
  for (let x = l.head; x !== null; x = x.listNext) out.push(x.id);
  return out;
};

describe('IntrusiveList', () => {
  it('keeps members in joining order, counts them, and clears the links of one that leaves', () => {
    const l = new IntrusiveList<Member>();
    const m = [1, 2, 3, 4].map((i) => new Member(i));
    for (const x of m) l.push(x);
    expect(ids(l)).toEqual([1, 2, 3, 4]);
    expect(l.size).toBe(4);
    l.remove(m[1]!); // a middle one
    l.remove(m[0]!); // the head
    l.remove(m[3]!); // the tail
    expect(ids(l)).toEqual([3]);
    expect(l.size).toBe(1);
    expect([l.has(m[2]!), l.has(m[1]!)]).toEqual([true, false]);
    for (const x of [m[0]!, m[1]!, m[3]!]) expect([x.listPrev, x.listNext]).toEqual([null, null]);
    // Leaving twice, or a member never added, changes nothing.
    l.remove(m[1]!);
    l.remove(new Member(9));
    expect(ids(l)).toEqual([3]);
    expect(l.size).toBe(1);
    l.remove(m[2]!);
    expect([l.size, l.head]).toEqual([0, null]);
    l.push(m[0]!);
    l.push(m[3]!);
    expect(ids(l)).toEqual([1, 4]);
    // push links the member it appends back to the one before.
    expect(m[3]!.listPrev).toBe(m[0]);
  });
});
