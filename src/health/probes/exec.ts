import { basename } from 'node:path';
import { LIMITS, type CheckConfig, type LicenseParser, type Matcher } from '../../config/schema.js';
import { isLocalResourceError } from '../../io/local-errors.js';
import { dslsNotReady, parseCutDslsUsage, parseDslsUsage } from '../parse/dsls.js';
import type { LicenseInfo } from '../parse/license-info.js';
import { parseCutLmstat, parseLmstat } from '../parse/lmstat.js';
import { runExec, type ExecResult } from './exec-runner.js';
import { lmstatVerdict } from './lmstat-local-verdict.js';
import { failed, inconclusive, type Probe, type ProbeOutcome, type ProbeTarget } from './probe.js';
import { matches } from './reply-reader.js';
import { describeMatcher, firstLine } from './tcp-exchange.js';

/** A check process killed at its timeout (or with its check) that has not exited yet. */
export interface UnexitedCheck {
  pid: number;
  /** Settles once it has exited. */
  exited: Promise<unknown>;
  /** performance.now() when it was killed. */
  killedAt: number;
}

/** A backend's check processes killed that have not exited, by "host:port". */
export type UnexitedChecks = Map<string, UnexitedCheck>;

/**
 * How long after its SIGKILL a check process is given to exit before the next check of its server
 * takes it for one that will not die. A reload that changes the check kills the one running and
 * starts over at once, before the kernel has reported the exit: without this wait that first check
 * failed as "still running after SIGKILL", and with fall 1 the server went DOWN on the reload.
 */
const EXIT_GRACE_MS = 500;

export type ExecCheck = Pick<CheckConfig, 'argv' | 'env' | 'exit_code' | 'expect' | 'parse' | 'timeout' | 'read_limit'>;

/**
 * Runs a command (argv, never a shell) and judges the server by it: the exit code, or, with
 * `parse`, the license tool's text — lmutil exits 0 even when the server it was asked about is
 * down, so for license tools only the text counts. `expect` must also match stdout when given.
 */
export class ExecProbe implements Probe {
  private readonly argv: readonly string[];
  private readonly env: Record<string, string>;
  private readonly exitCode: number;
  private readonly expect: Matcher | null;
  private readonly parse: LicenseParser | null;
  private readonly timeoutMs: number;
  private readonly maxOutputBytes: number;
  private readonly command: string;
  constructor(
    check: ExecCheck,
    /**
     * Per target ("host:port"), the check process that was killed at the timeout and has not exited:
     * one in uninterruptible sleep (lmutil reading a license file on a hung NFS mount) ignores even
     * SIGKILL until its I/O returns. Starting another one every interval would pile them up on the
     * license host, so, as HAProxy's external-check, at most one runs per server. Owned by the
     * daemon per backend: a reload builds a new probe, and the process outlives the old one.
     */
    private readonly unexited: UnexitedChecks = new Map(),
  ) {
    this.argv = [...check.argv];
    this.env = { ...check.env };
    this.exitCode = check.exit_code;
    this.expect = check.expect;
    this.parse = check.parse;
    this.timeoutMs = check.timeout;
    this.maxOutputBytes = check.read_limit;
    this.command = basename(check.argv[0] ?? '');
  }

  async run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
    const key = `${target.host}:${target.port}`;
    const stuck = this.unexited.get(key);
    if (stuck !== undefined && !(await exitsInGrace(stuck, signal))) return failed(`previous check process ${stuck.pid} still running after SIGKILL`);
    const argv = expandArgv(this.argv, target);
    let pid: number | undefined;
    let running: Promise<ExecResult> | undefined;
    // runExec SIGKILLs the group on abort and settles once the command has exited: until then the
    // process counts as not exited. The scheduler gives up on this run a little after the abort.
    const onAbort = (): void => {
      if (pid !== undefined && running !== undefined) this.unexited.set(key, { pid, exited: running.catch(() => undefined), killedAt: performance.now() });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let r: ExecResult;
    try {
      // runExec forces LANG/LC_ALL=C itself; its own timer is a backstop for callers without a signal.
      running = runExec(argv, { env: this.env, timeoutMs: this.timeoutMs, maxOutputBytes: this.maxOutputBytes, signal, onSpawn: (p) => (pid = p) });
      r = await running;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (pid !== undefined && this.unexited.get(key)?.pid === pid) this.unexited.delete(key);
    }
    const broken = this.brokenRun(r, signal);
    if (broken !== null) return isLocalResourceError(r.spawnErrorCode) ? inconclusive(broken) : failed(broken);

    let license: LicenseInfo | undefined;
    let verdict: { ok: boolean; reason: string; standby?: boolean; master?: string };
    if (this.parse !== null && r.truncated) {
      const lmstat = this.parse === 'lmstat';
      const cut = lmstat ? parseCutLmstat(r.stdout) : parseCutDslsUsage(r.stdout);
      if (cut === null) return failed(this.overflow(lmstat ? ", cut before lmstat's feature list" : ', cut before the usage CSV'));
      license = cut;
      verdict = lmstat ? lmstatVerdict(license, target.host) : dslsVerdict(license);
      verdict.reason += `, output cut at ${this.maxOutputBytes} bytes`;
    } else if (this.parse === 'lmstat') {
      license = parseLmstat(r.stdout);
      verdict = lmstatVerdict(license, target.host);
    } else if (this.parse === 'dsls') {
      license = parseDslsUsage(r.stdout);
      verdict = dslsVerdict(license);
    } else if (r.exitCode !== this.exitCode) {
      const said = r.stderr.trim() || r.stdout.trim();
      verdict = { ok: false, reason: `exit code ${r.exitCode}, expected ${this.exitCode}${said ? `: ${firstLine(said)}` : ''}` };
    } else {
      verdict = { ok: true, reason: `exit code ${r.exitCode}` };
    }
    if (!verdict.ok && license && license.servers.length === 0 && r.stderr.trim()) {
      // Nothing recognisable on stdout: the tool's complaint (bad license path, missing library) is the useful part.
      verdict.reason += ` (stderr: ${firstLine(r.stderr)})`;
    }
    if (verdict.ok && this.expect) {
      verdict = matches(this.expect, r.stdout)
        ? { ...verdict, reason: `${verdict.reason}, stdout matched ${describeMatcher(this.expect)}` }
        : { ok: false, reason: `stdout did not match ${describeMatcher(this.expect)}: "${firstLine(r.stdout)}"` };
    }
    return license ? { ...verdict, license } : verdict;
  }

  /** Why the command's output cannot be judged at all (did not start, killed), or null. */
  private brokenRun(r: ExecResult, signal: AbortSignal): string | null {
    // The scheduler aborts at check.timeout; both that and runExec's own timer mean "too slow".
    if (r.timedOut || (signal.aborted && r.exitCode === null)) return `timeout after ${this.timeoutMs} ms (${this.command} killed)`;
    if (r.spawnError !== undefined) return `cannot run ${this.argv[0]}: ${r.spawnError}`;
    // A license tool's verdict can come from the head of its output (parseCutLmstat, parseCutDslsUsage).
    if (r.truncated && this.parse === null) return this.overflow();
    if (r.exitCode === null && !r.truncated) return `${this.command} killed by ${r.signal ?? 'a signal'}`;
    return null;
  }

  private overflow(where = ''): string {
    const hint = this.maxOutputBytes < LIMITS.maxReadLimit ? 'raise read_limit or narrow the command' : 'read_limit is at its maximum: narrow the command';
    return `output over ${this.maxOutputBytes} bytes${where} (${this.command} killed); ${hint}`;
  }
}

/**
 * `{host}` and `{port}` in any argv element become the check target's host and port, so one
 * backend check serves several servers. Plain text replacement (split/join, so a `$` in a value
 * is not a replacement pattern) on each element; no shell ever sees the result.
 */
export function expandArgv(argv: readonly string[], target: ProbeTarget): string[] {
  const port = String(target.port);
  return argv.map((a) => (a.includes('{') ? a.split('{host}').join(target.host).split('{port}').join(port) : a));
}

/**
 * DSLS answered when the usage CSV header came back and the server did not say it is not ready; any
 * error line before the CSV means it did not serve.
 */
function dslsVerdict(info: LicenseInfo): { ok: boolean; reason: string } {
  const answered = info.vendors.some((v) => v.up);
  const notReady = dslsNotReady(info);
  if (notReady !== undefined) return { ok: false, reason: `DSLS${info.servers[0] ? ` on ${info.servers[0].host}` : ''} is not ready: it said "${notReady}"` };
  if (!answered) return { ok: false, reason: info.errors[0] ?? 'no getLicenseUsage CSV in DSLicSrv output' };
  if (info.errors.length > 0) return { ok: false, reason: info.errors[0]! };
  const host = info.servers[0]?.host;
  const n = info.features.length;
  return { ok: true, reason: `DSLS${host ? ` on ${host}` : ''} answered, ${n} feature${n === 1 ? '' : 's'}` };
}

/** Whether `stuck` exits within EXIT_GRACE_MS of its kill (false as well when `signal` aborts first). */
function exitsInGrace(stuck: UnexitedCheck, signal: AbortSignal): Promise<boolean> {
  const left = stuck.killedAt + EXIT_GRACE_MS - performance.now();
  if (left <= 0 || signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (exited: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', aborted);
      resolve(exited);
    };
    const aborted = (): void => done(false);
    const timer = setTimeout(() => done(false), left);
    signal.addEventListener('abort', aborted, { once: true });
    void stuck.exited.then(() => done(true));
  });
}
