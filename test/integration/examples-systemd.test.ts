import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { CLI } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';

const UNIT = fileURLToPath(new URL('../../systemd/licgate.service', import.meta.url));
let dir: string | null = null;

afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/**
 * systemd-analyze verify on a copy of the unit whose /usr/bin/licgate points at an executable
 * stand-in (verify insists the binary exists; licgate is not installed system-wide here).
 */
function verify(unitText: string): { code: number | null; out: string } {
  dir = mkdtempSync(join(tmpdir(), 'licgate-unit-'));
  const bin = join(dir, 'licgate');
  writeFileSync(bin, '#!/bin/sh\nexit 0\n');
  chmodSync(bin, 0o755);
  const unit = join(dir, 'licgate.service');
  writeFileSync(unit, unitText.replaceAll('/usr/bin/licgate', bin));
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('systemd/licgate.service', () => {
  const text = readFileSync(UNIT, 'utf8');

  it('passes systemd-analyze verify', (ctx) => {
    requireTools(['systemd-analyze'], ctx);
    const r = verify(text);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('runs no program but licgate and /bin/sh: a root without procps (/bin/kill) can reload it', (ctx) => {
    requireTools(['systemd-analyze'], ctx);
    // A root holding only licgate and sh (Essential in Debian), as a minimal image or container
    // has: verify --root reports every command of the unit that is missing from it.
    dir = mkdtempSync(join(tmpdir(), 'licgate-root-'));
    for (const d of ['etc/systemd/system', 'usr/bin', 'bin']) mkdirSync(join(dir, d), { recursive: true });
    for (const bin of ['usr/bin/licgate', 'bin/sh']) writeFileSync(join(dir, bin), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(dir, 'etc/systemd/system/licgate.service'), text);
    const r = spawnSync('systemd-analyze', ['verify', `--root=${dir}`, 'licgate.service'], { encoding: 'utf8', timeout: 30_000 });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toContain('licgate.service'); // it read the unit (sysinit.target is not in this root)
    expect(out.split('\n').filter((l) => l.includes('not executable'))).toEqual([]);
  });

  it('systemd-analyze verify catches a broken unit (the check is real)', (ctx) => {
    requireTools(['systemd-analyze'], ctx);
    const r = verify(text.replace(/^Type=notify$/m, 'Type=notfy'));
    expect(r.out).toContain('notfy');
  });

  it('runs licgate in the foreground, waits for its READY=1, reloads with SIGHUP, and is hardened', () => {
    for (const line of [
      // licgate's systemd-notify (a child process) says READY=1 (systemd-notify.test.ts).
      'Type=notify',
      'NotifyAccess=all',
      'ExecStart=/usr/bin/licgate run --config /etc/licgate/licgate.yaml',
      'ExecReload=/usr/bin/licgate validate --config /etc/licgate/licgate.yaml',
      `ExecReload=/bin/sh -c 'kill -HUP "$MAINPID"'`,
      'Restart=on-failure',
      'RestartPreventExitStatus=2',
      'SuccessExitStatus=130 143',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'User=licgate',
      'LimitNOFILE=65536',
    ]) expect(text.split('\n')).toContain(line);
  });

  it('fails `systemctl reload` for an invalid file: the first ExecReload validates the file ExecStart runs, exits 2 naming FILE:LINE:COL, and the SIGHUP comes after it', () => {
    // systemd runs ExecReload lines in order and stops at the first that fails, so licgate is
    // not signalled; the reload job fails, and the service runs on.
    const reloads = text.split('\n').filter((l) => l.startsWith('ExecReload=')).map((l) => l.slice('ExecReload='.length));
    expect(reloads).toHaveLength(2);
    expect(reloads[1]).toContain('kill -HUP');
    const argv = reloads[0]!.split(' ');
    const config = text.match(/^ExecStart=\/usr\/bin\/licgate run --config (\S+)$/m)?.[1];
    expect([argv[0], argv.slice(1)]).toEqual(['/usr/bin/licgate', ['validate', '--config', config]]);
    dir = mkdtempSync(join(tmpdir(), 'licgate-reload-'));
    const file = join(dir, 'licgate.yaml');
    const validate = (yaml: string): { status: number | null; stderr: string } => {
      writeFileSync(file, yaml);
      const r = spawnSync(process.execPath, [CLI, ...argv.slice(1).map((a) => (a === config ? file : a))], { encoding: 'utf8', timeout: 30_000 });
      return { status: r.status, stderr: r.stderr };
    };
    const good = `frontends:\n  - { name: lmgrd, listen: "127.0.0.1:27000", backend: lic }\nbackends:\n  - name: lic\n    servers: [{ name: s1, address: "10.0.0.11:27000" }]\n`;
    expect(validate(good)).toEqual({ status: 0, stderr: '' });
    const bad = validate(good.replace('backend: lic }', 'backend: licc }'));
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${file}:2:56: frontend "lmgrd": unknown backend "licc"`);
  });

  it("gives the examples' admin.state_file a directory the sandbox lets licgate write (StateDirectory under ProtectSystem=strict)", () => {
    const state = text.match(/^StateDirectory=(\S+)$/m)?.[1];
    expect(text.split('\n')).toContain('ProtectSystem=strict');
    // StateDirectory= is /var/lib/NAME, made writable by systemd even under ProtectSystem=strict.
    for (const example of ['proxy.yaml', 'sidecar.yaml']) {
      const file = loadConfigFile(fileURLToPath(new URL(`../../examples/${example}`, import.meta.url))).admin?.state_file;
      expect([example, file && dirname(file)]).toEqual([example, `/var/lib/${state}`]);
    }
  });

  it('lets licgate run itself refuse a bad config, so exit 2 is not restarted', () => {
    // RestartPreventExitStatus is tested against the main process only: a validate step in
    // ExecStartPre exiting 2 would be restarted every RestartSec (cli-validate.test.ts shows that
    // `licgate run` exits 2 on the same errors).
    expect(text).not.toMatch(/^ExecStartPre=/m);
  });
});
