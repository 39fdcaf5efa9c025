import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

  it('a path that is not a readable file: no role, and the reason', async () => {
    const r = await readVrrpState(dir);
    expect(r.role).toBeNull();
    expect(r.error).toMatch(/^cannot read the state file: .*EISDIR/);
  });
});
