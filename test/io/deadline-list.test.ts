import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { DeadlineList, type Expiring } from '../../src/io/deadline-list.js';
import { waitFor } from '../helpers/wait-for.js';

class Entry implements Expiring {
  deadline = 0;
  listPrev: Expiring | null = null;
  listNext: Expiring | null = null;
  firedAt = -1;
  constructor(private readonly onExpire: (e: Entry) => void = () => {}) {}
  expire(): void {
    this.firedAt = performance.now();
    this.onExpire(this);
  }
}

const until = (cond: () => boolean, ms: number): Promise<unknown> => waitFor(cond, { timeoutMs: ms, intervalMs: 5, what: 'deadline list condition' });

describe('DeadlineList (one timer for every connect attempt of one connect_timeout)', () => {
  it('expires entries in order, each at its own deadline, and never one that was removed', async () => {
    const list = new DeadlineList(100);
    const t0 = performance.now();
    const a = new Entry();
    const b = new Entry();
    const c = new Entry();
    list.add(a);
    await until(() => performance.now() - t0 >= 40, 1000);
    list.add(b);
    list.add(c);
    list.remove(b); // connected in time
    list.remove(b); // removing twice is harmless
    await until(() => c.firedAt > 0, 2000);
    expect(a.firedAt - t0).toBeGreaterThanOrEqual(99);
    expect(c.firedAt - t0).toBeGreaterThanOrEqual(139);
    expect(c.firedAt - a.firedAt).toBeGreaterThanOrEqual(35);
    expect(b.firedAt).toBe(-1);
  });

  it('an entry re-added by expire() (a retry) does not delay the entries already waiting', async () => {
    // The bug this guards: the retry armed a fresh full-length timer while the list was firing,
    // and the entry due 20 ms later then waited a whole extra timeout.
    const list = new DeadlineList(200);
    const t0 = performance.now();
    const retry = new Entry();
    const first = new Entry(() => list.add(retry));
    const second = new Entry();
    list.add(first);
    await until(() => performance.now() - t0 >= 20, 1000);
    list.add(second);
    await until(() => second.firedAt > 0, 3000);
    expect(second.firedAt - t0).toBeGreaterThanOrEqual(219);
    expect(second.firedAt - t0).toBeLessThan(350);
    await until(() => retry.firedAt > 0, 3000);
    expect(retry.firedAt - first.firedAt).toBeGreaterThanOrEqual(199);
  });
});
