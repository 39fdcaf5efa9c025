/**
 * Real licgate processes for integration tests.
 *
 *   const proxy = await startProxy(`frontends: [...]\nbackends: [...]`);
 *   await helloOnce(proxy.port);           // first frontend's port (configs listen on port 0)
 *   const st = await proxy.status();        // GET /status
 *   afterEach(() => stopAll());
 *
 * `startProxy` writes the YAML to a temp dir (adding an admin listener on 127.0.0.1:0, JSON logs and a
 * short shutdown grace unless the text sets them), spawns `node dist/cli/licgate.cjs run --config F`
 * (the npm bin), learns the admin, status and agent ports from the "licgate started" log line (no
 * free-port race), reads the frontend ports from GET /status and, by default, waits for GET /ready
 * to answer 200.
 * `startSimulator` spawns `licgate simulate` the same way, so a test can SIGKILL a license server.
 * Every process started here is tracked; `stopAll()` stops them all, even after a failed test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { waitFor } from './wait-for.js';

/** The build under test; LICGATE_TEST_CLI runs the suite against another build (e.g. an older commit's). */
export const CLI = process.env.LICGATE_TEST_CLI ?? fileURLToPath(new URL('../../dist/cli/licgate.cjs', import.meta.url));

/** A JSON log line of the daemon (pino). */
export type LogLine = Record<string, unknown> & { msg?: string; time?: string; level?: number };

export interface ServerStatus {
  name: string;
  address: string;
  tier: number;
  state: string;
  usable: boolean;
  weight: number;
  active: number;
  total: number;
  connect_errors: number;
  connect_ms: number | null;
  connects_overdue: number;
  since: string;
  last_check: { ok: boolean; reason: string; duration_ms: number; at: string } | null;
}

export interface BackendStatus {
  name: string;
  running: boolean;
  serving_tier: number | null;
  tier: string;
  servers_up: string;
  /** Live stick-table entries; null without `stick: source`. */
  stick_entries: number | null;
  servers: ServerStatus[];
}

export interface StatusJson {
  uptime_s: number;
  frontends: { name: string; port: number | null; backend: string; active: number }[];
  backends: BackendStatus[];
}

const running = new Set<{ stop(): Promise<void> }>();

/** Stops every process this module started and removes their temp dirs. */
export async function stopAll(): Promise<void> {
  const all = [...running];
  running.clear();
  await Promise.all(all.map((p) => p.stop()));
}

/** Runs a child to completion; for one-shot CLI commands (validate, check). */
export async function runCli(args: string[], timeoutMs = 20_000, env?: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: performance.now() - started };
}

/** Line-splits a child's stdout, keeping every line (and the JSON ones parsed). */
function collectLines(child: ChildProcess, onLine: (line: string) => void): void {
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

/** `work`, unless the child exits first (then reject with `why()`, at once rather than at a deadline). */
function raceExit<T>(child: ChildProcess, why: () => string, work: Promise<T>): Promise<T> {
  let onExit: (() => void) | undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = () => reject(new Error(why()));
    if (child.exitCode !== null || child.signalCode !== null) onExit();
    else child.once('close', onExit);
  });
  return Promise.race([work, exited]).finally(() => child.off('close', onExit!));
}

/** SIGTERM, wait up to `graceMs` for the exit, then SIGKILL. */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * A `log.format: pretty` line (`HH:MM:SS.mmm LEVEL msg  key=value ...`), as far as tests read it: the
 * message, `pretty` set to the level's name, and the key=value pairs (digits as numbers).
 */
function parsePretty(line: string): LogLine | undefined {
  // trimEnd: through a terminal (script(1)) lines end in \r\n.
  const m = /^\d\d:\d\d:\d\d\.\d{3} ([A-Z]+) (.*?)(?:  (.*))?$/.exec(line.trimEnd());
  if (!m) return undefined;
  const out: LogLine = { msg: m[2], pretty: m[1] };
  for (const kv of (m[3] ?? '').split(' ')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = /^\d+$/.test(kv.slice(i + 1)) ? Number(kv.slice(i + 1)) : kv.slice(i + 1);
  }
  return out;
}

/**
 * GET `url` and its whole answer as text, within 5 s. node:http, not fetch(): fetch refuses the
 * Fetch standard's "bad ports" (10080, 6665-6669, ...), which an admin listener may use.
 */
export function httpGetText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { timeout: 5000 }, (r) => {
      let text = '';
      r.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: r.statusCode ?? 0, body: text })).on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 5000ms`))).on('error', reject);
  });
}

export interface ProxyProcess {
  child: ChildProcess;
  adminUrl: string;
  /** Frontend name → listening port. */
  ports: Record<string, number>;
  /** The first frontend's port. */
  port: number;
  /** The admin, status and agent listeners' ports (null: not configured), from the "licgate started" line. */
  listening: { admin: number; status: number | null; agent: number | null };
  configFile: string;
  /** Writes `yaml` to the config file with the same defaults as at start, then SIGHUP. */
  reload(yaml: string): void;
  logs: LogLine[];
  stderr(): string;
  get(path: string): Promise<{ status: number; body: string; json: unknown }>;
  status(): Promise<StatusJson>;
  server(backend: string, server: string): Promise<ServerStatus>;
  backend(name: string): Promise<BackendStatus>;
  stop(): Promise<void>;
}

export interface StartProxyOptions {
  /** Wait for GET /ready → 200 (default true). */
  waitReady?: boolean;
  timeoutMs?: number;
  /** Run licgate under this wrapper, e.g. ['prlimit', '--nofile=64:64']. */
  wrapper?: string[];
}

/** An admin listener on a free port, JSON info logs and a short shutdown_grace, where `yaml` sets none. */
function withHarnessDefaults(yaml: string): string {
  const has = (key: string): boolean => new RegExp(`^${key}:`, 'm').test(yaml);
  const extra = [
    has('admin') ? '' : 'admin: { listen: "127.0.0.1:0" }',
    has('log') ? '' : 'log: { level: info, format: json }',
    has('shutdown_grace') ? '' : 'shutdown_grace: 500ms',
  ].filter(Boolean);
  return `${extra.join('\n')}\n${yaml}`;
}

/** Frontend `lmgrd` on 127.0.0.1:0 to backend `licenses`, whose one server `primary` is at 127.0.0.1:`port`. */
export function oneServerYaml(port: number, check = '{ type: status, inter: 5s }'): string {
  return `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: ${check}
    servers: [{ name: primary, address: "127.0.0.1:${port}" }]
`;
}

export async function startProxy(yaml: string, opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const dir = mkdtempSync(join(tmpdir(), 'licgate-test-'));
  const configFile = join(dir, 'licgate.yaml');
  writeFileSync(configFile, withHarnessDefaults(yaml));
  const argv = [...(opts.wrapper ?? []), process.execPath, CLI, 'run', '--config', configFile];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const logs: LogLine[] = [];
  collectLines(child, (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push(parsePretty(line) ?? { msg: line });
    }
  });
  let stopped = false;
  const handle = {
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      running.delete(handle);
      await terminate(child, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(handle);
  const started = await raceExit(
    child,
    () => `licgate run --config ${configFile} exited before it started: ${stderr.trim()}`,
    waitFor(() => logs.find((l) => l.msg === 'licgate started'), { timeoutMs, intervalMs: 10, what: `"licgate started" from licgate run --config ${configFile}` }),
  ).catch((e: Error) => {
    throw new Error(`${e.message}\nstderr: ${stderr}\nstdout: ${logs.map((l) => JSON.stringify(l)).join('\n')}`);
  });
  const adminPort = startedPort(started, 'admin');
  if (adminPort === null) throw new Error(`no admin listener in ${JSON.stringify(started)}`);
  // An admin listener on [::1] or [::] is reached over IPv6, any other over 127.0.0.1.
  const adminUrl = `http://${String(started.admin).startsWith('[') ? '[::1]' : '127.0.0.1'}:${adminPort}`;

  const get = async (path: string): Promise<{ status: number; body: string; json: unknown }> => {
    const res = await httpGetText(adminUrl + path);
    const body = res.body;
    let json: unknown = undefined;
    try {
      json = JSON.parse(body);
    } catch {
      // not JSON
    }
    return { status: res.status, body, json };
  };
  const status = async (): Promise<StatusJson> => {
    const r = await get('/status');
    if (r.status !== 200) throw new Error(`GET /status: ${r.status} ${r.body}`);
    return r.json as StatusJson;
  };
  const backend = async (name: string): Promise<BackendStatus> => {
    const b = (await status()).backends.find((x) => x.name === name);
    if (!b) throw new Error(`no backend "${name}" in /status`);
    return b;
  };
  const server = async (b: string, s: string): Promise<ServerStatus> => {
    const found = (await backend(b)).servers.find((x) => x.name === s);
    if (!found) throw new Error(`no server "${s}" in backend "${b}" in /status`);
    return found;
  };

  const st = await status();
  const ports: Record<string, number> = {};
  for (const f of st.frontends) if (f.port !== null) ports[f.name] = f.port;
  if (opts.waitReady ?? true) {
    await waitFor(async () => (await get('/ready')).status === 200, { timeoutMs, intervalMs: 20, what: `GET ${adminUrl}/ready → 200` });
  }
  return {
    child,
    adminUrl,
    ports,
    port: st.frontends[0]?.port ?? 0,
    listening: { admin: adminPort, status: startedPort(started, 'status'), agent: startedPort(started, 'agent') },
    configFile,
    reload(next: string): void {
      writeFileSync(configFile, withHarnessDefaults(next));
      child.kill('SIGHUP');
    },
    logs,
    stderr: () => stderr,
    get,
    status,
    server,
    backend,
    stop: () => handle.stop(),
  };
}

/** A listener's port from the "licgate started" line, which gives it as address:port; null when there is none. */
function startedPort(started: LogLine, what: 'admin' | 'status' | 'agent'): number | null {
  const at = started[what];
  // log.format pretty writes null as the word.
  if (at === null || at === 'null') return null;
  const port = typeof at === 'string' ? /:(\d+)$/.exec(at)?.[1] : undefined;
  if (port === undefined) throw new Error(`"licgate started": expected ${what} as address:port or null, found ${JSON.stringify(at)}`);
  return Number(port);
}

export interface SimulatorProcess {
  child: ChildProcess;
  name: string;
  port: number;
  /** Sends a signal (SIGKILL: a crash) and resolves when the process has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/** `licgate simulate --listen 127.0.0.1:PORT --name NAME`; port 0 picks a free one. */
export async function startSimulator(name: string, opts: { port?: number; tokens?: number; host?: string } = {}): Promise<SimulatorProcess> {
  const child = spawn(process.execPath, [CLI, 'simulate', '--listen', `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`, '--name', name, '--tokens', String(opts.tokens ?? 100)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let port = 0;
  collectLines(child, (line) => {
    const m = /^simulator \S+ listening on .*:(\d+)$/.exec(line);
    if (m) port = Number(m[1]);
  });
  const handle = { stop: () => terminate(child, 3000) };
  running.add(handle);
  await raceExit(
    child,
    () => `licgate simulate exited before listening: ${stderr.trim()}`,
    waitFor(() => port, { timeoutMs: 10_000, intervalMs: 10, what: `simulator ${name} to listen` }),
  );
  return {
    child,
    name,
    port,
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
    stop: async () => {
      running.delete(handle);
      await handle.stop();
    },
  };
}

export interface TestServer {
  port: number;
  server: NetServer;
  /** Accepted sockets still open. */
  sockets: Set<Socket>;
  /** Every connection accepted so far, in order. */
  accepted: Socket[];
  close(): Promise<void>;
}

/** A plain TCP server on 127.0.0.1:0 that a test scripts per connection (upstream "license server"). */
export async function startTcpServer(onConnection: (s: Socket) => void, opts: { allowHalfOpen?: boolean } = {}): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? true }, (s) => {
    sockets.add(s);
    accepted.push(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {
      // Tests that care listen for errors themselves; an unheard reset must not crash the runner.
    });
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  let closed = false;
  const handle = {
    async stop(): Promise<void> {
      if (closed) return;
      closed = true;
      running.delete(handle);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  running.add(handle);
  return { port, server, sockets, accepted, close: () => handle.stop() };
}

/** An in-process simulated license server (src/simulator), stopped by stopAll(). */
export async function startInProcessSimulator(name: string, opts: { port?: number; tokens?: number } = {}): Promise<LicenseSimulator & { port: number }> {
  const sim = new LicenseSimulator({ listen: { host: '127.0.0.1', port: opts.port ?? 0 }, name, tokens: opts.tokens ?? 1000 });
  const port = (await sim.listen()).port;
  const handle = { stop: () => sim.close() };
  running.add(handle);
  const close = sim.close.bind(sim);
  // Closing by hand (a "crash") also takes it off the cleanup list.
  sim.close = () => {
    running.delete(handle);
    return close();
  };
  return Object.assign(sim, { port });
}
