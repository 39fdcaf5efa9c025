/**
 * systemd/licgate.service is Type=notify: `licgate run` tells systemd READY=1, RELOADING=1 and
 * STOPPING=1 through systemd-notify. A real AF_UNIX datagram socket stands in for systemd's
 * (test/helpers/notify-socket.ts); the real systemd-notify sends to it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { notifySocket, type NotifySocket } from '../helpers/notify-socket.js';
import { spawnRun, type RunProcess } from '../helpers/licgate-run.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-notify-'));
const cleanup: (() => Promise<void> | void)[] = [];
beforeEach((ctx) => requireTools(['systemd-notify', 'cc', 'sh'], ctx));
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `licgate run --config file` with `env` added to the test's environment, less any NOTIFY_SOCKET of its own. */
function run(file: string, env: NodeJS.ProcessEnv): RunProcess {
  const base = { ...process.env };
  delete base.NOTIFY_SOCKET;
  return spawnRun(file, cleanup, { ...base, ...env });
}

async function receiver(): Promise<NotifySocket> {
  const sock = await notifySocket(scratch);
  cleanup.push(() => sock.close());
  return sock;
}

/** A config file: frontends `fes` (name → port), an admin listener, one server checked by `check`. */
function writeConfig(name: string, admin: number, fes: Record<string, number>, check = '{ type: none }'): string {
  const file = join(scratch, `${name}.yaml`);
  const frontends = Object.entries(fes).map(([n, p]) => `  - { name: ${n}, listen: "127.0.0.1:${p}", backend: licenses }`).join('\n');
  writeFileSync(file, `admin: { listen: "127.0.0.1:${admin}" }
log: { level: info, format: json }
shutdown_grace: 500ms
shutdown_delay: 0s
${frontends ? `frontends:\n${frontends}\n` : ''}backends:
  - name: licenses
    check: ${check}
    servers:
      - { name: s1, address: "127.0.0.1:1" }
`);
  return file;
}

/** Connects to 127.0.0.1:port: resolves once connected, rejects on a refusal. */
function connects(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

const has = (m: string[], field: string): boolean => m.includes(field);
const status = (m: string[] | undefined): string => m?.find((f) => f.startsWith('STATUS='))?.slice('STATUS='.length) ?? '';

describe('licgate run under systemd (NOTIFY_SOCKET)', () => {
  it('READY=1 once its listeners accept, RELOADING=1 then READY=1 for each SIGHUP, STOPPING=1 for SIGTERM', async () => {
    const sock = await receiver();
    const [admin, lmgrd, vendor] = [await freePort(), await freePort(), await freePort()];
    // The check passes only where NOTIFY_SOCKET is not inherited: licgate takes it out of the
    // environment its check commands get, as under NotifyAccess=all theirs would pass for its own.
    const file = writeConfig('good', admin, { lmgrd }, `{ type: exec, argv: [sh, -c, 'test -z "\${NOTIFY_SOCKET-}"'], inter: 200ms, rise: 1, fall: 1 }`);
    const p = run(file, { NOTIFY_SOCKET: sock.path });
    const ready = await waitFor(() => {
      if (p.exit()) throw new Error(`licgate exited ${JSON.stringify(p.exit())}: ${p.stderr()}`);
      return sock.messages.find((m) => has(m, 'READY=1'));
    }, { timeoutMs: 15_000, intervalMs: 5, what: 'READY=1' });
    // At once, before anything else waits: the listeners systemd now calls ready accept.
    await connects(lmgrd);
    await connects(admin);
    expect(status(ready)).toBe(`listening: lmgrd 127.0.0.1:${lmgrd}, admin 127.0.0.1:${admin}`);
    const checked = await waitFor(async () => {
      const r = (await (await fetch(`http://127.0.0.1:${admin}/status`)).json()) as { backends: { servers: { last_check: { ok: boolean } | null }[] }[] };
      return r.backends[0]!.servers[0]!.last_check;
    }, { timeoutMs: 10_000, what: 'a first check' });
    expect(checked, JSON.stringify(checked)).toMatchObject({ ok: true });

    // A refused reload: systemd hears the reload end, and systemctl status says what was refused.
    writeFileSync(file, readFileSync(file, 'utf8').replace('backends:', 'backends: [oops'));
    p.child.kill('SIGHUP');
    await waitFor(() => sock.messages.filter((m) => has(m, 'READY=1')).length === 2, { timeoutMs: 10_000, what: 'READY=1 after the refused reload' });
    expect(status(sock.messages.at(-1))).toMatch(new RegExp(`^listening: lmgrd 127.0.0.1:${lmgrd}, admin 127.0.0.1:${admin}; last reload refused, running the previous config: .*good\\.yaml:\\d+:\\d+: `));

    writeConfig('good', admin, { lmgrd, vendor });
    p.child.kill('SIGHUP');
    await waitFor(() => sock.messages.filter((m) => has(m, 'READY=1')).length === 3, { timeoutMs: 10_000, what: 'READY=1 after the reload' });
    expect(status(sock.messages.at(-1))).toBe(`listening: lmgrd 127.0.0.1:${lmgrd}, vendor 127.0.0.1:${vendor}, admin 127.0.0.1:${admin}`);
    await connects(vendor);

    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    await waitFor(() => sock.messages.some((m) => has(m, 'STOPPING=1')), { timeoutMs: 10_000, what: 'STOPPING=1' });
    expect(sock.messages.map((m) => m.filter((f) => !f.startsWith('STATUS=')))).toEqual([
      ['READY=1'], ['RELOADING=1'], ['READY=1'], ['RELOADING=1'], ['READY=1'], ['STOPPING=1'],
    ]);
    expect(p.logs.filter((l) => String(l.msg).startsWith('could not tell systemd'))).toEqual([]);
  });

  it('a reload through POST /admin/reload is framed by RELOADING=1 and READY=1 too, its STATUS naming the new listener', async () => {
    const sock = await receiver();
    const [admin, lmgrd, vendor] = [await freePort(), await freePort(), await freePort()];
    const token = join(scratch, 'token');
    writeFileSync(token, 'reload-token-0123456789', { mode: 0o600 });
    const withToken = (f: string): string => {
      writeFileSync(f, readFileSync(f, 'utf8').replace(`admin: { listen: "127.0.0.1:${admin}" }`, `admin: { listen: "127.0.0.1:${admin}", token_file: ${token} }`));
      return f;
    };
    const file = withToken(writeConfig('admin-reload', admin, { lmgrd }));
    const p = run(file, { NOTIFY_SOCKET: sock.path });
    await waitFor(() => sock.messages.some((m) => has(m, 'READY=1')), { timeoutMs: 15_000, what: 'READY=1' });
    withToken(writeConfig('admin-reload', admin, { lmgrd, vendor }));
    const res = await fetch(`http://127.0.0.1:${admin}/admin/reload`, { method: 'POST', headers: { authorization: 'Bearer reload-token-0123456789' } });
    expect(res.status).toBe(200);
    await waitFor(() => sock.messages.filter((m) => has(m, 'READY=1')).length === 2, { timeoutMs: 10_000, what: 'READY=1 after the admin reload' });
    expect(sock.messages.map((m) => m.filter((f) => !f.startsWith('STATUS=')))).toEqual([['READY=1'], ['RELOADING=1'], ['READY=1']]);
    expect(status(sock.messages.at(-1))).toBe(`listening: lmgrd 127.0.0.1:${lmgrd}, vendor 127.0.0.1:${vendor}, admin 127.0.0.1:${admin}`);
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
  });

  it('no READY=1 for a config that fails (exit 2) or a listener that cannot bind (exit 1)', async () => {
    const sock = await receiver();
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(bad, 'backends: [oops\n');
    const p = run(bad, { NOTIFY_SOCKET: sock.path });
    expect(await p.exited).toEqual({ code: 2, signal: null });

    const [admin, taken] = [await freePort(), await freePort()];
    const holder = await new Promise<Server>((resolve) => {
      const srv = createServer().listen(taken, '127.0.0.1', () => resolve(srv));
    });
    cleanup.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const q = run(writeConfig('taken', admin, { lmgrd: taken }), { NOTIFY_SOCKET: sock.path });
    expect(await q.exited).toEqual({ code: 1, signal: null });
    expect(q.stderr()).toContain('address already in use');
    // systemd-notify waits until its message is taken: one run by then has reached the receiver.
    expect(sock.messages).toEqual([]);
  });

  it('without NOTIFY_SOCKET runs no systemd-notify; with it, one per message', async () => {
    // A systemd-notify first on PATH that only counts its runs.
    const bin = mkdtempSync(join(scratch, 'bin-'));
    const runs = join(bin, 'runs');
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\necho "$*" >> '${runs}'\n`, { mode: 0o755 });
    const PATH = `${bin}:${process.env.PATH}`;
    const admin = await freePort();
    for (const env of [{ PATH }, { PATH, NOTIFY_SOCKET: join(scratch, 'nobody-listens') }]) {
      rmSync(runs, { force: true });
      const p = run(writeConfig('plain', admin, {}), env);
      await waitFor(() => p.logs.find((l) => l.msg === 'licgate started'), { timeoutMs: 15_000, what: 'licgate started' });
      p.child.kill('SIGHUP');
      await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
      p.child.kill('SIGTERM');
      expect(await p.exited).toEqual({ code: 0, signal: null });
      if (env.NOTIFY_SOCKET === undefined) expect(existsSync(runs)).toBe(false);
      else await waitFor(() => existsSync(runs) && readFileSync(runs, 'utf8').split('\n').length === 5, { timeoutMs: 10_000, what: `four runs in ${runs}` });
    }
    expect(readFileSync(runs, 'utf8')).toBe(`--ready --status=listening: admin 127.0.0.1:${admin}\nRELOADING=1\n--ready --status=listening: admin 127.0.0.1:${admin}\nSTOPPING=1\n`);
  });

  it("systemd-notify gets NOTIFY_SOCKET and PATH, not licgate's admin token nor the rest of its environment", async () => {
    const bin = mkdtempSync(join(scratch, 'bin-'));
    const envFile = join(bin, 'env');
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\nenv > '${envFile}.tmp' && mv '${envFile}.tmp' '${envFile}'\n`, { mode: 0o755 });
    const socket = join(scratch, 'nobody-listens');
    const p = run(writeConfig('env', await freePort(), {}), { PATH: `${bin}:${process.env.PATH}`, NOTIFY_SOCKET: socket, LICGATE_TOKEN: 'secret-admin-token-0123', CREDENTIALS_DIRECTORY: '/run/credentials/licgate.service' });
    await waitFor(() => existsSync(envFile), { timeoutMs: 15_000, what: `the environment in ${envFile}` });
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    const names = readFileSync(envFile, 'utf8').split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('=')));
    // sh itself adds PWD (and may add SHLVL, _); systemd-notify got the rest from licgate.
    expect(names.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)).sort()).toEqual(['NOTIFY_SOCKET', 'PATH']);
  });

  it('exits only once its STOPPING=1 is taken: systemd kills a systemd-notify left behind by the main process', async () => {
    // A systemd-notify that takes 300 ms, as one waiting for a systemd busy with the stop job does.
    const bin = mkdtempSync(join(scratch, 'bin-'));
    const runs = join(bin, 'runs');
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\nsleep 0.3\necho "$*" >> '${runs}'\n`, { mode: 0o755 });
    const admin = await freePort();
    const p = run(writeConfig('slow-notify', admin, {}), { PATH: `${bin}:${process.env.PATH}`, NOTIFY_SOCKET: join(scratch, 'slow') });
    await waitFor(() => existsSync(runs), { timeoutMs: 15_000, what: `READY=1 in ${runs}` });
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(readFileSync(runs, 'utf8').split('\n').at(-2)).toBe('STOPPING=1');
  });

  it('a systemd-notify that fails or is missing is logged once, and licgate runs on', async () => {
    const admin = await freePort();
    const empty = mkdtempSync(join(scratch, 'empty-'));
    for (const [env, reason] of [
      [{ NOTIFY_SOCKET: join(scratch, 'nobody-listens') }, /No such file or directory|Connection refused/],
      [{ NOTIFY_SOCKET: join(scratch, 'nobody-listens'), PATH: empty }, /no systemd-notify on PATH/],
    ] as const) {
      const p = run(writeConfig('failing', admin, {}), env);
      await waitFor(() => p.logs.find((l) => l.msg === 'licgate started'), { timeoutMs: 15_000, what: 'licgate started' });
      const failed = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('could not tell systemd')), { timeoutMs: 10_000, what: 'the failure logged' });
      expect(failed.reason).toMatch(reason);
      p.child.kill('SIGHUP');
      await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
      expect((await fetch(`http://127.0.0.1:${admin}/status`)).status).toBe(200);
      p.child.kill('SIGTERM');
      expect(await p.exited).toEqual({ code: 0, signal: null });
      expect(p.logs.filter((l) => String(l.msg).startsWith('could not tell systemd'))).toHaveLength(1);
    }
  });
});
