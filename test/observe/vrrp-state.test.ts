import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVrrpState, readVrrpState } from '../../src/observe/vrrp-state.js';
import { keepalivedReports } from '../helpers/vrrp-notify-hook.js';

describe('parseVrrpState', () => {
  it('reads the line the notify hook writes', () => {
    expect(parseVrrpState('INSTANCE VI_LICGATE MASTER 150 2026-12-04T23:00:00Z\n')).toEqual({
      type: 'INSTANCE',
      name: 'VI_LICGATE',
      state: 'MASTER',
      priority: 150,
      since: '2026-12-04T23:00:00Z',
    });
  });

  it('says what it expected and what it found', () => {
    expect(parseVrrpState('MASTER')).toBe('expected "TYPE NAME STATE PRIORITY TIMESTAMP" (as licgate-vrrp-notify.sh writes it), found "MASTER"');
    expect(parseVrrpState('INSTANCE VI_LICGATE LEADER 150 2026-12-04T23:00:00Z')).toBe('expected a state of MASTER, BACKUP, FAULT, STOP, DELETED, found "LEADER"');
    expect(parseVrrpState('INSTANCE VI_LICGATE MASTER 300 2026-12-04T23:00:00Z')).toBe('expected a priority of 0-255, found 300');
    expect(parseVrrpState('x'.repeat(500))).toMatch(/found "x{80}…"$/);
  });
});

describe('readVrrpState', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-vrrp-state-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads what the shipped notify script writes, at each transition', async () => {
    const file = join(dir, 'vrrp-state');
    for (const [state, prio] of [['BACKUP', '100'], ['MASTER', '100'], ['FAULT', '0']] as const) {
      keepalivedReports(file, state, prio);
      const report = await readVrrpState(file);
      expect(report).toMatchObject({ file, error: null, role: { type: 'INSTANCE', name: 'VI_LICGATE', state, priority: Number(prio) } });
      expect(Math.abs(Date.parse(report.role!.since) - Date.now())).toBeLessThan(60_000);
    }
  });

  it('no file yet: no role, and why', async () => {
    expect(await readVrrpState(join(dir, 'missing'))).toEqual({
      file: join(dir, 'missing'),
      role: null,
      error: 'no state yet: keepalived has not reported a role (is it running, with the notify hook?)',
    });
  });

  it('an empty, malformed or oversized file: no role, and why', async () => {
    const file = join(dir, 'bad');
    writeFileSync(file, '');
    expect((await readVrrpState(file)).error).toBe('the state file is empty');
    writeFileSync(file, 'MASTER\n');
    expect((await readVrrpState(file)).error).toMatch(/^expected "TYPE NAME STATE PRIORITY TIMESTAMP"/);
    writeFileSync(file, 'INSTANCE VI_LICGATE MASTER 150 2026-12-04T23:00:00Z\n'.repeat(100));
    expect(await readVrrpState(file)).toMatchObject({ role: null, error: 'expected one line of state, found a file over 4096 bytes' });
  });

  it('a path that is not a regular file: no role, and what it is, without waiting for a FIFO writer', async () => {
    const directory = await readVrrpState(dir);
    // Each /status or scrape waited for a writer, on a thread of libuv's pool of 8 that DNS also uses.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    try {
      const r = await Promise.race([readVrrpState(fifo), new Promise((resolve) => setTimeout(resolve, 3000, 'no answer in 3 s'))]);
      expect([directory, r]).toEqual([
        { file: dir, role: null, error: `expected a regular file at ${dir}, found a directory` },
        { file: fifo, role: null, error: `expected a regular file at ${fifo}, found a FIFO` },
      ]);
    } finally {
      // Lets a read still waiting for a writer (the old code) end, rather than hold the thread.
      closeSync(openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK));
    }
  });
});
