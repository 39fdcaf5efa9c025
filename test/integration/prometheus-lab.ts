/**
 * A real Prometheus for integration tests: `prometheus` with a config the test writes, its TSDB in
 * the test's temp dir, its web API on 127.0.0.1, asked over HTTP.
 *
 *   const prom = await startPrometheus(yamlText, dir);
 *   const up = await prom.query('up{job="licgate"}');      // [{ metric: {...}, value: [t, "1"] }]
 *   await prom.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './haproxy-lab.js';
import { httpGetText, terminate } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/** One series of an instant query's answer. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A rule as GET /api/v1/rules reports it. */
export interface PromRule {
  name: string;
  type: string;
  /** "unknown" until its first evaluation. */
  health: 'ok' | 'err' | 'unknown';
  lastError?: string;
}

/** An alert as GET /api/v1/alerts reports it. */
export interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

export interface PrometheusProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** GET /api/v1/...: the answer's `data`, or an error naming Prometheus's. */
  api<T>(path: string): Promise<T>;
  query(promql: string): Promise<PromSample[]>;
  /** Series with a sample at any time so far that `selector` matches (GET /api/v1/series). */
  series(selector: string): Promise<Record<string, string>[]>;
  rules(): Promise<PromRule[]>;
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

const ATTEMPTS = 5;

/**
 * Starts `prometheus --config.file` on `config` (written to `dir`). Prometheus cannot listen on port
 * 0, so a port found free by binding and closing it is passed; another process may take it first,
 * and then Prometheus exits with "address already in use" and is started again on another port.
 */
export async function startPrometheus(config: string, dir: string): Promise<PrometheusProcess> {
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  let output = '';
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const data = join(dir, `data-${attempt}`);
    mkdirSync(data);
    const child = spawn('prometheus', [`--config.file=${configFile}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    output = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-200_000)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output = (output + d).slice(-200_000)));
    const prom = prometheusAt(child, `http://127.0.0.1:${port}`, () => output);
    // 'close': its output has been read to the end.
    const gone = new AbortController();
    const exited = once(child, 'close').then(([code]) => {
      gone.abort();
      throw new Error(`prometheus exited with ${String(code)}`);
    });
    const ready = waitFor(async () => (await httpGetText(`${prom.url}/-/ready`)).status === 200, { timeoutMs: 20_000, intervalMs: 50, what: `prometheus on 127.0.0.1:${port} ready`, signal: gone.signal });
    // Whichever loses the race is settled later with nobody waiting for it.
    exited.catch(() => {});
    ready.catch(() => {});
    try {
      await Promise.race([ready, exited]);
      return prom;
    } catch (e) {
      await prom.stop();
      if (/address already in use/.test(output) && attempt < ATTEMPTS) continue;
      throw new Error(`${e instanceof Error ? e.message : String(e)}\nprometheus output:\n${output}`);
    }
  }
}

function prometheusAt(child: ChildProcess, url: string, output: () => string): PrometheusProcess {
  const api = async <T>(path: string): Promise<T> => {
    const r = await httpGetText(`${url}/api/v1/${path}`);
    const body = JSON.parse(r.body) as { status: string; data: T; error?: string };
    if (r.status !== 200 || body.status !== 'success') throw new Error(`GET /api/v1/${path}: ${r.status} ${body.error ?? r.body}`);
    return body.data;
  };
  return {
    child,
    url,
    output,
    api,
    query: async (promql) => (await api<{ result: PromSample[] }>(`query?query=${encodeURIComponent(promql)}`)).result,
    series: (selector) => api<Record<string, string>[]>(`series?match[]=${encodeURIComponent(selector)}`),
    rules: async () => (await api<{ groups: { rules: PromRule[] }[] }>('rules')).groups.flatMap((g) => g.rules),
    alerts: async () => (await api<{ alerts: PromAlert[] }>('alerts')).alerts,
    stop: () => terminate(child, 5000),
  };
}
