import { formatBound, formatHostPort, listenClash, type HostPort } from './config/address.js';
import { readTokenFile } from './config/admin-token.js';
import { loadConfigFile } from './config/load.js';
import { formatDuration } from './config/duration.js';
import { BACKEND_DURATIONS, type BackendConfig, type CheckConfig, type Config, type FrontendConfig } from './config/schema.js';
import type { Daemon } from './daemon.js';
import type { AddressInfo } from 'node:net';
import { ConfigError, LicgateError, ListenError, OwnPortError, ShuttingDownError, StopBeganError } from './errors.js';
import type { BindOptions } from './io/listen.js';
import type { LineServer } from './io/line-server.js';
import { Model } from './model/model.js';
import type { Server } from './model/server.js';
import type { Frontend } from './proxy/frontend.js';
import type { AdminHttp } from './serve/admin-http.js';
import type { AgentResponder } from './serve/agent-responder.js';
import { untilAborted } from './until-aborted.js';
import type { PeerListener } from './peers/peer-listener.js';
import { peersToken } from './peers/peer-token.js';

export interface ReloadOutcome {
  ok: boolean;
  /** FILE:LINE:COL: message per config problem, or why the new config could not be applied. */
  errors: string[];
  /** What the reload changed, one short phrase each. */
  changes: string[];
  /** Not applied because licgate is stopping: not a refused config (set only then). */
  stopping?: true;
}

/** A reload that has settled: `seq` counts reloads in the order they were asked for. */
export interface SettledReload extends ReloadOutcome {
  seq: number;
  trigger: string;
  /** Date.now() when it settled. */
  at: number;
}

/**
 * Reads `file` again (or the config `read` returns, for one that is no file: the demo's) and, when
 * it is valid, applies the difference to the running daemon; when it is not, the running config
 * stays and every error is reported. Connected sessions are never touched (a queued one is placed
 * by the new config: applyConfig).
 * One log line, one metric update and one notification per reload, whatever the outcome; a reload
 * the stop refuses gets the log line only.
 */
export async function reloadFromFile(d: Daemon, file: string, trigger: string, read: () => Config = () => loadConfigFile(file)): Promise<ReloadOutcome> {
  let outcome: ReloadOutcome;
  let refusedWarnings: string[] = [];
  try {
    if (d.shuttingDown) throw new ShuttingDownError();
    const next = read();
    const changes = await applyConfig(d, next);
    outcome = { ok: true, errors: [], changes };
  } catch (e) {
    if (e instanceof ShuttingDownError) {
      // Not a failed reload: the file may be fine, and the old config does not go on. Counted and
      // notified as one, a stop would fire LicgateReloadFailed and page someone to validate it.
      d.log.info({ file, trigger, reason: e.message }, `reload not applied (${trigger}): licgate is stopping`);
      return { ok: false, errors: [e.message], changes: [], stopping: true };
    }
    if (e instanceof ConfigError) {
      outcome = { ok: false, errors: e.issues.map(String), changes: [] };
      // With the errors, so one edit of the file fixes both, instead of hearing of these at the next reload.
      refusedWarnings = e.warnings.map(String);
    } else if (e instanceof LicgateError) outcome = { ok: false, errors: [e.message], changes: [] };
    else throw e;
  }
  d.metrics.reloaded(outcome.ok);
  if (outcome.ok) {
    const what = outcome.changes.length ? `${outcome.changes.length} change${outcome.changes.length > 1 ? 's' : ''}: ${outcome.changes.join('; ')}` : 'no changes';
    // The one reload line carries the new config's warnings: at warn level, so they are not missed.
    const warnings = d.cfg.warnings.map(String);
    const line = { file, trigger, changes: outcome.changes, ...(warnings.length ? { warnings } : {}) };
    const msg = `config reloaded from ${file} (${trigger}): ${what}`;
    if (warnings.length) d.log.warn(line, msg + warned(warnings));
    else d.log.info(line, msg);
    d.notifier.notify({ event: 'reload-ok', reason: what });
  } else {
    d.log.error({ file, trigger, errors: outcome.errors, ...(refusedWarnings.length ? { warnings: refusedWarnings } : {}) }, `config reload failed (${trigger}); still running the previous config: ${outcome.errors.join('; ')}${warned(refusedWarnings)}`);
    d.notifier.notify({ event: 'reload-failed', reason: outcome.errors.join('; ') });
  }
  return outcome;
}

/** The reload line's tail for a config's warnings: nothing, or how many and each. */
function warned(warnings: string[]): string {
  return warnings.length ? `; ${warnings.length} warning${warnings.length > 1 ? 's' : ''}: ${warnings.join('; ')}` : '';
}

/**
 * Applies a valid config. A new Model is built and every surviving server (same backend, name and
 * address) takes over its predecessor's runtime state. Listeners are matched by address: a
 * frontend whose address is unchanged keeps its socket and is pointed at the new backend; new
 * listeners are bound before anything changes, so a bind failure leaves the old config running
 * (a listener the reload closes anyway gives up its port first to a new one that needs it, and is
 * bound again if the reload is refused). Sessions opened before the reload keep their server
 * objects and end on their own; so do the peers of a status, agent or admin listener that moves
 * (closing a listener only stops it accepting: the POST /admin/reload that moved the admin listener
 * gets its answer there).
 */
export async function applyConfig(d: Daemon, next: Config): Promise<string[]> {
  const old = d.cfg;
  const changes = describeChanges(old, next);
  // Its writer is made at start, and restores from its file before the frontends accept.
  const stateFile = next.admin?.state_file ?? null;
  if (stateFile !== (d.adminState?.file ?? null)) changes.push(`admin.state_file ${d.adminState?.file ?? 'none'} -> ${stateFile ?? 'none'}: NOT applied, restart licgate to apply it`);
  // The file's token is read again, so a token rotated in place takes effect at this reload, not at
  // a restart that would cut every license session; so is the token of a token_file moved. A file
  // licgate cannot use was refused above (config load reads it).
  const token = next.admin?.token_file ? readTokenFile(next.admin.token_file) : null;
  const nextToken = token !== null && 'token' in token ? token.token : null;
  if (old.admin?.token_file === next.admin?.token_file && nextToken !== null && nextToken !== d.adminToken) changes.push('admin.token_file: a new token; the old one is refused from now on');
  // Read before anything is bound: a file emptied since the config load refuses the reload.
  const peersTokenNext = next.peers ? peersToken(next.peers.token_file) : null;
  // By contents, not path: a token_file moved to a file with another token cuts the connections too.
  if (d.peers.tokenChanged(peersTokenNext)) changes.push('peers.token_file: a new token; the peers connections that proved the old one are cut off, and reconnect with the new one');
  const model = new Model(next);
  const fresh = adoptServers(d.model, model);
  // Servers new in this config start as at start-up, with the first address of their name: looked
  // up while the listeners bind, bounded by the lookup timeout (a name still unanswered at the
  // commit starts "DOWN (no address)"), and given up when the stop begins, which refuses the reload.
  const lookedUp = d.resolver.resolveFirst(fresh);

  // 1. Bind what is new; on failure undo and keep running the old config.
  const byAddress = new Map(d.frontends.map((f) => [frontendKey(f.cfg), f]));
  const kept = new Map<Frontend, FrontendConfig>();
  const added: Frontend[] = [];
  const order: Frontend[] = [];
  for (const f of next.frontends) {
    const existing = byAddress.get(frontendKey(f));
    byAddress.delete(frontendKey(f));
    const fe = existing ?? d.buildFrontend(f, model);
    if (existing) kept.set(existing, f);
    else added.push(fe);
    order.push(fe);
  }
  const removed = [...byAddress.values()];
  let status: LineServer | null = null;
  let agent: AgentResponder | null = null;
  let admin: AdminHttp | null = null;
  let peersListener: PeerListener | null = null;
  const peersMoved = !sameListen(old.peers?.listen, next.peers?.listen);
  const adminMoved = !sameListen(old.admin?.listen, next.admin?.listen);
  const statusMoved = !sameListen(old.status?.listen, next.status?.listen);
  const agentMoved = !sameListen(old.agent?.listen, next.agent?.listen);
  // Listeners this reload closes at its commit. A new one whose port they hold (127.0.0.1:P to
  // 0.0.0.0:P, localhost:P to 127.0.0.1:P, two listeners swapping ports) closes them first.
  const outgoing: Listener[] = removed.map((fe) => ({ what: `frontend "${fe.name}"`, at: fe.address(), release: async () => fe.unbind(), listen: (b) => fe.listen(b) }));
  for (const [what, moved, l] of [['status', statusMoved, d.statusResponder], ['agent', agentMoved, d.agentResponder], ['admin', adminMoved, d.admin]] as const) {
    if (moved && l) outgoing.push({ what, at: l.address(), release: async () => l.stopListening(), listen: (b) => l.listen(b) });
  }
  const oldPeers = d.peers.listener;
  if (peersMoved && oldPeers) outgoing.push({ what: 'peers', at: oldPeers.address(), release: async () => oldPeers.stopListening(), listen: (b) => oldPeers.listen(b) });
  const released: Listener[] = [];
  const bindOver = async (port: number, listen: () => Promise<void>): Promise<void> => {
    for (;;) {
      try {
        return await listen();
      } catch (e) {
        if (!(e instanceof ListenError) || e.syscallCode !== 'EADDRINUSE') throw e;
        const holder = outgoing.find((o) => !released.includes(o) && holds(o.at, port, e.host));
        if (holder === undefined) throw ownPort(d, e, port, [...kept.keys()], statusMoved, agentMoved, adminMoved) ?? e;
        released.push(holder);
        await holder.release();
      }
    }
  };
  const unbind = async (): Promise<void> => {
    d.resolver.reloadSettled(fresh);
    // A new listener accepts from its bind on, and the reload may wait long after it (a server name
    // is looked up): sessions it took meanwhile must not be left out of the stop's drain.
    for (const fe of added) d.stopListening(fe, 'the reload that added it was refused');
    await status?.close();
    await agent?.close();
    await admin?.close();
    await peersListener?.close();
    // The old listeners go on where they were: the very address they had, not looked up again.
    for (const o of released.splice(0).reverse()) {
      await o.listen({ lookup: () => Promise.resolve(o.at.address) }).catch((err: Error) => {
        d.log.error({ listener: o.what, err: err.message }, `${o.what} could not listen again on ${formatBound(o.at)} after the refused reload gave its port back: ${err.message}; reload a config that works or restart licgate`);
      });
    }
  };
  const refused = (): ShuttingDownError => new ShuttingDownError('shutdown began while the reload was binding its new listeners; they are closed again');
  const bind = d.bindOptions;
  try {
    for (const fe of added) await bindOver(fe.cfg.listen.port, () => fe.listen(bind));
    if (statusMoved && next.status) await bindOver(next.status.listen.port, () => (status = d.buildStatusResponder(next.status!)).listen(bind));
    if (agentMoved && next.agent) await bindOver(next.agent.listen.port, () => (agent = d.buildAgentResponder(next.agent!)).listen(bind));
    if (adminMoved && next.admin) await bindOver(next.admin.listen.port, () => (admin = d.buildAdmin(next.admin!.listen)).listen(bind));
    if (peersMoved && next.peers) await bindOver(next.peers.listen.port, () => (peersListener = d.peers.buildListener(next.peers!)).listen(bind));
    await untilAborted(lookedUp, bind.signal);
  } catch (e) {
    await unbind();
    // The stop aborts a lookup still under way (bind.signal): that is a refusal. Any other failure
    // (a port in use) is what failed the reload, stop or no stop.
    throw e instanceof StopBeganError ? refused() : e;
  }
  // Binding waits (a listen host is looked up first). A shutdown begun meanwhile has stopped, or is
  // about to stop, the listeners it knows: committing now would add one that accepts during the
  // drain, or after close(), and start checks again. Daemon.shutdown waits for this refusal.
  if (d.shuttingDown) {
    await unbind();
    throw refused();
  }

  // 2. Commit: from here on nothing can fail.
  handOverBackends(d.model, model);
  d.model.events.removeAllListeners();
  // What a reload does not apply stays as it runs, so the next reload compares the file with it
  // and says "restart" for as long as they differ, and no longer once they match again.
  d.cfg = { ...next, log: { ...next.log, format: old.log.format } };
  d.adminToken = nextToken;
  d.model = model;
  d.resolver.reloadSettled(fresh);
  d.observeModel(model);
  // Before anything below awaits: the checks a backend keeps go on with it, and report to this model.
  d.startChecks();
  for (const [fe, f] of kept) fe.retarget(f, model.backend(f.backend)!);
  d.frontends.splice(0, d.frontends.length, ...order);
  d.retire(removed);
  if (statusMoved) {
    d.moveAway(d.statusResponder);
    d.statusResponder = status;
  }
  if (agentMoved) {
    d.moveAway(d.agentResponder);
    d.agentResponder = agent;
  }
  if (adminMoved) {
    d.moveAway(d.admin);
    d.admin = admin;
  }
  // Remotes kept keep their connections (and tables need no resend) unless the token changed; a
  // moved listener replaces the old.
  d.peers.configure(next.peers ?? null, peersTokenNext, peersMoved ? peersListener : null);
  // A listener the reload keeps takes its new allow list from the next accept; open peers go on.
  if (!statusMoved) d.restrict(d.statusResponder, 'status', next.status?.allow);
  if (!agentMoved) d.restrict(d.agentResponder, 'agent', next.agent?.allow);
  for (const b of model.backends.values()) {
    b.reconsider('config reload');
    b.serveQueue();
  }
  // After the backends served their own queues: a connection queued where its frontend no longer
  // sends clients goes to the back of its new backend's queue, or takes room left there.
  for (const fe of kept.keys()) fe.placeQueued();
  for (const fe of kept.keys()) fe.admitWaiting();
  d.metrics.forget(next);
  d.notifier.configure(next.notify.webhooks);
  await d.followVrrp();
  d.log.level = next.log.level;
  return changes;
}

/**
 * Hands each surviving server's runtime state to its successor in `next`. Changes nothing in `prev`,
 * so it runs before the listeners are bound: a listener new in `next` may accept at once, and its
 * sessions must count on the slots the running config counts. What changes on a running server
 * meanwhile is taken again when the reload commits (handOverBackends, Server.commitAdoption).
 * Returns the servers of `next` that start afresh (new, or with a new address).
 */
export function adoptServers(prev: Model, next: Model): Server[] {
  const fresh: Server[] = [];
  for (const b of next.backends.values()) {
    const was = prev.backend(b.name);
    const sameAgent = was !== undefined && sameAgentSource(was.cfg, b.cfg);
    const sameReading = was !== undefined && sameMeasure(was.cfg.check, b.cfg.check);
    // The servers holding sessions opened before: the running backend's, or a removed one's.
    const holding = (was ?? prev.removed.get(b.name))?.holdingSessions ?? [];
    for (const s of b.servers) {
      const w = was?.server(s.name);
      if (w && sameServer(w, s)) {
        s.adoptRuntime(w, sameReading && sameAgent, sameAgent);
        continue;
      }
      // Added back while sessions to it are open: they count on it. Under another address it is
      // another license server, whose slots those sessions do not take.
      const r = holding.find((r) => sameServer(r, s));
      if (r) s.adoptSessions(r);
      fresh.push(s);
    }
  }
  return fresh;
}

/** The same license server to licgate: the name and the address it connects to. */
function sameServer(a: Server, b: Server): boolean {
  return a.name === b.name && formatHostPort(a.address) === formatHostPort(b.address);
}

/**
 * Whether both checks read the same thing, so a result one got stands for the other: they differ
 * at most in when they run (inter, fastinter, downinter), how many results move health (rise,
 * fall), how long one may take (timeout) or how much of a reply is read (read_limit). A license
 * count read whole stays what that command printed; a timing retune must not reset weight_from to
 * "not counted yet" at peak use.
 */
function sameMeasure(a: CheckConfig, b: CheckConfig): boolean {
  const what = (c: CheckConfig) => ({ ...c, inter: 0, fastinter: 0, downinter: 0, rise: 0, fall: 0, timeout: 0, read_limit: 0 });
  return sameJson(what(a), what(b));
}

/**
 * Whether the agent whose word the servers carry (Server.agent) is the same in both configs: the
 * auxiliary one on agent_port with the same agent_send whatever the health check is, or an agent
 * check on the same port with the same send. For the agent check that is sameMeasure: a timing
 * retune (inter, rise/fall, timeout) does not change what the agent said, and dropping it would
 * put a server the agent holds in MAINT or drain back in service until its next reply.
 */
function sameAgentSource(o: BackendConfig, b: BackendConfig): boolean {
  if (o.check.type === 'agent' || b.check.type === 'agent') return sameMeasure(o.check, b.check);
  return o.agent_port === b.agent_port && o.agent_send === b.agent_send;
}

/**
 * Commit: each backend in `next` takes over from its predecessor (serving tier, stick table, queued
 * connections) and from then on receives the slots its sessions free. Only once nothing can fail: a
 * reload refused after this would leave the running config's queue waiting on a backend that never
 * runs and its stick table cut to the refused config.
 */
export function handOverBackends(prev: Model, next: Model): void {
  for (const b of next.backends.values()) {
    const was = prev.backend(b.name);
    if (was) b.adoptRuntime(was);
    else {
      const removed = prev.removed.get(b.name);
      if (removed) b.adoptSessions(removed);
    }
  }
  // A removed backend's sessions go on; it is kept while they do, for a reload that adds it back.
  for (const b of [...prev.backends.values(), ...prev.removed.values()]) {
    if (!next.backend(b.name) && b.holdingSessions.length > 0) next.removed.set(b.name, b);
  }
}

/**
 * Listeners are matched by address: an unchanged address keeps its socket, even across a rename.
 * Port 0 (tests) means "any free port", so there the name decides.
 */
export function frontendKey(f: FrontendConfig): string {
  return f.listen.port === 0 ? `${f.name}@${formatHostPort(f.listen)}` : formatHostPort(f.listen);
}

/** What `next` changes in `old`, in short phrases for the reload log line and the API answer. */
export function describeChanges(old: Config, next: Config): string[] {
  const out: string[] = [];
  const oldFe = new Map(old.frontends.map((f) => [frontendKey(f), f]));
  for (const f of next.frontends) {
    const o = oldFe.get(frontendKey(f));
    oldFe.delete(frontendKey(f));
    if (!o) out.push(`frontend ${f.name} added on ${formatHostPort(f.listen)}`);
    else if (!sameJson(o, f)) out.push(`frontend ${f.name} changed${o.name !== f.name ? ` (was ${o.name})` : ''}${o.backend !== f.backend ? `: backend ${o.backend} -> ${f.backend}` : ''}`);
  }
  for (const f of oldFe.values()) out.push(`frontend ${f.name} removed (${formatHostPort(f.listen)})`);
  const oldBe = new Map(old.backends.map((b) => [b.name, b]));
  for (const b of next.backends) {
    const o = oldBe.get(b.name);
    oldBe.delete(b.name);
    if (!o) out.push(`backend ${b.name} added`);
    else out.push(...describeBackend(o, b));
  }
  for (const b of oldBe.values()) out.push(`backend ${b.name} removed`);
  for (const key of ['status', 'agent'] as const) {
    if (!sameJson(old[key], next[key])) out.push(`${key} ${old[key] === null ? 'added' : next[key] === null ? 'removed' : 'changed'}`);
  }
  if (!sameJson(old.notify, next.notify)) out.push('notify.webhooks changed');
  const [op, np] = [old.peers ?? null, next.peers ?? null];
  if (!sameJson(op, np)) out.push(op === null ? `peers added on ${formatHostPort(np!.listen)}` : np === null ? 'peers removed: the stick tables are no longer shared' : `peers changed (remotes ${op.remotes.map(formatHostPort).join(', ')} -> ${np.remotes.map(formatHostPort).join(', ')})`);
  if (!sameJson(old.vrrp, next.vrrp)) out.push(`vrrp.state_file ${old.vrrp?.state_file ?? 'none'} -> ${next.vrrp?.state_file ?? 'none'}`);
  if (old.log.level !== next.log.level) out.push(`log.level ${old.log.level} -> ${next.log.level}`);
  if (old.shutdown_grace !== next.shutdown_grace) out.push(`shutdown_grace ${formatDuration(old.shutdown_grace)} -> ${formatDuration(next.shutdown_grace)}`);
  if (old.shutdown_delay !== next.shutdown_delay) out.push(`shutdown_delay ${formatDuration(old.shutdown_delay)} -> ${formatDuration(next.shutdown_delay)}`);
  // admin.state_file: applyConfig says it, by the file written now.
  if (old.admin === null || next.admin === null) {
    if (old.admin !== next.admin) out.push(next.admin ? `admin added on ${formatHostPort(next.admin.listen)}` : `admin removed (${formatHostPort(old.admin!.listen)})`);
  } else {
    if (!sameListen(old.admin.listen, next.admin.listen)) out.push(`admin.listen ${formatHostPort(old.admin.listen)} -> ${formatHostPort(next.admin.listen)}`);
    if (old.admin.token_file !== next.admin.token_file) out.push(`admin.token_file ${old.admin.token_file ?? 'none'} -> ${next.admin.token_file ?? 'none'}: ${next.admin.token_file ? 'its token from now on, the old one refused' : 'the admin API is read-only from now on'}`);
  }
  if (old.log.format !== next.log.format) out.push('log.format changed: NOT applied, restart licgate to apply it');
  return out;
}

function describeBackend(o: BackendConfig, b: BackendConfig): string[] {
  const out: string[] = [];
  const p = `backend ${b.name}`;
  const oldS = new Map(o.servers.map((s) => [s.name, s]));
  for (const s of b.servers) {
    const w = oldS.get(s.name);
    oldS.delete(s.name);
    if (!w) {
      out.push(`${p}: server ${s.name} added (${formatHostPort(s.address)}, tier ${s.tier}, weight ${s.weight})`);
      continue;
    }
    if (formatHostPort(w.address) !== formatHostPort(s.address)) out.push(`${p}: server ${s.name} address ${formatHostPort(w.address)} -> ${formatHostPort(s.address)} (health starts over)`);
    if (w.weight !== s.weight) out.push(`${p}: server ${s.name} weight ${w.weight} -> ${s.weight}`);
    if (w.tier !== s.tier) out.push(`${p}: server ${s.name} tier ${w.tier} -> ${s.tier}`);
    if (w.maxconn !== s.maxconn) out.push(`${p}: server ${s.name} maxconn ${w.maxconn} -> ${s.maxconn}`);
    // Kept across the reload, the server keeps its health: the new initial state is for a later start.
    if (w.init_state !== s.init_state) out.push(`${p}: server ${s.name} init_state ${w.init_state} -> ${s.init_state} (from the next start; its state now is kept)`);
  }
  for (const s of oldS.values()) out.push(`${p}: server ${s.name} removed`);
  if (!sameJson(o.check, b.check)) out.push(`${p}: check changed`);
  const { servers: _a, check: _b, ...restOld } = o;
  const { servers: _c, check: _d, ...restNew } = b;
  // As the admin writes it: `connect_timeout 2s -> 500ms`, not `2000 -> 500`.
  const show = (k: keyof typeof restNew, v: unknown): string => (BACKEND_DURATIONS.has(k) ? formatDuration(v as number) : JSON.stringify(v));
  for (const k of Object.keys(restNew) as (keyof typeof restNew)[]) {
    if (!sameJson(restOld[k], restNew[k])) out.push(`${p}: ${k} ${show(k, restOld[k])} -> ${show(k, restNew[k])}`);
  }
  return out;
}

/** A listener a reload may close before its commit, so that a new one can take its port. */
interface Listener {
  what: string;
  /** Where it is bound (read before it is released). */
  at: AddressInfo;
  release(): Promise<void>;
  listen(bind: BindOptions): Promise<void>;
}

/**
 * Whether the listener bound at `at` can be what refused a bind to `host`:`port` (`host` unknown:
 * any address on the port): the overlap rule config validation applies to two listeners.
 */
function holds(at: AddressInfo, port: number, host: string | undefined): boolean {
  if (host === undefined) return at.port === port;
  return listenClash({ host: at.address, port: at.port }, { host, port }) !== null;
}

/** `e` named after the listener of licgate's that keeps the port, if one does. */
function ownPort(d: Daemon, e: ListenError, port: number, keptFrontends: Frontend[], statusMoved: boolean, agentMoved: boolean, adminMoved: boolean): OwnPortError | null {
  const kept: [string, AddressInfo | undefined][] = keptFrontends.map((fe) => [`frontend "${fe.name}"`, fe.address()]);
  if (!statusMoved && d.statusResponder) kept.push(['status listener', d.statusResponder.address()]);
  if (!agentMoved && d.agentResponder) kept.push(['agent listener', d.agentResponder.address()]);
  if (!adminMoved && d.admin) kept.push(['admin listener', d.admin.address()]);
  for (const [what, at] of kept) {
    if (at && holds(at, port, e.host)) return new OwnPortError(e.what, e.address, what, formatBound(at));
  }
  return null;
}

function sameListen(a: HostPort | undefined, b: HostPort | undefined): boolean {
  if (!a || !b) return a === b;
  return formatHostPort(a) === formatHostPort(b);
}

/** Deep equality of config values (regular expressions compare by their source). */
export function sameJson(a: unknown, b: unknown): boolean {
  const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (x instanceof RegExp ? x.toString() : x)) ?? 'undefined';
  return text(a) === text(b);
}
