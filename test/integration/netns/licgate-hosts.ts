/**
 * Real licgate processes on lab hosts: the proxy (`licgate run`) on the load-balancer hosts and
 * simulated license servers (`licgate simulate`) on the license-server hosts, both from the built
 * CLI (dist/cli/licgate.cjs; build with `npx tsc -p .`). The admin API listens on 127.0.0.1 inside
 * each namespace, so it is reached with curl run in that namespace.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabProcess } from './lab.js';
import { waitFor } from '../../helpers/wait-for.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const LICGATE_MAIN = join(REPO, 'dist', 'cli', 'licgate.cjs');
export const ADMIN_PORT = 8404;
export const LICENSE_PORT = 27000;
/** The vendor daemon's fixed port of the FlexLM-mode simulators (`VENDOR ... PORT=27001`). */
export const VENDOR_PORT = 27001;

export function assertBuilt(): void {
  if (!existsSync(LICGATE_MAIN)) throw new Error(`${LICGATE_MAIN} not found: build licgate first (npx tsc -p .)`);
}

export interface ProxyServer {
  name: string;
  address: string;
  tier: number;
}

export interface ProxyConfigOptions {
  failback: 'auto' | 'manual';
  servers: readonly ProxyServer[];
  shutdownGrace: string;
  connectTimeout: string;
  retries: number;
  check: string;
  tokenFile?: string;
  /** Where keepalived's notify hook records this host's VRRP role (reported in /status). */
  vrrpStateFile?: string;
  /** FlexLM, as examples/proxy.yaml: a vendor frontend on VENDOR_PORT sharing the backend, `stick: source`. */
  flexlm?: boolean;
  /** More top-level YAML (e.g. a `peers:` section), written as given. */
  extra?: string;
}

/**
 * A proxy config: admin on 127.0.0.1:8404, frontend on 0.0.0.0:27000 (so the VIP works), one backend;
 * with `flexlm` also the vendor frontend on 0.0.0.0:27001 and `stick: source` (balance roundrobin).
 */
export function proxyConfig(o: ProxyConfigOptions): string {
  const servers = o.servers.map((s) => `      - { name: ${s.name}, address: "${s.address}", tier: ${s.tier} }`).join('\n');
  return `# written by test/integration/netns/licgate-hosts.ts
admin:
  listen: 127.0.0.1:${ADMIN_PORT}
${o.tokenFile ? `  token_file: ${o.tokenFile}\n` : ''}${o.vrrpStateFile ? `vrrp: { state_file: "${o.vrrpStateFile}" }\n` : ''}${o.extra ?? ''}log: { level: info, format: json }
shutdown_grace: ${o.shutdownGrace}
frontends:
  - name: lmgrd
    listen: 0.0.0.0:${LICENSE_PORT}
    backend: licenses
${o.flexlm ? `  - name: vendor\n    listen: 0.0.0.0:${VENDOR_PORT}\n    backend: licenses\n    server_port: ${VENDOR_PORT}\n` : ''}backends:
  - name: licenses
${o.flexlm ? '    balance: roundrobin\n    stick: source\n' : ''}    failback: ${o.failback}
    retries: ${o.retries}
    connect_timeout: ${o.connectTimeout}
    check: ${o.check}
    servers:
${servers}
`;
}

export function startProxy(lab: Lab, host: string, configFile: string): LabProcess {
  return lab.spawn(host, [process.execPath, LICGATE_MAIN, 'run', '--config', configFile], { label: 'licgate' });
}

/** `licgate simulate` on LICENSE_PORT; with `flexlm`, FlexLM mode with its vendor daemon on VENDOR_PORT. */
export function startSimulator(lab: Lab, host: string, name: string, opts: { flexlm?: boolean } = {}): LabProcess {
  const flexlm = opts.flexlm ? ['--flexlm', '--vendor-port', String(VENDOR_PORT)] : [];
  return lab.spawn(host, [process.execPath, LICGATE_MAIN, 'simulate', '--listen', `0.0.0.0:${LICENSE_PORT}`, ...flexlm, '--name', name], { label: `simulate-${name}` });
}

export interface AdminReply {
  /** HTTP status; 0 when nothing answered (refused, timeout). */
  status: number;
  body: unknown;
  error?: string;
}

/** An admin-API call from inside `host`'s namespace (curl, 1 s timeout); never throws. */
export async function adminCall(lab: Lab, host: string, method: 'GET' | 'POST', path: string, opts: { token?: string; body?: string } = {}): Promise<AdminReply> {
  const argv = ['curl', '-sS', '--max-time', '1', '-X', method, '-o', '-', '-w', '\n%{http_code}'];
  if (opts.token) argv.push('-H', `Authorization: Bearer ${opts.token}`);
  if (opts.body !== undefined) argv.push('-H', 'content-type: application/json', '--data-binary', opts.body);
  argv.push(`http://127.0.0.1:${ADMIN_PORT}${path}`);
  const r = await lab.exec(host, argv, { timeoutMs: 5000 });
  const nl = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(nl + 1).trim()) || 0;
  const text = nl >= 0 ? r.stdout.slice(0, nl) : '';
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status, body, ...(status === 0 ? { error: r.stderr.trim() || `curl exit ${r.code}` } : {}) };
}

/** The parts of GET /status the tests read. */
export interface StatusView {
  shutting_down: boolean;
  vrrp: { file: string; role: { name: string; state: string; priority: number } | null; error: string | null } | null;
  frontends: Array<{ name: string; active: number }>;
  backends: Array<{
    name: string;
    serving_tier: number | null;
    tier: string;
    servers: Array<{ name: string; state: string; usable: boolean; total: number; active: number }>;
  }>;
}

export async function proxyStatus(lab: Lab, host: string): Promise<StatusView | undefined> {
  const r = await adminCall(lab, host, 'GET', '/status');
  return r.status === 200 ? (r.body as StatusView) : undefined;
}

/** State text of one server as `host`'s proxy sees it ("UP", "DOWN 1/2", …), undefined when unreachable. */
export async function serverState(lab: Lab, host: string, server: string): Promise<string | undefined> {
  return (await proxyStatus(lab, host))?.backends[0]?.servers.find((s) => s.name === server)?.state;
}

export function waitAdminStatus(lab: Lab, host: string, path: '/health' | '/ready', want: number, timeoutMs: number): Promise<AdminReply> {
  return waitFor(
    async () => {
      const r = await adminCall(lab, host, 'GET', path);
      if (r.status !== want) throw new Error(`got ${r.status} ${r.error ?? JSON.stringify(r.body)}`);
      return r;
    },
    { timeoutMs, intervalMs: 20, what: `${host} GET ${path} → ${want}` },
  );
}
