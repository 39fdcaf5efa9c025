import { describe, expect, it } from 'vitest';
import { LineBatch, type LineSink } from '../../src/observe/line-batch.js';

function recordingSink(): LineSink & { writes: string[]; calls: string[] } {
  const writes: string[] = [];
  const calls: string[] = [];
  return {
    writes,
    calls,
    write(chunk) {
      writes.push(chunk);
      calls.push('write');
      return true;
    },
    flush(cb) {
      calls.push('flush');
      cb?.();
    },
    flushSync() {
      calls.push('flushSync');
    },
  };
}

/** 50 characters, newline included. */
const line = (i: number): string => `{"n":"${String(i).padStart(3, '0')}","msg":"${'x'.repeat(29)}"}\n`;

describe('LineBatch', () => {
  it('holds lines until `size` characters, then hands them on in order as one write', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 1000);
    const lines = Array.from({ length: 59 }, (_, i) => line(i));
    expect(lines.every((l) => l.length === 50)).toBe(true);
    for (const l of lines) batch.write(l);
    // The 20th line reaches 1000 characters, the 40th 2000; the last 19 are still held.
    expect(sink.writes).toEqual([lines.slice(0, 20).join(''), lines.slice(20, 40).join('')]);
    batch.flush();
    expect(sink.writes).toHaveLength(3);
    expect(sink.writes.join('')).toBe(lines.join(''));
  });

  it('flush hands on what is held, then flushes the sink; with nothing held it writes nothing', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 1 << 20);
    batch.write(line(1));
    batch.write(line(2));
    expect(sink.writes).toEqual([]);
    let called = false;
    batch.flush(() => (called = true));
    expect(sink.writes).toEqual([line(1) + line(2)]);
    expect(called).toBe(true);
    batch.flush();
    expect(sink.calls).toEqual(['write', 'flush', 'flush']);
  });

  it('flushSync hands on what is held before the sink writes everything synchronously', () => {
    const sink = recordingSink();
    const batch = new LineBatch(sink, 1 << 20);
    batch.write(line(7));
    batch.flushSync();
    expect(sink.calls).toEqual(['write', 'flushSync']);
    expect(sink.writes).toEqual([line(7)]);
  });
});
