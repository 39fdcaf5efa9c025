import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { helloOnce } from '../helpers/license-client.js';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { keepalivedReports } from '../helpers/vrrp-notify-hook.js';
import { waitFor } from '../helpers/wait-for.js';
import { freePort } from './haproxy-lab.js';
import { startPrometheus, type PrometheusProcess } from './prometheus-lab.js';

const DIR = fileURLToPath(new URL('../../prometheus/', import.meta.url));
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

let prometheus: PrometheusProcess | null = null;
const dirs: string[] = [];

afterEach(async () => {
  await prometheus?.stop();
  prometheus = null;
  await stopAll();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function promtool(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * A `peers` section whose remote is a closed port: licgate_peer_connected exists only with peers,
 * and here it stays 0.
 */
async function peersSection(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-peers-'));
  dirs.push(dir);
  const token = join(dir, 'peers.token');
  writeFileSync(token, 'alert-rules-test-token-0123456789\n', { mode: 0o600 });
  return `peers: { listen: 127.0.0.1:0, remotes: ["127.0.0.1:${await freePort()}"], token_file: ${token} }\n`;
}

/** The README's Prometheus config block (Operations, Metrics), as text and parsed. */
function readmeScrapeConfig(): { block: string; cfg: ScrapeConfig } {
  const block = [...README.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/^ {2}/gm, '')).find((b) => b.includes('scrape_configs:'));
  expect(block, 'README has a Prometheus scrape config').toBeDefined();
  return { block: block!, cfg: parse(block!) as ScrapeConfig };
}

interface ScrapeConfig {
  global?: Record<string, string>;
  rule_files: string[];
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; authorization?: unknown }[];
}

describe('prometheus/alerts.yml', () => {
  it('passes promtool check rules', (ctx) => {
    requireTools(['promtool'], ctx);
    const r = promtool(['check', 'rules', 'alerts.yml']);
    expect(r.out).toContain('SUCCESS: 15 rules found');
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
    const { block, cfg } = readmeScrapeConfig();
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
      expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS: 15 rules found');
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
    const p = await startProxy(`${await peersSection()}frontends:
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

  it("a real Prometheus scrapes a real licgate run with the README's scrape config: up is 1, every series alerts.yml and the README's metric list name exists, every rule evaluates, and LicgateCheckFailing is pending for the down server", async (ctx) => {
    requireTools(['prometheus'], ctx);
    const dir = mkdtempSync(join(tmpdir(), 'licgate-prometheus-'));
    dirs.push(dir);
    const vrrpFile = join(dir, 'vrrp-state');
    const up = await startSimulator('up');
    const closed = await freePort();
    // stick, vrrp.state_file, status and peers: the series of the stick table, of the VRRP role, of
    // the status listener's denials and of the peer links exist only with them.
    const p = await startProxy(`${await peersSection()}vrrp: { state_file: ${vrrpFile} }
status: { listen: 127.0.0.1:0 }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - { name: licenses, stick: source, check: { type: tcp, inter: 1s, rise: 1, fall: 1, timeout: 500ms }, servers: [{ name: up, address: "127.0.0.1:${up.port}" }, { name: down, address: "127.0.0.1:${closed}" }] }
`);
    const { cfg } = readmeScrapeConfig();
    cfg.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    cfg.rule_files = [`${DIR}alerts.yml`];
    cfg.scrape_configs[0]!.static_configs = [{ targets: [new URL(p.adminUrl).host] }];
    prometheus = await startPrometheus(stringify(cfg), dir);
    const prom = prometheus;

    await waitFor(async () => (await prom.query('up{job="licgate"} == 1')).length === 1, { timeoutMs: 20_000, intervalMs: 250, what: 'up{job="licgate"} == 1' });
    // No role yet (keepalived has not run its hook): the UNKNOWN series LicgateVrrpRoleUnknown reads;
    // then the hook records MASTER, the series LicgateVrrpNotOneMaster reads.
    await waitFor(async () => (await prom.series('licgate_vrrp_state{state="UNKNOWN"}')).length > 0, { timeoutMs: 10_000, intervalMs: 250, what: 'the VRRP role UNKNOWN scraped' });
    keepalivedReports(vrrpFile, 'MASTER', '150');
    await waitFor(async () => (await p.server('licenses', 'down')).state.startsWith('DOWN'), { timeoutMs: 10_000, what: 'the server on a closed port DOWN' });
    // A session: the series by frontend, backend and server begin with the first one.
    expect(await helloOnce(p.port)).toBe('up');

    const rules = readFileSync(`${DIR}alerts.yml`, 'utf8');
    const selectors = new Set([...rules.matchAll(/expr:.*$/gm)].flatMap((m) => [...m[0].matchAll(/\b(?:licgate_[a-z_]+|up)(?:\{[^}]*\})?/g)].map((x) => x[0])));
    const metricsItem = /^- \*\*Metrics\*\*:[\s\S]*?(?=^- \*\*)/m.exec(README)![0];
    const named = new Set([...metricsItem.matchAll(/\blicgate_[a-z][a-z_]*/g)].map((m) => m[0]));
    expect(selectors.size, 'selectors in alerts.yml').toBeGreaterThanOrEqual(12);
    expect(named.size, "metrics in the README's list").toBeGreaterThanOrEqual(15);
    await waitFor(
      async () => {
        const names = new Set((await prom.series('{job="licgate"}')).map((x) => x.__name__!));
        // A histogram's series are NAME_bucket, NAME_sum and NAME_count.
        const missing = [...named].filter((n) => !names.has(n) && !names.has(`${n}_count`));
        for (const sel of selectors) if ((await prom.series(sel)).length === 0) missing.push(sel);
        if (missing.length) throw new Error(`no series in Prometheus for ${missing.join(', ')}`);
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'a series for every metric the README and alerts.yml name' },
    );

    // Every rule evaluated at least once ("unknown" before), without an error.
    const evaluated = await waitFor(
      async () => {
        const r = await prom.rules();
        return r.length > 0 && r.every((x) => x.health !== 'unknown') && r;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'every rule evaluated once' },
    );
    expect(evaluated.map((r) => `${r.name}: ${r.health}${r.lastError ? ` (${r.lastError})` : ''}`)).toEqual([...rules.matchAll(/- alert: (\S+)/g)].map((m) => `${m[1]}: ok`));

    // The down server's last check failed: pending for its 2 minutes, the up server not at all.
    const pending = await waitFor(async () => {
      const alerts = (await prom.alerts()).filter((a) => a.labels.alertname === 'LicgateCheckFailing');
      return alerts.length > 0 && alerts;
    }, { timeoutMs: 10_000, intervalMs: 250, what: 'LicgateCheckFailing pending' });
    expect(pending.map((a) => ({ ...a.labels, state: a.state }))).toEqual([
      { alertname: 'LicgateCheckFailing', severity: 'warning', job: 'licgate', instance: new URL(p.adminUrl).host, backend: 'licenses', server: 'down', state: 'pending' },
    ]);
  });
});
