import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLmstat } from '../../../src/health/parse/lmstat.js';
import { lmstatVerdict, type MachineIdentity } from '../../../src/health/probes/lmstat-local-verdict.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../../shared/fixtures/lmstat/${name}`, import.meta.url), 'utf8');

const down = parseLmstat(fixture('lmstat_server_down.txt'));
const HOST3_DOWN = 'lmgrd on host3 DOWN: Cannot connect to license server system. (-15,570:115 "Operation now in progress")';
const host3: MachineIdentity = { hostname: 'host3.lab.example', addresses: ['10.0.0.13', 'fe80::13'] };

/** A one-server capture; the server line names `name`. */
function single(name: string): string {
  return [
    'License server status: 27000@' + name,
    `${name}: license server UP (MASTER) v11.19.0`,
    'Vendor daemon status (on ' + name + '):',
    '  MLM: UP v11.19.0',
    'Feature usage info:',
    'Users of MATLAB:  (Total of 10 licenses issued;  Total of 1 license in use)',
  ].join('\n');
}

describe('lmstatVerdict: which lmstat server is the one this check guards', () => {
  it('a named server is matched by name, short name and case', () => {
    expect(lmstatVerdict(down, 'host3', host3)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, 'HOST3.lab.example', host3)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, 'host2', host3).ok).toBe(true);
  });

  it('loopback means this machine: found by its hostname (FQDN against the short SERVER name)', () => {
    expect(lmstatVerdict(down, '127.0.0.1', host3)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, '::1', host3)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, 'localhost', { hostname: 'host1', addresses: [] })).toEqual({ ok: true, standby: true, master: 'host2', reason: 'triad standby: host2 is MASTER [2/3 servers UP]' });
    expect(lmstatVerdict(down, 'localhost', { hostname: 'host2', addresses: [] })).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor daemon UP, 2 features' });
  });

  it('one of this machine\'s own addresses also means this machine', () => {
    expect(lmstatVerdict(down, '10.0.0.13', host3)).toEqual({ ok: false, reason: HOST3_DOWN });
  });

  it('an address of this machine written another way, or link-local with its zone, is this machine', () => {
    const me: MachineIdentity = { hostname: 'host3.lab.example', addresses: ['fd00::13', 'fe80::13'] };
    expect(lmstatVerdict(down, 'fd00:0::13', me)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, 'FD00::13', me)).toEqual({ ok: false, reason: HOST3_DOWN });
    expect(lmstatVerdict(down, 'fe80::13%eth0', me)).toEqual({ ok: false, reason: HOST3_DOWN });
    // The license file's SERVER line may spell it differently too.
    const byIp = parseLmstat(fixture('lmstat_server_down.txt').replaceAll('host1', 'fd00::11').replaceAll('host2', 'fd00::12').replaceAll('host3', 'FD00:0::13'));
    expect(lmstatVerdict(byIp, '127.0.0.1', me).reason).toBe('lmgrd on FD00:0::13 DOWN: Cannot connect to license server system. (-15,570:115 "Operation now in progress")');
  });

  it('a license file that names servers by address is matched against this machine\'s addresses', () => {
    const byIp = parseLmstat(fixture('lmstat_server_down.txt').replaceAll('host1', '10.0.0.11').replaceAll('host2', '10.0.0.12').replaceAll('host3', '10.0.0.13'));
    expect(lmstatVerdict(byIp, '127.0.0.1', { hostname: 'ignored', addresses: ['10.0.0.13'] }).reason).toBe(
      'lmgrd on 10.0.0.13 DOWN: Cannot connect to license server system. (-15,570:115 "Operation now in progress")',
    );
    // An address is never matched by its "short name": 10.0.0.1 is not 10.0.0.13.
    expect(lmstatVerdict(byIp, '127.0.0.1', { hostname: '10', addresses: ['10.0.0.1'] }).reason).toMatch(/^cannot tell which of 10\.0\.0\.11, 10\.0\.0\.12, 10\.0\.0\.13 is this host \(10\)/);
  });

  it('a single-server capture is that server even when it does not name this machine', () => {
    const info = parseLmstat(single('licsrv-old-name'));
    expect(lmstatVerdict(info, '127.0.0.1', host3)).toEqual({ ok: true, reason: 'lmgrd UP (MASTER), vendor MLM UP, 1 feature' });
  });

  it('of members that share a short name in different domains, this machine is the one spelt as its hostname, else none', () => {
    const site = (text: string): string =>
      text.replaceAll('host1', 'flexlm.ber.example.com').replaceAll('host2', 'flexlm.muc.example.com').replaceAll('host3', 'flexlm.ham.example.com');
    const triad = parseLmstat(site(fixture('lmstat_server_down.txt')));
    expect(lmstatVerdict(triad, '127.0.0.1', { hostname: 'flexlm.ham.example.com', addresses: [] })).toEqual({ ok: false, reason: site(HOST3_DOWN) });
    expect(lmstatVerdict(triad, '127.0.0.1', { hostname: 'FLEXLM.muc.example.com', addresses: [] })).toMatchObject({ ok: true, reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor daemon UP, 2 features' });
    // A hostname that gives only the short name (or the distribution's "localdomain") names all three.
    for (const hostname of ['flexlm', 'flexlm.localdomain']) {
      expect(lmstatVerdict(triad, 'localhost', { hostname, addresses: [] })).toEqual({
        ok: false,
        reason: `cannot tell which of flexlm.ber.example.com, flexlm.muc.example.com, flexlm.ham.example.com is this host (${hostname}); give the server the address the license file's SERVER line uses`,
      });
    }
  });

  it('a triad that does not name this machine fails rather than trusting any member', () => {
    expect(lmstatVerdict(down, '127.0.0.1', { hostname: 'build7', addresses: ['10.9.9.9'] })).toEqual({
      ok: false,
      reason: "cannot tell which of host1, host2, host3 is this host (build7); give the server the address the license file's SERVER line uses",
    });
  });
});
