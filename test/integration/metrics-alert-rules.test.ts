import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';

const DIR = fileURLToPath(new URL('../../prometheus/', import.meta.url));

afterEach(() => stopAll());

function promtool(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('prometheus/alerts.yml', () => {
  it('passes promtool check rules', (ctx) => {
    requireTools(['promtool'], ctx);
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.out).toContain('SUCCESS: 8 rules found');
    expect(r.code).toBe(0);
  });

  it('fires each alert on the series it watches (promtool test rules alerts-test.yml)', (ctx) => {
    requireTools(['promtool'], ctx);
    const r = promtool(['test', 'rules', 'alerts-test.yml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it('names only metrics that a real licgate exports', async () => {
    const rules = readFileSync(`${DIR}alerts.yml`, 'utf8');
    const names = new Set([...rules.matchAll(/expr:.*$/gm)].flatMap((m) => [...m[0].matchAll(/\blicgate_[a-z_]+/g)].map((x) => x[0])));
    expect(names.size).toBeGreaterThanOrEqual(6);
    const sim = await startSimulator('s1');
    const p = await startProxy(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: tcp, inter: 1h }
    servers:
      - { name: s1, address: 127.0.0.1:${sim.port} }
`);
    const text = (await p.get('/metrics')).body;
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    for (const n of names) expect(exported, `alerts.yml uses ${n}`).toContain(n);
  });
});
