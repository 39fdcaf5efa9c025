import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/proxy-harness.js';

describe('licgate (no command, --help, --version, an unknown command)', () => {
  it('without a command: exit 2 with the command list on stderr, as a usage error, so a script that captures stdout gets nothing', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^licgate: expected a command\n\nlicgate \S+ — load balancer and health sidecar for license servers\n/);
    expect(r.stderr).toContain('  ctl       admin client');
  });

  it('--help: exit 0 with the command list on stdout; an unknown command: exit 2 naming it on stderr', async () => {
    const help = await runCli(['--help']);
    expect([help.code, help.stderr]).toEqual([0, '']);
    expect(help.stdout).toContain('Usage: licgate <command> [options]');
    const unknown = await runCli(['frobnicate']);
    expect([unknown.code, unknown.stdout]).toEqual([2, '']);
    expect(unknown.stderr).toMatch(/^licgate: unknown command "frobnicate"\n\nlicgate /);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, `${version}\n`, '']);
  });
});
