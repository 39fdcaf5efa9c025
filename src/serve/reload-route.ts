import type { Daemon } from '../daemon.js';
import { bearerRefusal, checkBearer } from './admin-auth.js';
import { sendJson, type AdminHttp } from './admin-http.js';

/**
 * POST /admin/reload (bearer token): the same reload as SIGHUP. 200 with the changes applied;
 * 400 with every config error (FILE:LINE:COL: message) while the previous config keeps running.
 * A request body is not needed and not read.
 */
export function registerReloadRoute(http: AdminHttp, daemon: Daemon): void {
  http.add('POST', /^\/admin\/reload$/, async (req, res) => {
    // The token read last: a reload may have brought a new one (applyConfig).
    const verdict = checkBearer(req, daemon.adminToken);
    if (verdict !== 'ok') {
      const r = bearerRefusal(verdict);
      daemon.log.warn({ status: r.status, code: r.code, method: req.method, path: req.url, peer: req.socket.remoteAddress, error: r.error }, 'admin call refused');
      if (r.status === 401) res.setHeader('WWW-Authenticate', verdict === 'wrong' ? 'Bearer realm="licgate", error="invalid_token"' : 'Bearer realm="licgate"');
      sendJson(res, r.status, { error: r.error, code: r.code });
      return;
    }
    req.resume();
    const outcome = await daemon.reload(`POST /admin/reload from ${req.socket.remoteAddress ?? 'unknown peer'}`);
    sendJson(res, outcome.ok ? 200 : daemon.shuttingDown ? 503 : 400, outcome);
  });
}
