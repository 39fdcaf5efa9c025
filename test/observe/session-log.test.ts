import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observe/log.js';
import { sessionLogger } from '../../src/observe/session-log.js';
import type { SessionRecord } from '../../src/proxy/session.js';

function capture(): { lines: string[]; dest: Writable } {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, dest };
}

const records: SessionRecord[] = [
  { client: '127.0.0.1:50000', frontend: 'lmgrd', backend: 'licenses', server: 'lic1', bytes_in: 78, bytes_out: 1200, duration_ms: 3, end: 'closed', retries: 0 },
  { client: '::1:1', frontend: 'fe "quoted"', backend: 'b\\slash', server: null, bytes_in: 0, bytes_out: 0, duration_ms: 3001, end: 'no-server', retries: 2, error: 'lic2: connect timeout after 3000ms (after 3 attempts)\n\u0001 ünïcode' },
  { client: '10.0.0.9:2', frontend: 'f', backend: 'b', server: 's', bytes_in: 1, bytes_out: 2, duration_ms: 0, end: 'server-reset', retries: 1 },
  // A link-local client: the zone is the interface name, which on Linux may hold '"' and '\\' (`ip link add 'a"b\\c' type dummy`).
  { client: '[fe80::2%a"b\\c]:50123', frontend: 'f', backend: 'b', server: 's', bytes_in: 1, bytes_out: 2, duration_ms: 0, end: 'closed', retries: 0 },
];

const withoutTime = (line: string): string => line.replace(/"time":"[^"]*"/, '"time":"T"');

describe('the session-closed log line', () => {
  it('is byte for byte what pino writes for log.info(record, "session closed"), with the daemon\'s logger', () => {
    const { lines, dest } = capture();
    const log = createLogger({ level: 'info', format: 'json' }, dest);
    const fast = sessionLogger(log);
    for (const rec of records) {
      log.info(rec, 'session closed');
      fast(rec);
    }
    expect(lines).toHaveLength(records.length * 2);
    for (let i = 0; i < lines.length; i += 2) {
      expect(withoutTime(lines[i + 1]!)).toBe(withoutTime(lines[i]!));
      expect(JSON.parse(lines[i + 1]!)).toMatchObject({ ...records[i / 2], msg: 'session closed', level: 30, name: 'licgate' });
    }
  });

  it('stamps each line with the time it was written (the formatted stamp is reused only within one millisecond)', async () => {
    const { lines, dest } = capture();
    const fast = sessionLogger(createLogger({ level: 'info', format: 'json' }, dest));
    const stamps: Array<[number, number, number]> = [];
    for (let i = 0; i < 3; i++) {
      const before = Date.now();
      fast(records[0]!);
      const after = Date.now();
      stamps.push([before, Date.parse((JSON.parse(lines[i]!) as { time: string }).time), after]);
      const next = Date.now() + 2;
      while (Date.now() < next) await new Promise((r) => setImmediate(r));
    }
    for (const [before, t, after] of stamps) {
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThanOrEqual(after);
    }
    expect(new Set(stamps.map(([, t]) => t)).size).toBe(3);
  });

  it('keeps a child logger\'s bindings and obeys the level (nothing below info is written when level is warn)', () => {
    const { lines, dest } = capture();
    const log = pino({ level: 'info', timestamp: () => ',"time":"fixed"' }, dest).child({ role: 'proxy' });
    const fast = sessionLogger(log);
    log.info(records[0]!, 'session closed');
    fast(records[0]!);
    expect(lines[1]).toBe(lines[0]);
    log.level = 'warn';
    fast(records[0]!);
    expect(lines).toHaveLength(2);
  });
});
