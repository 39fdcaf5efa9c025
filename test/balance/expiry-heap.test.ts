import { describe, expect, it } from 'vitest';
import { ExpiryHeap } from '../../src/balance/expiry-heap.js';

describe('ExpiryHeap', () => {
  it('pops keys soonest first, keeps the order through a shift, and compacts to the lines kept', () => {
    const h = new ExpiryHeap();
    const xs = [50, 10, 40, 10, 30, 20, 60, 0];
    xs.forEach((x, i) => h.push(`k${i}`, x));
    h.shift(5);
    h.compact((k) => k !== 'k6');
    const out: [string, number][] = [];
    while (h.length > 0) {
      out.push([h.topKey, h.top]);
      h.pop();
    }
    expect(out.map(([, x]) => x)).toEqual([5, 15, 15, 25, 35, 45, 55]);
    expect(out.map(([k]) => k).sort()).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k7']);
    expect(h.top).toBe(Infinity);
  });
});
