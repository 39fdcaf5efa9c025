import { describe, expect, it } from 'vitest';
import { PeerEventSummary, type PeerEventTally } from '../../src/observe/peer-event-summary.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';

const INTERVAL_MS = 300;

function summary(): { s: PeerEventSummary; lines: PeerEventTally[] } {
  const lines: PeerEventTally[] = [];
  return { s: new PeerEventSummary((t) => lines.push(t), INTERVAL_MS), lines };
}

describe('PeerEventSummary', () => {
  it('writes the first event at once, and those after it in one line when the interval ends, though no event follows', async () => {
    const { s, lines } = summary();
    const first = performance.now();
    s.note('10.0.0.1', 'timeout');
    expect(lines).toEqual([{ count: 1, lastReason: 'timeout', top: '10.0.0.1', topCount: 1 }]);
    s.note('10.0.0.2', 'too-long');
    s.note('10.0.0.2', 'too-long');
    s.note('10.0.0.3', 'timeout');
    expect(lines).toHaveLength(1);
    await waitFor(() => lines.length === 2, { timeoutMs: 3000, what: 'the line for the three events after the first' });
    expect(performance.now() - first).toBeGreaterThanOrEqual(INTERVAL_MS - 1);
    expect(lines[1]).toEqual({ count: 3, lastReason: 'timeout', top: '10.0.0.2', topCount: 2 });
    await holdsFor(() => lines.length === 2, { forMs: 2 * INTERVAL_MS, what: 'no line without events' });
  });

  it('an event long after the last line is written at once', async () => {
    const { s, lines } = summary();
    s.note('10.0.0.1');
    await holdsFor(() => lines.length === 1, { forMs: INTERVAL_MS + 50, what: 'one line' });
    s.note('10.0.0.4');
    expect(lines).toEqual([
      { count: 1, lastReason: undefined, top: '10.0.0.1', topCount: 1 },
      { count: 1, lastReason: undefined, top: '10.0.0.4', topCount: 1 },
    ]);
  });

  it('tallies IPv6 peers by their /64, as their share is counted', async () => {
    const { s, lines } = summary();
    s.note('10.0.0.1');
    for (let i = 1; i <= 3; i++) s.note(`2001:db8:1:2::${i}`);
    s.note('10.0.0.9');
    s.note('10.0.0.9');
    await waitFor(() => lines.length === 2, { timeoutMs: 3000, what: 'the second line' });
    expect(lines[1]).toMatchObject({ count: 5, top: '2001:db8:1:2::/64', topCount: 3 });
  });

  it('close() writes what waits at once and leaves no line to come', async () => {
    const { s, lines } = summary();
    s.note('10.0.0.1');
    s.note(undefined);
    s.note(undefined);
    s.close();
    expect(lines).toEqual([
      { count: 1, lastReason: undefined, top: '10.0.0.1', topCount: 1 },
      { count: 2, lastReason: undefined, top: 'unknown', topCount: 2 },
    ]);
    await holdsFor(() => lines.length === 2, { forMs: 2 * INTERVAL_MS, what: 'no line after close()' });
    s.close();
    expect(lines).toHaveLength(2);
  });
});
