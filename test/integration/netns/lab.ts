/**
 * Network-namespace lab for integration tests (Linux, run as root; needs iproute2, and iptables
 * for blackhole()).
 *
 *   const lab = await createLab({ hosts: ['lb1', 'lb2', 'client'] });
 *   try { ... } finally { await lab.destroy(); }
 *
 * Topology: one namespace `<prefix>br` holding bridge `br0`, and one namespace `<prefix><host>` per
 * host whose interface `eth0` is a veth into that bridge: one L2 segment, 192.0.2.0/24 (TEST-NET-1).
 * Host i (in the order given) gets 192.0.2.(10+i)/24, so at most 80 hosts (.10-.89); .100-.199 are
 * never assigned by the lab and free for virtual IPs. `lo` is up in every namespace.
 * Nothing is created outside these namespaces: both veth ends are created directly inside them.
 * <prefix> is `lg<pid % 10000>-`: parallel runs never collide; one lab per process at a time, and
 * not from a worker thread (vitest pool 'forks', the default, gives each test file a process).
 *
 * API (all names typed below):
 *   lab.hosts, lab.prefix, lab.dir            host names; namespace prefix; per-lab temp dir (0755)
 *   lab.ns(host) / lab.addr(host)             namespace name / IPv4 address (first host '192.0.2.10')
 *   lab.exec(host, argv, {timeoutMs, input, env})  → Promise<{code, signal, stdout, stderr, timedOut}>
 *                                             `ip netns exec NS argv...`; never throws on exit code
 *   lab.spawn(host, argv, {label, env, cwd})  → LabProcess: tracked, killed on destroy; stdout and
 *                                             stderr also go to lab.dir/logs/<host>-<label>-<n>.log;
 *                                             .child (ChildProcess), .pid, .logFile, .readLog(), .countInLog(text),
 *                                             .signal(sig, {group}), .stop(), .exited, .running()
 *   lab.addresses(host) / lab.holders(ip)     IPv4 addresses on the host's eth0 / hosts holding ip
 *   lab.linkDown(host) / lab.linkUp(host)     eth0 down/up inside the host's namespace (cable pulled)
 *   lab.blackhole(host) / lab.unblackhole(host)  iptables DROP of everything in and out of eth0
 *                                             inside that namespace: peers see silence, never a RST
 *                                             (loopback keeps working, like a dead switch port)
 *   lab.logs({tailBytes})                     tails of every process log, for failure reports
 *   lab.destroy({keepFiles})                  stop processes, delete every namespace (and so the
 *                                             bridge and veths), remove lab.dir unless keepFiles or
 *                                             LICGATE_LAB_KEEP=1. Idempotent; also runs on process exit.
 * createLab first removes stale namespaces of earlier runs: its own prefix, and any lg<N>- prefix
 * whose owner marker (os.tmpdir()/licgate-netns-owners/lg<N>.pid) names a process that is gone
 * (a crashed run's lab.dir, with its logs, is left in os.tmpdir()).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { waitFor } from '../../helpers/wait-for.js';

export const LAB_SUBNET = '192.0.2.0/24';
export const LAB_PREFIX_LEN = 24;
/** Interface name of every host's link into the bridge. */
export const LAB_IFACE = 'eth0';
const FIRST_HOST_OCTET = 10;
const MAX_HOSTS = 80;
const BRIDGE = 'br0';
const BRIDGE_HOST = 'br';
const OWNER_DIR = join(tmpdir(), 'licgate-netns-owners');
const HOST_NAME = /^[a-z][a-z0-9]{0,12}$/; // veth peer "v-<host>" must fit IFNAMSIZ (15)

export interface LabOptions {
  hosts: readonly string[];
}

export interface ExecOptions {
  /** Kill the command (its whole process group) after this long; default 15 s. */
  timeoutMs?: number;
  /** Written to stdin, then stdin is closed. */
  input?: string;
  /** Added to (and overriding) the test process's environment. */
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  /** Exit code; -1 when killed by a signal or the timeout. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface SpawnOptions {
  /** Short name for the log file and reports; default basename(argv[0]). */
  label?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LabProcess {
  readonly host: string;
  readonly label: string;
  readonly argv: readonly string[];
  readonly child: ChildProcess;
  /** Pid of the program (ip netns exec execs it), also its process-group id. */
  readonly pid: number;
  readonly logFile: string;
  /** Resolves when the program exits (never rejects). */
  readonly exited: Promise<ProcessExit>;
  running(): boolean;
  readLog(): string;
  /** How often `text` occurs in the log so far (count before an action, wait for more after it). */
  countInLog(text: string): number;
  /** Send a signal to the program, or with {group:true} to its whole process group. */
  signal(sig: NodeJS.Signals, opts?: { group?: boolean }): void;
  /** Signal the program (default SIGTERM); if it has not exited after timeoutMs (default 3 s), SIGKILL its group. */
  stop(opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ProcessExit>;
}

export interface Lab {
  readonly prefix: string;
  readonly hosts: readonly string[];
  readonly dir: string;
  ns(host: string): string;
  addr(host: string): string;
  exec(host: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(host: string, argv: readonly string[], opts?: SpawnOptions): LabProcess;
  addresses(host: string): Promise<string[]>;
  holders(ip: string): Promise<string[]>;
  linkDown(host: string): Promise<void>;
  linkUp(host: string): Promise<void>;
  blackhole(host: string): Promise<void>;
  unblackhole(host: string): Promise<void>;
  logs(opts?: { tailBytes?: number }): string;
  destroy(opts?: { keepFiles?: boolean }): Promise<void>;
}

/** `lg<pid % 10000>-`: the namespace-name prefix of this process's lab. */
export function labPrefix(pid: number = process.pid): string {
  return `lg${pid % 10000}-`;
}

export async function createLab(opts: LabOptions): Promise<Lab> {
  if (process.platform !== 'linux') throw new Error('netns lab: Linux only');
  if (process.getuid?.() !== 0) throw new Error('netns lab: must run as root (creates network namespaces)');
  if (!isMainThread) {
    // Worker threads share the pid, hence the prefix, and would delete each other's labs as stale.
    throw new Error("netns lab: run in a process of its own (vitest pool 'forks', the default), not a worker thread");
  }
  const hosts = [...opts.hosts];
  if (hosts.length === 0 || hosts.length > MAX_HOSTS) throw new Error(`netns lab: 1..${MAX_HOSTS} hosts, got ${hosts.length}`);
  for (const h of hosts) {
    if (!HOST_NAME.test(h) || h === BRIDGE_HOST) throw new Error(`netns lab: bad host name ${JSON.stringify(h)} (want ${HOST_NAME}, not "${BRIDGE_HOST}")`);
  }
  if (new Set(hosts).size !== hosts.length) throw new Error('netns lab: duplicate host names');
  const prefix = labPrefix();
  for (const lab of liveLabs) {
    if (lab.prefix === prefix) throw new Error(`netns lab: this process already has a live lab (${prefix}*); destroy it first`);
  }

  collectStale(prefix);
  writeOwnerMarker(prefix);
  const dir = mkdtempSync(join(tmpdir(), `licgate-lab-${prefix}`));
  chmodSync(dir, 0o755); // scripts run by keepalived as an unprivileged user must reach files here
  mkdirSync(join(dir, 'logs'), { mode: 0o755 });

  const lab = new LabImpl(prefix, hosts, dir);
  liveLabs.add(lab);
  try {
    lab.build();
    await lab.waitLinksUp();
  } catch (err) {
    await lab.destroy({ keepFiles: true }).catch(() => {});
    throw err;
  }
  return lab;
}

// ---------------------------------------------------------------------------------------------

const liveLabs = new Set<LabImpl>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when destroy() was never reached (crash, forgotten afterAll): synchronous only.
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
}

class LabImpl implements Lab {
  private readonly procs: LabProcessImpl[] = [];
  private readonly blackholed = new Set<string>();
  private seq = 0;
  private destroyed = false;

  constructor(
    readonly prefix: string,
    readonly hosts: readonly string[],
    readonly dir: string,
  ) {
    installExitHook();
  }

  ns(host: string): string {
    this.check(host);
    return this.prefix + host;
  }

  addr(host: string): string {
    this.check(host);
    return `192.0.2.${FIRST_HOST_OCTET + this.hosts.indexOf(host)}`;
  }

  private allNamespaces(): string[] {
    return [...this.hosts.map((h) => this.prefix + h), this.prefix + BRIDGE_HOST];
  }

  private check(host: string): void {
    if (!this.hosts.includes(host)) throw new Error(`netns lab: unknown host ${JSON.stringify(host)} (have ${this.hosts.join(', ')})`);
    if (this.destroyed) throw new Error('netns lab: already destroyed');
  }

  build(): void {
    const br = this.prefix + BRIDGE_HOST;
    ipSync(['netns', 'add', br]);
    ipSync(['-n', br, 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    ipSync(['-n', br, 'link', 'set', BRIDGE, 'up']);
    for (const host of this.hosts) {
      const ns = this.prefix + host;
      const peer = `v-${host}`;
      ipSync(['netns', 'add', ns]);
      // Both ends are created directly in their namespaces: nothing appears in the root namespace.
      ipSync(['link', 'add', LAB_IFACE, 'netns', ns, 'type', 'veth', 'peer', 'name', peer, 'netns', br]);
      ipSync(['-n', br, 'link', 'set', peer, 'master', BRIDGE, 'up']);
      ipSync(['-n', ns, 'link', 'set', 'lo', 'up']);
      ipSync(['-n', ns, 'addr', 'add', `${this.addr(host)}/${LAB_PREFIX_LEN}`, 'dev', LAB_IFACE]);
      ipSync(['-n', ns, 'link', 'set', LAB_IFACE, 'up']);
    }
  }

  async waitLinksUp(): Promise<void> {
    for (const host of this.hosts) await this.waitOperUp(host);
  }

  private async waitOperUp(host: string): Promise<void> {
    await waitFor(
      async () => {
        const r = await run('ip', ['-n', this.ns(host), '-o', 'link', 'show', 'dev', LAB_IFACE], {});
        return r.code === 0 && /\bstate UP\b/.test(r.stdout);
      },
      { timeoutMs: 5000, intervalMs: 20, what: `${host} ${LAB_IFACE} operstate UP` },
    );
  }

  exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    checkArgv(argv);
    return run('ip', ['netns', 'exec', this.ns(host), ...argv], opts);
  }

  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): LabProcess {
    checkArgv(argv);
    const ns = this.ns(host);
    const label = (opts.label ?? basename(argv[0]!)).replace(/[^A-Za-z0-9_.-]/g, '_');
    const logFile = join(this.dir, 'logs', `${host}-${label}-${++this.seq}.log`);
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      detached: true, // own process group: stop() and destroy() can kill daemons' children too
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
    });
    const proc = new LabProcessImpl(host, label, argv, child, logFile);
    this.procs.push(proc);
    return proc;
  }

  async addresses(host: string): Promise<string[]> {
    const r = await run('ip', ['-n', this.ns(host), '-o', '-4', 'addr', 'show', 'dev', LAB_IFACE], {});
    if (r.code !== 0) throw new Error(`ip addr in ${host}: ${r.stderr.trim()}`);
    return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!);
  }

  async holders(ip: string): Promise<string[]> {
    const found = await Promise.all(this.hosts.map(async (h) => ((await this.addresses(h)).includes(ip) ? h : undefined)));
    return found.filter((h): h is string => h !== undefined);
  }

  async linkDown(host: string): Promise<void> {
    await runOk('ip', ['-n', this.ns(host), 'link', 'set', LAB_IFACE, 'down']);
  }

  async linkUp(host: string): Promise<void> {
    await runOk('ip', ['-n', this.ns(host), 'link', 'set', LAB_IFACE, 'up']);
    await this.waitOperUp(host);
  }

  async blackhole(host: string): Promise<void> {
    if (this.blackholed.has(host)) return;
    for (const rule of blackholeRules()) await runOk('ip', ['netns', 'exec', this.ns(host), 'iptables', '-w', '-A', ...rule]);
    this.blackholed.add(host);
  }

  async unblackhole(host: string): Promise<void> {
    if (!this.blackholed.has(host)) return;
    for (const rule of blackholeRules()) await runOk('ip', ['netns', 'exec', this.ns(host), 'iptables', '-w', '-D', ...rule]);
    this.blackholed.delete(host);
  }

  logs(opts: { tailBytes?: number } = {}): string {
    const tail = opts.tailBytes ?? 4000;
    const parts: string[] = [];
    for (const p of this.procs) {
      let text = p.readLog();
      if (text.length > tail) text = '…' + text.slice(-tail);
      const state = p.exitInfo ? `exited code=${p.exitInfo.code} signal=${p.exitInfo.signal}` : 'running';
      parts.push(`===== ${p.host}: ${p.label} (pid ${p.pid}, ${state}) ${p.logFile}\n${text}`);
    }
    return parts.join('\n');
  }

  async destroy(opts: { keepFiles?: boolean } = {}): Promise<void> {
    if (this.destroyed) return;
    await Promise.all(this.procs.map((p) => p.stop({ timeoutMs: 2000 })));
    this.destroySync();
    const leftovers = listNetnsSync().filter((n) => n.startsWith(this.prefix));
    const keep = opts.keepFiles === true || process.env.LICGATE_LAB_KEEP === '1';
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
    if (leftovers.length > 0) throw new Error(`netns lab: could not delete namespaces: ${leftovers.join(', ')}`);
  }

  /** Synchronous teardown (also the process-exit hook): kill, delete namespaces, drop the marker. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const p of this.procs) p.killGroup('SIGKILL');
    // Hosts first; deleting the bridge namespace last removes the bridge and the veth peers.
    for (const ns of this.allNamespaces()) deleteNetnsSync(ns);
    removeOwnerMarker(this.prefix);
  }
}

function blackholeRules(): string[][] {
  return [
    ['INPUT', '-i', LAB_IFACE, '-j', 'DROP'],
    ['OUTPUT', '-o', LAB_IFACE, '-j', 'DROP'],
  ];
}

class LabProcessImpl implements LabProcess {
  readonly pid: number;
  readonly exited: Promise<ProcessExit>;
  exitInfo: ProcessExit | undefined;

  constructor(
    readonly host: string,
    readonly label: string,
    readonly argv: readonly string[],
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    const log = createWriteStream(logFile, { flags: 'a', mode: 0o644 });
    log.on('error', () => {}); // a vanished lab dir must not crash the test run
    log.write(`# ${new Date().toISOString()} [${host}] ${argv.map(quoteForLog).join(' ')}\n`);
    child.stdout?.on('data', (d: Buffer) => log.write(d));
    child.stderr?.on('data', (d: Buffer) => log.write(d));
    this.pid = child.pid ?? -1;
    this.exited = new Promise<ProcessExit>((resolve) => {
      const done = (info: ProcessExit, note: string) => {
        if (this.exitInfo) return;
        this.exitInfo = info;
        log.write(`# ${new Date().toISOString()} ${note}\n`);
        resolve(info);
      };
      child.once('error', (err) => done({ code: -1, signal: null }, `spawn error: ${err.message}`));
      child.once('exit', (code, signal) => done({ code, signal }, `exited code=${code} signal=${signal}`));
    });
    child.once('close', () => log.end());
  }

  running(): boolean {
    return this.exitInfo === undefined && this.pid > 0;
  }

  readLog(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '(no log)';
    }
  }

  countInLog(text: string): number {
    return this.readLog().split(text).length - 1;
  }

  signal(sig: NodeJS.Signals, opts: { group?: boolean } = {}): void {
    if (opts.group) this.killGroup(sig);
    else if (this.running()) this.child.kill(sig);
  }

  /** Signal the process group (the program and whatever it forked without setsid). */
  killGroup(sig: NodeJS.Signals): void {
    if (this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* ESRCH: the group is gone */
    }
  }

  async stop(opts: { signal?: NodeJS.Signals; timeoutMs?: number } = {}): Promise<ProcessExit> {
    if (this.running()) {
      this.child.kill(opts.signal ?? 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), opts.timeoutMs ?? 3000))),
      ]);
      clearTimeout(timer);
      if (timedOut) this.killGroup('SIGKILL');
    }
    // Whatever the program left running (e.g. a last notify script) is killed by destroy().
    return this.exited;
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

function checkArgv(argv: readonly string[]): void {
  if (argv.length === 0 || argv.some((a) => typeof a !== 'string')) throw new TypeError('argv must be a non-empty string array');
}

function quoteForLog(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const OUTPUT_LIMIT = 8 * 1024 * 1024;

/** Run a command (argv, no shell) and collect its output; never throws for an exit code. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < OUTPUT_LIMIT) stderr += d;
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 15_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: stderr + `spawn ${cmd}: ${err.message}`, timedOut });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr, timedOut });
    });
  });
}

async function runOk(cmd: string, args: readonly string[]): Promise<ExecResult> {
  const r = await run(cmd, args, {});
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (code ${r.code}): ${r.stderr.trim()}`);
  return r;
}

function ipSync(args: readonly string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Namespaces, owner markers, stale cleanup

function listNetnsSync(): string[] {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.length > 0);
}

/** Kill every process inside `ns` (all started by this harness), then delete it. */
function deleteNetnsSync(ns: string): void {
  if (!/^lg\d{1,4}-[a-z][a-z0-9]*$/.test(ns)) throw new Error(`refusing to delete namespace ${ns}`);
  if (!listNetnsSync().includes(ns)) return;
  for (let round = 0; round < 50; round++) {
    let pids: number[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .split(/\s+/)
        .filter(Boolean)
        .map(Number)
        .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
    } catch {
      pids = [];
    }
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    execFileSync('sleep', ['0.02']); // sync context (exit hook): let the kernel reap
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    /* reported by destroy() through the leftover check */
  }
}

function markerFile(prefix: string): string {
  return join(OWNER_DIR, `${prefix.replace(/-$/, '')}.pid`);
}

function readMarker(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writeOwnerMarker(prefix: string): void {
  writeFileSync(markerFile(prefix), `${process.pid}\n`, { mode: 0o644 });
}

function removeOwnerMarker(prefix: string): void {
  try {
    if (readMarker(markerFile(prefix)) === process.pid) unlinkSync(markerFile(prefix));
  } catch {
    /* already gone */
  }
}

/** Delete namespaces left behind by earlier runs: our prefix, and prefixes whose owner died. */
function collectStale(ownPrefix: string): void {
  mkdirSync(OWNER_DIR, { recursive: true, mode: 0o755 });
  const ownOwner = readMarker(markerFile(ownPrefix));
  if (ownOwner !== undefined && ownOwner !== process.pid && isAlive(ownOwner)) {
    throw new Error(`netns lab: prefix ${ownPrefix} belongs to live process ${ownOwner} (pid % 10000 collision); run again`);
  }
  const stale = new Set<string>([ownPrefix]);
  for (const file of readdirSync(OWNER_DIR)) {
    const m = /^(lg\d{1,4})\.pid$/.exec(file);
    if (!m) continue;
    const pid = readMarker(join(OWNER_DIR, file));
    if (pid === undefined || !isAlive(pid)) stale.add(`${m[1]}-`);
  }
  const namespaces = listNetnsSync();
  for (const prefix of stale) {
    for (const ns of namespaces) {
      if (ns.startsWith(prefix) && /^lg\d{1,4}-[a-z][a-z0-9]*$/.test(ns)) deleteNetnsSync(ns);
    }
    if (prefix !== ownPrefix) {
      try {
        unlinkSync(markerFile(prefix));
      } catch {
        /* raced with its owner or another cleaner */
      }
    }
  }
}
