import { describe, expect, it } from 'vitest';
import type { LineSink } from '../../src/observe/line-batch.js';
import { PrettyLines, renderPretty } from '../../src/observe/pretty-lines.js';

describe('renderPretty', () => {
  it('prints time of day, level name, message, then the fields other than name', () => {
    const line = JSON.stringify({ level: 40, time: '2026-12-03T06:27:49.983Z', name: 'licgate', msg: 'server licenses/primary is DOWN', server: 'primary', check: { code: 'ECONNREFUSED' }, retries: 0 });
    expect(renderPretty(`${line}\n`)).toBe('06:27:49.983 WARN server licenses/primary is DOWN  server=primary check={"code":"ECONNREFUSED"} retries=0\n');
  });

  it('prints a line with no fields without the separator', () => {
    expect(renderPretty(JSON.stringify({ level: 30, time: '2026-12-03T06:27:56.590Z', name: 'licgate', msg: 'stopped' }))).toBe('06:27:56.590 INFO stopped\n');
  });

  it('shows control characters from the network escaped: no terminal escape sequence, no forged line', () => {
    const line = JSON.stringify({ level: 30, time: '2026-12-03T06:27:49.983Z', msg: 'agent says "drain"', reason: 'agent says "\u001b[2J\u001b]0;owned\u0007up\n06:27:50.000 INFO fake"' });
    expect(renderPretty(line)).toBe('06:27:49.983 INFO agent says "drain"  reason=agent says "\\x1b[2J\\x1b]0;owned\\x07up\\x0a06:27:50.000 INFO fake"\n');
  });

  it('passes a line that is not JSON through unchanged', () => {
    expect(renderPretty('not json\n')).toBe('not json\n');
  });
});

describe('PrettyLines', () => {
  it('hands each rendered line to its sink and passes flushes through', () => {
    const seen: string[] = [];
    let flushes = 0;
    let syncFlushes = 0;
    const sink: LineSink = { write: (s) => seen.push(s) > 0, flush: (cb) => (flushes++, cb?.()), flushSync: () => void syncFlushes++ };
    const pretty = new PrettyLines(sink);
    pretty.write(`${JSON.stringify({ level: 30, time: '2026-12-03T00:00:00.001Z', msg: 'a' })}\n`);
    pretty.write(`${JSON.stringify({ level: 50, time: '2026-12-03T00:00:00.002Z', msg: 'b', n: 1 })}\n`);
    pretty.flush();
    pretty.flushSync();
    expect(seen).toEqual(['00:00:00.001 INFO a\n', '00:00:00.002 ERROR b  n=1\n']);
    expect([flushes, syncFlushes]).toEqual([1, 1]);
  });
});
