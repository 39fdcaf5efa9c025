import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { UsageError } from '../errors.js';
import { tierLabel } from '../model/events.js';
import { help, notHttpAnswer, parse, type Command } from './command.js';
import { isReloadAnswer, RELOAD_WAIT_MS, reportReload, type ReloadAnswer } from './reload-outcome.js';

const DEFAULT_URL = 'http://127.0.0.1:8404';
const STATES = ['ready', 'drain', 'maint'];

/** The parts of GET /status this command shows (status-json.ts). */
interface StatusServer {
  name: string;
  tier: number;
  tier_name: string;
  state: string;
  admin: string;
  weight: number;
  configured_weight: number;
  effective_weight: number;
  active: number;
  total: number;
  last_check: { ok: boolean; reason: string; duration_ms: number; at: string } | null;
}
interface StatusBody {
  pid: number;
  shutting_down: boolean;
  backends: { name: string; serving_tier: number | null; servers: StatusServer[] }[];
}

/** `code`: the socket error's (ECONNREFUSED: nothing listens there). */
type Outcome = { ok: true; status: number; body: unknown } | { ok: false; message: string; code?: string };

/**
 * `licgate ctl`: a person's client for the admin API. Reads need no token; changes send the
 * bearer token from --token-file or $LICGATE_TOKEN. Exit 0 done, 1 refused or unreachable, 2 usage.
 */
export const ctl: Command = {
  name: 'ctl',
  summary: 'admin client: list servers, set a weight or state, fail back, list or end sessions, show or clear stick tables, show the peers link, reload the config (admin HTTP API)',
  usage:
    'licgate ctl [--url http://127.0.0.1:8404] [--token-file FILE] [--timeout MS] COMMAND\n' +
    '  servers [--json]                         table of every server (no token needed)\n' +
    '  set BACKEND/SERVER weight N|N%           runtime weight 0-256, or a percentage of the configured one\n' +
    '  set BACKEND/SERVER state ready|drain|maint\n' +
    '  failback BACKEND                         serve from the best tier again (failback: manual)\n' +
    '  sessions [BACKEND[/SERVER]] [--json]     open sessions, oldest first (no token needed)\n' +
    '  shutdown-sessions BACKEND/SERVER         end every session open to that server now\n' +
    '  stick BACKEND [CLIENT] [--json]          the stick table: which server each client is stuck to\n' +
    '  unstick BACKEND CLIENT | --server NAME | --all\n' +
    '                                           balance those clients\' next connections afresh\n' +
    '  peers [--json]                           the link to the other host (no token); exit 1 if a remote is not connected\n' +
    `  reload                                   apply the config file again: its changes, or every error (waits ${RELOAD_WAIT_MS / 1000} s unless --timeout)\n` +
    'The token comes from --token-file, else $LICGATE_TOKEN.',
  async run(args) {
    const { values, positionals } = parse(args, { url: { type: 'string' }, 'token-file': { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' }, ...UNSTICK_OPTIONS }, true);
    if (values.help) return help(this);
    const base = (values.url ?? DEFAULT_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/\s]+$/.test(base) || !URL.canParse(base)) throw new UsageError(`--url: expected the admin listener like ${DEFAULT_URL}, found "${values.url}"`);
    const timeout = Number(values.timeout ?? 3000);
    if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout: expected milliseconds, found "${values.timeout}"`);
    const [cmd, ...rest] = positionals;
    const token = (): SentToken | null => readToken(values['token-file']);
    // parseArgs takes every command's options for all of them: one given to another command would
    // be dropped without a word (`ctl set lic/a state drain --all` is not a drain of every server).
    const misplaced = Object.entries(OPTION_COMMANDS).filter(([opt, cmds]) => values[opt as keyof typeof values] !== undefined && !cmds.includes(cmd ?? ''));
    if (cmd !== undefined && misplaced.length) throw new UsageError(misplaced.map(([opt, cmds]) => `--${opt}: expected with ${cmds.length > 1 ? `${cmds.slice(0, -1).join(', ')} or ${cmds.at(-1)}` : cmds[0]}, found with ${cmd}`).join('; '));

    switch (cmd) {
      case 'servers': {
        arity(rest, 0, 'servers');
        const r = await call(base, 'GET', '/status', null, null, timeout, (b) => Array.isArray(b.backends));
        if (!r.ok) return fail(r.message);
        if (r.status !== 200) return fail(errorText(r.status, r.body, null));
        process.stdout.write(values.json ? JSON.stringify(r.body, null, 2) + '\n' : serversTable(r.body as StatusBody));
        return 0;
      }
      case 'set': {
        arity(rest, 3, 'set BACKEND/SERVER weight N|N% | set BACKEND/SERVER state ready|drain|maint');
        const [target, what, value] = rest as [string, string, string];
        const m = /^([^/\s]+)\/([^/\s]+)$/.exec(target);
        if (!m) throw new UsageError(`set: expected BACKEND/SERVER, found "${target}"`);
        let body: Record<string, unknown>;
        if (what === 'weight') {
          if (!/^\d+%?$/.test(value)) throw new UsageError(`set weight: expected a whole number 0-256 or a percentage like 50%, found "${value}"`);
          body = { weight: value.endsWith('%') ? value : Number(value) };
        } else if (what === 'state') {
          if (!STATES.includes(value)) throw new UsageError(`set state: expected one of ${STATES.join(' | ')}, found "${value}"`);
          body = { state: value };
        } else throw new UsageError(`set: expected "weight" or "state", found "${what}"`);
        const sent = token();
        const r = await call(base, 'POST', `/admin/backends/${encodeURIComponent(m[1]!)}/servers/${encodeURIComponent(m[2]!)}`, body, sent?.token ?? null, timeout, (b) => typeof b.server === 'object' && b.server !== null && b.before !== undefined);
        if (!r.ok) return fail(r.message);
        if (r.status !== 200) return fail(errorText(r.status, r.body, sent));
        const res = r.body as { backend: string; before: { state: string; admin: string; weight: number }; server: StatusServer; tier?: TierMove & { failback: string } };
        process.stdout.write(`${res.backend}/${res.server.name}: ${stateText(res.server)}, weight ${res.server.weight}/${res.server.configured_weight} (was ${stateText(res.before)}, weight ${res.before.weight})\n`);
        const t = res.tier;
        // `failback: manual` stays on the tier this change failed over to: say how it comes back.
        if (t && moved(t)) process.stdout.write(tierMoved(res.backend, t, t.failback === 'manual' && t.to !== 'active' && t.to !== 'none' ? `; failback: manual keeps it there until: licgate ctl failback ${res.backend}` : ''));
        return 0;
      }
      case 'failback': {
        arity(rest, 1, 'failback BACKEND');
        const sent = token();
        const r = await call(base, 'POST', `/admin/backends/${encodeURIComponent(rest[0]!)}/failback`, null, sent?.token ?? null, timeout, (b) => typeof b.to === 'string');
        if (!r.ok) return fail(r.message);
        if (r.status !== 200) return fail(errorText(r.status, r.body, sent));
        const res = r.body as TierMove & { backend: string; changed: boolean };
        process.stdout.write(res.changed ? tierMoved(res.backend, res, '') : `${res.backend}: already serving from ${label(res, 'to')}\n`);
        return 0;
      }
      case 'sessions': {
        if (rest.length > 1) arity(rest, 1, 'sessions [BACKEND[/SERVER]]');
        const m = rest.length ? /^([^/\s]+)(?:\/([^/\s]+))?$/.exec(rest[0]!) : null;
        if (rest.length && !m) throw new UsageError(`sessions: expected BACKEND or BACKEND/SERVER, found "${rest[0]}"`);
        const query = m ? `?backend=${encodeURIComponent(m[1]!)}${m[2] !== undefined ? `&server=${encodeURIComponent(m[2])}` : ''}` : '';
        const r = await call(base, 'GET', `/sessions${query}`, null, null, timeout, (b) => Array.isArray(b.sessions));
        if (!r.ok) return fail(r.message);
        if (r.status !== 200) return fail(errorText(r.status, r.body, null));
        process.stdout.write(values.json ? JSON.stringify(r.body, null, 2) + '\n' : sessionsTable((r.body as { sessions: OpenSession[] }).sessions, rest[0]));
        return 0;
      }
      case 'shutdown-sessions': {
        arity(rest, 1, 'shutdown-sessions BACKEND/SERVER');
        const m = /^([^/\s]+)\/([^/\s]+)$/.exec(rest[0]!);
        if (!m) throw new UsageError(`shutdown-sessions: expected BACKEND/SERVER, found "${rest[0]}"`);
        const sent = token();
        const r = await call(base, 'POST', `/admin/backends/${encodeURIComponent(m[1]!)}/servers/${encodeURIComponent(m[2]!)}/shutdown-sessions`, null, sent?.token ?? null, timeout, (b) => typeof b.closed === 'number');
        if (!r.ok) return fail(r.message);
        if (r.status !== 200) return fail(errorText(r.status, r.body, sent));
        const res = r.body as { backend: string; server: string; closed: number };
        process.stdout.write(`${res.backend}/${res.server}: closed ${res.closed} session${res.closed === 1 ? '' : 's'}\n`);
        return 0;
      }
      case 'stick':
        return stick(base, rest, values.json === true, timeout);
      case 'unstick':
        return unstick(base, rest, values, token(), timeout);
      case 'peers':
        return peers(base, rest, values.json === true, timeout);
      case 'reload': {
        arity(rest, 0, 'reload');
        const sent = token();
        // A reload may wait on name lookups for longer than the other calls' default.
        const r = await call(base, 'POST', '/admin/reload', null, sent?.token ?? null, values.timeout === undefined ? RELOAD_WAIT_MS : timeout, isReloadAnswer);
        if (!r.ok) return fail(r.message);
        // 400 (refused) and 503 (stopping) carry every error.
        if (r.status !== 200 && !isReloadAnswer(r.body)) return fail(errorText(r.status, r.body, sent));
        return reportReload('licgate ctl', r.body as ReloadAnswer);
      }
      case undefined:
        throw new UsageError(`expected a command: ${COMMANDS}`);
      default:
        throw new UsageError(`unknown ctl command "${cmd}"; expected ${COMMANDS}`);
    }
  },
};

const COMMANDS = 'servers, set, failback, sessions, shutdown-sessions, stick, unstick, peers or reload';
const UNSTICK_OPTIONS = { server: { type: 'string' }, all: { type: 'boolean' } } as const;
/** The commands that read each command-specific option. */
const OPTION_COMMANDS: Record<string, readonly string[]> = { json: ['servers', 'sessions', 'stick', 'peers'], server: ['unstick'], all: ['unstick'] };

/** The parts of GET /backends/B/stick-table this command shows (stick-table-json.ts). */
interface StickTableBody {
  backend: string;
  stick_ttl_s: number;
  stick_size: number;
  client?: string;
  entries: { client: string; server: string; sessions: number; age_s: number; expires_in_s: number | null }[];
}

/** `ctl stick BACKEND [CLIENT]`: HAProxy's `show table`. */
async function stick(base: string, rest: string[], json: boolean, timeout: number): Promise<number> {
  if (rest.length !== 1 && rest.length !== 2) arity(rest, 1, 'stick BACKEND [CLIENT]');
  const [backend, client] = rest as [string, string | undefined];
  const query = client === undefined ? '' : `?client=${encodeURIComponent(client)}`;
  const r = await call(base, 'GET', `/backends/${encodeURIComponent(backend)}/stick-table${query}`, null, null, timeout, (b) => Array.isArray(b.entries));
  if (!r.ok) return fail(r.message);
  if (r.status !== 200) return fail(errorText(r.status, r.body, null));
  process.stdout.write(json ? JSON.stringify(r.body, null, 2) + '\n' : stickTable(r.body as StickTableBody));
  return 0;
}

/** A table a person can read: one row per client, as `servers` writes its rows. */
export function stickTable(t: StickTableBody): string {
  if (!t.entries.length) return t.client !== undefined ? `${t.backend}: no entry for ${t.client}: its next connection is balanced afresh\n` : `${t.backend}: no client is stuck to a server\n`;
  const rows = [['CLIENT', 'SERVER', 'SESSIONS', 'STUCK FOR', 'EXPIRES IN'], ...t.entries.map((e) => [e.client, e.server, String(e.sessions), duration(e.age_s), e.expires_in_s === null ? 'held by sessions' : duration(e.expires_in_s)])];
  return `${columns(rows).join('\n')}\n(${t.entries.length} of at most ${t.stick_size}; an entry lasts ${duration(t.stick_ttl_s)} past its client's last session)\n`;
}

/** `ctl unstick BACKEND CLIENT | --server NAME | --all`: HAProxy's `clear table`. A bare BACKEND is refused: a typo must not clear a table. */
async function unstick(base: string, rest: string[], values: { server?: string; all?: boolean }, sent: SentToken | null, timeout: number): Promise<number> {
  if (rest.length === 0) arity(rest, 1, 'unstick BACKEND CLIENT | --server NAME | --all');
  const given = [...rest.slice(1), ...(values.server !== undefined ? [`--server ${values.server}`] : []), ...(values.all ? ['--all'] : [])];
  if (given.length !== 1) throw new UsageError(`unstick ${rest[0]}: expected one of CLIENT, --server NAME or --all, found ${given.length ? `"${given.join(' ')}"` : 'none (clearing the whole table takes --all)'}`);
  const body = rest.length === 2 ? { client: rest[1]! } : values.server !== undefined ? { server: values.server } : {};
  const r = await call(base, 'POST', `/admin/backends/${encodeURIComponent(rest[0]!)}/stick-table/clear`, body, sent?.token ?? null, timeout, (b) => typeof b.cleared === 'number');
  if (!r.ok) return fail(r.message);
  if (r.status !== 200) return fail(errorText(r.status, r.body, sent));
  const res = r.body as { backend: string; cleared: number; client?: string; server?: string };
  const what = res.client !== undefined ? `client ${res.client}` : res.server !== undefined ? `clients stuck to ${res.server}` : 'every client';
  process.stdout.write(`${res.backend}: cleared ${res.cleared} ${res.cleared === 1 ? 'entry' : 'entries'} (${what}); open sessions stay, the next connections are balanced afresh\n`);
  return 0;
}

/** The parts of GET /status's `peers` this command shows (PeerSync.status()). */
interface PeersBody {
  listen: string;
  remotes: { remote: string; connected: boolean; state: string; since: string | null; last_error: string | null; entries_sent: number }[];
  /** `unstuck`: absent from an older licgate, which counted those entries in `kept`. */
  incoming: { peer: string; connected: boolean; since: string | null; received: number; applied: number; kept: number; unstuck?: number; skipped: number; cut_off: number }[];
}

/**
 * `ctl peers`: the `peers` link, as HAProxy's `show peers`. Exit 1 while a remote is not connected,
 * so a script can tell; 2 without a peers section, where there is no link to judge.
 */
async function peers(base: string, rest: string[], json: boolean, timeout: number): Promise<number> {
  arity(rest, 0, 'peers');
  const r = await call(base, 'GET', '/status', null, null, timeout, (b) => Array.isArray(b.backends));
  if (!r.ok) return fail(r.message);
  if (r.status !== 200) return fail(errorText(r.status, r.body, null));
  const p = (r.body as { peers?: PeersBody }).peers;
  if (p === undefined) {
    process.stderr.write(`licgate ctl: this licgate has no peers section: expected "peers" in ${base}/status, found none (its stick tables are not shared)\n`);
    return 2;
  }
  process.stdout.write(json ? JSON.stringify(p, null, 2) + '\n' : peersTable(p));
  const down = p.remotes.filter((x) => !x.connected);
  if (down.length === 0) return 0;
  return fail(`not connected to ${down.length} of ${p.remotes.length} remote${p.remotes.length === 1 ? '' : 's'}: ${down.map((x) => x.remote).join(', ')}`);
}

/** The remotes this host pushes to, then the peers that push to it. */
export function peersTable(p: PeersBody, now = Date.now()): string {
  const age = (since: string | null): string => (since === null ? '-' : duration(Math.max(0, (now - Date.parse(since)) / 1000)));
  const remotes = [['REMOTE', 'STATE', 'FOR', 'ENTRIES SENT', 'LAST ERROR'], ...p.remotes.map((x) => [x.remote, x.state, age(x.since), String(x.entries_sent), x.last_error === null ? '-' : printable(x.last_error)])];
  const incoming = p.incoming.length
    ? columns([['INCOMING', 'CONNECTED', 'FOR', 'RECEIVED', 'APPLIED', 'KEPT', 'UNSTUCK', 'SKIPPED', 'CUT OFF'], ...p.incoming.map((x) => [x.peer, x.connected ? 'yes' : 'no', x.connected ? age(x.since) : '-', String(x.received), String(x.applied), String(x.kept), x.unstuck === undefined ? '-' : String(x.unstuck), String(x.skipped), String(x.cut_off)])]).join('\n')
    : `no peer has connected to ${p.listen} since licgate started`;
  return `listen ${p.listen}\n${columns(remotes).join('\n')}\n\n${incoming}\n`;
}

/**
 * Text another host wrote (a peers remote's greeting in last_error, a license server's reply quoted in
 * a check reason): its control characters must not drive the admin's terminal.
 */
function printable(s: string): string {
  return s.replace(/[\0-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A tier move as the admin API answers it: names, and the numbers that tell DR tiers apart (an older daemon sends names only). */
interface TierMove {
  from: string;
  to: string;
  from_tier?: number | null;
  to_tier?: number | null;
}

/** By the numbers: DR tiers 2 and 3 share the name `dr`. */
function moved(t: TierMove): boolean {
  return t.from_tier !== undefined && t.to_tier !== undefined ? t.from_tier !== t.to_tier : t.from !== t.to;
}

function label(t: TierMove, end: 'from' | 'to'): string {
  const n = t[`${end}_tier`];
  return n === undefined ? t[end] : tierLabel(n);
}

function tierMoved(backend: string, t: TierMove, note: string): string {
  return `${backend}: now serving from ${label(t, 'to')} (was ${label(t, 'from')})${note}\n`;
}

function arity(rest: string[], n: number, form: string): void {
  if (rest.length !== n) throw new UsageError(`expected: ctl ${form}; found ${rest.length ? `"${rest.join(' ')}"` : 'nothing'} after the command`);
}

/** `from` is named in a 401's hint: a token sent and refused needs another fix than a missing one. */
interface SentToken {
  token: string;
  from: string;
}

function readToken(file: string | undefined): SentToken | null {
  if (file !== undefined) {
    try {
      const t = readFileSync(file, 'utf8').trim();
      if (!t) throw new UsageError(`--token-file: ${file} is empty`);
      const space = spaceIn(t);
      if (space) throw new UsageError(`--token-file: expected the token alone in ${file}, ${space}`);
      return { token: t, from: `--token-file ${file}` };
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`--token-file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const env = process.env.LICGATE_TOKEN?.trim();
  const space = env ? spaceIn(env) : null;
  if (space) throw new UsageError(`$LICGATE_TOKEN: expected the token alone, ${space}`);
  return env ? { token: env, from: '$LICGATE_TOKEN' } : null;
}

/**
 * A bearer token ends at a space, so one with a space (a pasted "Bearer <token>" header, a second
 * line) could only be answered 401, with a hint about reloads that does not apply.
 */
function spaceIn(token: string): string | null {
  const at = token.search(/\s/);
  return at < 0 ? null : `found a space at character ${at + 1} (write the token itself, not "Bearer <token>")`;
}

/** `isAnswer` tells licgate's 200 reply from another service's on the same port, whose page the output code would crash on. */
export async function call(base: string, method: string, path: string, body: unknown, token: string | null, timeoutMs: number, isAnswer: (body: Record<string, unknown>) => boolean, signal?: AbortSignal): Promise<Outcome> {
  const headers: Record<string, string> = {};
  if (body !== null) headers['content-type'] = 'application/json';
  if (token !== null) headers.authorization = `Bearer ${token}`;
  try {
    const res = await send(base + path, method, headers, body === null ? null : JSON.stringify(body), timeoutMs, signal);
    const text = res.text;
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (a proxy in the way?): show the text.
    }
    // licgate answers every call in JSON: an error page (a web server's 404, a proxy's 502) is not a refusal by licgate.
    const json = typeof parsed === 'object' && parsed !== null;
    if (res.status === 200 ? !(json && isAnswer(parsed as Record<string, unknown>)) : !json) {
      const found = text.trim().length > 80 ? `${text.trim().slice(0, 80)}…` : text.trim();
      return { ok: false, message: `${base}: ${method} ${path} answered ${res.status} but not as licgate's admin API does (found ${JSON.stringify(found)}); is --url licgate's admin listener?` };
    }
    return { ok: true, status: res.status, body: parsed };
  } catch (e) {
    const err = e as Error & { cause?: Error };
    const notHttp = notHttpAnswer(err);
    if (notHttp !== null) return { ok: false, message: `${base}: ${method} ${path} ${notHttp}; is --url licgate's admin listener?` };
    return { ok: false, message: `${base}: ${err.name === 'TimeoutError' ? `no answer within ${timeoutMs}ms` : (err.cause?.message ?? err.message)}`, code: (err as NodeJS.ErrnoException).code };
  }
}

/**
 * One request and its whole answer within `timeoutMs`. node:http rather than fetch(): fetch refuses
 * the Fetch standard's "bad ports" (6000, 6665-6669, 10080, ...), which admin.listen accepts.
 */
function send(url: string, method: string, headers: Record<string, string>, body: string | null, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method, headers, ...(signal ? { signal } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => {
      reject(Object.assign(new Error(`no answer within ${timeoutMs}ms`), { name: 'TimeoutError' }));
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // One aborted (`signal`) mid-answer ends without 'end' or 'error': its timer would keep the
    // command running until the timeout.
    req.once('close', () => clearTimeout(timer));
    req.end(body ?? undefined);
  });
}

function errorText(status: number, body: unknown, sent: SentToken | null): string {
  const msg = typeof body === 'object' && body !== null && 'error' in body ? String((body as { error: unknown }).error) : String(body).trim().slice(0, 200);
  const hint = status !== 401 ? '' : sent === null ? ' (pass --token-file FILE or set LICGATE_TOKEN)' : ` (sent the token from ${sent.from}; to use a token rotated into admin.token_file, reload licgate first: systemctl reload licgate, or SIGHUP)`;
  return `refused (HTTP ${status}): ${msg}${hint}`;
}

function fail(message: string): number {
  process.stderr.write(`licgate ctl: ${message}\n`);
  return 1;
}

/** A table a person can read in a terminal: one row per server, columns padded to fit. */
export function serversTable(status: StatusBody, now = Date.now()): string {
  const rows: string[][] = [['BACKEND', 'SERVER', 'STATE', 'TIER', 'WEIGHT', 'ACTIVE', 'TOTAL', 'LAST CHECK']];
  for (const b of status.backends) {
    for (const s of b.servers) {
      rows.push([b.name, s.name, stateText(s), s.tier_name + (s.tier === b.serving_tier ? '*' : ''), `${num(s.effective_weight)}/${s.configured_weight}`, String(s.active), String(s.total), lastCheck(s.last_check, now)]);
    }
  }
  const lines = columns(rows);
  // First, as HAProxy's `show info` says "Stopping: 1": a drain set now goes with the process.
  const stopping = status.shutting_down ? `STOPPING: licgate (pid ${status.pid}) is shutting down; what is set now ends with it\n` : '';
  return stopping + lines.join('\n') + '\n(* the tier new connections go to)\n';
}

/** Rows as lines, each column padded to its widest cell (the last one is not padded). */
function columns(rows: string[][]): string[] {
  // reduce, not Math.max(...): a stick table's 100,000 rows would be as many arguments.
  const widths = rows[0]!.map((_, i) => rows.reduce((w, r) => Math.max(w, r[i]!.length), 0));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** The parts of a GET /sessions entry the table shows (sessions-route.ts). */
interface OpenSession {
  client: string;
  frontend: string;
  backend: string;
  server: string;
  age_s: number;
  bytes_in: number;
  bytes_out: number;
}

/** One row per open session, oldest first as the API lists them; `target` is what was asked for. */
export function sessionsTable(sessions: OpenSession[], target?: string): string {
  if (sessions.length === 0) return `no open session${target ? ` to ${target}` : ''}\n`;
  const rows: string[][] = [['CLIENT', 'FRONTEND', 'SERVER', 'AGE', 'BYTES IN', 'BYTES OUT']];
  for (const s of sessions) rows.push([s.client, s.frontend, `${s.backend}/${s.server}`, duration(s.age_s), String(s.bytes_in), String(s.bytes_out)]);
  return columns(rows).join('\n') + '\n';
}

/** 45s, 12m05s, 3h07m, 2d04h: a license session lasts hours, and the largest two units say enough. */
function duration(whole: number): string {
  const seconds = Math.floor(whole);
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  if (d > 0) return `${d}d${two(h)}h`;
  if (h > 0) return `${h}h${two(m)}m`;
  if (m > 0) return `${m}m${two(s)}s`;
  return `${s}s`;
}

/**
 * The state, and the admin's drain where the state reads DOWN, DOWN (agent), MAINT (agent) or UP
 * (standby) and hides it, as HAProxy keeps the admin state apart from the status: the drain still
 * holds when the server comes back, and an admin who cannot see it would not know to set ready.
 */
function stateText(s: { state: string; admin: string }): string {
  return s.admin !== 'ready' && !s.state.startsWith(s.admin.toUpperCase()) ? `${s.state}, admin ${s.admin}` : s.state;
}

function num(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function lastCheck(c: StatusServer['last_check'], now: number): string {
  if (!c) return '-';
  const ago = Math.max(0, Math.round((now - Date.parse(c.at)) / 1000));
  const reason = c.reason.length > 50 ? `${c.reason.slice(0, 49)}…` : c.reason;
  return `${c.ok ? 'ok' : 'FAIL'} ${Math.round(c.duration_ms)}ms ${ago}s ago: ${printable(reason)}`;
}
