/**
 * keepalived on the lab's two load-balancer hosts lb1 and lb2, running the SHIPPED
 * keepalived/keepalived.conf, changed only where the lab differs (see deriveKeepalivedConfig):
 * the vrrp_script, track_script, priorities, state BACKUP, nopreempt and notify script are the
 * shipped ones. Used by vrrp.test.ts (stand-in licgate) and ha-scenarios.test.ts (real licgate).
 *
 *   const pair = new KeepalivedPair(lab);       // writes configs and the notify script into lab.dir
 *   pair.start('lb1'); await pair.waitRole('lb1', 'MASTER'); await pair.waitHolders(['lb1']);
 *
 * keepalived quirks handled here:
 *  - one pid file pair per instance (-p/-r): the defaults (/run/keepalived.pid, /run/vrrp.pid) are
 *    shared by every namespace and a second instance would refuse to start;
 *  - scripts run unprivileged as in production (there: licgate; here: nobody, which exists
 *    everywhere), so the notify script runs from a root-owned copy (script security refuses a
 *    script a non-root user could modify, and a checkout may belong to a normal user);
 *  - a crash is simulated by killing the whole process group (kill()): killing only the parent
 *    makes its VRRP child exit cleanly and hand the VIP over at once; a killed keepalived leaves
 *    its VIP configured on the host (both hosts then hold it until keepalived starts again).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabProcess } from './lab.js';
import { waitFor } from '../../helpers/wait-for.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const SHIPPED_KEEPALIVED_CONF = join(REPO, 'keepalived', 'keepalived.conf');
export const SHIPPED_NOTIFY_SCRIPT = join(REPO, 'keepalived', 'licgate-vrrp-notify.sh');

/** The virtual IP of the lab (outside the lab's host range .10-.89). */
export const VIP = '192.0.2.100';
export const VRRP_INSTANCE = 'VI_LICGATE';
/** Scripts run unprivileged as in production (there: licgate); nobody exists everywhere. */
export const SCRIPT_USER = 'nobody';
export const LBS = ['lb1', 'lb2'] as const;
export type Lb = (typeof LBS)[number];
/** Programs a KeepalivedPair needs (the shipped vrrp_script runs curl). */
export const KEEPALIVED_TOOLS = ['ip', 'keepalived', 'curl'] as const;

export interface DeriveOptions {
  notifyScript: string;
  stateFile: string;
  vrid: number;
  vip: string;
  scriptUser: string;
}

/**
 * The shipped config with the lab's differences: script user, notify script path and state file,
 * interface, VIP and VRID. Every change must find its target exactly once, so a shipped file
 * that no longer looks like this fails loudly instead of testing something else.
 */
export function deriveKeepalivedConfig(shipped: string, o: DeriveOptions): string {
  const edits: Array<{ what: string; re: RegExp; to: string }> = [
    { what: 'script_user', re: /^([ \t]*script_user)[ \t]+\S+[ \t]*$/m, to: `$1 ${o.scriptUser}` },
    { what: 'notify', re: /^([ \t]*notify)[ \t]+"[^"\n]*licgate-vrrp-notify\.sh"[ \t]*$/m, to: `$1 "${o.notifyScript} ${o.stateFile}"` },
    { what: 'interface', re: /^([ \t]*interface)[ \t]+\S+[ \t]*$/m, to: '$1 eth0' },
    { what: 'virtual_router_id', re: /^([ \t]*virtual_router_id)[ \t]+\d+/m, to: `$1 ${o.vrid}` },
    {
      what: 'virtual_ipaddress',
      re: /^([ \t]*virtual_ipaddress[ \t]*\{)[^}]*\}/m,
      to: `$1\n        ${o.vip}/24\n    }`,
    },
  ];
  let text = shipped;
  for (const e of edits) {
    onlyMatch(text, e.re, e.what, 'deriveKeepalivedConfig');
    text = text.replace(e.re, e.to);
  }
  for (const need of [/^[ \t]*track_script \{/m, /^[ \t]*state BACKUP\b/m]) {
    if (!need.test(text)) throw new Error(`shipped keepalived.conf: no ${need} (the timings the tests expect assume it)`);
  }
  vrrpTiming(text);
  return text;
}

/** The one match of `re` in a keepalived.conf: a file that no longer looks as `reader` expects fails loudly. */
function onlyMatch(text: string, re: RegExp, what: string, reader: string): RegExpMatchArray {
  const all = [...text.matchAll(new RegExp(re.source, re.flags + 'g'))];
  if (all.length !== 1) throw new Error(`keepalived.conf: expected one ${what} line, found ${all.length}; update ${reader}`);
  return all[0]!;
}

export interface VrrpTiming {
  /** The instance's `version` line; 2 without one (keepalived's default). */
  version: number;
  advertMs: number;
  priority: Record<Lb, number>;
}

/** The VRRP timers of a keepalived.conf written like the shipped one (one instance, @lb priorities). */
export function vrrpTiming(text: string): VrrpTiming {
  const one = (re: RegExp, what: string): string => onlyMatch(text, re, what, 'vrrpTiming')[1]!;
  const version = /^[ \t]*version[ \t]/m.test(text) ? Number(one(/^[ \t]*version[ \t]+(\d+)/m, 'version')) : 2;
  const advertMs = Math.round(Number(one(/^[ \t]*advert_int[ \t]+([\d.]+)/m, 'advert_int')) * 1000);
  const priority = { lb1: 0, lb2: 0 };
  for (const host of LBS) priority[host] = Number(one(new RegExp(`^@${host}[ \\t]+\\$PRIORITY=(\\d+)`, 'm'), `@${host} $PRIORITY`));
  return { version, advertMs, priority };
}

/**
 * RFC 5798 Master_Down_Interval: how long a BACKUP on `host` waits for an advert before it takes
 * the VIP (3 intervals plus a skew that favours the higher priority).
 */
export function masterDownMs(t: VrrpTiming, host: Lb): number {
  return 3 * t.advertMs + ((256 - t.priority[host]) * t.advertMs) / 256;
}

export function userIds(user: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

export interface LbPaths {
  base: string;
  conf: string;
  pid: string;
  vrrpPid: string;
  /** Where the shipped notify script records the VRRP role (like /run/licgate/vrrp-state). */
  stateFile: string;
}

export class KeepalivedPair {
  /** Unique per run (each run also has its own L2 segment, so this is belt and braces). */
  readonly vrid: number;
  private readonly procs = new Map<Lb, LabProcess>();

  constructor(
    private readonly lab: Lab,
    opts: { vrid?: number } = {},
  ) {
    this.vrid = opts.vrid ?? 1 + (process.pid % 250);
    const { uid, gid } = userIds(SCRIPT_USER);
    const bin = join(lab.dir, 'bin');
    mkdirSync(bin, { recursive: true, mode: 0o755 });
    const notify = join(bin, 'licgate-vrrp-notify.sh');
    copyFileSync(SHIPPED_NOTIFY_SCRIPT, notify);
    chmodSync(notify, 0o755);
    const shipped = readFileSync(SHIPPED_KEEPALIVED_CONF, 'utf8');
    for (const host of LBS) {
      const p = this.paths(host);
      const run = join(p.base, 'run');
      mkdirSync(run, { recursive: true, mode: 0o755 });
      chownSync(run, uid, gid); // like /run/licgate, owned by the script user
      writeFileSync(p.conf, deriveKeepalivedConfig(shipped, { notifyScript: notify, stateFile: p.stateFile, vrid: this.vrid, vip: VIP, scriptUser: SCRIPT_USER }));
    }
  }

  paths(host: Lb): LbPaths {
    const base = join(this.lab.dir, host);
    return {
      base,
      conf: join(base, 'keepalived.conf'),
      pid: join(base, 'keepalived.pid'),
      vrrpPid: join(base, 'vrrp.pid'),
      stateFile: join(base, 'run', 'vrrp-state'),
    };
  }

  /** The config `host` runs (the shipped one as derived for the lab, unless rewritten). */
  config(host: Lb): string {
    return readFileSync(this.paths(host).conf, 'utf8');
  }

  /** Replace `host`'s config; a running keepalived reads it on reload() or restart. */
  writeConfig(host: Lb, text: string): void {
    writeFileSync(this.paths(host).conf, text);
  }

  /** `systemctl reload keepalived`: SIGHUP to the parent; resolves once keepalived logs "Reload complete". */
  async reload(host: Lb): Promise<void> {
    const proc = this.procs.get(host);
    if (!proc?.running()) throw new Error(`keepalived not running on ${host}`);
    const done = () => proc.countInLog('Reload complete');
    const before = done();
    proc.signal('SIGHUP');
    await waitFor(() => done() > before, { timeoutMs: 5000, intervalMs: 20, what: `keepalived on ${host} logs "Reload complete"` });
  }

  /** The keepalived process last started on `host`. */
  proc(host: Lb): LabProcess | undefined {
    return this.procs.get(host);
  }

  start(host: Lb): LabProcess {
    const p = this.paths(host);
    if (this.procs.get(host)?.running()) throw new Error(`keepalived already running on ${host}`);
    // -n foreground (the lab owns the process) · -l log to stdout (the lab's log file) · -G not to
    // this machine's syslog · -D detailed · -P VRRP only (no checker/BFD children) · -i picks the
    // @lb1/@lb2 lines · -p/-r pid files in the lab dir (see the header).
    const proc = this.lab.spawn(
      host,
      ['keepalived', '-n', '-l', '-G', '-D', '-P', '-f', p.conf, '-i', host, '-p', p.pid, '-r', p.vrrpPid],
      { label: 'keepalived' },
    );
    this.procs.set(host, proc);
    return proc;
  }

  /** lb1 first, so it is MASTER by priority and holds the VIP; then lb2, which joins as BACKUP. */
  async startLb1Master(): Promise<void> {
    this.start('lb1');
    await this.waitRole('lb1', 'MASTER');
    await this.waitHolders(['lb1']);
    this.start('lb2');
    await this.waitRole('lb2', 'BACKUP');
  }

  /** Orderly stop (SIGTERM): the MASTER hands over at once with a priority-0 advert. */
  async stop(host: Lb): Promise<void> {
    await this.procs.get(host)?.stop({ timeoutMs: 5000 });
  }

  /**
   * Crash: SIGKILL the whole process group (parent and VRRP child die together) and wait until
   * both are gone. A keepalived started while the old VRRP child still exists (not yet reaped)
   * finds it through vrrp.pid, takes it for a running instance and exits 0 at once.
   */
  async kill(host: Lb): Promise<void> {
    const proc = this.procs.get(host);
    if (!proc) return;
    let child = NaN;
    try {
      child = Number(readFileSync(this.paths(host).vrrpPid, 'utf8').trim());
    } catch {
      // no VRRP child started yet
    }
    proc.signal('SIGKILL', { group: true });
    await proc.exited;
    if (Number.isInteger(child) && child > 0) {
      await waitFor(() => !existsSync(`/proc/${child}`), { timeoutMs: 5000, intervalMs: 20, what: `keepalived's VRRP child ${child} on ${host} gone` });
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(LBS.map((h) => this.stop(h).catch(() => {})));
  }

  /** The notify script's state line ("INSTANCE VI_LICGATE MASTER 150 2025-…Z"), '' before the first event. */
  stateLine(host: Lb): string {
    const f = this.paths(host).stateFile;
    if (!existsSync(f)) return '';
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      return '';
    }
  }

  /** VRRP role as recorded by the shipped notify script. */
  role(host: Lb): string | undefined {
    return this.stateLine(host).split(' ')[2];
  }

  waitRole(host: Lb, want: string, timeoutMs = 15_000): Promise<true> {
    return waitFor(() => this.role(host) === want, {
      timeoutMs,
      intervalMs: 20,
      what: `${host} ${want} (state file: "${this.stateLine(host)}")`,
    });
  }

  holders(): Promise<string[]> {
    return this.lab.holders(VIP);
  }

  async holdersAre(want: readonly string[]): Promise<boolean> {
    return (await this.holders()).join(',') === want.join(',');
  }

  waitHolders(want: readonly string[], timeoutMs = 15_000): Promise<true> {
    return waitFor(() => this.holdersAre(want), { timeoutMs, intervalMs: 20, what: `VIP ${VIP} held by exactly [${want.join(', ')}]` });
  }

  waitHeldBy(host: Lb, timeoutMs = 15_000): Promise<true> {
    return waitFor(async () => (await this.holders()).includes(host), { timeoutMs, intervalMs: 20, what: `VIP ${VIP} on ${host}` });
  }
}
