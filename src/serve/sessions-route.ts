import type { ServerResponse } from 'node:http';
import { AdminError } from '../errors.js';
import type { Model } from '../model/model.js';
import type { Frontend } from '../proxy/frontend.js';
import type { OpenSessionView, Session } from '../proxy/session.js';
import { wallTimeOf } from '../wall-time.js';
import { findBackend, findServer } from './admin-api.js';
import { sendJson, sendJsonList, type AdminHttp } from './admin-http.js';

/** What GET /sessions reads; the Daemon is one (its model and frontends change on reload). */
export interface SessionsSource {
  readonly model: Model;
  readonly frontends: readonly Frontend[];
  /** Frontends a reload removed, until their last session ends. */
  readonly retired: ReadonlySet<Frontend>;
}

/**
 * GET /sessions[?backend=B[&server=S]], no token (the same exposure as /status): the sessions
 * relaying to a server now, oldest first, as HAProxy's `show sess` lists them, for an admin who
 * drained a server and wants to know who still holds it. A client still connecting, queued for a
 * server slot or waiting at the frontend's maxconn has no server yet and is not listed.
 * Taken in one pass over the frontends' session lists when asked (the relay keeps nothing for it),
 * and sent in parts (see ENTRIES_PER_TURN).
 */
export function registerSessionsRoute(http: AdminHttp, src: SessionsSource): void {
  http.add('GET', /^\/sessions$/, async (req, res) => {
    let found: OpenSessionView[];
    try {
      const filter = parseFilter(req.url ?? '');
      found = openSessions(src, filter);
      // A name no session matched and the running config lacks is a typo: an empty list would
      // hide it. One a session matched is listed even if a reload removed it since.
      if (found.length === 0 && filter.backend !== null) {
        if (filter.server === null) findBackend(src.model, filter.backend);
        else findServer(src.model, filter.backend, filter.server);
      }
    } catch (e) {
      if (!(e instanceof AdminError)) throw e;
      sendJson(res, e.status, { error: e.message, code: e.code });
      return;
    }
    await sendSessions(res, found, performance.now());
  });
}

/**
 * Entries rendered per event-loop turn. The list is a snapshot taken in one pass (OpenSessionView
 * holds copies), 5-11 ms for 9,900 sessions once the code is warm (26 ms the first time);
 * rendered whole as sendJson does, their 2.4 MB of JSON held the loop, and so every relay, a
 * further 20-60 ms. In parts, no turn took over 4 ms (measured 2026-12-06 on the shared 2-core
 * machine, nofile capping it below 10,000 sessions).
 */
const ENTRIES_PER_TURN = 500;

/** `{"sessions": [...]}`; `now`: performance.now() when the list was taken. */
function sendSessions(res: ServerResponse, found: OpenSessionView[], now: number): Promise<void> {
  return sendJsonList(res, {}, 'sessions', found, (v) => sessionJson(v, now), ENTRIES_PER_TURN);
}

interface SessionFilter {
  backend: string | null;
  server: string | null;
}

function parseFilter(url: string): SessionFilter {
  const q = url.indexOf('?');
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const unknown = [...params.keys()].filter((k) => k !== 'backend' && k !== 'server');
  if (unknown.length) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected the query keys "backend" and "server", found ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  const filter = { backend: params.get('backend'), server: params.get('server') };
  if (filter.server !== null && filter.backend === null) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ?backend=B with ?server=${filter.server}, found no backend`);
  return filter;
}

/** The relaying sessions `filter` takes, oldest first: each frontend's list is, so the sort merges runs. */
function openSessions(src: SessionsSource, filter: SessionFilter): OpenSessionView[] {
  const found: OpenSessionView[] = [];
  const visit = (s: Session): void => {
    const v = s.openView();
    if (v === null || (filter.backend !== null && v.backend !== filter.backend) || (filter.server !== null && v.server !== filter.server)) return;
    found.push(v);
  };
  for (const f of src.frontends) f.sessions.forEach(visit);
  for (const f of src.retired) f.sessions.forEach(visit);
  return found.sort((a, b) => a.startedAt - b.startedAt);
}

/** `now`: performance.now(). The start is a wall-clock time for people (wall-time.ts). */
function sessionJson(v: OpenSessionView, now: number) {
  return {
    client: v.client,
    frontend: v.frontend,
    backend: v.backend,
    server: v.server,
    started: new Date(wallTimeOf(v.startedAt)).toISOString(),
    age_s: Math.floor((now - v.startedAt) / 1000),
    idle_s: v.idleMs === null ? null : Math.floor(v.idleMs / 1000),
    bytes_in: v.bytesIn,
    bytes_out: v.bytesOut,
  };
}
