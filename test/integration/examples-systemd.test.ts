import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { CLI } from '../helpers/proxy-harness.js';
import { connects, startedRun, writeReloadConfig } from '../helpers/reload-by-hand.js';
import { requireTools } from '../helpers/require-tools.js';

const UNIT = fileURLToPath(new URL('../../systemd/licgate.service', import.meta.url));
let dir: string | null = null;
const cleanup: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/**
 * `systemctl reload` by hand: the unit's ExecReload lines run in order as systemd runs them, each
 * stopping the job when it fails, with /usr/bin/licgate the built CLI, the unit's config path
 * `file`, and $MAINPID `pid` (as a word of its own, and in the environment, as systemd gives both).
 */
async function execReload(text: string, file: string, pid: number): Promise<{ code: number | null; out: string }> {
  const config = text.match(/^ExecStart=\/usr\/bin\/licgate run --config (\S+)$/m)![1]!;
  let out = '';
  for (const line of text.split('\n').filter((l) => l.startsWith('ExecReload='))) {
    const words = [...line.slice('ExecReload='.length).matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
    const argv = words.flatMap((w) => (w === '/usr/bin/licgate' ? [process.execPath, CLI] : w === config ? [file] : w === '$MAINPID' ? [String(pid)] : [w]));
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAINPID: String(pid) } });
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) return { code, out };
  }
  return { code: 0, out };
}

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
      'ExecReload=/usr/bin/licgate reload --config /etc/licgate/licgate.yaml --pid $MAINPID',
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

  it('fails `systemctl reload` for an invalid file: ExecReload validates the file ExecStart runs, exits 2 naming FILE:LINE:COL, and sends no SIGHUP', async () => {
    // systemd stops the reload job at an ExecReload that fails; the service runs on.
    const reloads = text.split('\n').filter((l) => l.startsWith('ExecReload='));
    expect(reloads).toHaveLength(1);
    dir = mkdtempSync(join(tmpdir(), 'licgate-reload-'));
    const file = join(dir, 'licgate.yaml');
    // A stand-in main process that a SIGHUP would end.
    const main = spawn('sleep', ['30'], { stdio: 'ignore' });
    cleanup.push(() => void main.kill('SIGKILL'));
    const good = `frontends:\n  - { name: lmgrd, listen: "127.0.0.1:27000", backend: lic }\nbackends:\n  - name: lic\n    servers: [{ name: s1, address: "10.0.0.11:27000" }]\n`;
    writeFileSync(file, good.replace('backend: lic }', 'backend: licc }'));
    const bad = await execReload(text, file, main.pid!);
    expect(bad.code).toBe(2);
    expect(bad.out).toContain(`${file}:2:56: frontend "lmgrd": unknown backend "licc"`);
    expect([main.exitCode, main.signalCode]).toEqual([null, null]);
  });

  it('fails `systemctl reload` for a file licgate refuses to apply (a new frontend\'s port is taken), naming the port; the running config serves on, and a good reload succeeds and is live', async () => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-reload-'));
    const file = join(dir, 'licgate.yaml');
    const [admin, lmgrd, vendor, taken] = [await freePort(), await freePort(), await freePort(), await freePort()];
    // As examples/proxy.yaml has it: an admin listener on a fixed loopback port, no token.
    const write = (fes: Record<string, number>): string => writeReloadConfig(file, admin, fes);
    write({ lmgrd });
    const p = await startedRun(file, cleanup);
    const pid = p.child.pid!;

    const good = (write({ lmgrd, vendor }), await execReload(text, file, pid));
    expect(good.code, good.out).toBe(0);
    expect(good.out).toContain(`licgate reload: licgate pid ${pid}: config reloaded, 1 change:\n  frontend vendor added on 127.0.0.1:${vendor}\n`);
    // Live when `systemctl reload` returns, not some time after.
    await connects(vendor);

    const holder = await new Promise<Server>((resolve) => {
      const srv = createServer().listen(taken, '127.0.0.1', () => resolve(srv));
    });
    cleanup.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    write({ lmgrd, vendor, flexnet: taken });
    const refused = await execReload(text, file, pid);
    expect(refused.code, refused.out).toBe(1);
    expect(refused.out).toContain(`cannot listen for frontend "flexnet" on 127.0.0.1:${taken}: address already in use`);
    // The running config stays: both frontends accept, and licgate lists no third one.
    await connects(lmgrd);
    await connects(vendor);
    const status = (await (await fetch(`http://127.0.0.1:${admin}/status`)).json()) as { frontends: { name: string }[] };
    expect(status.frontends.map((f) => f.name)).toEqual(['lmgrd', 'vendor']);
    expect(p.exit()).toBeNull();
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
