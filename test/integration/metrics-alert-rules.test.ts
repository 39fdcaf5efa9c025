import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
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
    expect(r.out).toContain('SUCCESS: 12 rules found');
    expect(r.code).toBe(0);
  });

  it('fires each alert on the series it watches (promtool test rules alerts-test.yml)', (ctx) => {
    requireTools(['promtool'], ctx);
    const r = promtool(['test', 'rules', 'alerts-test.yml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.code).toBe(0);
  });

  it("the README's scrape config scrapes the job LicgateDown watches, at the admin port, and passes promtool check config", (ctx) => {
    requireTools(['promtool'], ctx);
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/^ {2}/gm, '')).find((b) => b.includes('scrape_configs:'));
    expect(block, 'README has a Prometheus scrape config').toBeDefined();
    const cfg = parse(block!) as { rule_files: string[]; scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; authorization?: unknown }[] };
    const [job] = cfg.scrape_configs;
    const rules = readFileSync(`${DIR}alerts.yml`, 'utf8');
    expect(rules).toContain(`expr: up{job="${job!.job_name}"} == 0`);
    // The admin listener's default port, and no credentials: GET /metrics takes no token.
    for (const t of job!.static_configs.flatMap((s) => s.targets)) expect(t).toMatch(/:8404$/);
    expect(job!.authorization).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'licgate-prom-'));
    try {
      writeFileSync(join(dir, 'prometheus.yml'), block!.replace(cfg.rule_files[0]!, `${DIR}alerts.yml`));
      const r = spawnSync('promtool', ['check', 'config', 'prometheus.yml'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS: 12 rules found');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
