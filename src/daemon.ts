import { resolve } from 'node:path';
import { formatBound, type HostPort } from './config/address.js';
import type { Config, FrontendConfig } from './config/schema.js';
import type { DaemonView, HealthVerdict } from './daemon-view.js';
import { createProbe } from './health/probes/create-probe.js';
import type { UnexitedChecks } from './health/probes/exec.js';
import { CheckScheduler } from './health/scheduler.js';
import { AgentScheduler } from './health/agent-scheduler.js';
import type { LineServer } from './io/line-server.js';
import type { ControlPort } from './io/control-port.js';
import { allowListOf } from './io/allow-list.js';
import { tierLabel, tierName } from './model/events.js';
import type { Backend } from './model/backend.js';
import { Model } from './model/model.js';
import type { Server } from './model/server.js';
import type { Logger } from './observe/log.js';
import { Metrics, metricsRoute } from './observe/metrics.js';
import { Notifier } from './observe/notifier.js';
import { Frontend } from './proxy/frontend.js';
import { AdminHttp } from './serve/admin-http.js';
import { readAdminToken, registerAdminApi } from './serve/admin-api.js';
import { agentReportFor, renderAgentReply } from './serve/agent-reply.js';
import { AgentResponder } from './serve/agent-responder.js';
import { registerReloadRoute } from './serve/reload-route.js';
import { registerSessionsRoute } from './serve/sessions-route.js';
import { registerStatsPage } from './serve/stats-page.js';
import { AdminStateWriter, adminStateOf, restoreAdminState, stickSourceOf } from './serve/admin-state-file.js';
import { createStatusResponder, STATUS_MAX_LINE, STATUS_TIMEOUT_MS } from './serve/status-responder.js';
import { reloadFromFile, sameJson, type ReloadOutcome, type SettledReload } from './reload.js';
import { VERSION } from './version.js';
import { StopBeganError } from './errors.js';
import { AddressResolver, systemLookup, type Lookup } from './health/address-resolver.js';
import { sessionLogger } from './observe/session-log.js';
import { untilAborted } from './until-aborted.js';
import type { VrrpReport } from './observe/vrrp-state.js';
import { VrrpWatch } from './observe/vrrp-watch.js';
import { ControlRefusals, type ControlListener } from './observe/control-refusals.js';
import { PeerEventSummary } from './observe/peer-event-summary.js';
import type { OnRefused } from './io/peers-by-address.js';
import { PeerSync } from './peers/peer-sync.js';
import { peersToken } from './peers/peer-token.js';

/** See Daemon.reloadWatcher. */
export interface ReloadWatcher {
  reloading(): void;
  settled(outcome: ReloadOutcome): void;
}

/**
 * Builds everything a config declares and owns its lifecycle. Data flows one way: the config
 * builds the model; checks write health into it; frontends and responders read it.
 */
export class Daemon implements DaemonView {
  readonly version = VERSION;
  /** cfg and model are replaced by a reload (src/reload.ts); frontends are updated in place. */
  model: Model;
  readonly frontends: Frontend[] = [];
  /**
   * Frontends a reload removed while sessions were open on them, until their last session ends:
   * shutdown waits for those, and the metrics keep their series meanwhile.
   */
  readonly retired = new Set<Frontend>();
  readonly schedulers: CheckScheduler[] = [];
  /** performance.now() time: uptime must not jump with the wall clock. */
  readonly startedAt = performance.now();
  shuttingDown = false;
  statusResponder: LineServer | null = null;
  agentResponder: AgentResponder | null = null;
  readonly agentSchedulers: AgentScheduler[] = [];
  admin: AdminHttp | null = null;
  /** The token of admin.token_file (null: none): read at start, and again by each reload. */
  adminToken: string | null = null;
  /** admin.state_file's writer (null: not set); its file is the one read at start, as a reload does not apply `admin.state_file`. */
  readonly adminState: AdminStateWriter | null = null;
  /** Status, agent and admin listeners a reload moved away whose peers had not ended then: the stop cuts them off. */
  private readonly movedAway = new Set<MovedListener>();
  /** Told when a reload (SIGHUP or POST /admin/reload) is asked for and when it has settled; not once the stop has begun. */
  reloadWatcher: ReloadWatcher | null = null;
  /** Reloads asked for since start (SIGHUP, POST /admin/reload): GET /reload, which `licgate reload` waits on. */
  reloadsAsked = 0;
  /** The last reload settled, numbered as it was asked for (reloads run in that order). */
  lastReload: SettledReload | null = null;

  readonly metrics: Metrics;
  readonly notifier: Notifier;
  /** The `peers` section at work (idle without one: no table is tracked, nothing listens). */
  readonly peers: PeerSync;
  /**
   * Start-up and reloads run one at a time, in order, on this chain; shutdown waits for it before it
   * stops the listeners. A reload asked for while start() still resolves server names (the admin
   * listener is up by then) runs once start() has started the checks, so they are started once.
   */
  private reloading: Promise<unknown> = Promise.resolve();
  /** Resolves the shutdown wait when the last open session ends (event-driven, no polling). */
  private onDrained: (() => void) | null = null;
  /** /ready latches once every server was checked: a server added by a reload must not make it 503. */
  private wasReady = false;

  readonly resolver: AddressResolver;
  /** Looks up server names and listen hosts (tests script it). */
  readonly lookup: Lookup;
  /**
   * Aborted when the stop begins: start-up or a reload waiting on the lookup of a listen host (or
   * start-up on its server names) gives up at once instead of holding up the stop for the
   * resolver's timeouts (the stop waits for it).
   */
  private readonly stopping = new AbortController();
  private vrrpWatch: VrrpWatch | null = null;

  /** What a reload reads: the config file again, unless the config is not from a file (the demo's). */
  private readonly reread: (() => Config) | undefined;

  constructor(public cfg: Config, readonly log: Logger, deps: { lookup?: Lookup; reread?: () => Config } = {}) {
    this.lookup = deps.lookup ?? systemLookup;
    this.reread = deps.reread;
    this.resolver = new AddressResolver(() => allServers(this.model), log, this.lookup);
    this.model = new Model(cfg);
    this.peers = new PeerSync(() => this.model, log);
    this.notifier = new Notifier(cfg.notify.webhooks, log);
    this.metrics = new Metrics(this, () => this.notifier.counts);
    for (const w of cfg.warnings) log.warn(String(w));
    this.observeModel(this.model);
    for (const f of cfg.frontends) this.frontends.push(this.buildFrontend(f, this.model));
    if (cfg.status) this.statusResponder = this.buildStatusResponder(cfg.status);
    if (cfg.agent) this.agentResponder = this.buildAgentResponder(cfg.agent);
    if (cfg.admin) {
      this.admin = this.buildAdmin(cfg.admin.listen);
      this.adminToken = readAdminToken(cfg.admin.token_file);
      if (cfg.admin.state_file !== null) this.adminState = new AdminStateWriter(cfg.admin.state_file, () => adminStateOf(this.model), log, undefined, stickSourceOf(() => this.model));
    }
  }

  /** The admin listener with every route (again for the address a reload moves it to). */
  buildAdmin(listen: HostPort): AdminHttp {
    const admin = new AdminHttp(listen, this, this.log, this.refusalsOf('admin'));
    // Getters: the admin API must act on the model of the config running now, and check the token
    // read last, also after a reload.
    const daemon = this;
    registerAdminApi(admin, { get model() { return daemon.model; }, log: this.log, get token() { return daemon.adminToken; }, endSessionsTo: (s) => this.endSessionsTo(s, 'admin'), adminChanged: () => this.adminState?.changed() });
    registerReloadRoute(admin, this);
    registerSessionsRoute(admin, this);
    registerStatsPage(admin);
    admin.add('GET', /^\/metrics$/, metricsRoute(this.metrics));
    return admin;
  }

  start(): Promise<void> {
    return this.inTurn(() => this.startNow());
  }

  private async startNow(): Promise<void> {
    try {
      // The stop gives up start-up's listen host lookups too (StopBeganError, see cli/run.ts).
      const bind = this.bindOptions;
      // Before a frontend accepts: a client must not reach a server its admin left in MAINT.
      if (this.adminState) await restoreAdminState(this.model, this.adminState, this.log);
      // Before the frontends: the other host's pusher gets in while this one binds the rest.
      if (this.cfg.peers) await this.peers.start(this.cfg.peers, peersToken(this.cfg.peers.token_file), bind);
      for (const f of this.frontends) await f.listen(bind);
      await this.statusResponder?.listen(bind);
      await this.agentResponder?.listen(bind);
      await this.admin?.listen(bind);
      // Server names too: each lookup is bounded (2 s), but systemd and keepalived expect a prompt stop.
      await untilAborted(this.resolver.start(), bind.signal);
    } catch (e) {
      // Inside start-up's own turn: close() would wait for this very turn.
      await this.closeNow();
      throw e;
    }
    for (const b of this.model.backends.values()) {
      const lost = b.settle();
      if (lost === null) continue;
      const servers = b.servers.filter((s) => s.tier === lost).map((s) => `${s.name} ${s.stateText}`);
      this.log.warn({ state_file: this.adminState?.file, backend: b.name, serving_tier: lost }, `backend ${b.name} serves from ${tierLabel(b.servingTier)}, not from ${tierLabel(lost)} as admin.state_file kept it: no server of that tier can serve now (${servers.join(', ')})`);
      this.adminState?.changed();
    }
    this.startChecks();
    await this.followVrrp();
    // Addresses, not only ports: an admin bound to 127.0.0.1 and a status listener on 0.0.0.0 look alike by port.
    const at = (l: { address(): { address: string; port: number } } | null): string | null => (l ? formatBound(l.address()) : null);
    this.log.info({ version: this.version, frontends: this.frontends.map((f) => `${f.name}@${formatBound(f.address())}`), admin: at(this.admin), status: at(this.statusResponder), agent: at(this.agentResponder) }, 'licgate started');
  }

  /** The backends /health answers for: every frontend's, plus the status and agent backends. */
  healthVerdict(): HealthVerdict {
    const names = new Set<string>(this.cfg.frontends.map((f) => f.backend));
    if (this.cfg.agent) names.add(this.cfg.agent.backend);
    if (this.cfg.status) names.add(this.statusBackendName());
    const backends: HealthVerdict['backends'] = {};
    const down: string[] = [];
    for (const n of names) {
      const b = this.model.backend(n)!;
      backends[n] = { running: b.running, tier: tierName(b.servingTier), servers_up: `${b.upCount}/${b.servers.length}` };
      if (!b.running) down.push(n);
    }
    if (this.shuttingDown) return { ok: false, reason: 'shutting down', backends };
    if (down.length) return { ok: false, reason: `no server up in backend ${down.join(', ')}`, backends };
    return { ok: true, reason: 'every backend has a server up', backends };
  }

  readiness(): { ready: boolean; reason: string } {
    if (this.shuttingDown) return { ready: false, reason: 'shutting down' };
    if (this.wasReady) return { ready: true, reason: 'listening, every server checked once' };
    const pending = [...this.model.backends.values()].filter((b) => !b.allChecked).map((b) => b.name);
    if (pending.length) return { ready: false, reason: `first checks pending in ${pending.join(', ')}` };
    this.wasReady = true;
    return { ready: true, reason: 'listening, every server checked once' };
  }

  /** SIGHUP and POST /admin/reload: one reload at a time, in order (see src/reload.ts). */
  reload(trigger: string): Promise<ReloadOutcome> {
    const watcher = this.shuttingDown ? null : this.reloadWatcher;
    watcher?.reloading();
    const seq = ++this.reloadsAsked;
    const outcome = this.inTurn(() => reloadFromFile(this, this.cfg.file, trigger, this.reread));
    void outcome.then(
      (o) => {
        this.lastReload = { ...o, seq, trigger, at: Date.now() };
        // A stop begun meanwhile refused it, and told the watcher's end (STOPPING=1) already.
        if (watcher && !this.shuttingDown) watcher.settled(o);
        // A server the reload removed leaves the file, and a weight now configured is no admin's.
        if (o.ok) this.adminState?.changed();
      },
      // A bug, not a refusal: `licgate reload` must not wait its whole bound for an outcome.
      (e: unknown) => (this.lastReload = { ok: false, errors: [`the reload failed inside licgate: ${(e as Error).message ?? String(e)}; see its log`], changes: [], seq, trigger, at: Date.now() }),
    );
    return outcome;
  }

  /**
   * The file a reload reads, absolute (null: the config is no file, the demo's). GET /reload says it,
   * so that `licgate reload --config FILE` signals no licgate that would re-read another file.
   */
  get configFile(): string | null {
    return this.reread ? null : resolve(this.cfg.file);
  }

  /** What start-up and reloads bind with: the daemon's lookup, given up when the stop begins. */
  get bindOptions(): { lookup: Lookup; signal: AbortSignal } {
    return { lookup: this.lookup, signal: this.stopping.signal };
  }

  /** Runs `step` once the start-up or reload before it has settled (see `reloading`). */
  private inTurn<T>(step: () => Promise<T>): Promise<T> {
    const run = this.reloading.then(step);
    this.reloading = run.catch(() => undefined);
    return run;
  }

  /**
   * Graceful stop: /health and /ready turn 503 at once (keepalived and HAProxy move away), no new
   * connections, open sessions get `graceMs` to finish, then are closed.
   * Without `graceMs`, the shutdown_grace of the config running when the stop begins: a reload may
   * have changed it since start-up, and says so in its list of changes.
   */
  async shutdown(graceMs?: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    // A reload in flight sees shuttingDown before it commits and closes what it bound (src/reload.ts):
    // let it settle, so no listener it bound is left out of the ones stopped below. The abort keeps
    // that wait short: a reload still looking up a listen host stops waiting for the answer.
    this.stopping.abort(new StopBeganError());
    await this.reloading;
    // Start-up gave up (above) and closed what it had opened: nothing is left to drain.
    if (this.closing) return this.closing;
    const grace = graceMs ?? this.cfg.shutdown_grace;
    const delay = this.cfg.shutdown_delay;
    if (delay > 0 && this.frontends.length) {
      this.log.info({ delay_ms: delay }, 'shutting down: /health and /ready are 503; still accepting for shutdown_delay while keepalived or HAProxy move clients away');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    this.log.info({ open_sessions: this.openSessions(), grace_ms: grace }, 'shutting down: no new connections, waiting for open sessions');
    for (const f of this.frontends) this.stopAccepting(f, 'licgate is stopping');
    await this.statusResponder?.close();
    await this.sessionsEnded(grace);
    const left = this.openSessions();
    if (left) this.log.warn({ sessions: left }, 'shutdown grace expired; closing remaining sessions');
    await this.closeNow();
  }

  /** Resolves when no session is open, or after `ms`: woken by the last sessionEnded, no polling. */
  private async sessionsEnded(ms: number): Promise<void> {
    if (this.openSessions() === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.onDrained = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.onDrained = null;
  }

  openSessions(): number {
    let n = 0;
    for (const f of this.frontends) n += f.sessions.size;
    for (const f of this.retired) n += f.sessions.size;
    return n;
  }

  /**
   * Stop now: no drain. Waits its turn like shutdown(): a start-up or reload under way would
   * otherwise bind listeners and start checks after this returned.
   */
  async close(): Promise<void> {
    this.shuttingDown = true;
    this.stopping.abort(new StopBeganError());
    await this.reloading;
    await this.closeNow();
  }

  /**
   * Ends the sessions relaying to `server` in every frontend, retired ones too; with `port`, those
   * that connected to that `server_port` only (not the frontend's now: a reload may have moved it).
   * Returns how many.
   */
  endSessionsTo(server: Server, end: 'server-down' | 'admin', port: number | null = null): number {
    let n = 0;
    for (const f of this.frontends) n += f.endSessionsTo(server, end, port);
    for (const f of this.retired) n += f.endSessionsTo(server, end, port);
    return n;
  }

  /** Reload commit, once `frontends` holds the new config's: `removed` frontends stop accepting; those with open sessions are retired. */
  retire(removed: Frontend[]): void {
    for (const fe of removed) {
      const queued = fe.closeQueued();
      if (queued) this.log.warn({ frontend: fe.name, clients: queued }, `closed ${queued} client${queued > 1 ? 's' : ''} queued for a server slot on backend ${fe.backend.name}: frontend ${fe.name} was removed by a reload`);
      this.stopListening(fe, 'its frontend was removed by a reload');
    }
  }

  /**
   * `fe` stops accepting. Its open sessions go on: as a retired frontend's, the stop counts them,
   * waits for them and closes them at the end of the grace, and /metrics counts them.
   */
  stopListening(fe: Frontend, why: string): void {
    this.stopAccepting(fe, why);
    if (fe.sessions.size) this.retired.add(fe);
    else this.metrics.frontendGone(fe);
  }

  /**
   * Reload commit: the status, agent or admin listener `l` moved to another address. It stops
   * listening; its peers get their replies as they would have, each within its deadline, as a moved
   * frontend's sessions go on. Listeners moved away before and since left idle are closed now.
   */
  moveAway(l: MovedListener | null): void {
    // Closed, not just dropped: the admin listener's refusals still waiting for their summary line
    // are written now. A stop closes only the listeners it knows, and lost them.
    for (const m of this.movedAway) {
      if (m.connections > 0) continue;
      this.movedAway.delete(m);
      void m.close();
    }
    if (l === null) return;
    l.stopListening();
    if (l.connections) this.movedAway.add(l);
    else void l.close();
  }

  /** Clients waiting for a slot (frontend maxconn) are closed with the listener: an admin must hear of it. */
  private stopAccepting(f: Frontend, why: string): void {
    const dropped = f.stopAccepting();
    if (dropped) this.log.warn({ frontend: f.name, clients: dropped }, `closed ${dropped} client${dropped > 1 ? 's' : ''} waiting for a session slot on frontend ${f.name} (maxconn ${f.cfg.maxconn}): ${why}`);
  }

  /** Set by the first closeNow: a start-up that failed has closed everything before the stop gets its turn. */
  private closing: Promise<void> | null = null;

  private closeNow(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    this.shuttingDown = true;
    this.stopChecks();
    this.resolver.stop();
    this.vrrpWatch?.stop();
    for (const f of [...this.frontends, ...this.retired]) {
      this.stopAccepting(f, 'licgate is stopping');
      f.abortAll();
    }
    // Aborted sessions end on their sockets' close events; wait for them so each gets its log line and metrics.
    await this.sessionsEnded(1000);
    await this.statusResponder?.close();
    await this.agentResponder?.close();
    for (const l of this.movedAway) await l.close();
    this.movedAway.clear();
    await this.admin?.close();
    await this.peers.close();
    await this.adminState?.flush();
    for (const r of this.refusals.values()) r.close();
    this.statusCutOffs.close();
    this.denials.close();
    // Notifications about the stop itself (a backend going down on the way) get a short chance to go out.
    await this.notifier.close(2000);
  }

  /**
   * Health and agent checks of the current model (again for the model a reload builds). A running
   * health check scheduler whose backend keeps its check config goes on with the new backend
   * (CheckScheduler.retarget), and so does an agent loop whose backend keeps its agent_port and
   * agent_send (AgentScheduler.retarget); the others stop: a second set would probe every server
   * twice per interval.
   */
  startChecks(): void {
    const running = new Map(this.schedulers.splice(0).map((s) => [s.backendName, s]));
    const agents = new Map(this.agentSchedulers.splice(0).map((a) => [a.backendName, a]));
    const checked = [...this.model.backends.values()].filter((b) => b.cfg.check.type !== 'none');
    // First checks spread over all checked servers: backends often share license hosts.
    const of = checked.reduce((n, b) => n + b.servers.length, 0);
    let first = 0;
    for (const b of checked) {
      const was = running.get(b.name);
      if (was !== undefined && sameJson(was.check, b.cfg.check)) {
        running.delete(b.name);
        was.retarget(b, this.model.events, first, of);
        this.schedulers.push(was);
      } else {
        let unexited = this.unexitedChecks.get(b.name);
        if (unexited === undefined) this.unexitedChecks.set(b.name, (unexited = new Map()));
        const s = new CheckScheduler(b, b.cfg.check, createProbe(b.cfg.check, unexited)!, this.model.events);
        this.schedulers.push(s);
        s.start(first, of);
      }
      first += b.servers.length;
    }
    for (const s of running.values()) s.stop();
    for (const b of this.model.backends.values()) {
      if (b.cfg.agent_port === null) continue;
      // The same agent as the servers keep the word of (reload.ts sameAgentSource): its loop goes on.
      const was = agents.get(b.name);
      if (was !== undefined && was.port === b.cfg.agent_port && was.send === b.cfg.agent_send) {
        agents.delete(b.name);
        was.retarget(b, b.cfg.agent_inter, b.cfg.check.timeout);
        this.agentSchedulers.push(was);
        continue;
      }
      const a = new AgentScheduler(b, b.cfg.agent_port, b.cfg.agent_inter, b.cfg.check.timeout, b.cfg.agent_send);
      this.agentSchedulers.push(a);
      a.start();
    }
    for (const a of agents.values()) a.stop();
  }

  /**
   * By backend name: exec check processes killed at their timeout that have not exited (ExecProbe).
   * Outlives the probes a reload rebuilds, so a server that stays gets no second stuck process.
   * An entry leaves once its process exits.
   */
  private readonly unexitedChecks = new Map<string, UnexitedChecks>();

  stopChecks(): void {
    for (const s of this.schedulers.splice(0)) s.stop();
    for (const a of this.agentSchedulers.splice(0)) a.stop();
  }

  /**
   * Follows vrrp.state_file, if set (again after a reload that changed it): each role keepalived
   * reports is logged and notified (`vrrp-state`); the role found at start or reload is only logged.
   */
  async followVrrp(): Promise<void> {
    const file = this.cfg.vrrp?.state_file ?? null;
    if (file === this.vrrpWatch?.file) return;
    this.vrrpWatch?.stop();
    this.vrrpWatch = null;
    if (file === null) return;
    const watch = (this.vrrpWatch = new VrrpWatch(file, (from, to) => this.vrrpChanged(from, to)));
    const first = await watch.start();
    if (first.role) this.log.info({ vrrp: first.role }, `VRRP ${first.role.name}: this host is ${first.role.state} (since ${first.role.since})`);
    else this.log.info({ vrrp_state_file: file, reason: first.error }, `VRRP role unknown: ${first.error}`);
  }

  private vrrpChanged(from: VrrpReport, to: VrrpReport): void {
    if (!to.role) {
      this.log.warn({ vrrp_state_file: to.file, reason: to.error }, `VRRP role unknown: ${to.error}`);
      return;
    }
    const was = from.role?.state ?? null;
    const msg = `VRRP ${to.role.name}: this host is ${to.role.state}${was ? ` (was ${was})` : ''}`;
    // A host that leaves MASTER or enters FAULT is what an operator must hear about; BACKUP after FAULT is recovery.
    if (to.role.state === 'MASTER' || to.role.state === 'BACKUP') this.log.info({ vrrp: to.role, from: was }, msg);
    else this.log.warn({ vrrp: to.role, from: was }, msg);
    this.notifier.notify({ event: 'vrrp-state', from: was, to: to.role.state, reason: `keepalived reported ${to.role.type} ${to.role.name} ${to.role.state} (priority ${to.role.priority}) at ${to.role.since}` });
  }

  /** The backend STATUS reports on: `status.backend`, else the first backend (design.md). */
  private statusBackendName(): string {
    return this.cfg.status?.backend ?? this.cfg.backends[0]!.name;
  }

  /** The STATUS responder; it reads the backend from the config running now. */
  buildStatusResponder(status: NonNullable<Config['status']>): LineServer {
    const backend = (): Backend => this.model.backend(this.statusBackendName())!;
    const l = createStatusResponder(status.listen, backend, (why, peer) => this.statusCutOffs.note(peer, why), this.refusalsOf('status'));
    this.restrict(l, 'status', status.allow);
    return l;
  }

  /**
   * Peers the STATUS listener cut off: a port scanner or a broken monitor makes thousands, and a line
   * each would bury the lines about real trouble. Kept across reloads that rebuild the listener.
   */
  private readonly statusCutOffs = new PeerEventSummary(({ count, lastReason, top, topCount }) =>
    this.log.warn(
      { listener: 'status', cut_off: count, why: lastReason, top_address: top, top_address_cut_off: topCount },
      `status listener cut off ${count} peer${count > 1 ? 's' : ''} since the last such line, the last for ${lastReason}, most from ${top} (${topCount}): it waits ${STATUS_TIMEOUT_MS / 1000} s for one line of at most ${STATUS_MAX_LINE} bytes`,
    ),
  );

  /** The agent-check responder (agent-reply.ts); it reads the config running now. */
  buildAgentResponder(agentCfg: NonNullable<Config['agent']>): AgentResponder {
    const l = new AgentResponder(agentCfg.listen, () => {
      const agent = this.cfg.agent!;
      const b = this.model.backend(agent.backend)!;
      return renderAgentReply(agentReportFor(agent.server ? [b.server(agent.server)!] : b.servers, agent.weight_from));
    }, undefined, this.refusalsOf('agent'));
    this.restrict(l, 'agent', agentCfg.allow);
    return l;
  }

  /**
   * A control listener takes `allow` from its next accept on: at its start, and at a reload (a
   * listener built by the reload takes the new list as it binds, before the commit).
   */
  restrict(l: ControlPort | null, listener: 'status' | 'agent', allow: readonly string[] | null | undefined): void {
    if (l === null) return;
    const counter = this.deniedCounters.get(listener) ?? this.metrics.controlDenied(listener);
    this.deniedCounters.set(listener, counter);
    l.restrict(allowListOf(allow), (peer) => {
      counter.inc();
      this.denials.note(peer, listener);
    });
  }

  private readonly deniedCounters = new Map<'status' | 'agent', { inc(): void }>();

  /**
   * Clients of every listener reset because their address is not in its allow list: one line at
   * most every 10 s with the count, a scan of the VIP would otherwise write one per address.
   */
  private readonly denials = new PeerEventSummary<string>(({ count, lastReason, top, topCount }) =>
    this.log.warn(
      { denied: count, listener: lastReason, top_address: top, top_address_denied: topCount },
      `denied ${count} connection${count > 1 ? 's' : ''} from addresses not in the listener's allow list since the last such line, the last on ${lastReason}, most from ${top} (${topCount})`,
    ),
  );

  /** One per listener, kept across reloads that rebuild it: the log line's 10 s limit is the listener's. */
  private readonly refusals = new Map<ControlListener, ControlRefusals>();

  /** What a control listener calls for each peer it closes at accept: counted and logged (ControlRefusals). */
  private refusalsOf(listener: ControlListener): OnRefused {
    let r = this.refusals.get(listener);
    if (r === undefined) this.refusals.set(listener, (r = new ControlRefusals(listener, this.log, this.metrics.controlRefused(listener))));
    return r.refused;
  }

  /** A frontend whose hooks feed the log and the metrics (hooks outlive reloads that keep the frontend). */
  buildFrontend(f: FrontendConfig, model: Model): Frontend {
    const log = this.log;
    const logSession = sessionLogger(log);
    const fe: Frontend = new Frontend(f, model.backend(f.backend)!, {
      sessionConnected: (route, server, retries) => this.metrics.sessionConnected(route, server, retries),
      sessionEnded: (rec) => {
        this.metrics.sessionEnded(rec);
        logSession(rec);
        if (fe.sessions.size === 0 && this.retired.delete(fe)) this.metrics.frontendGone(fe);
        if (this.onDrained && this.openSessions() === 0) this.onDrained();
      },
      attemptFailed: (route, server, reason, settled, retrying) => {
        this.metrics.attemptFailed(route, server, reason);
        // Not "trying the next one": with none left the retry goes to this server again (Connector.again).
        log.warn({ frontend: route.frontendName, backend: route.backend.name, server: server.name, reason }, settled ? 'connect to server failed; its session had already gone to another server' : retrying ? 'connect to server failed; retrying' : 'connect to server failed; no retries left');
      },
      attemptRaced: (route, slow, next, afterMs) => {
        this.metrics.attemptRaced(route, slow);
        log.warn({ frontend: route.frontendName, backend: route.backend.name, server: slow.name, next: next.name, after_ms: afterMs }, 'connect to server unanswered; racing the next server');
      },
      acceptFailed: (f, err) => this.acceptFailed(f, err),
      denied: (f, client) => this.denials.note(client, `frontend ${f.name}`),
    });
    return fe;
  }

  private lastAcceptLog = -Infinity;

  /** accept() or an upstream connect ran out of descriptors. At most one line a second: under EMFILE every connection fails the same way. */
  private acceptFailed(fe: Frontend, err: NodeJS.ErrnoException): void {
    const now = performance.now();
    if (now - this.lastAcceptLog < 1000) return;
    this.lastAcceptLog = now;
    this.log.error({ frontend: fe.name, code: err.code, accept_errors: fe.acceptErrors }, `frontend ${fe.name} cannot take connections: ${err.code ?? err.message}${err.code === 'EMFILE' || err.code === 'ENFILE' ? ' (out of file descriptors; raise LimitNOFILE)' : ''}`);
  }

  /** Log, metrics and webhooks listen to a model's events (again for each model a reload builds). */
  observeModel(model: Model): void {
    const ev = model.events;
    this.metrics.watch(ev);
    this.notifier.watch(ev);
    ev.on('server-state', (e) => {
      const line = { backend: e.backend, server: e.server, from: e.from, to: e.to, reason: e.reason };
      if (e.usableChanged) this.log.warn(line, `server ${e.backend}/${e.server} is ${e.to}`);
      else this.log.info(line, `server ${e.backend}/${e.server} is ${e.to}`);
      // admin.state_file keeps the triad standbys, so that a restart sends no client to them before
      // their first check. A MASTER handover is rare; the writer writes only what changed the file.
      if (e.from.endsWith('(standby)') || e.to.endsWith('(standby)')) this.adminState?.changed();
    });
    ev.on('shutdown-sessions', (e) => {
      const n = this.endSessionsTo(e.server, 'server-down', e.port);
      if (n === 0) return;
      // Which sessions, and why now: a DOWN on a vendor port closes that port's only, and the rest go
      // later, when no state changes and no other line says why (Server.downOnPort).
      const { port, rest } = e;
      const which = port !== null ? ` on port ${port}, marked DOWN on that port` : rest !== null ? ` on its other ports, marked DOWN on port ${rest.port} and now: ${rest.reason}` : ', marked DOWN';
      this.log.warn({ backend: e.backend, server: e.server.name, sessions: n, ...(port !== null ? { port } : {}), ...(rest !== null ? { downOnPort: rest.port, reason: rest.reason } : {}) }, `closed ${n} session(s) to ${e.backend}/${e.server.name}${which} (on_marked_down: shutdown-sessions)`);
    });
    // admin.state_file keeps a failback: manual backend's serving tier while it is not the tier a
    // start takes, which only admin state decides (the admin routes write that). Heard here, not in
    // the failback route: a check or the agent moves the serving tier too.
    ev.on('tier-change', (e) => {
      if (model.backend(e.backend)?.cfg.failback === 'manual') this.adminState?.changed();
      this.log.warn({ backend: e.backend, from: tierName(e.from), to: tierName(e.to), reason: e.reason }, e.to === null ? `backend ${e.backend} has no usable server` : `backend ${e.backend} now serves from ${tierLabel(e.to)}`);
    });
  }
}

/** A listener a reload can move: ControlPort, AdminHttp. */
type MovedListener = Pick<ControlPort, 'stopListening' | 'connections' | 'close'>;

function* allServers(model: Model): Iterable<Server> {
  for (const b of model.backends.values()) yield* b.servers;
}
