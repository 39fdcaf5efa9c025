import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { LicenseInfo } from '../../../src/health/parse/license-info.js';
import { lmstatHealthy, parseLmstat } from '../../../src/health/parse/lmstat.js';
import { licenseWeightFactor } from '../../../src/serve/agent-reply.js';

// shared/ is a sibling of the repo, both locally and in CI.
function fixture(name: string): string {
  return readFileSync(new URL(`../../../../shared/fixtures/lmstat/${name}`, import.meta.url), 'utf8');
}

function feature(info: LicenseInfo, name: string): LicenseInfo['features'][number] | undefined {
  return info.features.find((f) => f.name === name);
}

/** What lmstat prints on Windows: every line indented and CRLF-terminated. */
function windowsFlavour(text: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : `    ${l}`))
    .join('\r\n');
}

describe('parseLmstat on lmstat_app1.txt (triad, one vendor, reservations)', () => {
  const info = parseLmstat(fixture('lmstat_app1.txt'));

  it('reads the three triad members with host2 as MASTER', () => {
    expect(info.servers).toEqual([
      { host: 'host-1.domain.net', up: true, master: false },
      { host: 'host2.domain.net', up: true, master: true },
      { host: 'host3.domain.net', up: true, master: false },
    ]);
  });

  it('reads the vendor daemon with its version', () => {
    expect(info.vendors).toEqual([{ name: 'VENDOR1', up: true, version: '11.6', server: 'host2.domain.net' }]);
  });

  it('counts 53 features: 54 "Users of" lines, feature42 listed twice', () => {
    expect(info.features).toHaveLength(53);
    expect(info.features.filter((f) => f.name === 'feature42')).toEqual([{ name: 'feature42', issued: 1814, in_use: 169 }]);
  });

  it('reads issued and in-use counts, plural and singular', () => {
    expect(feature(info, 'feature1')).toEqual({ name: 'feature1', issued: 1814, in_use: 1206 });
    expect(feature(info, 'feature11')).toEqual({ name: 'feature11', issued: 16384, in_use: 80 });
    expect(feature(info, 'feature8')).toEqual({ name: 'feature8', issued: 10, in_use: 1 });
    expect(feature(info, 'feature12')).toEqual({ name: 'feature12', issued: 1, in_use: 0 });
    expect(feature(info, 'feature52')).toEqual({ name: 'feature52', issued: 1814, in_use: 169 });
  });

  it('keeps the order lmstat printed, starting with feature1 and ending with feature52', () => {
    expect(info.features[0]?.name).toBe('feature1');
    expect(info.features.at(-1)?.name).toBe('feature52');
  });

  it('finds no errors', () => {
    expect(info.errors).toEqual([]);
  });

  it('is healthy, and names the master when no local host is given', () => {
    expect(lmstatHealthy(info)).toEqual({
      ok: true,
      reason: 'lmgrd UP 3/3 (MASTER host2.domain.net), vendor VENDOR1 UP, 53 features',
    });
  });

  it('matches the local host by short name and case', () => {
    expect(lmstatHealthy(info, 'HOST2')).toEqual({
      ok: true,
      reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendor VENDOR1 UP, 53 features',
    });
    expect(lmstatHealthy(info, 'host3.domain.net')).toEqual({ ok: true, standby: true, master: 'host2.domain.net', reason: 'triad standby: host2.domain.net is MASTER [3/3 servers UP]' });
    expect(lmstatHealthy(info, 'host-1').reason).toBe('triad standby: host2.domain.net is MASTER [3/3 servers UP]');
  });

  it('is unhealthy when the local host is not a member of the triad', () => {
    expect(lmstatHealthy(info, 'host4.domain.net')).toEqual({
      ok: false,
      reason: 'expected local host host4.domain.net among license servers, found host-1.domain.net, host2.domain.net, host3.domain.net',
    });
  });
});

describe('parseLmstat on lmstat_app2.txt (triad, users without a license count)', () => {
  const info = parseLmstat(fixture('lmstat_app2.txt'));

  it('reads the triad', () => {
    expect(info.servers).toEqual([
      { host: 'host1', up: true, master: false },
      { host: 'host2', up: true, master: true },
      { host: 'host3', up: true, master: false },
    ]);
  });

  it('reads the vendor daemon', () => {
    expect(info.vendors).toEqual([{ name: 'vendor1', up: true, version: '11.13', server: 'host2' }]);
  });

  it('reads 10 features with their counts', () => {
    expect(info.features).toHaveLength(10);
    expect(feature(info, 'feature1')).toEqual({ name: 'feature1', issued: 144, in_use: 0 });
    expect(feature(info, 'feature2')).toEqual({ name: 'feature2', issued: 144, in_use: 22 });
    expect(feature(info, 'feature5')).toEqual({ name: 'feature5', issued: 144, in_use: 15 });
    expect(feature(info, 'feature7')).toEqual({ name: 'feature7', issued: 144, in_use: 1 });
    expect(feature(info, 'feature10')).toEqual({ name: 'feature10', issued: 1, in_use: 0 });
    expect(info.errors).toEqual([]);
  });

  it('is a standby on host1 and host3, healthy on the MASTER', () => {
    expect(lmstatHealthy(info, 'host1')).toEqual({ ok: true, standby: true, master: 'host2', reason: 'triad standby: host2 is MASTER [3/3 servers UP]' });
    expect(lmstatHealthy(info, 'host2')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendor vendor1 UP, 10 features' });
  });
});

describe('parseLmstat on lmstat_app3.txt (triad, two vendor daemons)', () => {
  const info = parseLmstat(fixture('lmstat_app3.txt'));

  it('reads the triad with host1 as MASTER', () => {
    expect(info.servers).toEqual([
      { host: 'host1', up: true, master: true },
      { host: 'host2', up: true, master: false },
      { host: 'host3', up: true, master: false },
    ]);
  });

  it('reads both vendor daemons with their own versions', () => {
    expect(info.vendors).toEqual([
      { name: 'daemon1', up: true, version: '11.14', server: 'host1' },
      { name: 'DAEMON2', up: true, version: '11.13', server: 'host1' },
    ]);
  });

  it('reads 46 features, including the singular "1 license" forms', () => {
    expect(info.features).toHaveLength(46);
    expect(feature(info, 'feature5')).toEqual({ name: 'feature5', issued: 1, in_use: 1 });
    expect(feature(info, 'feature7')).toEqual({ name: 'feature7', issued: 600, in_use: 163 });
    expect(feature(info, 'feature9')).toEqual({ name: 'feature9', issued: 100, in_use: 39 });
    expect(feature(info, 'feature12')).toEqual({ name: 'feature12', issued: 100, in_use: 1 });
    expect(feature(info, 'feature46')).toEqual({ name: 'feature46', issued: 2, in_use: 0 });
    expect(info.errors).toEqual([]);
  });

  it('is healthy on the MASTER and lists both vendors', () => {
    expect(lmstatHealthy(info, 'host1')).toEqual({
      ok: true,
      reason: 'lmgrd UP (MASTER) [3/3 servers UP], vendors daemon1, DAEMON2 UP, 46 features',
    });
  });

  it('is a standby on host2 and host3: only the MASTER serves licenses', () => {
    expect(info.triads).toEqual([['host1', 'host2', 'host3']]);
    expect(lmstatHealthy(info, 'host2')).toEqual({ ok: true, standby: true, master: 'host1', reason: 'triad standby: host1 is MASTER [3/3 servers UP]' });
    expect(lmstatHealthy(info, 'HOST3.example.org')).toEqual({ ok: true, standby: true, master: 'host1', reason: 'triad standby: host1 is MASTER [3/3 servers UP]' });
  });
});

describe('parseLmstat on lmstat_server_down.txt (one triad member unreachable)', () => {
  const info = parseLmstat(fixture('lmstat_server_down.txt'));
  const host3Error = 'host3: Cannot connect to license server system. (-15,570:115 "Operation now in progress")';

  it('marks the unreachable member DOWN and keeps the other two', () => {
    expect(info.servers).toEqual([
      { host: 'host1', up: true, master: false },
      { host: 'host2', up: true, master: true },
      { host: 'host3', up: false, master: false },
    ]);
  });

  it('reads the vendor daemon and both features', () => {
    expect(info.vendors).toEqual([{ name: 'daemon', up: true, version: '11.13.1', server: 'host2' }]);
    expect(info.features).toEqual([
      { name: 'feature1', issued: 144, in_use: 0 },
      { name: 'feature2', issued: 144, in_use: 39 },
    ]);
  });

  it('records the connect error line', () => {
    expect(info.errors).toEqual([host3Error]);
  });

  it('is healthy for the MASTER, a standby for host1, unhealthy for host3', () => {
    expect(lmstatHealthy(info, 'host1')).toEqual({ ok: true, standby: true, master: 'host2', reason: 'triad standby: host2 is MASTER [2/3 servers UP]' });
    expect(lmstatHealthy(info, 'host2')).toEqual({
      ok: true,
      reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor daemon UP, 2 features',
    });
    expect(lmstatHealthy(info)).toEqual({
      ok: true,
      reason: 'lmgrd UP 2/3 (MASTER host2), vendor daemon UP, 2 features',
    });
    expect(lmstatHealthy(info, 'host3')).toEqual({
      ok: false,
      reason: 'lmgrd on host3 DOWN: Cannot connect to license server system. (-15,570:115 "Operation now in progress")',
    });
  });
});

describe('parseLmstat on Windows-style output', () => {
  it.each(['lmstat_app1.txt', 'lmstat_app2.txt', 'lmstat_app3.txt', 'lmstat_server_down.txt'])(
    'parses an indented CRLF copy of %s identically',
    (name) => {
      const text = fixture(name);
      const windows = windowsFlavour(text);
      expect(windows).toContain('\r\n    License server status:');
      expect(parseLmstat(windows)).toEqual(parseLmstat(text));
    },
  );
});

describe('parseLmstat on synthetic output', () => {
  it('reads a single server whose lmgrd is not running', () => {
    const text = [
      'lmutil - Copyright (c) 1989-2023 Flexera. All Rights Reserved.',
      'Flexible License Manager status on Mon 3/4/2024 10:00',
      '',
      'License server status: 1055@lic1',
      '    License file(s) on lic1: /opt/ansys/shared_files/licensing/license_files/ansyslmd.lic:',
      '',
      'lmgrd is not running: Cannot connect to license server system. (-15,570:111 "Connection refused")',
      '',
    ].join('\n');
    const info = parseLmstat(text);
    expect(info).toEqual({
      servers: [{ host: 'lic1', up: false, master: false }],
      vendors: [],
      features: [],
      errors: ['lmgrd is not running: Cannot connect to license server system. (-15,570:111 "Connection refused")'],
    });
    expect(lmstatHealthy(info)).toEqual({
      ok: false,
      reason: 'lmgrd is not running: Cannot connect to license server system. (-15,570:111 "Connection refused")',
    });
    expect(lmstatHealthy(info, 'lic1').ok).toBe(false);
  });

  it('reads a DOWN vendor daemon, uncounted and error feature lines', () => {
    const text = [
      'License server status: 27000@LIC1',
      '    License file(s) on LIC1: C:\\Program Files\\MATLAB\\license.dat:',
      '',
      'LIC1: license server UP (MASTER) v11.16.2',
      '',
      'Vendor daemon status (on LIC1):',
      '',
      '       MLM: DOWN',
      '  ansyslmd: UP v11.16.2',
      '',
      'Feature usage info:',
      '',
      'Users of MATLAB:  (Total of 12 licenses issued;  Total of 3 licenses in use)',
      'Users of Simulink:  (Error: 4 licenses, unsupported by licensed server)',
      'Users of NODE_TOOL:  (Uncounted, node-locked)',
      'Users of solver:  (Total of 1 license issued;  Total of 1 license in use)',
    ].join('\r\n');
    const info = parseLmstat(text);
    expect(info.servers).toEqual([{ host: 'LIC1', up: true, master: true }]);
    expect(info.vendors).toEqual([
      { name: 'MLM', up: false, server: 'LIC1' },
      { name: 'ansyslmd', up: true, version: '11.16.2', server: 'LIC1' },
    ]);
    expect(info.features).toEqual([
      { name: 'MATLAB', issued: 12, in_use: 3 },
      { name: 'NODE_TOOL', issued: null, in_use: 0 },
      { name: 'solver', issued: 1, in_use: 1 },
    ]);
    expect(info.errors).toEqual(['Users of Simulink:  (Error: 4 licenses, unsupported by licensed server)']);
    expect(lmstatHealthy(info, 'lic1.example.com')).toEqual({ ok: false, reason: 'vendor daemon MLM DOWN' });
  });

  it('counts the users listed under an uncounted feature as in use, leaving issued null', () => {
    const text = [
      'License server status: 27000@lic1',
      'lic1: license server UP (MASTER) v11.19.2',
      'Vendor daemon status (on lic1):',
      '       MLM: UP v11.19.2',
      'Feature usage info:',
      '',
      'Users of MATLAB_Distrib_Comp_Engine:  (Uncounted, node-locked)',
      '',
      '  "MATLAB_Distrib_Comp_Engine" v32, vendor: MLM, expiry: 01-jan-0000',
      '  nodelocked license, locked to "ID=123456"',
      '',
      '    jdoe cluster-n01 /dev/pts/1 (v32) (lic1/27000 201), start Mon 3/4 9:00',
      '    asmith cluster-n02 cluster-n02 (v32) (lic1/27000 305), start Mon 3/4 9:12, 2 licenses',
      '',
      'Users of MATLAB:  (Total of 12 licenses issued;  Total of 1 license in use)',
      '',
      '    jdoe ws-14 /dev/pts/3 (v40) (lic1/27000 411), start Mon 3/4 9:30',
    ].join('\n');
    const info = parseLmstat(text);
    expect(info.features).toEqual([
      { name: 'MATLAB_Distrib_Comp_Engine', issued: null, in_use: 3 },
      { name: 'MATLAB', issued: 12, in_use: 1 },
    ]);
    // No pool to exhaust: agent.weight_from leaves the weight alone rather than draining at "3 of 0".
    expect(licenseWeightFactor(info, { feature: 'MATLAB_Distrib_Comp_Engine', min_percent: 10 })).toEqual({
      percent: 100,
      exhausted: false,
      note: 'MATLAB_Distrib_Comp_Engine is uncounted',
    });
  });

  it('treats a vendor daemon error text as DOWN and records it', () => {
    const text = [
      'License server status: 27000@lic1',
      'lic1: license server UP (MASTER) v11.16.2',
      'Vendor daemon status (on lic1):',
      '     MLM: The desired vendor daemon is down. (-97,121)',
      'Feature usage info:',
    ].join('\n');
    const info = parseLmstat(text);
    expect(info.vendors).toEqual([{ name: 'MLM', up: false, server: 'lic1' }]);
    expect(info.errors).toEqual(['MLM: The desired vendor daemon is down. (-97,121)']);
    expect(lmstatHealthy(info)).toEqual({ ok: false, reason: 'vendor daemon MLM DOWN' });
  });

  it('reads a member printed as "license server DOWN"', () => {
    const text = [
      'License server status: 27000@a,27000@b,27000@c',
      'a: license server UP v11.16.2',
      'b: license server DOWN',
      'c: license server UP (MASTER) v11.16.2',
      'Vendor daemon status (on c):',
      '  ansyslmd: UP v11.16.2',
      'Users of CFD:  (Total of 4 licenses issued;  Total of 0 licenses in use)',
    ].join('\n');
    const info = parseLmstat(text);
    expect(info.servers).toEqual([
      { host: 'a', up: true, master: false },
      { host: 'b', up: false, master: false },
      { host: 'c', up: true, master: true },
    ]);
    expect(lmstatHealthy(info, 'b')).toEqual({ ok: false, reason: 'lmgrd on b DOWN' });
    expect(lmstatHealthy(info, 'a')).toEqual({ ok: true, standby: true, master: 'c', reason: 'triad standby: c is MASTER [2/3 servers UP]' });
    expect(lmstatHealthy(info, 'c')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor ansyslmd UP, 1 feature' });
  });

  it('fails every member of a triad without a MASTER: one UP has no quorum, two are electing one', () => {
    const triad = (a: string, b: string, c: string): string =>
      ['License server status: 27000@a,27000@b,27000@c', `a: ${a}`, `b: ${b}`, `c: ${c}`, 'Vendor daemon status (on a):', '  ansyslmd: UP v11.16.2', 'Feature usage info:'].join('\n');
    const alone = parseLmstat(triad('license server UP v11.16.2', 'Cannot connect to license server system. (-15,570:111 "Connection refused")', 'license server DOWN'));
    const noQuorum = { ok: false, reason: 'triad has no quorum: 1/3 servers UP, no MASTER' };
    expect(lmstatHealthy(alone, 'a')).toEqual(noQuorum);
    expect(lmstatHealthy(alone)).toEqual(noQuorum);
    expect(lmstatHealthy(alone, 'b')).toEqual({ ok: false, reason: 'lmgrd on b DOWN: Cannot connect to license server system. (-15,570:111 "Connection refused")' });
    const electing = parseLmstat(triad('license server UP v11.16.2', 'license server UP v11.16.2', 'license server DOWN'));
    expect(lmstatHealthy(electing, 'b')).toEqual({ ok: false, reason: 'triad has no MASTER: 2/3 servers UP' });
  });

  it('judges each server of -c port@a:port@b on its own: each block is a license of one server, not a triad', () => {
    const block = (host: string, state: string): string[] => [`License server status: 27000@${host}`, `${host}: license server ${state}`, `Vendor daemon status (on ${host}):`, '  MLM: UP v11.19.2'];
    // An older lmgrd may print a one-server license without "(MASTER)": still no standby.
    const info = parseLmstat([...block('lic1', 'UP (MASTER) v11.19.2'), ...block('lic2', 'UP v11.19.2')].join('\n'));
    expect(info.triads).toBeUndefined();
    expect(lmstatHealthy(info, 'lic1')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [2/2 servers UP], vendor MLM UP, 0 features' });
    expect(lmstatHealthy(info, 'lic2')).toEqual({ ok: true, reason: 'lmgrd UP [2/2 servers UP], vendor MLM UP, 0 features' });
  });

  it('tells apart servers that share a short name in different domains: the one spelt as asked, else none', () => {
    // A triad at three sites, each member named for its role: flexlm.ber, flexlm.muc, flexlm.ham.
    const site = (text: string): string =>
      text.replaceAll('host1', 'flexlm.ber.example.com').replaceAll('host2', 'flexlm.muc.example.com').replaceAll('host3', 'flexlm.ham.example.com');
    const triad = parseLmstat(site(fixture('lmstat_server_down.txt')));
    expect(lmstatHealthy(triad, 'flexlm.ham.example.com')).toEqual({
      ok: false,
      reason: 'lmgrd on flexlm.ham.example.com DOWN: Cannot connect to license server system. (-15,570:115 "Operation now in progress")',
    });
    expect(lmstatHealthy(triad, 'FLEXLM.MUC.example.com')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [2/3 servers UP], vendor daemon UP, 2 features' });
    // The short name alone names all three: no member is taken for it.
    expect(lmstatHealthy(triad, 'flexlm')).toEqual({
      ok: false,
      reason: 'expected local host flexlm among license servers, found flexlm.ber.example.com, flexlm.muc.example.com, flexlm.ham.example.com',
    });
    // -c port@a:port@b: each server's own vendor daemons, though both are "flexlm" for short.
    const block = (host: string, mlm: string): string[] => [`License server status: 27000@${host}`, `${host}: license server UP (MASTER) v11.19.2`, `Vendor daemon status (on ${host}):`, `  MLM: ${mlm}`];
    const two = parseLmstat([...block('flexlm.ber.example.com', 'UP v11.19.2'), ...block('flexlm.muc.example.com', 'DOWN')].join('\n'));
    expect(lmstatHealthy(two, 'flexlm.ber.example.com')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER) [2/2 servers UP], vendor MLM UP, 0 features' });
    expect(lmstatHealthy(two, 'flexlm.muc.example.com')).toEqual({ ok: false, reason: 'vendor daemon MLM DOWN' });
  });

  it('keeps MASTER when Windows lmstat prints the same server twice, in two spellings', () => {
    // A real Windows capture (flexlm_exporter issue #7, fixture lmstat_server_up_win.txt, lmutil v11.14):
    // the one server of the license file is printed once as MASTER, then again in lower case.
    const text = [
      'lmutil - Copyright (c) 1989-2017 Flexera Software LLC. All Rights Reserved.',
      'Flexible License Manager status on Tue 5/15/2018 13:41',
      '',
      'License server status: 7788@BVS15004',
      '    License file(s) on BVS15004: licensing\\license.dat:',
      '',
      '  BVS15004: license server UP (MASTER) v11.12',
      '  bvs15004: license server UP v11.12',
      '',
      'Vendor daemon status (on BVS15004):',
      '',
      '     ptc_d: UP v11.14.0',
      '',
    ].join('\r\n');
    const info = parseLmstat(text);
    expect(info.servers).toEqual([{ host: 'BVS15004', up: true, master: true }]);
    expect(lmstatHealthy(info, 'bvs15004')).toEqual({ ok: true, reason: 'lmgrd UP (MASTER), vendor ptc_d UP, 0 features' });
  });

  it('is unhealthy when the server is UP but no vendor daemon is listed', () => {
    const info = parseLmstat('License server status: 27000@lic1\nlic1: license server UP (MASTER) v11.16.2\n');
    expect(lmstatHealthy(info)).toEqual({ ok: false, reason: 'lmgrd UP (MASTER), but no vendor daemon listed' });
  });

  it('does not match IP addresses by their first label', () => {
    const info = parseLmstat(
      'License server status: 27000@10.0.0.1\n10.0.0.1: license server UP (MASTER) v11.16\nVendor daemon status (on 10.0.0.1):\n  x: UP v11.16\n',
    );
    expect(lmstatHealthy(info, '10.0.0.1').ok).toBe(true);
    expect(lmstatHealthy(info, '10.0.0.2').ok).toBe(false);
  });

  it('returns an empty result for an empty string', () => {
    const info = parseLmstat('');
    expect(info).toEqual({ servers: [], vendors: [], features: [], errors: [] });
    expect(lmstatHealthy(info)).toEqual({ ok: false, reason: 'no license server status in lmstat output' });
  });

  // How fast is the benchmarks' business; here only that 2 MB of garbage is read as nothing.
  it('reads 2 MB of garbage as no license data', () => {
    // Deterministic pseudo-random bytes, so a failure reproduces.
    let seed = 12345;
    const bytes = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    for (const text of [bytes.toString('latin1'), 'Users of '.repeat(233_017), 'x'.repeat(2 * 1024 * 1024)]) {
      const info = parseLmstat(text);
      expect(info.features).toEqual([]);
      expect(info.servers).toEqual([]);
      expect(info.vendors).toEqual([]);
    }
  });

  it('caps the number of recorded errors', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `h${i}: Cannot connect to license server system. (-15,10)`).join('\n');
    const info = parseLmstat(text);
    expect(info.servers).toHaveLength(1000);
    expect(info.errors).toHaveLength(20);
  });
});
