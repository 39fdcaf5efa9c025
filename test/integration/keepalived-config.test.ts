/**
 * Every shipped keepalived config (keepalived/*.conf) must pass keepalived's own config test,
 * and the notify script must behave. Runs as root (the config test runs inside a throwaway
 * network namespace that has an eth0, so the result does not depend on this machine's interfaces).
 *
 * The config test runs on a copy whose global `script_user` is root. Two reasons:
 *  - the `licgate` user does not exist on test machines, and keepalived then drops the vrrp_script
 *    (and the test would fail for the machine, not for the file);
 *  - keepalived 2.2.7 (Debian 12) kills its own config test with SIGTERM (exit 143) as soon as a
 *    script runs as a non-root user (upstream #2587/#2617, fixed in 2.2.8), so no non-root user
 *    can be tested there at all. Root makes keepalived's script-security check stricter, not looser.
 * A file using @id conditional lines is tested once per id it mentions (-i lb1, -i lb2, ...).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLab, type ExecResult, type Lab } from './netns/lab.js';
import { missingTools, requireTools } from '../helpers/require-tools.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const KEEPALIVED_DIR = join(REPO, 'keepalived');
const NOTIFY_SCRIPT = join(KEEPALIVED_DIR, 'licgate-vrrp-notify.sh');
const TOOLS = ['ip', 'keepalived'];

const confFiles = readdirSync(KEEPALIVED_DIR)
  .filter((f) => f.endsWith('.conf'))
  .sort()
  .map((f) => join(KEEPALIVED_DIR, f));

/** The config ids a file's @id / @^id lines mention (empty: no conditional lines). */
function configIds(text: string): string[] {
  return [...new Set([...text.matchAll(/^\s*@\^?([A-Za-z0-9_.-]+)\s/gm)].map((m) => m[1]!))].sort();
}

/** The copy that is config-tested: global script_user root (see the header). */
function configTestVariant(text: string): string {
  return text.replace(/^([ \t]*script_user)[ \t]+\S+([ \t]+\S+)?[ \t]*$/gm, '$1 root');
}

describe('shipped keepalived configs pass `keepalived -t`', () => {
  let lab: Lab | undefined;
  let work = '';

  beforeEach((ctx) => requireTools(TOOLS, ctx));

  beforeAll(async () => {
    if (missingTools(TOOLS).length > 0) return; // each test then fails (CI) or skips (local)
    lab = await createLab({ hosts: ['kt'] });
    work = lab.dir;
  }, 30_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  /** keepalived -t in the lab namespace; -e makes a missing file an error (without it: exit 0). */
  async function configTest(file: string, id?: string): Promise<ExecResult> {
    const argv = ['keepalived', '-t', '-e', '-f', file];
    if (id !== undefined) argv.push('-i', id);
    return lab!.exec('kt', argv, { timeoutMs: 20_000 });
  }

  function explain(r: ExecResult): string {
    const hint = r.code === 143 ? ' (keepalived 2.2.7 kills its own config test when a script runs as non-root)' : '';
    return `exit ${r.code}${hint}; stderr:\n${r.stderr}${r.stdout}`;
  }

  it('finds the shipped configs', () => {
    expect(confFiles.map((f) => basename(f))).toContain('keepalived.conf');
  });

  it.each(confFiles.map((f) => [basename(f), f] as const))('%s passes for every config id it uses', async (_name, file) => {
    const text = readFileSync(file, 'utf8');
    const variant = join(work, `variant-${basename(file)}`);
    writeFileSync(variant, configTestVariant(text));
    const ids = configIds(text);
    for (const id of ids.length > 0 ? ids : [undefined]) {
      const r = await configTest(variant, id);
      expect(r.code, `${basename(file)} -i ${id ?? '(default)'}: ${explain(r)}`).toBe(0);
      // keepalived -t prints nothing when the config is clean; any line is a warning or error.
      expect(r.stderr.trim(), `${basename(file)} -i ${id ?? '(default)'}`).toBe('');
    }
  });

  describe('negative controls (the check can fail)', () => {
    const shipped = join(KEEPALIVED_DIR, 'keepalived.conf');

    it('a config with an unknown keyword fails', async () => {
      const broken = configTestVariant(readFileSync(shipped, 'utf8')).replace(
        /^(\s*virtual_router_id .*)$/m,
        '$1\n    virtual_rooter_id 52',
      );
      expect(broken).toContain('virtual_rooter_id');
      const file = join(work, 'broken-keyword.conf');
      writeFileSync(file, broken);
      const r = await configTest(file, 'lb1');
      expect(r.code, explain(r)).not.toBe(0);
      expect(r.stderr).toMatch(/Unknown keyword 'virtual_rooter_id'/);
    });

    it('a config with an unbalanced brace fails', async () => {
      const broken = configTestVariant(readFileSync(shipped, 'utf8')).replace(/^(\s*track_script \{)$/m, '$1 {');
      const file = join(work, 'broken-brace.conf');
      writeFileSync(file, broken);
      const r = await configTest(file, 'lb1');
      expect(r.code, explain(r)).not.toBe(0);
    });

    it('a host that is neither lb1 nor lb2 fails (priority left undefined)', async () => {
      const file = join(work, 'variant-unknown-id.conf');
      writeFileSync(file, configTestVariant(readFileSync(shipped, 'utf8')));
      const r = await configTest(file, 'lb3');
      expect(r.code, explain(r)).not.toBe(0);
      expect(r.stderr).toMatch(/invalid number '\$PRIORITY'/);
    });

    it('a script user that does not exist fails (keepalived would drop the health check)', async () => {
      const text = readFileSync(shipped, 'utf8').replace(/^([ \t]*script_user)[ \t]+\S+/m, '$1 lg-no-such-user');
      const file = join(work, 'no-such-user.conf');
      writeFileSync(file, text);
      const r = await configTest(file, 'lb1');
      expect(r.code, explain(r)).not.toBe(0);
      expect(r.stderr).toMatch(/script uid\/gid|Unable to set default user/);
    });

    it('sub-second adverts without "version 3" warn (VRRPv2 rounds them to whole seconds)', async () => {
      const text = configTestVariant(readFileSync(shipped, 'utf8')).replace(/^[ \t]*version 3[ \t]*\n/m, '');
      expect(text).not.toMatch(/^[ \t]*version\b/m);
      const file = join(work, 'vrrpv2-sub-second.conf');
      writeFileSync(file, text);
      const r = await configTest(file, 'lb1');
      expect(r.stderr).toMatch(/advertisement interval 0\.250000s must be an integer/);
    });

    it('a missing file fails (with -e)', async () => {
      const r = await configTest(join(work, 'does-not-exist.conf'), 'lb1');
      expect(r.code, explain(r)).not.toBe(0);
    });
  });

  describe('design decisions in keepalived.conf', () => {
    const text = readFileSync(join(KEEPALIVED_DIR, 'keepalived.conf'), 'utf8');
    const block = (name: RegExp): string => {
      const start = text.search(name);
      expect(start, `block ${name}`).toBeGreaterThanOrEqual(0);
      const open = text.indexOf('{', start);
      let depth = 0;
      for (let i = open; i < text.length; i++) {
        if (text[i] === '{') depth++;
        else if (text[i] === '}' && --depth === 0) return text.slice(open + 1, i);
      }
      throw new Error(`unterminated block ${name}`);
    };
    const live = (s: string) => s.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);

    it('tracks both checks without a weight (FAULT, not a priority change)', () => {
      const entries = live(block(/^\s*track_script \{/m));
      expect(entries).toEqual(['chk_licgate', 'chk_licgate_listening']);
      for (const name of entries) expect(live(block(new RegExp(`^vrrp_script ${name} \\{`, 'm')))).not.toContainEqual(expect.stringMatching(/^weight\b/));
    });

    it('a licgate that is not listening fails at the first check (connect only, fall 1)', () => {
      expect(live(block(/^vrrp_script chk_licgate_listening \{/m))).toEqual(
        expect.arrayContaining([`script "/bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/8404'"`, 'interval 1', 'fall 1']),
      );
    });

    it('health check: curl /health (0.5 s for an answer) every 1 s, timeout 2, fall 2, rise 2', () => {
      expect(live(block(/^vrrp_script chk_licgate \{/m))).toEqual(
        expect.arrayContaining([
          'script "/usr/bin/curl -fsS --max-time 0.5 http://127.0.0.1:8404/health"',
          'interval 1',
          'timeout 2',
          'fall 2',
          'rise 2',
        ]),
      );
    });

    it('VRRPv3 adverts every 0.25 s (a peer takes over 0.85-0.9 s after a host dies)', () => {
      const vi = live(block(/^vrrp_instance VI_LICGATE \{/m));
      expect(vi).toContain('version 3');
      expect(vi).toContain('advert_int 0.25');
    });

    it('both hosts start as BACKUP, lb1 outranks lb2, notify records the role', () => {
      const vi = live(block(/^vrrp_instance VI_LICGATE \{/m));
      expect(vi).toContain('state BACKUP');
      expect(vi).toContain('priority $PRIORITY');
      expect(vi).toContainEqual(expect.stringMatching(/^notify "\/\S+\/licgate-vrrp-notify\.sh"$/));
      const prio = (id: string) => Number(new RegExp(`^@${id} \\$PRIORITY=(\\d+)$`, 'm').exec(text)?.[1]);
      expect(prio('lb1')).toBe(150);
      expect(prio('lb2')).toBe(100);
    });
  });
});

describe('licgate-vrrp-notify.sh', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'licgate-notify-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const notify = (...args: string[]) => spawnSync(NOTIFY_SCRIPT, args, { encoding: 'utf8', env: {} });

  it('is valid POSIX sh and executable', () => {
    const r = spawnSync('sh', ['-n', NOTIFY_SCRIPT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(NOTIFY_SCRIPT, 'utf8').startsWith('#!/bin/sh\n')).toBe(true);
  });

  it('writes TYPE NAME STATE PRIO TIMESTAMP, replacing the previous line', () => {
    const file = join(dir, 'vrrp-state');
    expect(notify(file, 'INSTANCE', 'VI_LICGATE', 'BACKUP', '150').status).toBe(0);
    const before = Date.now();
    const r = notify(file, 'INSTANCE', 'VI_LICGATE', 'MASTER', '150');
    expect(r.status, r.stderr).toBe(0);
    const content = readFileSync(file, 'utf8');
    expect(content).toMatch(/^INSTANCE VI_LICGATE MASTER 150 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
    const stamp = Date.parse(content.trim().split(' ')[4]!);
    expect(Math.abs(stamp - before)).toBeLessThan(5000);
    expect(readdirSync(dir).filter((f) => f.startsWith('.vrrp-state.'))).toEqual([]); // no temp left
  });

  it.each([
    ['shell metacharacters in NAME', ['INSTANCE', 'VI;touch @DIR@/pwned', 'MASTER', '1']],
    ['command substitution in PRIO', ['INSTANCE', 'VI', 'MASTER', '$(id)']],
    ['newline in STATE', ['INSTANCE', 'VI', 'MASTER\nFAULT', '1']],
    ['unknown STATE', ['INSTANCE', 'VI', 'UP', '1']],
    ['unknown TYPE', ['ROUTER', 'VI', 'MASTER', '1']],
    ['PRIO > 255', ['INSTANCE', 'VI', 'MASTER', '256']],
    ['too few arguments', ['INSTANCE', 'VI', 'MASTER']],
  ])('refuses %s (exit 2, file untouched)', (_what, args) => {
    const file = join(dir, 'refused-state');
    writeFileSync(file, 'INSTANCE VI BACKUP 100 2000-01-01T00:00:00Z\n');
    const r = notify(file, ...args.map((a) => a.replace('@DIR@', dir)));
    expect(r.status, r.stderr).toBe(2);
    expect(readFileSync(file, 'utf8')).toBe('INSTANCE VI BACKUP 100 2000-01-01T00:00:00Z\n');
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
  });

  it('refuses a relative state file and reports a missing directory (exit 1)', () => {
    expect(notify('rel/state', 'INSTANCE', 'VI', 'MASTER', '1').status).toBe(2);
    const r = notify(join(dir, 'nodir', 'state'), 'INSTANCE', 'VI', 'MASTER', '1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/does not exist/);
  });
});
