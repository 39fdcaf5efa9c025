import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { StickTable } from '../balance/stick-table.js';
import { boundHost } from '../config/address.js';
import { readTokenFile } from '../config/admin-token.js';
import { LIMITS } from '../config/schema.js';
import { AdminError, LicgateError } from '../errors.js';
import type { Backend } from '../model/backend.js';
import { tierLabel, tierName } from '../model/events.js';
import type { Model } from '../model/model.js';
import { percentOfWeight, type AdminState, type Server } from '../model/server.js';
import type { Logger } from '../observe/log.js';
import { pathOf, sendJson, type AdminHttp, type Route } from './admin-http.js';
import { serverJson } from './status-json.js';
import { sendStickTable } from './stick-table-json.js';

/** Bodies are a few dozen bytes; anything bigger is a mistake or an attack and is not read. */
export const MAX_BODY_BYTES = 4096;
const ADMIN_STATES: readonly AdminState[] = ['ready', 'drain', 'maint'];
// Any segment, not only what a config name may be: a mistyped name (a lookalike letter, a space)
// is answered 404 with the names that exist, not "no route".
const NAME = '([^/]+)';
const EXAMPLE = 'a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}';

export interface AdminApiOptions {
  model: Model;
  log: Logger;
  /** null: no admin.token_file, so every mutating call is refused with 403. */
  token: string | null;
  /** Ends the open sessions relaying to `server` as an admin's (end `admin`); returns how many. */
  endSessionsTo(server: Server): number;
  /** A server's admin state or weight was set (admin.state_file keeps them). */
  adminChanged?(): void;
}

/** Reads `admin.token_file` at start (a reload that keeps `admin` reads it again: see applyConfig). */
export function readAdminToken(file: string | null): string | null {
  if (file === null) return null;
  const t = readTokenFile(file);
  if ('problem' in t) throw new LicgateError('E_ADMIN_TOKEN', t.problem);
  return t.token;
}

/**
 * The runtime-control routes on the admin listener:
 *   POST /admin/backends/:b/servers/:s   {"weight": 0-256 | "N%"} and/or {"state": "ready|drain|maint"}
 *   POST /admin/backends/:b/failback     serve from the best tier again (for failback: manual)
 *   POST /admin/backends/:b/servers/:s/shutdown-sessions   end the sessions open to it now
 * Changes go through Server.setAdminAndWeight and Backend.failback, so selection, STATUS, agent
 * replies and /status see them at once. Checks run cheapest-first and before the body is read:
 * token (403/401), target (404), content type (415), size (413), then the body (400).
 */
export function registerAdminApi(http: AdminHttp, opts: AdminApiOptions): void {
  const guard = (route: (req: IncomingMessage, res: ServerResponse, params: string[]) => Promise<void>) => async (req: IncomingMessage, res: ServerResponse, params: string[]): Promise<void> => {
    if (!http.authorized(req, res, opts.token)) return;
    try {
      await route(req, res, params);
    } catch (e) {
      if (!(e instanceof AdminError)) throw e;
      opts.log.warn({ status: e.status, code: e.code, method: req.method, path: pathOf(req), peer: req.socket.remoteAddress, error: e.message }, 'admin call refused');
      refuse(req, res, e);
    }
  };

  http.add('POST', new RegExp(`^/admin/backends/${NAME}/servers/${NAME}$`), guard(async (req, res, [b, s]) => {
    findServer(opts.model, b!, s!);
    const body = await readJsonBody(req, true);
    // Looked up again: a reload may have replaced the model while the body was on its way, and a
    // change to a replaced server would be answered 200 and never take effect.
    const { backend, server } = findServer(opts.model, b!, s!);
    const change = parseServerChange(body, server);
    const before = { state: server.stateText, admin: server.admin, weight: server.weight };
    const tierBefore = backend.servingTier;
    const reason = `admin API from ${req.socket.remoteAddress ?? 'unknown peer'}`;
    server.setAdminAndWeight(change.state, change.weight, reason);
    opts.adminChanged?.();
    const after = { state: server.stateText, admin: server.admin, weight: server.weight };
    opts.log.info({ backend: backend.name, server: server.name, peer: req.socket.remoteAddress, before, after }, `admin: ${backend.name}/${server.name} ${describeChange(change)} (now ${after.state}, weight ${after.weight}/${server.configuredWeight})`);
    // The backend's serving tier too: a weight 0 or a drain can fail it over, and with
    // failback: manual it stays there until a failback. The numbers tell DR tiers 2 and 3 apart.
    const tier = { from: tierName(tierBefore), to: tierName(backend.servingTier), failback: backend.cfg.failback, from_tier: tierBefore, to_tier: backend.servingTier };
    sendJson(res, 200, { backend: backend.name, before, server: serverJson(server), tier });
  }));

  // HAProxy's `shutdown sessions server B/S`: the sessions a drain leaves open, ended when the
  // admin's maintenance window opens. The path names the target; a body is not needed nor read.
  http.add('POST', new RegExp(`^/admin/backends/${NAME}/servers/${NAME}/shutdown-sessions$`), guard(async (req, res, [b, s]) => {
    const { backend, servers } = serversHoldingName(opts.model, b!, s!);
    const server = servers[0]!;
    req.resume();
    const peer = req.socket.remoteAddress;
    let closed = 0;
    for (const r of servers) closed += opts.endSessionsTo(r);
    opts.log.info({ backend: backend.name, server: server.name, peer, sessions: closed }, `admin: shutdown-sessions ${backend.name}/${server.name} from ${peer ?? 'unknown peer'}: closed ${closed} session(s)`);
    sendJson(res, 200, { backend: backend.name, server: server.name, closed });
  }));

  http.add('POST', new RegExp(`^/admin/backends/${NAME}/failback$`), guard(async (req, res, [b]) => {
    findBackend(opts.model, b!);
    const body = await readJsonBody(req, false);
    if (body !== undefined && !isEmptyObject(body)) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `failback takes no parameters: expected no body or {}, found ${preview(body)}`);
    const backend = findBackend(opts.model, b!);
    const from = backend.servingTier;
    backend.failback(`admin API from ${req.socket.remoteAddress ?? 'unknown peer'}`);
    const to = backend.servingTier;
    opts.log.info({ backend: backend.name, peer: req.socket.remoteAddress, from: tierName(from), to: tierName(to), from_tier: from, to_tier: to }, from === to ? `admin: failback ${backend.name}: already serving from ${tierLabel(to)}` : `admin: failback ${backend.name}: ${tierLabel(from)} -> ${tierLabel(to)}`);
    sendJson(res, 200, { backend: backend.name, failback: backend.cfg.failback, from: tierName(from), to: tierName(to), from_tier: from, to_tier: to, changed: from !== to });
  }));

  registerStickTableRoutes(http, opts, guard);
}

/**
 * HAProxy's `show table B [key ADDR]` and `clear table B [key ADDR]`, for a denied FlexLM checkout:
 *   GET  /backends/:b/stick-table[?client=ADDR]   no token, as /status shows the entry count
 *   POST /admin/backends/:b/stick-table/clear     {} | {"client": ADDR} | {"server": NAME}
 * A clear changes only where the next connection of those clients goes: open sessions stay.
 */
function registerStickTableRoutes(http: AdminHttp, opts: AdminApiOptions, guard: (route: (...a: Parameters<Route>) => Promise<void>) => Route): void {
  http.add('GET', new RegExp(`^/backends/${NAME}/stick-table$`), async (req, res, [b]) => {
    try {
      const backend = findStickTable(opts.model, b!);
      const client = new URL(req.url ?? '/', 'http://admin').searchParams.get('client');
      await sendStickTable(res, backend, client === null ? null : stickClient(client));
    } catch (e) {
      if (!(e instanceof AdminError)) throw e;
      refuse(req, res, e);
    }
  });

  http.add('POST', new RegExp(`^/admin/backends/${NAME}/stick-table/clear$`), guard(async (req, res, [b]) => {
    findStickTable(opts.model, b!);
    const body = await readJsonBody(req, false);
    // Looked up again after the body, as a server change is: a reload may have replaced the backend.
    const backend = findStickTable(opts.model, b!);
    const which = parseStickClear(body);
    if (which.server !== undefined) findServer(opts.model, backend.name, which.server);
    const cleared = which.client !== undefined ? Number(backend.stick.delete(which.client)) : which.server !== undefined ? backend.stick.forgetServer(which.server) : backend.stick.clear();
    const what = which.client !== undefined ? `client ${which.client}` : which.server !== undefined ? `server ${which.server}` : 'every entry';
    opts.log.info({ backend: backend.name, peer: req.socket.remoteAddress, ...which, cleared }, `admin: stick table ${backend.name}: cleared ${cleared} ${cleared === 1 ? 'entry' : 'entries'} (${what}); their next connections are balanced afresh`);
    sendJson(res, 200, { backend: backend.name, ...which, cleared });
  }));
}

const STICK_CLEAR_EXAMPLE = '{} (every entry), {"client": "10.1.2.3"} or {"server": "NAME"}';

/** Validates a stick-table clear's body: a bare POST is refused, so that clearing every entry is said with {}. */
export function parseStickClear(body: unknown): { client?: string; server?: string } {
  if (body === undefined) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${STICK_CLEAR_EXAMPLE}, found an empty body`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${STICK_CLEAR_EXAMPLE}, found ${preview(body)}`);
  const rec = body as Record<string, unknown>;
  const keys = Object.keys(rec);
  const unknown = keys.filter((k) => k !== 'client' && k !== 'server');
  if (unknown.length) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected the key "client" or "server", or none, found ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  if (keys.length > 1) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected "client" or "server", not both: found ${preview(body)}`);
  if ('server' in rec) {
    if (typeof rec.server !== 'string' || rec.server === '') throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"server": expected a server name, found ${preview(rec.server)}`);
    return { server: rec.server };
  }
  if ('client' in rec) {
    if (typeof rec.client !== 'string') throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"client": expected an IP address like 10.1.2.3 or 2001:db8::5, found ${preview(rec.client)}`);
    return { client: stickClient(rec.client) };
  }
  return {};
}

/**
 * A client address as the stick table keys it (session.ts clientAddress): any IPv6 spelling, in
 * brackets or not, and an IPv4-mapped one, find the entry of the client that connected from it.
 */
export function stickClient(text: string): string {
  const bare = text.trim().replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) === 0) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"client": expected an IP address like 10.1.2.3 or 2001:db8::5, found ${preview(text)}`);
  return boundHost(bare);
}

function findStickTable(model: Model, name: string): Backend & { stick: StickTable } {
  const b = findBackend(model, name);
  // An error, as HAProxy's `show table` answers one for a backend without a table: an empty table
  // would read as "no client is stuck", and a `balance: source` backend places every client by its
  // address, with nothing to show or clear.
  if (b.stick === null) throw new AdminError('E_ADMIN_NO_STICK_TABLE', 404, `backend "${b.name}" has no stick table: expected "stick: source" in its config, found ${b.cfg.balance === 'source' ? '"balance: source", which places each client by a hash of its address and keeps no table' : 'no "stick"'}`);
  return b as Backend & { stick: StickTable };
}

export interface ServerChange {
  weight?: number;
  state?: AdminState;
}

/** Validates a POST body for a server; every refusal says what was expected and what was found. */
export function parseServerChange(body: unknown, server: Pick<Server, 'configuredWeight'>): ServerChange {
  if (body === undefined) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${EXAMPLE}, found an empty body`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${EXAMPLE}, found ${preview(body)}`);
  const rec = body as Record<string, unknown>;
  const keys = Object.keys(rec);
  const unknown = keys.filter((k) => k !== 'weight' && k !== 'state');
  if (unknown.length) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected the keys "weight" and/or "state", found ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  if (!keys.length) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${EXAMPLE}, found {}`);
  const out: ServerChange = {};
  if ('state' in rec) {
    const st = rec.state;
    if (typeof st !== 'string' || !(ADMIN_STATES as readonly string[]).includes(st)) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"state": expected one of ${ADMIN_STATES.join(' | ')}, found ${preview(st)}`);
    out.state = st as AdminState;
  }
  if ('weight' in rec) out.weight = parseWeight(rec.weight, server.configuredWeight);
  return out;
}

/**
 * 0-256, or "N%" of the configured weight as an agent's N% is taken (percentOfWeight): HAProxy's
 * `set weight` caps a percentage at 256 rather than refusing it, and so does this.
 */
export function parseWeight(value: unknown, configured: number): number {
  const max = LIMITS.maxWeight;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value <= max) return value;
    throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"weight": expected a whole number 0-${max} or a percentage like "50%", found ${preview(value)}`);
  }
  const m = typeof value === 'string' ? /^(\d{1,5})%$/.exec(value.trim()) : null;
  if (!m) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `"weight": expected a whole number 0-${max} or a percentage like "50%", found ${preview(value)}`);
  return percentOfWeight(configured, Number(m[1]));
}

function describeChange(c: ServerChange): string {
  return [c.state !== undefined ? `state ${c.state}` : '', c.weight !== undefined ? `weight ${c.weight}` : ''].filter(Boolean).join(', ');
}

export function findBackend(model: Model, name: string): Backend {
  const b = model.backend(name);
  if (!b) throw new AdminError('E_ADMIN_NOT_FOUND', 404, `no backend "${name}" (backends: ${[...model.backends.keys()].join(', ')})`);
  return b;
}

/**
 * The servers named `name` whose sessions GET /sessions lists under that backend and name: the
 * running one, and those a reload removed while they held sessions (Backend.retired, or a whole
 * backend: Model.removed), one of each set that shares its counts (ending one's sessions ends the
 * other's). Only names none of them holds are a 404.
 */
function serversHoldingName(model: Model, backendName: string, name: string): { backend: Backend; servers: Server[] } {
  const live = model.backend(backendName);
  const backend = live ?? model.removed.get(backendName) ?? findBackend(model, backendName);
  const named = [live?.server(name), ...backend.holdingSessions.filter((r) => r.name === name)].filter((r): r is Server => r !== undefined);
  const servers = named.filter((r, i) => named.findIndex((x) => x.countsWith(r)) === i);
  if (servers.length === 0) findServer(model, backendName, name);
  return { backend, servers };
}

export function findServer(model: Model, backendName: string, name: string): { backend: Backend; server: Server } {
  const backend = findBackend(model, backendName);
  const server = backend.server(name);
  if (!server) throw new AdminError('E_ADMIN_NOT_FOUND', 404, `backend "${backend.name}" has no server "${name}" (servers: ${backend.servers.map((x) => x.name).join(', ')})`);
  return { backend, server };
}

function refuse(req: IncomingMessage, res: ServerResponse, e: AdminError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (e.status === 413) {
    // The rest of the body is not wanted: close instead of draining it for keep-alive.
    res.setHeader('Connection', 'close');
    res.once('finish', () => req.socket.destroy());
  }
  sendJson(res, e.status, { error: e.message, code: e.code });
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * The request body parsed as JSON, or undefined when there is none (allowed unless `required`).
 * Refuses a non-JSON content type (415) and a body over MAX_BODY_BYTES (413) without reading on.
 */
async function readJsonBody(req: IncomingMessage, required: boolean): Promise<unknown> {
  if (!hasBody(req)) {
    if (required) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${EXAMPLE}, found an empty body`);
    return undefined;
  }
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new AdminError('E_ADMIN_MEDIA_TYPE', 415, `expected Content-Type: application/json, found ${type ? JSON.stringify(type) : 'none'}`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new AdminError('E_ADMIN_TOO_LARGE', 413, `expected a body of at most ${MAX_BODY_BYTES} bytes, found Content-Length ${declared}`);
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        req.pause();
        reject(new AdminError('E_ADMIN_TOO_LARGE', 413, `expected a body of at most ${MAX_BODY_BYTES} bytes, found more`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  if (text.trim() === '') {
    if (required) throw new AdminError('E_ADMIN_BAD_VALUE', 400, `expected ${EXAMPLE}, found an empty body`);
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new AdminError('E_ADMIN_BAD_JSON', 400, `expected ${EXAMPLE}, found invalid JSON (${(e as Error).message})`);
  }
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}

/** A short rendering of a found value for an error message. */
function preview(v: unknown): string {
  // JSON.parse reads 1e309 as Infinity, which JSON.stringify writes as null: "found null" denied what was sent.
  if (typeof v === 'number' && !Number.isFinite(v)) return `${v} (a number too large to hold)`;
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
