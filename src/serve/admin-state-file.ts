import { constants } from 'node:fs';
import { access, lstat, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { formatHostPort } from '../config/address.js';
import { LIMITS } from '../config/schema.js';
import { LicgateError } from '../errors.js';
import { notRegularFile, READ_NO_WAIT } from '../io/regular-file.js';
import { tierName } from '../model/events.js';
import type { Backend } from '../model/backend.js';
import type { Model } from '../model/model.js';
import type { AdminState, Server } from '../model/server.js';
import type { Logger } from '../observe/log.js';
import { ANY_SERVER, isPeerClient, isPeerName } from '../peers/peer-codec.js';

/**
 * `admin.state_file`, HAProxy's server-state-file: what an admin set at runtime (a drain or maint,
 * a weight, a `failback: manual` backend not failed back yet) holds across a restart, as it holds
 * across a reload. Health and what an agent said are not kept: checks and the agent say them again.
 */
export const STATE_FILE_VERSION = 1;
/** A write begins at most this often: a burst of admin calls (a script draining 100 servers) makes a few writes, not one each. */
export const STATE_WRITE_INTERVAL_MS = 250;
/**
 * While stick entries are added, moved or dropped, the file is written at most this often: they
 * change with every new client. A `kill -9` loses what changed since the last write; a stop writes
 * it.
 */
export const STICK_WRITE_INTERVAL_MS = 5000;
/**
 * While entries are only refreshed (each new connection of a known client moves its expiry, hours
 * away), the file is written at most this often: under steady traffic every 5 s rewrote a full
 * table (5 MB) 17,280 times a day. A crash loses at most this much of the expiries' moves, which
 * costs nothing while stick_ttl is hours; a lost new or moved entry costs a second license.
 */
export const STICK_REFRESH_WRITE_MS = 60_000;
/** After a failed write (disk full, directory gone), the next try; an admin change meanwhile waits for it too. */
const STATE_RETRY_MS = 10_000;
/** A failing write logs at most one line this often; the others are counted in the next. */
const STATE_FAILURE_LOG_MS = 60_000;
const ADMIN_STATES: readonly AdminState[] = ['ready', 'drain', 'maint'];
const WEIGHT_KEYS = ['weight', 'configured_weight'] as const;
const isWeight = (w: unknown): boolean => Number.isInteger(w) && (w as number) >= 0 && (w as number) <= LIMITS.maxWeight;

/** One server's entry: `weight` only when the admin's differs from the configured one. */
export interface SavedServer {
  backend: string;
  server: string;
  /** As configured (formatHostPort): a server now configured at another address is another license server. */
  address: string;
  admin: AdminState;
  weight?: number;
  /**
   * The configured weight when `weight` was saved (HAProxy's srv_iweight): a config that changed
   * the weight since wins over the admin's. Written with `weight`; an older reader ignores it.
   */
  configured_weight?: number;
  /**
   * A FlexLM triad member that was a standby (Server.standby) when this was written: restored, it
   * takes no client until its first check says otherwise. Servers start UP, so every member took
   * clients until its first lmstat (a second, up to the check's timeout) and most checkouts in that
   * window reached members that do not serve; HAProxy's server-state-file restores the operational
   * state too (srv_op_state). Written only when true; an older licgate ignores the key.
   */
  standby?: true;
}

/**
 * A `failback: manual` backend serving from a tier that is not the one a start takes (startTier):
 * the "not yet" of an admin who keeps clients there until `ctl failback`. In the file's optional
 * "backends" list, which a licgate from before it ignores (it reads "version" and "servers" only).
 */
export interface SavedBackend {
  backend: string;
  serving_tier: number;
  /**
   * The servers of that tier then: a config that renumbered its tiers since would have the number
   * name other servers. Absent in a file from before it (the number alone is restored then).
   */
  tier_servers?: string[];
}

/**
 * A `stick: source` backend's table, in the file's optional "stick" list (an older licgate reads
 * "version", "servers" and "backends" only). `entries`: [client, server, expires, since], the times
 * in Unix ms: a restart loses the monotonic clock the table counts on. `servers`: the backend's
 * servers' configured addresses, by name, when it was written.
 */
export interface SavedStick {
  backend: string;
  servers: Record<string, string>;
  entries: [string, string, number, number][];
  /**
   * Its deletion markers (`ctl unstick` while `peers` shares the table, StickTable.unstucks), the
   * times in Unix ms: clients [client, server, at], servers [server, at], the whole table's. Kept so
   * that a host restarted before the other host is back still refuses the entries it unstuck. An
   * older licgate does not read the key.
   */
  unstuck?: SavedUnstuck;
}

export interface SavedUnstuck {
  clients: [string, string, number][];
  servers: [string, number][];
  cleared: number | null;
}

/** What the writer asks of the stick tables: have they changed since it last asked, and their "stick" list as JSON. */
export interface StickSource {
  /**
   * Whether an entry was added, moved or dropped, or with `refreshes` also only refreshed, or a
   * reload added or removed a table, since a write last took the tables; when so, every table's
   * flags are cleared: the write that follows takes them all.
   */
  changed(refreshes: boolean): boolean;
  /** The `,"stick":[...]` part of the file (nothing while every table is empty), in pieces of at most STICK_BATCH entries. */
  json(): AsyncIterable<string>;
}

/** Entries read and written per loop turn when the file is written; see stickSourceOf. */
const STICK_BATCH = 2000;

/**
 * The stick tables of `model()` (the model a reload put in place, when asked). Read in batches,
 * one loop turn each, as GET /backends/B/stick-table is, and handed to the file a batch at a time:
 * a table of 100,000 entries read, or joined into one 5 MB string, at once would hold up every
 * session's relaying while it is (22-57 ms here, joined). The clients are copied first (the table
 * moves an entry to its end at each touch, so walking it across turns could meet one twice); an
 * entry gone by its batch is left out.
 */
export function stickSourceOf(model: () => Model): StickSource {
  // The backends with a table when a write last took them: a reload that removed `stick: source`
  // (or the backend) changes no flag, and the file kept the table across the stop that followed.
  let taken = stickBackends(model());
  return {
    changed(refreshes) {
      const now = stickBackends(model());
      let changed = now !== taken;
      for (const b of model().backends.values()) if (b.stick !== null && (b.stick.dirty || (refreshes && b.stick.refreshed))) changed = true;
      if (!changed) return false;
      taken = now;
      for (const b of model().backends.values()) {
        if (b.stick === null) continue;
        b.stick.dirty = false;
        b.stick.refreshed = false;
      }
      return true;
    },
    async *json() {
      let tables = 0;
      for (const b of model().backends.values()) {
        const table = b.stick;
        if (table === null) continue;
        const clients = table.clients();
        let rows = 0;
        let piece = '';
        let now = performance.now();
        let wall = Date.now() - now;
        const head = (): string => `${tables++ > 0 ? ',' : ',"stick":['}{"backend":${JSON.stringify(b.name)},"servers":${JSON.stringify(addressesOf(b))},"entries":[\n`;
        for (let i = 0; i < clients.length; i++) {
          if (i > 0 && i % STICK_BATCH === 0) {
            if (piece !== '') yield piece;
            piece = '';
            await new Promise(setImmediate);
            now = performance.now();
            wall = Date.now() - now;
          }
          const e = table.entry(clients[i]!, now);
          if (e === undefined) continue;
          if (rows++ > 0) piece += ',\n';
          else piece += head();
          // A client with sessions open is saved as if they ended now: they end with the process.
          const expires = e.sessions > 0 ? now + b.cfg.stick_ttl : e.expires;
          piece += `[${JSON.stringify(clients[i])},${JSON.stringify(e.server)},${Math.round(expires + wall)},${Math.round(e.since + wall)}]`;
        }
        const u = table.unstucks(now);
        if (rows === 0 && u.clients.length === 0 && u.servers.length === 0 && u.clearedAgo === null) continue;
        if (rows === 0) piece += head();
        piece += ']';
        if (u.clients.length > 0 || u.servers.length > 0 || u.clearedAgo !== null) {
          const at = (ago: number): number => Math.round(now + wall - ago);
          piece += `,"unstuck":{"servers":${JSON.stringify(u.servers.map(([sv, ago]) => [sv, at(ago)]))},"cleared":${u.clearedAgo === null ? 'null' : at(u.clearedAgo)},"clients":[`;
          for (let i = 0; i < u.clients.length; i++) {
            // As many as stick_size: joined a batch per turn, as the entries are.
            if (i > 0 && i % STICK_BATCH === 0) {
              yield piece;
              piece = '';
              await new Promise(setImmediate);
            }
            const [c, sv, ago] = u.clients[i]!;
            piece += `${i > 0 ? ',' : ''}[${JSON.stringify(c)},${JSON.stringify(sv)},${at(ago)}]`;
          }
          piece += ']}';
        }
        yield `${piece}}`;
      }
      if (tables > 0) yield ']';
    },
  };
}

function stickBackends(m: Model): string {
  let names = '';
  for (const b of m.backends.values()) if (b.stick !== null) names += `${b.name}\n`;
  return names;
}

/** Each server's configured address, by name: an entry to a server now elsewhere is not restored. */
function addressesOf(b: Backend): Record<string, string> {
  const servers: Record<string, string> = {};
  for (const s of b.servers) servers[s.name] = formatHostPort(s.address);
  return servers;
}

export interface AdminStateSnapshot {
  servers: SavedServer[];
  backends: SavedBackend[];
}

/**
 * What is kept of `model`: each server whose admin state is not ready, whose admin weight is not
 * the configured one or that is a FlexLM triad standby, and each `failback: manual` backend serving
 * from a tier other than the one a start would take (startTier).
 */
export function adminStateOf(model: Model): AdminStateSnapshot {
  const servers: SavedServer[] = [];
  const backends: SavedBackend[] = [];
  for (const b of model.backends.values()) {
    for (const s of b.servers) {
      if (s.admin === 'ready' && s.weight === s.configuredWeight && !s.standby) continue;
      servers.push({ backend: b.name, server: s.name, address: formatHostPort(s.address), admin: s.admin, ...(s.weight !== s.configuredWeight ? { weight: s.weight, configured_weight: s.configuredWeight } : {}), ...(s.standby ? { standby: true as const } : {}) });
    }
    const tier = b.servingTier;
    // Not a provisional tier: no admin kept it, nor did a failover give it (see Backend.provisional).
    if (b.cfg.failback === 'manual' && !b.provisional && tier !== null && tier !== startTier(b.servers)) backends.push({ backend: b.name, serving_tier: tier, tier_servers: b.servers.filter((s) => s.tier === tier).map((s) => s.name) });
  }
  return { servers, backends };
}

/**
 * The tier a start serves from: servers start UP until their first checks, so health does not
 * count, only what an admin lets serve (ready, weight above 0; restored before it is asked). Not
 * the tier health leaves best now: a backup serving while the primary is DOWN is kept too, or a
 * restart served the primary, with no `ctl failback`, as soon as it was back (or before its first
 * check failed).
 */
function startTier(servers: readonly Server[]): number | null {
  let best: number | null = null;
  for (const s of servers) if (adminLetsServe(s) && (best === null || s.tier < best)) best = s.tier;
  return best;
}

function adminLetsServe(s: Server): boolean {
  return s.admin === 'ready' && s.weight > 0;
}

/** The file's entries, and why each one that cannot be used is left out; a file that is not one of ours throws. */
export function parseAdminState(text: string): AdminStateSnapshot & { stick: SavedStick[]; invalid: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new LicgateError('E_STATE_FILE', `expected JSON, found invalid JSON (${(e as Error).message})`);
  }
  const rec = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>) : null;
  if (rec === null) throw new LicgateError('E_STATE_FILE', `expected a JSON object with "version" and "servers", found ${JSON.stringify(doc)?.slice(0, 60)}`);
  if (rec.version !== STATE_FILE_VERSION) throw new LicgateError('E_STATE_FILE', `expected "version": ${STATE_FILE_VERSION}, found ${JSON.stringify(rec.version) ?? 'none'}`);
  if (!Array.isArray(rec.servers)) throw new LicgateError('E_STATE_FILE', `expected "servers" to be a list, found ${JSON.stringify(rec.servers) ?? 'none'}`);
  const servers: SavedServer[] = [];
  const invalid: string[] = [];
  rec.servers.forEach((e: unknown, i) => {
    const r = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const ok = typeof r.backend === 'string' && typeof r.server === 'string' && typeof r.address === 'string' && (ADMIN_STATES as readonly unknown[]).includes(r.admin) && (r.weight === undefined || typeof r.weight === 'number') && (r.configured_weight === undefined || typeof r.configured_weight === 'number') && (r.standby === undefined || typeof r.standby === 'boolean');
    if (!ok) {
      invalid.push(`entry ${i + 1}: expected {backend, server, address, admin: ${ADMIN_STATES.join('|')}, weight?, configured_weight?, standby?}, found ${JSON.stringify(e)?.slice(0, 120)}`);
      return;
    }
    // A weight no server can have was not written by licgate: the entry is not trusted, its admin
    // state neither, as HAProxy applies nothing of a server-state line with an invalid
    // srv_uweight or srv_iweight (server_state.c).
    const bad = WEIGHT_KEYS.find((k) => r[k] !== undefined && !isWeight(r[k]));
    if (bad === undefined) servers.push(r as unknown as SavedServer);
    else invalid.push(`entry ${i + 1} (${String(r.backend)}/${String(r.server)}): expected "${bad}" to be a whole number 0-${LIMITS.maxWeight}, as a server's weight in the config, found ${JSON.stringify(r[bad])}`);
  });
  const backends: SavedBackend[] = [];
  // Not a reason to drop the file: the servers' entries are good without it.
  if (rec.backends !== undefined && !Array.isArray(rec.backends)) invalid.push(`expected "backends" to be a list, found ${JSON.stringify(rec.backends)?.slice(0, 120)}`);
  else if (rec.backends !== undefined) {
    rec.backends.forEach((e: unknown, i) => {
      const r = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
      const t = r.serving_tier;
      const names = r.tier_servers;
      const namesOk = names === undefined || (Array.isArray(names) && names.every((n) => typeof n === 'string'));
      if (typeof r.backend === 'string' && Number.isInteger(t) && (t as number) >= 0 && (t as number) <= LIMITS.maxTier && namesOk) backends.push({ backend: r.backend, serving_tier: t as number, ...(names === undefined ? {} : { tier_servers: names as string[] }) });
      else invalid.push(`backends entry ${i + 1}: expected {backend, serving_tier: a whole number 0-${LIMITS.maxTier}, tier_servers?: [server names]}, found ${JSON.stringify(e)?.slice(0, 120)}`);
    });
  }
  return { servers, backends, stick: parseStick(rec.stick, invalid), invalid };
}

const isStickRow = (r: unknown): r is [string, string, number, number] =>
  Array.isArray(r) && r.length === 4 && typeof r[0] === 'string' && typeof r[1] === 'string' && Number.isFinite(r[2]) && Number.isFinite(r[3]);

/** The "stick" list; a table or row that is not one is left out and said in `invalid` (the rest of the file is good without it). */
function parseStick(list: unknown, invalid: string[]): SavedStick[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) {
    invalid.push(`expected "stick" to be a list, found ${JSON.stringify(list)?.slice(0, 120)}`);
    return [];
  }
  const tables: SavedStick[] = [];
  list.forEach((t: unknown, i) => {
    const r = (typeof t === 'object' && t !== null ? t : {}) as Record<string, unknown>;
    const servers = r.servers as Record<string, unknown>;
    const ok = typeof r.backend === 'string' && typeof servers === 'object' && servers !== null && !Array.isArray(servers) && Object.values(servers).every((a) => typeof a === 'string') && Array.isArray(r.entries);
    if (!ok) {
      invalid.push(`stick entry ${i + 1}: expected {backend, servers: {name: address}, entries: [[client, server, expires, since]]}, found ${JSON.stringify(t)?.slice(0, 120)}`);
      return;
    }
    const rows = (r.entries as unknown[]).filter(isStickRow);
    const bad = (r.entries as unknown[]).length - rows.length;
    if (bad > 0) invalid.push(`stick entry ${i + 1} (${r.backend as string}): ${bad} row(s) not [client, server, expires ms, since ms]`);
    const unstuck = parseUnstuck(r.unstuck);
    if (unstuck === null) invalid.push(`stick entry ${i + 1} (${r.backend as string}): expected "unstuck" to be {clients: [[client, server, at ms]], servers: [[server, at ms]], cleared: at ms or null}, found ${JSON.stringify(r.unstuck)?.slice(0, 120)}`);
    tables.push({ backend: r.backend as string, servers: servers as Record<string, string>, entries: rows, ...(unstuck ? { unstuck } : {}) });
  });
  return tables;
}

/** A table's "unstuck" (SavedUnstuck): undefined when absent (a file from before it), null when it is not one. */
function parseUnstuck(u: unknown): SavedUnstuck | undefined | null {
  if (u === undefined) return undefined;
  const r = (typeof u === 'object' && u !== null ? u : {}) as Record<string, unknown>;
  const isClient = (x: unknown): boolean => Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' && typeof x[1] === 'string' && Number.isFinite(x[2]);
  const isServer = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && Number.isFinite(x[1]);
  if (!Array.isArray(r.clients) || !r.clients.every(isClient) || !Array.isArray(r.servers) || !r.servers.every(isServer) || !(r.cleared === null || Number.isFinite(r.cleared))) return null;
  return r as unknown as SavedUnstuck;
}

/**
 * Start-up, before any listener accepts: the admin states `file` kept (and the triad standbys,
 * until their first checks) are set again, without a state-change event (nothing changed for the
 * outside, as at a reload). Never fails: a missing or empty file is a first start; one that cannot
 * be read or used is a warning, every server starts ready at its configured weight, and no write
 * replaces that file. An entry is skipped when its backend or server is no longer in the config, or
 * the server is configured at another address (HAProxy's rule: another license server); a weight
 * saved when another weight was configured (HAProxy's rule: the config's change wins) is skipped
 * and the entry's state still restored. An invalid entry (a weight no server can have among them)
 * is skipped whole. Unless the file then holds what runs, one write follows, so a skipped entry is
 * warned about at this start only.
 */
export async function restoreAdminState(model: Model, writer: AdminStateWriter, log: Logger): Promise<void> {
  const file = writer.file;
  // A write makes a temporary file there and renames it. A directory that is missing or read-only
  // (ProtectSystem=strict outside StateDirectory) would otherwise be heard of only when an admin
  // change fails to be written, and that change's call succeeds all the same.
  const dir = dirname(file);
  await access(dir, constants.W_OK).catch((e: NodeJS.ErrnoException) => {
    const what = e.code === 'ENOENT' || e.code === 'ENOTDIR' ? 'does not exist' : `is not writable (${e.code ?? e.message})`;
    log.warn({ state_file: file, error: e.code ?? e.message }, `admin state file ${file} cannot be written: ${dir} ${what}; what an admin sets holds while licgate runs, not across a restart`);
  });
  await removeLeftTemps(file, log);
  let saved: ReturnType<typeof parseAdminState>;
  try {
    const text = await readRegularFile(file);
    // Made with touch and chown for licgate to fill: no state yet, as with no file.
    if (text.trim() === '') {
      log.info({ state_file: file }, `admin state file ${file} is empty: no admin state to restore`);
      return;
    }
    saved = parseAdminState(text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      log.info({ state_file: file }, `admin state file ${file} not found: no admin state to restore (a first start)`);
      return;
    }
    const why = e instanceof LicgateError ? e.message : `cannot read it (${code ?? (e as Error).message})`;
    log.warn({ state_file: file, error: why }, `admin state file ${file} not used: ${why}; every server starts ready at its configured weight`);
    writer.keepForeign(why);
    return;
  }
  for (const why of saved.invalid) log.warn({ state_file: file, error: why }, `admin state file ${file}: ${why}; skipped`);
  for (const e of saved.servers) {
    const where = `${e.backend}/${e.server}`;
    const skip = (why: string): void => log.warn({ state_file: file, backend: e.backend, server: e.server, admin: e.admin, weight: e.weight }, `admin state of ${where} (${e.admin}${e.weight !== undefined ? `, weight ${e.weight}` : ''}) not restored: ${why}`);
    const backend = model.backend(e.backend);
    const server = backend?.server(e.server);
    const at = server === undefined ? null : formatHostPort(server.address);
    if (backend === undefined) skip(`the config has no backend ${e.backend} now`);
    else if (server === undefined) skip(`backend ${e.backend} has no server ${e.server} now`);
    else if (at !== e.address) skip(`${e.server} is configured at ${at} now, not ${e.address}: another license server`);
    if (server === undefined || at !== e.address) continue;
    server.admin = e.admin;
    const w = e.weight;
    // An entry without configured_weight was written before licgate saved it: its weight is
    // restored, as that licgate did. Most such starts are an upgrade on the same config, and
    // dropping the weight there would lose what an admin set; the next write adds the weight
    // configured now, so the rule holds from then on. A config changed to the admin's weight (made
    // permanent there) changed nothing that runs.
    const configChanged = e.configured_weight !== undefined && e.configured_weight !== server.configuredWeight && w !== server.configuredWeight;
    if (w !== undefined && !configChanged) server.weight = w;
    // As a reload carries it over (Server.takeState): a server nothing checks has no check to clear it.
    if (e.standby === true && server.checked) server.standby = true;
    const standby = server.standby ? '; a FlexLM triad standby until its first check' : '';
    if (w !== undefined && configChanged) skip(`weight ${w} was set while ${e.configured_weight} was configured, and the config says ${server.configuredWeight} now: the config's change wins; state ${e.admin}${standby ? ' and standby' : ''} restored`);
    else log.info({ state_file: file, backend: e.backend, server: e.server, admin: server.admin, weight: server.weight, ...(server.standby ? { standby: true } : {}) }, `admin state of ${where} restored from ${file}: ${server.admin}, weight ${server.weight}/${server.configuredWeight}${standby}`);
  }
  for (const e of saved.backends) restoreServingTier(model, e, file, log);
  let stickKept = true;
  for (const t of saved.stick) if (!restoreStick(model, t, file, log)) stickKept = false;
  writer.restored({ servers: saved.servers, backends: saved.backends }, saved.invalid.length > 0 || !stickKept);
}

/**
 * A `failback: manual` backend an admin had not failed back serves from the tier it served from,
 * when the config still has that backend with `failback: manual` and that tier has a server an
 * admin lets serve (ready, weight above 0: the servers' entries are restored first). Health is not
 * asked: no check has run yet and names are not looked up, and servers start UP until their first
 * checks say otherwise (or DOWN by their init_state, which settle() holds the tier through too).
 * The tier in use keeps serving through a restart as through a reload (Backend.adoptRuntime),
 * until the admin fails back or that tier cannot serve: settle() and the
 * first checks then move clients as `failback: manual` does while licgate runs. Deciding after the
 * first checks instead would have the frontends accept on the best tier meanwhile: clients would
 * check out there and again on the backup once it was restored, each a second license (FlexLM
 * counts a re-checkout after a reconnect as another), which failback: manual is there to avoid.
 */
function restoreServingTier(model: Model, e: SavedBackend, file: string, log: Logger): void {
  const tier = `${tierName(e.serving_tier)} (tier ${e.serving_tier})`;
  const skip = (why: string): void => log.warn({ state_file: file, backend: e.backend, serving_tier: e.serving_tier }, `serving tier of ${e.backend} (${tier}, not failed back) not restored: ${why}`);
  const backend = model.backend(e.backend);
  const servers = backend?.servers.filter((s) => s.tier === e.serving_tier) ?? [];
  if (backend === undefined) skip(`the config has no backend ${e.backend} now`);
  else if (backend.cfg.failback !== 'manual') skip(`backend ${e.backend} has failback: ${backend.cfg.failback} now, so it serves from its best tier`);
  else if (servers.length === 0) skip(`backend ${e.backend} has no server in tier ${e.serving_tier} now`);
  else if (e.tier_servers !== undefined && !servers.some((s) => e.tier_servers!.includes(s.name))) skip(`tier ${e.serving_tier} holds ${servers.map((s) => s.name).join(', ')} now, not ${e.tier_servers.join(', ')} as when it was kept: the config renumbered its tiers, and clients hold their licenses on those servers`);
  else if (!servers.some(adminLetsServe)) skip(`no server of that tier can serve: ${servers.map((s) => `${s.name} ${s.admin === 'ready' ? 'weight 0' : s.admin}`).join(', ')}`);
  else {
    backend.keepServing(e.serving_tier);
    log.info({ state_file: file, backend: e.backend, serving_tier: e.serving_tier }, `serving tier of ${e.backend} restored from ${file}: ${tier}, until an admin fails it back (licgate ctl failback ${e.backend})`);
  }
}

/**
 * A `stick: source` backend's clients go back to the servers they were stuck to, as HAProxy's peers
 * keep a stick table across a reload (licgate keeps it in memory then): a FlexLM client that
 * reconnects after the restart and is balanced to the other server checks out a second license
 * while the first server still holds its first. Only for a backend that still has `stick: source`,
 * to a server of the same name at the same address (another address is another license server);
 * an entry past its time is dropped, the others keep the time they had left. False when the table
 * now holds less than the file did (a start then writes the file again).
 */
function restoreStick(model: Model, t: SavedStick, file: string, log: Logger): boolean {
  const skip = (why: string): false => (log.warn({ state_file: file, backend: t.backend, entries: t.entries.length }, `stick table of ${t.backend} (${t.entries.length} entries) not restored: ${why}`), false);
  const backend = model.backend(t.backend);
  if (backend === undefined) return skip(`the config has no backend ${t.backend} now`);
  if (backend.stick === null) return skip(`backend ${t.backend} has no "stick: source" now`);
  const wallNow = Date.now();
  const keep: { client: string; server: string; expiresIn: number; sinceAgo: number }[] = [];
  const gone = new Set<string>();
  let expired = 0;
  // A key no client connects from; pushed to the other host (peers), its S line cuts the link off
  // at every full push for as long as the entry lives, as a marker's D line would (below).
  const notClients: string[] = [];
  for (const [client, server, expires, since] of t.entries) {
    const s = backend.server(server);
    if (!isPeerClient(client)) notClients.push(client);
    else if (expires <= wallNow) expired++;
    else if (s === undefined || formatHostPort(s.address) !== t.servers[server]) gone.add(server);
    else keep.push({ client, server, expiresIn: expires - wallNow, sinceAgo: wallNow - since });
  }
  const restored = backend.stick.restore(keep);
  let markersKept = true;
  if (t.unstuck !== undefined) {
    const u = t.unstuck;
    const skipped: string[] = [];
    // A time after now: the clock was ahead when the file was written, and was stepped back since
    // (or the file was edited). Taken, the marker held for stick_ttl past now and, pushed as "made
    // 0 ms ago", dropped the other host's entries at each reconnect (a whole-table one: all of them).
    const past = (at: number, what: string): boolean => at <= wallNow || (skipped.push(`${what} made at ${new Date(at).toISOString()}, after now`), false);
    // Pushed to the other host as a D line, a client or server it does not accept cuts the link off
    // at every full push. A server this host no longer has is kept: the other host may have it
    // still (a reload keeps such markers too).
    const client = ([c, sv, at]: [string, string, number]): boolean => {
      if (!isPeerClient(c)) skipped.push(`client ${JSON.stringify(c).slice(0, 70)} is not an IP address`);
      else if (sv !== ANY_SERVER && !isPeerName(sv)) skipped.push(`client ${c}'s server ${JSON.stringify(sv).slice(0, 70)} is not a server name`);
      else return past(at, `client ${c}'s marker`);
      return false;
    };
    const clients = u.clients.filter(client);
    const servers = u.servers.filter(([sv, at]) => backend.server(sv) !== undefined && past(at, `server ${sv}'s marker`));
    const cleared = u.cleared !== null && past(u.cleared, "the whole table's marker") ? u.cleared : null;
    backend.stick.restoreUnstucks({
      clients: clients.map(([c, sv, at]): [string, string, number] => [c, sv, wallNow - at]),
      servers: servers.map(([sv, at]): [string, number] => [sv, wallNow - at]),
      clearedAgo: cleared === null ? null : wallNow - cleared,
    });
    if (skipped.length > 0) {
      markersKept = false;
      log.warn({ state_file: file, backend: t.backend, skipped: skipped.length }, `stick table of ${t.backend}: ${skipped.length} deletion marker(s) from ${file} not restored: ${skipped.slice(0, 3).join('; ')}${skipped.length > 3 ? '; …' : ''}`);
    }
  }
  if (notClients.length > 0) {
    const shown = notClients.slice(0, 3).map((c) => JSON.stringify(c).slice(0, 70)).join(', ');
    log.warn({ state_file: file, backend: t.backend, skipped: notClients.length }, `stick table of ${t.backend}: ${notClients.length} entr${notClients.length === 1 ? 'y' : 'ies'} from ${file} not restored: expected a client IP address, found ${shown}${notClients.length > 3 ? ', …' : ''}`);
  }
  const dropped = t.entries.length - keep.length - expired - notClients.length;
  const goneText = gone.size > 0 ? `; ${dropped} to ${[...gone].join(', ')} dropped: no such server now, or it is at another address` : '';
  log.info({ state_file: file, backend: t.backend, restored, expired, dropped }, `stick table of ${t.backend} restored from ${file}: ${restored} client(s) go back to their server; ${expired} expired${goneText}`);
  return restored === t.entries.length && markersKept;
}

/**
 * Writes the admin state after each change, off the relay's path: async fs, coalesced (a write
 * begins at most every STATE_WRITE_INTERVAL_MS, with what holds then), and atomic (a temporary
 * file beside it, fsync, rename, fsync of the directory), so a crash or power loss leaves the old
 * file or the new one. A failed write is logged, at most once a minute, and tried again.
 */
export class AdminStateWriter {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private dirty = false;
  private closed = false;
  private lastStart = -Infinity;
  /** The state's JSON last written: a change that leaves it the same (a reload, drain then ready) writes nothing. */
  private written: string | null = null;
  /** Failed writes since the last that succeeded, and how many of them had been when one was last logged. */
  private failedSinceWrite = 0;
  private failedWhenLogged = 0;
  private lastFailureLog = -Infinity;
  /**
   * Why the file start-up found at the path is not one of licgate's (null: it is, or there was
   * none). Such a file is not replaced: admin.state_file set to the config file, the token file or
   * vrrp.state_file by mistake would be lost at the first admin change. Once it is gone, it is.
   */
  private foreign: string | null = null;
  /** Stick entries changed since the last write began: the next write is due even when the admin state is what was written. */
  private stickPending = false;
  private readonly stickTimer: NodeJS.Timeout | null = null;
  /** When the last write that took the stick tables began (every write does); at first, the start's restore. */
  private stickWrittenAt = performance.now();

  /**
   * `retryMs`: after a failed write, the next try; another value only for a test. `stick`: the stick
   * tables, looked at every `stickIntervalMs` and written when an entry was added, moved or dropped,
   * or `stickRefreshMs` after the last write when entries were only refreshed.
   */
  constructor(readonly file: string, private readonly state: () => AdminStateSnapshot, private readonly log: Logger, private readonly retryMs = STATE_RETRY_MS, private readonly stick: StickSource | null = null, stickIntervalMs = STICK_WRITE_INTERVAL_MS, stickRefreshMs = STICK_REFRESH_WRITE_MS) {
    if (stick === null) return;
    this.stickTimer = setInterval(() => {
      if (!stick.changed(performance.now() - this.stickWrittenAt >= stickRefreshMs)) return;
      this.stickPending = true;
      this.changed();
    }, stickIntervalMs).unref();
  }

  /** Start-up could not use the file at the path (`why`): it is kept, and no state is written over it. */
  keepForeign(why: string): void {
    this.foreign = why;
  }

  /**
   * Start-up restored `saved`, the file's usable entries (`invalid`: it had others, or stick entries
   * it did not restore: a table the config has no `stick: source` for now, entries expired).
   * Unless what runs is what the file holds (an entry was skipped or invalid, a weight gave way to
   * the config's), one write makes it so: the file would otherwise keep a skipped entry, warned
   * about again at every start, until an admin change.
   */
  restored(saved: AdminStateSnapshot, invalid: boolean): void {
    const now = JSON.stringify(this.state());
    if (!invalid && now === JSON.stringify(saved)) this.written = now;
    else this.changed();
  }

  /** What an admin set may have changed: a write follows. */
  changed(): void {
    this.dirty = true;
    this.schedule(STATE_WRITE_INTERVAL_MS);
  }

  /** The stop: a change not written yet is written now, and none after. */
  async flush(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.stickTimer !== null) clearInterval(this.stickTimer);
    this.timer = null;
    await this.writing;
    // The stop's sessions ended just now: their clients' TTLs count from here.
    if (this.stick?.changed(true)) this.stickPending = true;
    if (this.dirty || this.stickPending) await this.write(true);
  }

  private schedule(interval: number): void {
    // A write under way schedules the next when it ends.
    if (this.closed || this.timer !== null || this.writing !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.write();
    }, Math.max(0, this.lastStart + interval - performance.now()));
  }

  /** `last`: the stop's write, whose failure is always logged: nothing tries it again. */
  private write(last = false): Promise<void> {
    this.dirty = false;
    const state = this.state();
    const json = JSON.stringify(state);
    const stickDue = this.stickPending;
    this.stickPending = false;
    if (json === this.written && !stickDue) return Promise.resolve();
    // Each write takes the tables as they are now, an admin change's too: what they changed is in it.
    const tookStick = this.stick?.changed(true) ?? false;
    this.lastStart = performance.now();
    this.stickWrittenAt = this.lastStart;
    // "backends" and "stick" only when they hold one: the file is then as a licgate from before them wrote it.
    const backends = state.backends.length > 0 ? `,"backends":${JSON.stringify(state.backends)}` : '';
    const head = `{"version":${STATE_FILE_VERSION},"saved_at":${JSON.stringify(new Date().toISOString())},"servers":${JSON.stringify(state.servers)}${backends}`;
    let failed = false;
    this.writing = this.mayReplace().then(() => writeAtomically(this.file, filePieces(head, this.stick))).then(
      () => {
        this.written = json;
        if (this.failedSinceWrite) this.log.info({ state_file: this.file }, `admin state file ${this.file} written again after ${this.failedSinceWrite} failed write(s)`);
        this.failedSinceWrite = 0;
        this.failedWhenLogged = 0;
      },
      (e: NodeJS.ErrnoException) => {
        failed = true;
        this.dirty = true;
        this.stickPending ||= stickDue || tookStick;
        this.failedWrite(e, last);
      },
    ).finally(() => {
      this.writing = null;
      if (this.dirty) this.schedule(failed ? this.retryMs : STATE_WRITE_INTERVAL_MS);
    });
    return this.writing;
  }

  private async mayReplace(): Promise<void> {
    if (this.foreign === null) return;
    try {
      await lstat(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.foreign = null;
      return;
    }
    // No code: the log line quotes the message.
    throw new Error(`the file there is not a licgate state file (${this.foreign}), so it is not replaced: remove it, or set admin.state_file to another path`);
  }

  private failedWrite(e: NodeJS.ErrnoException, last: boolean): void {
    this.failedSinceWrite++;
    const why = e.code ?? e.message;
    const unsaid = this.failedSinceWrite - 1 - this.failedWhenLogged;
    if (last) {
      this.log.error({ state_file: this.file, error: why, failed_writes: this.failedSinceWrite, not_logged: unsaid }, `cannot write admin state file ${this.file} at the stop (${why}): what an admin set since its last write is lost, the next start does not restore it (${this.failedSinceWrite} failed write(s) since the last that succeeded, ${unsaid} not logged)`);
      return;
    }
    const now = performance.now();
    if (now - this.lastFailureLog < STATE_FAILURE_LOG_MS) return;
    this.lastFailureLog = now;
    this.failedWhenLogged = this.failedSinceWrite;
    this.log.error({ state_file: this.file, error: why, failed_writes: this.failedSinceWrite }, `cannot write admin state file ${this.file} (${why}): what an admin set holds while licgate runs, but a restart now would start every server ready; trying again`);
  }
}

/** A FIFO at the path would otherwise hold start-up until something writes to it. */
async function readRegularFile(file: string): Promise<string> {
  const fh = await open(file, READ_NO_WAIT);
  try {
    const other = notRegularFile(await fh.stat());
    if (other !== null) throw new LicgateError('E_STATE_FILE', `expected a regular file, found ${other}`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** The temporary file writeAtomically writes `file` to before it renames it; `pid`: the writing process. */
function tempOf(file: string, pid: number): string {
  return join(dirname(file), `.${basename(file)}.${pid}.tmp`);
}

/**
 * Start-up: a write cut short by a `kill -9` or a crash leaves its temporary file (a full stick
 * table: 5 MB), named after a process that is gone, so no later write replaces it: without this,
 * each such crash left one more. One whose process still runs is left alone.
 */
async function removeLeftTemps(file: string, log: Logger): Promise<void> {
  const prefix = `.${basename(file)}.`;
  const names = await readdir(dirname(file)).catch(() => [] as string[]);
  for (const name of names) {
    const digits = name.startsWith(prefix) && name.endsWith('.tmp') ? name.slice(prefix.length, -4) : '';
    const pid = /^[1-9]\d{0,9}$/.test(digits) ? Number(digits) : 0;
    if (pid === 0 || pid === process.pid || processRuns(pid)) continue;
    const tmp = tempOf(file, pid);
    await unlink(tmp).then(
      () => log.info({ state_file: file, removed: tmp }, `removed ${tmp}, left by a write of admin state file ${file} that did not finish (its process, ${pid}, is gone)`),
      (e: NodeJS.ErrnoException) => log.warn({ state_file: file, error: e.code ?? e.message }, `cannot remove ${tmp}, left by a write that did not finish (${e.code ?? e.message})`),
    );
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The file's text: `head` (up to "backends"), the stick tables, the closing brace. */
async function* filePieces(head: string, stick: StickSource | null): AsyncIterable<string> {
  yield head;
  if (stick !== null) yield* stick.json();
  yield '}\n';
}

/** Written piece by piece (filePieces): writeFile on an open handle writes on from where the last one ended. */
async function writeAtomically(file: string, pieces: AsyncIterable<string>): Promise<void> {
  const dir = dirname(file);
  const tmp = tempOf(file, process.pid);
  try {
    const fh = await open(tmp, 'w', 0o640);
    try {
      // The mode open() gives is masked by the umask (the unit's UMask=0077).
      await fh.chmod(0o640);
      for await (const piece of pieces) await fh.writeFile(piece);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // The rename itself survives a power loss only once the directory is on disk.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
