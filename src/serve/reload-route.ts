import type { Daemon } from '../daemon.js';
import type { SettledReload } from '../reload.js';
import { sendJson, type AdminHttp } from './admin-http.js';

/**
 * POST /admin/reload (bearer token): the same reload as SIGHUP. 200 with the changes applied;
 * 400 with every config error (FILE:LINE:COL: message) while the previous config keeps running.
 * A request body is not needed and not read.
 * GET /reload (no token, as /status): licgate's pid, the config file it re-reads (public already in
 * an error's position), how many reloads were asked for, and the last one's outcome, which
 * `licgate reload` waits for after its SIGHUP (systemd's ExecReload).
 */
export function registerReloadRoute(http: AdminHttp, daemon: Daemon): void {
  http.add('POST', /^\/admin\/reload$/, async (req, res) => {
    // The token read last: a reload may have brought a new one (applyConfig).
    if (!http.authorized(req, res, daemon.adminToken)) return;
    req.resume();
    const outcome = await daemon.reload(`POST /admin/reload from ${req.socket.remoteAddress ?? 'unknown peer'}`);
    sendJson(res, outcome.ok ? 200 : daemon.shuttingDown ? 503 : 400, outcome);
  });

  http.add('GET', /^\/reload$/, (_q, res) => {
    const last = daemon.lastReload;
    sendJson(res, 200, { pid: process.pid, file: daemon.configFile, asked: daemon.reloadsAsked, last: last && publicReload(last, daemon.cfg.file) });
  });
}

/**
 * A reload's outcome for anyone who can reach the listener. A config error keeps only its
 * position: its text may quote a value of the file (a webhook header's, a token file's character),
 * and POST /admin/reload, `licgate validate` and the journal say it whole. What a reload could not
 * apply (a port in use, a listen host that does not resolve, a stop) names listeners only.
 */
function publicReload(r: SettledReload, file: string) {
  const errors = r.errors.map((e) => {
    const at = e.startsWith(`${file}:`) ? /^:\d+:\d+(?=: )/.exec(e.slice(file.length)) : null;
    return at ? `${file}${at[0]}: invalid config here (the message is not served without the token: licgate validate --config ${file} prints it)` : e;
  });
  // The poster's address is the token holder's (the reload's log line names it), not anyone's.
  const trigger = r.trigger.replace(/ from .*$/s, '');
  return { seq: r.seq, ok: r.ok, at: new Date(r.at).toISOString(), trigger, errors, changes: r.changes, ...(r.stopping ? { stopping: true } : {}) };
}
