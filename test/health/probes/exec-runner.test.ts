import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runExec } from '../../../src/health/probes/exec-runner.js';
import { processGroupGone as groupGone } from '../../helpers/process-group.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-exec-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));


async function waitFor(what: string, condition: () => boolean, deadlineMs = 5000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`expected ${what} within ${deadlineMs} ms, still not the case`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('runExec', () => {
  it('returns the exit code and both streams', async () => {
    const r = await runExec(['sh', '-c', 'echo hello; echo oops >&2; exit 3'], { timeoutMs: 5000 });
    expect(r).toMatchObject({ exitCode: 3, signal: null, stdout: 'hello\n', stderr: 'oops\n', timedOut: false, truncated: false });
    expect(r.spawnError).toBeUndefined();
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('forces the C locale over both the environment and opts.env, and passes other variables', async () => {
    const r = await runExec(['sh', '-c', 'printf "%s|%s|%s" "$LANG" "$LC_ALL" "$LICGATE_TEST"'], {
      timeoutMs: 5000,
      env: { LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8', LICGATE_TEST: 'x y' },
    });
    expect(r.stdout).toBe('C|C|x y');
  });

  it("gives the command licgate's PATH, HOME, TZ and license variables, not its admin token nor the rest", async () => {
    const set = { LICGATE_TOKEN: 'secret-admin-token-0123', CREDENTIALS_DIRECTORY: '/run/credentials/licgate.service', http_proxy: 'http://u:p@proxy:3128', LM_LICENSE_FILE: '27000@lic1', MLM_LICENSE_FILE: '27001@lic2', RLM_LICENSE: '5053@lic3', FOUNDRY_LICENSE: '5053@lic4', TZ: 'UTC' };
    const saved = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]));
    Object.assign(process.env, set);
    let r;
    try {
      r = await runExec(['env', '-0'], { timeoutMs: 5000 });
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    const env = Object.fromEntries(r.stdout.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    expect(Object.keys(env).filter((k) => !['PATH', 'HOME', 'USER', 'LOGNAME', 'TMPDIR', 'LD_LIBRARY_PATH'].includes(k)).sort()).toEqual(['FOUNDRY_LICENSE', 'LANG', 'LC_ALL', 'LM_LICENSE_FILE', 'MLM_LICENSE_FILE', 'RLM_LICENSE', 'TZ']);
    expect(env).toMatchObject({ PATH: process.env.PATH, LM_LICENSE_FILE: '27000@lic1', LANG: 'C', LC_ALL: 'C' });
  });

  it('passes shell metacharacters literally, with no shell in between', async () => {
    const victim = join(scratch, 'x');
    const r = await runExec(['echo', `$(id); rm -rf ${victim}; \`touch ${victim}\` | cat > ${victim}`], { timeoutMs: 5000 });
    expect(r.stdout).toBe(`$(id); rm -rf ${victim}; \`touch ${victim}\` | cat > ${victim}\n`);
    expect(existsSync(victim)).toBe(false);
  });

  it('kills the whole process group on timeout, grandchildren included', async () => {
    const started = Date.now();
    const r = await runExec(['sh', '-c', 'echo $$; sleep 30 & sleep 30'], { timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL', truncated: false });
    const pgid = Number(r.stdout.trim());
    expect(pgid).toBeGreaterThan(1);
    await waitFor(`process group ${pgid} to be gone`, () => groupGone(pgid));
  });

  it('ends a background job that let go of the output when the command exits, as one that holds it', async () => {
    // A wrapper that starts `lmutil ... >"$tmp" 2>&1 &` (or double-forks) closes nothing of ours
    // late, so the check settles at once; the job must not outlive it, or every check adds one.
    for (const job of ['sleep 30 >/dev/null 2>&1 </dev/null &', '(sleep 30 >/dev/null 2>&1 </dev/null &);']) {
      const r = await runExec(['sh', '-c', `echo $$; ${job} echo started`], { timeoutMs: 5000 });
      expect(r).toMatchObject({ exitCode: 0, timedOut: false, truncated: false });
      const pgid = Number(r.stdout.split('\n')[0]);
      expect(pgid).toBeGreaterThan(1);
      await waitFor(`the background job of "${job}" (process group ${pgid}) to be gone`, () => groupGone(pgid), 2000);
    }
  });

  it('judges by an exit before the timeout, though a background job holding the output meets the timeout in its half-second grace', async () => {
    // The command exits about 50 ms in, well within its 400 ms; its job keeps our stdout open, so
    // the grace would end half a second after the exit: the timeout comes first.
    const r = await runExec(['sh', '-c', 'echo $$; sleep 30 & sleep 0.05; echo done'], { timeoutMs: 400 });
    expect(r).toMatchObject({ exitCode: 0, signal: null, timedOut: false, truncated: false });
    expect(r.stdout.split('\n')[1]).toBe('done');
    const pgid = Number(r.stdout.split('\n')[0]);
    await waitFor(`process group ${pgid} to be gone`, () => groupGone(pgid));
  });

  it('kills the group and truncates when a command floods stdout', async () => {
    const r = await runExec(['sh', '-c', 'echo $$; exec yes'], { timeoutMs: 5000, maxOutputBytes: 4096 });
    expect(r).toMatchObject({ truncated: true, timedOut: false, exitCode: null, signal: 'SIGKILL' });
    expect(Buffer.byteLength(r.stdout)).toBe(4096);
    const [pid, ...rest] = r.stdout.split('\n');
    expect(rest.slice(0, 3)).toEqual(['y', 'y', 'y']);
    const pgid = Number(pid);
    await waitFor(`process group ${pgid} to be gone`, () => groupGone(pgid));
  });

  it('caps stderr as well, with the 64 KiB default', async () => {
    const r = await runExec(['sh', '-c', 'yes >&2'], { timeoutMs: 5000 });
    expect(r.truncated).toBe(true);
    expect(r.stderr.length).toBe(64 * 1024);
    expect(r.stdout).toBe('');
  });

  it('keeps output that fits exactly', async () => {
    const r = await runExec(['printf', '%s', 'abcd'], { timeoutMs: 5000, maxOutputBytes: 4 });
    expect(r).toMatchObject({ stdout: 'abcd', truncated: false, exitCode: 0 });
  });

  it('kills the group when the caller aborts', async () => {
    const pidFile = join(scratch, 'abort.pid');
    const ac = new AbortController();
    const running = runExec(['sh', '-c', 'sleep 30 & echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; sleep 30', pidFile], {
      timeoutMs: 20_000,
      signal: ac.signal,
    });
    await waitFor('the command to write its pid file', () => existsSync(pidFile));
    const pgid = Number(readFileSync(pidFile, 'utf8').trim());
    const started = Date.now();
    ac.abort();
    const r = await running;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r).toMatchObject({ timedOut: false, exitCode: null, signal: 'SIGKILL' });
    await waitFor(`process group ${pgid} to be gone`, () => groupGone(pgid));
  });

  it('does not start the command when the signal is already aborted', async () => {
    const marker = join(scratch, 'never');
    const r = await runExec(['touch', marker], { timeoutMs: 5000, signal: AbortSignal.abort() });
    expect(r.spawnError).toBe('aborted before the command was started');
    expect(existsSync(marker)).toBe(false);
  });

  it('resolves with spawnError for a command that does not exist', async () => {
    const r = await runExec(['licgate-no-such-command-7f3a', '-a'], { timeoutMs: 5000 });
    expect(r).toMatchObject({ exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false });
    expect(r.spawnError).toMatch(/^ENOENT/);
    const abs = await runExec([join(scratch, 'missing', 'lmutil')], { timeoutMs: 5000 });
    expect(abs.spawnError).toMatch(/^ENOENT/);
  });

  it('rejects an empty argv', async () => {
    await expect(runExec([], { timeoutMs: 5000 })).rejects.toThrow('expected a command in argv[0], found []');
  });
});
