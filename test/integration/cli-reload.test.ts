/**
 * `licgate reload` (the unit's ExecReload) against a real `licgate run`: it validates, sends SIGHUP
 * and reads the outcome from the admin listener (GET /reload, no token).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import type { RunProcess } from '../helpers/licgate-run.js';
import { processState } from '../helpers/process-group.js';
import { CLI, httpGetText, runCli } from '../helpers/proxy-harness.js';
import { connects, startedRun, writeReloadConfig } from '../helpers/reload-by-hand.js';
import { waitFor } from '../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-cli-reload-'));
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `name`.yaml (writeReloadConfig). */
function writeConfig(name: string, admin: number | null, fes: Record<string, number>): string {
  return writeReloadConfig(join(scratch, `${name}.yaml`), admin, fes);
}

const started = (file: string): Promise<RunProcess> => startedRun(file, cleanup);

async function hold(port: number): Promise<Server> {
  const srv = await new Promise<Server>((resolve) => {
    const s = createServer().listen(port, '127.0.0.1', () => resolve(s));
  });
  cleanup.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return srv;
}

interface ReloadState {
  pid: number;
  asked: number;
  last: { seq: number; ok: boolean; errors: string[]; changes: string[] } | null;
}

async function reloadState(admin: number): Promise<ReloadState> {
  return JSON.parse((await httpGetText(`http://127.0.0.1:${admin}/reload`)).body) as ReloadState;
}

describe('licgate reload --config FILE [--pid PID]', { timeout: 60_000 }, () => {
  it('two reloads one after the other each get their own outcome: refused (exit 1, the error as licgate gave it), then applied (exit 0)', async () => {
    const [admin, lmgrd, taken] = [await freePort(), await freePort(), await freePort()];
    const file = writeConfig('twice', admin, { lmgrd });
    const p = await started(file);
    const pid = p.child.pid!;
    const holder = await hold(taken);
    writeConfig('twice', admin, { lmgrd, flexnet: taken });

    const refused = await runCli(['reload', '--config', file, '--pid', String(pid)]);
    expect(refused.stderr).toBe(`licgate reload: licgate pid ${pid}: reload refused, still running the previous config:\n  cannot listen for frontend "flexnet" on 127.0.0.1:${taken}: address already in use (EADDRINUSE)\n`);
    expect([refused.code, refused.stdout]).toEqual([1, '']);
    await connects(lmgrd);

    await new Promise<void>((resolve) => holder.close(() => resolve()));
    // No --pid: the admin listener says which process it is.
    const applied = await runCli(['reload', '--config', file]);
    expect([applied.code, applied.stderr]).toEqual([0, '']);
    expect(applied.stdout).toBe(`licgate reload: licgate pid ${pid}: config reloaded, 1 change:\n  frontend flexnet added on 127.0.0.1:${taken}\n`);
    await connects(taken);
    expect((await reloadState(admin)).last).toMatchObject({ seq: 2, ok: true });
  });

  it('a reload someone else asked for meanwhile: waits for both, reports the last, and says so', async () => {
    const [lmgrd, vendor, relay] = [await freePort(), await freePort(), await freePort()];
    // Port 0, not in the file: the command asks the file's admin.listen beside --url, and its answer
    // would not be held.
    const file = writeConfig('raced', 0, { lmgrd });
    const p = await started(file);
    const admin = Number(/:(\d+)$/.exec(String(p.logs.find((l) => l.msg === 'licgate started')!.admin))![1]);
    // The command's admin listener is reached through this relay, which holds its second request
    // (the first after its SIGHUP) until licgate has taken another SIGHUP, as from a second admin.
    let requests = 0;
    let held = false;
    const relaySrv = createServer((c: Socket) => {
      const u = connect(admin, '127.0.0.1');
      u.pipe(c);
      u.on('error', () => c.destroy());
      c.on('error', () => u.destroy());
      c.on('data', (chunk: Buffer) => {
        requests += chunk.toString('latin1').split('GET /reload ').length - 1;
        if (requests < 2 || held) return void u.write(chunk);
        held = true;
        c.pause();
        // Once licgate has taken the command's SIGHUP: two signals pending at once are one to Linux.
        const asked = (n: number) => () => waitFor(async () => (await reloadState(admin)).asked === n, { timeoutMs: 5000, what: `${n} reloads asked for` });
        void asked(1)()
          .then(() => p.child.kill('SIGHUP'))
          .then(asked(2))
          .then(() => {
            u.write(chunk);
            c.resume();
          });
      });
    }).listen(relay, '127.0.0.1');
    cleanup.push(() => new Promise<void>((resolve) => relaySrv.close(() => resolve())));
    writeConfig('raced', 0, { lmgrd, vendor });

    const r = await runCli(['reload', '--config', file, '--pid', String(p.child.pid), '--url', `http://127.0.0.1:${relay}`]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    // The first reload applied the change; the second, reading the same file, had none left.
    expect(r.stdout).toBe(`licgate reload: licgate pid ${p.child.pid}: config reloaded, no changes\n(1 more reload was asked for meanwhile, by SIGHUP or POST /admin/reload: this is the outcome of the last, which read the file last)\n`);
    expect((await reloadState(admin)).last).toMatchObject({ seq: 2, ok: true, changes: [] });
    await connects(vendor);
  });

  it('a FILE other than the one licgate runs: exit 1, nothing signalled, naming the file licgate would reload', async () => {
    const [admin, lmgrd, vendor] = [await freePort(), await freePort(), await freePort()];
    const file = writeConfig('running', admin, { lmgrd });
    const p = await started(file);
    // Valid, and a change: signalled, licgate would re-read its own file and report "no changes".
    const other = writeConfig('other', admin, { lmgrd, vendor });
    const r = await runCli(['reload', '--config', other]);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toBe(`licgate reload: expected --config to be the file licgate pid ${p.child.pid} runs, ${file}, found ${other}: a reload re-reads the file licgate was started with; nothing was signalled\n`);
    expect((await reloadState(admin)).asked).toBe(0);
    // The same file by another path (a relative one) is that file.
    const same = await runCli(['reload', '--config', relative(process.cwd(), file)]);
    expect([same.code, same.stderr]).toEqual([0, '']);
  });

  it('without an admin listener: the reload still happens, and it exits 0 saying it could not confirm the outcome', async () => {
    const [lmgrd, vendor] = [await freePort(), await freePort()];
    const file = writeConfig('no-admin', null, { lmgrd });
    const p = await started(file);
    writeConfig('no-admin', null, { lmgrd, vendor });
    const r = await runCli(['reload', '--config', file, '--pid', String(p.child.pid)]);
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(r.stderr).toBe(`licgate reload: sent SIGHUP to licgate pid ${p.child.pid}; could not confirm the outcome: ${file} has no admin listener to ask; licgate's log says it (journalctl -u licgate)\n`);
    const line = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
    expect(line.changes).toEqual([`frontend vendor added on 127.0.0.1:${vendor}`]);
    await connects(vendor);
  });

  it('a --pid other than the one the admin listener answers for, of a second licgate: signals that pid, exits 1, and reports no outcome of another process', async () => {
    const admin = await freePort();
    const file = writeConfig('other-pid', admin, { lmgrd: await freePort() });
    const p = await started(file);
    // Two licgates on one host: the unit's $MAINPID, a licgate by its command line, is the one to reload.
    const second = await started(writeConfig('other-pid-2', null, { lmgrd: await freePort() }));
    const pid = second.child.pid!;
    const r = await runCli(['reload', '--config', file, '--pid', String(pid)]);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toBe(`licgate reload: sent SIGHUP to licgate pid ${pid}; could not confirm the outcome: the admin listener at http://127.0.0.1:${admin} is licgate pid ${p.child.pid}'s, not ${pid}'s; licgate's log says it (journalctl -u licgate)\n`);
    await waitFor(() => second.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the second licgate reloading' });
    expect(await reloadState(admin)).toEqual({ pid: p.child.pid, file, asked: 0, last: null });
  });

  it('a --pid, or a pid the admin listener reports, that is not a licgate run process: exit 1, nothing signalled, saying what it found', async () => {
    const admin = await freePort();
    const file = writeConfig('not-licgate', admin, { lmgrd: await freePort() });
    const p = await started(file);
    // SIGHUP's default action ends a process: a mistyped --pid would end this one.
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    cleanup.push(() => void other.kill('SIGKILL'));
    const alive = (): unknown[] => [other.exitCode, other.signalCode, processState(other.pid!)];
    const r = await runCli(['reload', '--config', file, '--pid', String(other.pid)]);
    expect([r.code, r.stdout, r.stderr]).toEqual([1, '', `licgate reload: expected --pid ${other.pid} to be a "licgate run" process, found "sleep 30"; nothing was signalled\n`]);
    expect(await reloadState(admin)).toEqual({ pid: p.child.pid, file, asked: 0, last: null });

    // Without --pid, from an admin listener in another pid namespace (a container's licgate): its pid
    // is another process here. This one answers GET /reload as licgate does, with that pid.
    const fake = await freePort();
    const srv = createHttpServer((_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pid: other.pid, asked: 0, last: null }))).listen(fake, '127.0.0.1');
    cleanup.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
    await connects(fake);
    const noPid = await runCli(['reload', '--config', writeConfig('not-licgate-2', fake, { lmgrd: await freePort() })]);
    expect([noPid.code, noPid.stdout, noPid.stderr]).toEqual([1, '', `licgate reload: expected pid ${other.pid} (as the admin listener at http://127.0.0.1:${fake} reports) to be a "licgate run" process, found "sleep 30"; nothing was signalled\n`]);
    expect(alive()).toEqual([null, null, 'S']);
  });

  it('a licgate started through a symlink of another name, by a relative path with a space, is licgate run: signalled, and its outcome read', async () => {
    const admin = await freePort();
    const file = writeConfig('symlink', admin, { lmgrd: await freePort() });
    // An admin's second install beside the packaged one, run from its directory.
    const bin = join(scratch, 'opt licgate');
    mkdirSync(bin);
    symlinkSync(CLI, join(bin, 'licgate-prod'));
    const child = spawn(process.execPath, ['./licgate-prod', 'run', '--config', file], { cwd: bin, stdio: 'ignore' });
    cleanup.push(() => void child.kill('SIGKILL'));
    await waitFor(() => connects(admin).then(() => true, () => false), { timeoutMs: 15_000, what: 'licgate started by the symlink' });
    const r = await runCli(['reload', '--config', file, '--pid', String(child.pid)]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toContain(`licgate reload: licgate pid ${child.pid}: config reloaded`);
    expect(await reloadState(admin)).toMatchObject({ pid: child.pid, asked: 1, last: { seq: 1, ok: true } });
  });

  it('a silent process at --url does not hold up the answer of the file\'s admin listener', async () => {
    const [admin, lmgrd, vendor, silent] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const file = writeConfig('silent-url', admin, { lmgrd });
    const p = await started(file);
    // Accepts and never answers, as a wedged process on an old admin port (it reads, to see closes).
    const srv = await new Promise<Server>((resolve) => {
      const l = createServer((c) => void c.on('error', () => {}).resume()).listen(silent, '127.0.0.1', () => resolve(l));
    });
    cleanup.push(() => new Promise<void>((resolve) => srv.close(() => resolve())));
    writeConfig('silent-url', admin, { lmgrd, vendor });
    // Each of its reads waited up to 3 s on --url before asking the file's listener: past this deadline.
    const r = await runCli(['reload', '--config', file, '--pid', String(p.child.pid), '--url', `http://127.0.0.1:${silent}`, '--timeout', '2500']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toBe(`licgate reload: licgate pid ${p.child.pid}: config reloaded, 1 change:\n  frontend vendor added on 127.0.0.1:${vendor}\n`);
  });

  it('a stopped licgate (SIGSTOP) reloads nothing: it sends SIGHUP, waits --timeout for an answer, and exits 1 saying so', async () => {
    const [admin, lmgrd, vendor] = [await freePort(), await freePort(), await freePort()];
    const file = writeConfig('stopped', admin, { lmgrd });
    const p = await started(file);
    const pid = p.child.pid!;
    writeConfig('stopped', admin, { lmgrd, vendor });
    p.child.kill('SIGSTOP');
    cleanup.push(() => void p.child.kill('SIGCONT'));
    const r = await runCli(['reload', '--config', file, '--pid', String(pid), '--timeout', '1500']);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expect(r.stderr).toMatch(new RegExp(`^licgate reload: sent SIGHUP to licgate pid ${pid}; no outcome within 1500ms: http://127\\.0\\.0\\.1:${admin}: no answer within \\d+ms: the reload may still be running, or licgate is stopped or wedged \\(licgate's log says it: journalctl -u licgate\\)\n$`));
    // The signal was sent: resumed, licgate takes it.
    p.child.kill('SIGCONT');
    await waitFor(async () => (await reloadState(admin)).last?.ok === true, { timeoutMs: 10_000, what: 'the reload once resumed' });
    await connects(vendor);
  });

  it('a reload that moves admin.listen exits 0 with its changes, read where the moved listener answers; back again with --url where it runs', async () => {
    const [admin, moved, lmgrd] = [await freePort(), await freePort(), await freePort()];
    const file = writeConfig('move', admin, { lmgrd });
    const p = await started(file);
    const pid = p.child.pid!;
    writeConfig('move', moved, { lmgrd });
    // As the unit runs it: the file's address answers only once the reload has moved the listener there.
    const r = await runCli(['reload', '--config', file, '--pid', String(pid)]);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toBe(`licgate reload: licgate pid ${pid}: config reloaded, 1 change:\n  admin.listen 127.0.0.1:${admin} -> 127.0.0.1:${moved}\n`);
    await expect(connects(admin)).rejects.toThrow(/ECONNREFUSED/);
    expect((await reloadState(moved)).last).toMatchObject({ seq: 1, ok: true });

    writeConfig('move', admin, { lmgrd });
    const back = await runCli(['reload', '--config', file, '--url', `http://127.0.0.1:${moved}`]);
    expect([back.code, back.stderr]).toEqual([0, '']);
    expect(back.stdout).toBe(`licgate reload: licgate pid ${pid}: config reloaded, 1 change:\n  admin.listen 127.0.0.1:${moved} -> 127.0.0.1:${admin}\n`);
    await expect(connects(moved)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('a reload that removes the admin section, asked with --url where it ran: exits 0 as the listener closes, saying it could not confirm', async () => {
    const [admin, lmgrd, vendor] = [await freePort(), await freePort(), await freePort()];
    const file = writeConfig('remove-admin', admin, { lmgrd });
    const p = await started(file);
    const pid = p.child.pid!;
    writeConfig('remove-admin', null, { lmgrd, vendor });
    const r = await runCli(['reload', '--config', file, '--url', `http://127.0.0.1:${admin}`, '--timeout', '5000']);
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(r.stderr).toBe(`licgate reload: sent SIGHUP to licgate pid ${pid}; could not confirm the outcome: the admin listener at http://127.0.0.1:${admin} closed, and ${file} has no admin listener to ask: the reload removed it; licgate's log says it (journalctl -u licgate)\n`);
    const line = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
    expect(line.changes).toEqual([`frontend vendor added on 127.0.0.1:${vendor}`, `admin removed (127.0.0.1:${admin})`]);
    await connects(vendor);
  });

  it('a reload asked for while licgate stops: exit 1, saying it was not applied because licgate is stopping', async () => {
    const [admin, lmgrd] = [await freePort(), await freePort()];
    const file = writeConfig('stopping', admin, { lmgrd });
    // shutdown_delay: the admin listener answers while the stop waits.
    writeFileSync(file, readFileSync(file, 'utf8').replace('shutdown_delay: 0s', 'shutdown_delay: 20s'));
    const p = await started(file);
    p.child.kill('SIGTERM');
    await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('shutting down: /health and /ready are 503')), { timeoutMs: 10_000, what: 'the stop under way' });
    const r = await runCli(['reload', '--config', file, '--pid', String(p.child.pid)]);
    expect([r.code, r.stdout, r.stderr]).toEqual([1, '', `licgate reload: licgate pid ${p.child.pid}: licgate is stopping; the reload was not applied\n`]);
  });

  it('exit 1, nothing signalled, without --pid when no admin listener says which process licgate is; exit 2 on usage errors', async () => {
    const file = writeConfig('no-pid', null, { lmgrd: await freePort() });
    const r = await runCli(['reload', '--config', file]);
    expect([r.code, r.stderr]).toEqual([1, `licgate reload: expected --pid PID: ${file} has no admin listener to ask, so licgate's pid is unknown; nothing was signalled\n`]);
    for (const pid of ['0', '-1', 'x']) {
      const u = await runCli(['reload', '--config', file, `--pid=${pid}`]);
      expect(u.code).toBe(2);
      expect(u.stderr).toContain(`--pid: expected licgate's process id, found "${pid}"`);
    }
  });
});
