import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatHostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';
import { UsageError } from '../errors.js';
import { call } from './ctl.js';
import { help, parse, required, type Command } from './command.js';
import { notLicgateRun } from './licgate-process.js';
import { isReloadAnswer, RELOAD_WAIT_MS, reportReload, type ReloadAnswer } from './reload-outcome.js';
import { loadReporting } from './validate.js';

/** GET /reload (src/serve/reload-route.ts). */
interface ReloadState {
  pid: number;
  /** The config file licgate re-reads, absolute; null: none (the demo); absent: an older licgate. */
  file?: string | null;
  asked: number;
  last: (ReloadAnswer & { seq: number }) | null;
}

/** Between two reads of GET /reload while the reload runs: an answer this late is not noticed. */
const POLL_MS = 50;

/**
 * `licgate reload`: systemd's ExecReload. Validates the file (exit 2 on errors, as `validate`),
 * sends licgate SIGHUP and waits for that reload's outcome on the admin listener, which tells it
 * without a token (GET /reload), so the unit needs none: 0 applied, 1 refused (every error printed),
 * not applied (licgate is stopping) or not confirmed (no answer by the deadline: a stopped licgate
 * reloads nothing). Only with no admin listener to ask (none in the file, or its port 0 and no
 * --url; or the --url one closed by the reload of a file without one) does the reload go
 * unconfirmed with exit 0. A pid that /proc shows is not `licgate run` is never signalled: SIGHUP
 * ends most other processes.
 */
export const reload: Command = {
  name: 'reload',
  summary: 'validate the config file, send licgate SIGHUP and wait for the outcome (systemd ExecReload): exit 0 applied (or no admin listener to ask), 1 refused or not confirmed, 2 invalid file',
  usage:
    'licgate reload --config FILE [--pid PID] [--url http://127.0.0.1:8404] [--timeout MS]\n' +
    '  --pid      licgate\'s pid ($MAINPID in the unit); default: the pid its admin listener reports\n' +
    '  --url      its admin listener now; admin.listen of FILE is asked too (a reload may move it there)\n' +
    `  --timeout  how long to wait for the outcome (default ${RELOAD_WAIT_MS} ms)`,
  async run(args) {
    const { values } = parse(args, { config: { type: 'string', short: 'c' }, pid: { type: 'string' }, url: { type: 'string' }, timeout: { type: 'string' } });
    if (values.help) return help(this);
    const file = required(values.config, '--config FILE');
    // kill(0) and kill(-N) signal whole process groups, this command's own among them.
    if (values.pid !== undefined && !/^[1-9]\d*$/.test(values.pid)) throw new UsageError(`--pid: expected licgate's process id, found "${values.pid}"`);
    const timeout = Number(values.timeout ?? RELOAD_WAIT_MS);
    if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout: expected milliseconds, found "${values.timeout}"`);
    const base = values.url?.replace(/\/+$/, '');
    if (base !== undefined && (!/^https?:\/\/[^/\s]+$/.test(base) || !URL.canParse(base))) throw new UsageError(`--url: expected the admin listener like http://127.0.0.1:8404, found "${values.url}"`);
    const cfg = loadReporting(file);
    if (cfg === null) return 2;

    // Where licgate's admin listener may answer: --url (where it runs now), and the file's, where a
    // reload that moves it puts it; before the SIGHUP only the first can answer.
    const fileAdmin = adminUrl(cfg);
    const urls = [...new Set([...(base !== undefined ? [base] : []), ...('url' in fileAdmin ? [fileAdmin.url] : [])])];
    const first = urls.length ? await readFirst(urls, performance.now() + Math.min(timeout, 3000)) : fileAdmin as { why: string };
    const before = 'why' in first ? first.why : first;
    const given = values.pid === undefined ? undefined : Number(values.pid);
    // Another process's outcome is no answer for the one signalled (a second licgate on the host).
    const mismatch = typeof before !== 'string' && given !== undefined && before.state.pid !== given ? `the admin listener at ${before.url} is licgate pid ${before.state.pid}'s, not ${given}'s` : null;
    const known = typeof before === 'string' || mismatch !== null ? null : before.state;
    const pid = given ?? known?.pid;
    // SIGHUP carries no file: licgate would re-read its own, and report its changes as this file's.
    if (known?.file != null && !sameFile(file, known.file)) return fail(`expected --config to be the file licgate pid ${known.pid} runs, ${known.file}, found ${file}: a reload re-reads the file licgate was started with; nothing was signalled`);
    if (pid === undefined) return fail(`expected --pid PID: ${before as string}, so licgate's pid is unknown; nothing was signalled`);
    // A listener in another pid namespace (a container) reports a pid that is another process here.
    const foreign = notLicgateRun(pid);
    if (foreign !== null) return fail(`expected ${given !== undefined ? `--pid ${pid}` : `pid ${pid} (as the admin listener at ${(before as { url: string }).url} reports)`} to be a "licgate run" process, found ${foreign}; nothing was signalled`);
    try {
      process.kill(pid, 'SIGHUP');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail(code === 'ESRCH' ? `no process ${pid}: is licgate running?` : code === 'EPERM' ? `not permitted to signal pid ${pid}: run as root or licgate's user, or use licgate ctl reload with the admin token` : (e as Error).message);
    }
    const who = `licgate pid ${pid}`;
    if (urls.length === 0) {
      // The reload happens all the same: a unit must not fail a reload that licgate did.
      process.stderr.write(`licgate reload: sent SIGHUP to ${who}; could not confirm the outcome: ${before as string}; licgate's log says it (journalctl -u licgate)\n`);
      return 0;
    }
    if (mismatch !== null) return fail(`sent SIGHUP to ${who}; could not confirm the outcome: ${mismatch}; licgate's log says it (journalctl -u licgate)`);
    // Not answered before the signal (stopped, wedged, or listening elsewhere until this reload moves
    // it): the first answer after it counts this reload among those asked for.
    // A listener that answered, in a file without one: the reload closes it (see outcome).
    const removing = known !== null && !('url' in fileAdmin) ? fileAdmin.why : null;
    return await outcome(urls, pid, known?.asked ?? null, performance.now() + timeout, timeout, who, removing);
  },
};

/**
 * Waits until the reloads asked for by the time licgate took the SIGHUP have settled (they run one
 * at a time, in order) and reports the last: the one that read the file last. A SIGHUP carries no
 * sender, so another reload asked for meanwhile (a SIGHUP, POST /admin/reload) is said as such.
 * `asked` null: unknown before the signal. An admin listener that does not answer is asked again
 * until the deadline: the reload may move it, and a stopped licgate has reloaded nothing.
 * `removing`: the file has no admin listener (why not, in words), so a reload it applies closes the
 * one asked, and refused connections are that: no listener is left to ask, as without one at all.
 */
async function outcome(urls: string[], pid: number, asked: number | null, deadline: number, timeout: number, who: string, removing: string | null): Promise<number> {
  let target = asked === null ? 0 : asked + 1;
  let unanswered = '';
  for (let first = true; ; ) {
    const left = deadline - performance.now();
    if (left <= 0) return fail(`sent SIGHUP to ${who}; no outcome within ${timeout}ms${unanswered ? `: ${unanswered}` : ''}: the reload may still be running, or licgate is stopped or wedged (licgate's log says it: journalctl -u licgate)`);
    const r = await readFirst(urls, performance.now() + Math.min(left, 3000));
    if (!('why' in r) && r.state.pid !== pid) return fail(`sent SIGHUP to ${who}, then the admin listener at ${r.url} answered as pid ${r.state.pid}: licgate restarted?`);
    if ('why' in r && r.refused && removing !== null) {
      // Only a reload's commit closes it while licgate runs (a stop says "stopping" until its end).
      process.stderr.write(`licgate reload: sent SIGHUP to ${who}; could not confirm the outcome: the admin listener at ${urls[0]} closed, and ${removing}: the reload removed it; licgate's log says it (journalctl -u licgate)\n`);
      return 0;
    }
    if ('why' in r) unanswered = r.why;
    else {
      const s = r.state;
      // licgate took the signal before it read this request (it was sent after the kill).
      if (first) target = Math.max(target, s.asked);
      asked ??= s.asked - 1;
      first = false;
      if (s.last !== null && s.last.seq >= target) {
        const others = s.last.seq - asked - 1;
        const note = others > 0 ? `(${others} more reload${others > 1 ? 's were' : ' was'} asked for meanwhile, by SIGHUP or POST /admin/reload: this is the outcome of the last, which read the file last)` : '';
        return reportReload(`licgate reload: ${who}`, s.last, note);
      }
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - performance.now())));
  }
}

/**
 * GET /reload of the first of `urls` to answer by `until`, or what each said, in `urls` order
 * (`refused`: each refused the connection). Asked at once: one that is silent (a process that
 * accepts and never answers) held each round up to 3 s before the next was asked.
 */
async function readFirst(urls: string[], until: number): Promise<{ url: string; state: ReloadState } | { why: string; refused: boolean }> {
  const ms = Math.floor(until - performance.now());
  if (ms < 1) return { why: '', refused: false };
  const asking = new AbortController();
  try {
    return await Promise.any(
      urls.map(async (url) => {
        const r = await readState(url, ms, asking.signal);
        if ('message' in r) throw r;
        return { url, state: r };
      }),
    );
  } catch (e) {
    const each = (e as AggregateError).errors as { message: string; code?: string }[];
    return { why: each.map((r) => r.message).join('; '), refused: each.every((r) => r.code === 'ECONNREFUSED') };
  } finally {
    asking.abort();
  }
}

/** Where `cfg`'s admin listener answers, or why it cannot be asked. */
function adminUrl(cfg: Config): { url: string } | { why: string } {
  if (cfg.admin === null) return { why: `${cfg.file} has no admin listener to ask` };
  const { host, port } = cfg.admin.listen;
  if (port === 0) return { why: `admin.listen in ${cfg.file} has port 0 (any free port): pass --url` };
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { url: `http://${formatHostPort({ host: local, port })}` };
}

/** GET /reload, or what went wrong, in words (`code`: the socket error's). */
async function readState(base: string, ms: number, signal: AbortSignal): Promise<ReloadState | { message: string; code?: string }> {
  const r = await call(base, 'GET', '/reload', null, null, ms, (b) => typeof b.pid === 'number' && typeof b.asked === 'number' && (b.last === null || isReloadAnswer(b.last)), signal);
  if (!r.ok) return r;
  // A licgate older than this command has no GET /reload (404).
  if (r.status !== 200) return { message: `${base}/reload answered ${r.status} (a licgate that does not report reloads there?)` };
  return r.body as ReloadState;
}

/** Whether `a` and `b` name one file (by device and inode; by absolute path where either cannot be read). */
function sameFile(a: string, b: string): boolean {
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return resolve(a) === resolve(b);
  }
}

function fail(message: string): number {
  process.stderr.write(`licgate reload: ${message}\n`);
  return 1;
}
