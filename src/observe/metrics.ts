import { setImmediate } from 'node:timers/promises';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { bulkBuffers, busyBuffers } from '../io/read-buffer-pool.js';
import { tierName, type ModelEvents } from '../model/events.js';
import type { Backend } from '../model/backend.js';
import type { Model } from '../model/model.js';
import type { Server } from '../model/server.js';
import { REJECT_REASONS, type Frontend } from '../proxy/frontend.js';
import type { Session, SessionRecord, SessionRoute } from '../proxy/session.js';
import type { Route } from '../serve/admin-http.js';
import type { ControlListener } from './control-refusals.js';
import { readVrrpState, VRRP_STATES } from './vrrp-state.js';
import { wallTimeOf } from '../wall-time.js';

/** GET /metrics in the Prometheus text format. */
export function metricsRoute(metrics: Metrics): Route {
  return async (_req, res) => {
    const body = await metrics.render();
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };
}

/** What the metrics read at scrape time; the Daemon is one (its model and frontends change on reload). */
export interface MetricsSource {
  readonly version: string;
  readonly model: Model;
  readonly frontends: readonly Frontend[];
  /** Frontends a reload removed, until their last session ends. */
  readonly retired: ReadonlySet<Frontend>;
  readonly shuttingDown: boolean;
  readonly cfg: Pick<Config, 'vrrp'>;
  /** The `peers` section's pushers and incoming peers (none without one). */
  readonly peers?: PeerCounts;
}

/** What the peer metrics read at scrape time (src/peers/peer-sync.ts). */
export interface PeerCounts {
  readonly pushers: ReadonlyMap<string, { readonly live: boolean; readonly sent: number }>;
  readonly incoming: ReadonlyMap<string, { readonly connected: number; readonly received: number; readonly applied: number; readonly kept: number; readonly unstuck: number; readonly skipped: number; readonly cutOff: number }>;
}

/** Counters the notifier keeps; read at scrape time. */
export interface NotifyCounts {
  delivered: number;
  failed: number;
  dropped: number;
  retries: number;
  queued: number;
}

/** The server states as labels: the first word of HAProxy's state text ("UP 1/3" counts as UP). */
const STATES = ['UP', 'DOWN', 'DRAIN', 'MAINT', 'NOCHECK'] as const;
type StateLabel = (typeof STATES)[number];

const END_REASONS: readonly SessionRecord['end'][] = ['closed', 'client-reset', 'server-reset', 'client-error', 'server-error', 'idle-timeout', 'shutdown', 'server-down', 'admin', 'status', 'no-server', 'client-gone'];
type ErrorClass = 'refused' | 'reset' | 'timeout' | 'other';
const ERROR_CLASSES: readonly ErrorClass[] = ['refused', 'reset', 'timeout', 'other'];
const CHECK_RESULTS = ['ok', 'failed'] as const;
/** How often the event-loop lag histogram is sampled (see collectDefaultMetrics below). */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Per frontend × backend × server: plain numbers bumped on the data path, turned into series at scrape. */
class PairCell {
  connections = 0;
  active = 0;
  /** Bytes of the sessions that ended. */
  bytesIn = 0;
  bytesOut = 0;
  /** Bytes so far of the sessions open at the last scrape. */
  openIn = 0;
  openOut = 0;
  refused = 0;
  reset = 0;
  timeout = 0;
  other = 0;
  /** Connects to this server raced by another after connect_race. */
  races = 0;
  /** A reload removed the server while sessions of this pair were open: the cell goes with the last. */
  gone = false;
  constructor(readonly frontend: string, readonly backend: string, readonly server: string) {}
}

/** A frontend's own counters, as the metrics read them. */
type FrontendCounts = Pick<Frontend, 'name' | 'rejected' | 'acceptErrors'>;

/** Per frontend × backend: retries and how sessions ended. */
class RouteCell {
  retries = 0;
  /** Its frontend name or backend is gone while sessions of its pairs were open: it goes with the last (see PairCell.gone). */
  gone = false;
  readonly ends: Record<SessionRecord['end'], number> = { closed: 0, 'client-reset': 0, 'server-reset': 0, 'client-error': 0, 'server-error': 0, 'idle-timeout': 0, shutdown: 0, 'server-down': 0, admin: 0, status: 0, 'no-server': 0, 'client-gone': 0 };
  readonly pairs = new Map<string, PairCell>();
  constructor(readonly frontend: string, readonly backend: string) {}
}

/**
 * The changes of serving tier a backend can make, as licgate_backend_failovers_total labels them:
 * between any two of its tiers and none (no usable server), and from one disaster-recovery tier
 * to a further one (both "dr").
 */
function tierChanges(servers: readonly { tier: number }[]): [string, string][] {
  const tiers = new Set(servers.map((s) => s.tier));
  const names = new Set([...tiers].map(tierName)).add(tierName(null));
  const drTiers = [...tiers].filter((t) => tierName(t) === 'dr').length;
  const out: [string, string][] = [];
  for (const from of names) for (const to of names) if (from !== to || (to === 'dr' && drTiers > 1)) out.push([from, to]);
  return out;
}

export function stateLabel(stateText: string): StateLabel {
  const word = stateText.split(' ', 1)[0]!;
  if (word === 'no') return 'NOCHECK';
  return (STATES as readonly string[]).includes(word) ? (word as StateLabel) : 'DOWN';
}

/** The connect failure reasons of connector.ts, in four classes a dashboard can sum. */
export function errorClass(reason: string): ErrorClass {
  if (reason === 'connection refused') return 'refused';
  if (reason === 'connection reset') return 'reset';
  if (reason.startsWith('connect timeout')) return 'timeout';
  return 'other';
}

/**
 * Prometheus metrics (`licgate_` prefix) in a registry of their own. The data path pays one Map
 * lookup chain and a few integer increments per session, never per chunk and never an allocation
 * once a frontend/backend/server combination has been seen: the session counters live in plain
 * cells keyed by names (so they carry across a reload), and every gauge that mirrors the model
 * (state, weight, active connections, tiers) is computed from the model when Prometheus scrapes.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly routes = new Map<string, Map<string, RouteCell>>();
  private readonly checkDuration: Histogram<'backend' | 'server'>;
  private readonly checks: Counter<'backend' | 'server' | 'result'>;
  private readonly transitions: Counter<'backend' | 'server' | 'to'>;
  private readonly failovers: Counter<'backend' | 'from' | 'to'>;
  private readonly reloads: Counter<'result'>;
  private readonly controlRefusals: Counter<'listener'>;
  private readonly controlDenials: Counter<'listener'>;
  /** Label sets of the event-fed series, so a reload can remove those of servers that are gone. */
  private readonly eventSeries = new Map<string, { backend: string; server: string }>();
  private readonly failoverSeries = new Map<string, { backend: string; from: string; to: string }>();
  /** Servers whose check and transition series exist from 0 (see bindEventSeries). */
  private readonly zeroed = new Set<string>();
  /** Backends whose failover series exist from 0 (see bindEventSeries). */
  private readonly tiersBound = new WeakSet<Backend>();
  /** The backend each frontend's series were bound for (see bindRoutes). */
  private readonly routesBound = new WeakMap<Frontend, Backend>();
  /** The counts of frontends no longer served whose name another frontend serves on (see frontendGone). */
  private readonly carried = new Map<string, FrontendCounts>();
  private lastReloadOk = 1;
  private lastReloadAt = 0;

  constructor(private readonly src: MetricsSource, private readonly notify: () => NotifyCounts | null = () => null, opts: { processMetrics?: boolean } = {}) {
    const reg = [this.registry];
    const metrics = this;
    if (opts.processMetrics !== false) {
      // prom-client samples event-loop lag with a 10 ms timer by default: 100 wakeups a second and
      // about 1 % of a core on an idle sidecar, where HAProxy and keepalived sleep. At 100 ms a
      // stall of 100 ms or more is always seen, shorter ones in proportion.
      collectDefaultMetrics({ register: this.registry, prefix: 'licgate_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
      // prom-client names these gauges *_total, which promtool rejects; the per-type gauges without the suffix carry the same data.
      for (const m of ['handles', 'requests', 'resources']) this.registry.removeSingleMetric(`licgate_nodejs_active_${m}_total`);
    }

    new Gauge({
      name: 'licgate_build_info',
      help: 'Always 1; the version label says which licgate is running.',
      labelNames: ['version'],
      registers: reg,
      collect() {
        this.reset();
        this.set({ version: metrics.src.version }, 1);
      },
    });
    new Gauge({
      name: 'licgate_shutting_down',
      help: '1 while a graceful shutdown waits for open sessions (health and ready answer 503).',
      registers: reg,
      collect() {
        this.set(metrics.src.shuttingDown ? 1 : 0);
      },
    });

    // --- servers: mirrored from the model at scrape time
    this.serverGauge('licgate_server_up', 'Whether the server is UP by its health checks (and its agent), 1 or 0, whatever its admin state.', (s) => (s.up ? 1 : 0));
    this.serverGauge('licgate_server_usable', 'Whether the server may take new connections now (UP, not DRAIN/MAINT nor a FlexLM triad standby, weight > 0), 1 or 0.', (s) => (s.eligible ? 1 : 0));
    this.serverGauge('licgate_server_weight', 'Effective weight: the runtime weight scaled by the agent percentage.', (s) => s.effectiveWeight);
    this.serverGauge('licgate_server_configured_weight', 'Weight from the config file.', (s) => s.configuredWeight);
    this.serverGauge('licgate_server_tier', 'Tier of the server: 0 active, 1 backup, 2 and up disaster recovery.', (s) => s.tier);
    this.serverGauge('licgate_server_active_connections', 'Sessions holding a slot on the server now (all frontends).', (s) => s.active);
    this.serverGauge('licgate_server_connects_overdue', 'Connects to the server unanswered after their race delay (connect_race); while above 0, new sessions go to other servers if they can.', (s) => s.overdue);
    this.serverGauge('licgate_server_last_check_success', 'Whether the last active check passed, 1 or 0 (absent before the first check).', (s) => (s.lastCheck ? (s.lastCheck.ok ? 1 : 0) : null));
    this.serverGauge('licgate_server_state_since_timestamp_seconds', 'When the server entered its current state (UP, DOWN, DRAIN, MAINT).', (s) => wallTimeOf(s.stateSince) / 1000);
    new Gauge({
      name: 'licgate_server_state',
      help: 'The server state as HAProxy names it, one series per state with value 1 for the current one (UP includes the transitional "UP 1/3").',
      labelNames: ['backend', 'server', 'state'],
      registers: reg,
      collect() {
        this.reset();
        for (const b of metrics.src.model.backends.values()) {
          for (const s of b.servers) {
            const now = stateLabel(s.stateText);
            for (const st of STATES) this.set({ backend: b.name, server: s.name, state: st }, st === now ? 1 : 0);
          }
        }
      },
    });

    // --- backends
    this.backendGauge('licgate_backend_serving_tier', 'Tier taking new connections: 0 active, 1 backup, 2+ disaster recovery, -1 when no server is usable.', (b) => b.servingTier ?? -1);
    this.backendGauge('licgate_backend_usable_servers', 'Servers that may take new connections now.', (b) => b.servers.filter((s) => s.eligible).length);
    this.backendGauge('licgate_backend_up_servers', 'Servers UP and not in MAINT (what the STATUS reply counts).', (b) => b.upCount);
    this.backendGauge('licgate_backend_servers', 'Servers configured in the backend.', (b) => b.servers.length);
    this.backendGauge('licgate_backend_active_connections', 'Sessions holding a slot on a server of the backend.', (b) => b.servers.reduce((n, s) => n + s.active, 0));
    this.backendGauge('licgate_backend_queue_length', 'Connections waiting for a free slot (every eligible server at its maxconn, or a sticky client\'s own server full).', (b) => b.queued);
    this.backendGauge('licgate_stick_table_entries', 'Live entries in the backend stick table (client address to server).', (b) => (b.stick ? b.stick.size : null));
    this.backendCounter('licgate_backend_queue_rejected_total', 'Connections refused because the backend queue was full.', (b) => b.queueRejected);
    this.backendCounter('licgate_backend_queue_timeouts_total', 'Queued connections that found no free slot within queue_timeout.', (b) => b.queueTimeouts);

    // --- frontends
    this.frontendMetric(Gauge, 'licgate_frontend_active_connections', 'Open sessions on the frontend.', () => this.servedFrontends(), (f) => f.sessions.size);
    this.frontendMetric(Gauge, 'licgate_frontend_waiting_connections', 'Accepted clients waiting for a session slot (frontend maxconn).', () => this.servedFrontends(), (f) => f.queued);
    new Counter({
      name: 'licgate_frontend_rejected_total',
      help: 'Clients closed without a session, by reason: full (the frontend wait list, maxconn, was at max_queue), timeout (their wait passed queue_timeout), stopping (the frontend stopped accepting while they waited: a stop, or its removal by a reload), denied (reset at accept: the address is not in the frontend\'s allow list).',
      labelNames: ['frontend', 'reason'],
      registers: reg,
      collect() {
        this.reset();
        for (const f of metrics.countedFrontends()) for (const reason of REJECT_REASONS) this.inc({ frontend: f.name, reason }, f.rejected[reason]);
      },
    });
    this.frontendMetric(Counter, 'licgate_frontend_accept_errors_total', 'accept() failures such as EMFILE (out of file descriptors).', () => this.countedFrontends(), (f) => f.acceptErrors);

    new Gauge({
      name: 'licgate_vrrp_state',
      help: 'This host\'s VRRP role as keepalived\'s notify hook recorded it (vrrp.state_file), one series per state with value 1 for the current one; UNKNOWN before keepalived reported a role or when the file cannot be read.',
      labelNames: ['vrrp_instance', 'state'],
      registers: reg,
      async collect() {
        this.reset();
        const file = metrics.src.cfg.vrrp?.state_file;
        if (!file) return;
        const { role } = await readVrrpState(file);
        if (!role) this.set({ vrrp_instance: '', state: 'UNKNOWN' }, 1);
        else for (const st of VRRP_STATES) this.set({ vrrp_instance: role.name, state: st }, st === role.state ? 1 : 0);
      },
    });

    // --- peers (src/peers/): mirrored from the pushers and incoming peers at scrape time
    new Gauge({
      name: 'licgate_peer_connected',
      help: 'Whether this host is connected to the remote and pushing its stick tables there (peers.remotes), 1 or 0.',
      labelNames: ['peer'],
      registers: reg,
      collect() {
        this.reset();
        for (const [peer, p] of metrics.src.peers?.pushers ?? []) this.set({ peer }, p.live ? 1 : 0);
      },
    });
    new Counter({
      name: 'licgate_peer_updates_total',
      help: 'Stick-table update lines: sent to a remote (direction "sent"); received from a peer address and then applied, kept (this host\'s entry won: sessions open here, or a more recent assignment), unstuck (placed before a `ctl unstick` here that covers it) or skipped (no such backend or server here).',
      labelNames: ['peer', 'direction'],
      registers: reg,
      collect() {
        this.reset();
        for (const [peer, p] of metrics.src.peers?.pushers ?? []) this.inc({ peer, direction: 'sent' }, p.sent);
        for (const [peer, s] of metrics.src.peers?.incoming ?? []) {
          this.inc({ peer, direction: 'received' }, s.received);
          this.inc({ peer, direction: 'applied' }, s.applied);
          this.inc({ peer, direction: 'kept' }, s.kept);
          this.inc({ peer, direction: 'unstuck' }, s.unstuck);
          this.inc({ peer, direction: 'skipped' }, s.skipped);
        }
      },
    });
    new Counter({
      name: 'licgate_peer_cut_off_total',
      help: 'Connections to the peers listener cut off: not in peers.remotes, a wrong token, garbage, a line too long, or silence.',
      labelNames: ['peer'],
      registers: reg,
      collect() {
        this.reset();
        for (const [peer, s] of metrics.src.peers?.incoming ?? []) this.inc({ peer }, s.cutOff);
      },
    });

    new Gauge({
      name: 'licgate_relay_read_buffers',
      help: 'Pooled read buffers held by relay directions: busy (16 KiB, many small messages) and bulk (256 KiB). Each is held until its session closes.',
      labelNames: ['kind'],
      registers: reg,
      collect() {
        this.set({ kind: 'busy' }, busyBuffers.held);
        this.set({ kind: 'bulk' }, bulkBuffers.held);
      },
    });

    // --- sessions: from the cells the hooks fill
    this.pairMetric(Counter, 'licgate_connections_total', 'Sessions connected to a server.', (c) => c.connections);
    this.pairMetric(Gauge, 'licgate_connections_active', 'Sessions open now, by the frontend that accepted them and the server they reached.', (c) => c.active);
    // The open bytes are read again for each of the two: a session that ended since the other was
    // read has its bytes in bytesIn now, and counted open as well they would go back at the next scrape.
    this.pairMetric(Counter, 'licgate_bytes_in_total', 'Bytes received from clients, open sessions included (up to the scrape).', (c) => c.bytesIn + c.openIn, () => this.countOpenBytes());
    this.pairMetric(Counter, 'licgate_bytes_out_total', 'Bytes sent to clients (received from servers), open sessions included (up to the scrape).', (c) => c.bytesOut + c.openOut, () => this.countOpenBytes());
    new Counter({
      name: 'licgate_connect_errors_total',
      help: 'Failed connect attempts to a server seen on live traffic, by reason (refused, reset, timeout, other).',
      labelNames: ['frontend', 'backend', 'server', 'reason'],
      registers: reg,
      collect() {
        this.reset();
        for (const c of metrics.pairCells()) for (const r of ERROR_CLASSES) this.inc({ frontend: c.frontend, backend: c.backend, server: c.server, reason: r }, c[r]);
      },
    });
    this.pairMetric(Counter, 'licgate_connect_races_total', 'Connects to a server still unanswered after connect_race, raced by an attempt on another server (the first to connect took the session).', (c) => c.races);
    new Counter({
      name: 'licgate_connect_retries_total',
      help: 'Connect attempts retried after a failure, on another server or, with none left, the same one (HAProxy retries + redispatch).',
      labelNames: ['frontend', 'backend'],
      registers: reg,
      collect() {
        this.reset();
        for (const r of metrics.routeCells()) this.inc({ frontend: r.frontend, backend: r.backend }, r.retries);
      },
    });
    new Counter({
      name: 'licgate_sessions_ended_total',
      help: 'Sessions that ended, by how: closed, client-reset, server-reset, client-error, server-error (another socket error on that side), idle-timeout, shutdown, server-down (closed as its server was marked DOWN: on_marked_down), admin (closed by an admin: shutdown-sessions), no-server (every server failed), status (in-band STATUS answered), client-gone (the client left before a server answered).',
      labelNames: ['frontend', 'backend', 'end'],
      registers: reg,
      collect() {
        this.reset();
        for (const r of metrics.routeCells()) for (const e of END_REASONS) this.inc({ frontend: r.frontend, backend: r.backend, end: e }, r.ends[e]);
      },
    });

    // --- checks and state changes: from model events (a few per second at most)
    this.checkDuration = new Histogram({
      name: 'licgate_check_duration_seconds',
      help: 'Duration of active health checks.',
      labelNames: ['backend', 'server'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: reg,
    });
    this.checks = new Counter({ name: 'licgate_checks_total', help: 'Active health checks by result (ok, failed).', labelNames: ['backend', 'server', 'result'], registers: reg });
    this.transitions = new Counter({ name: 'licgate_server_transitions_total', help: 'Server state changes (UP, DOWN, DRAIN, MAINT), by the state entered.', labelNames: ['backend', 'server', 'to'], registers: reg });
    this.failovers = new Counter({ name: 'licgate_backend_failovers_total', help: 'Changes of the tier serving new connections (active, backup, dr, none).', labelNames: ['backend', 'from', 'to'], registers: reg });

    // --- config reloads and notifications
    this.reloads = new Counter({ name: 'licgate_config_reloads_total', help: 'Config reloads (SIGHUP, POST /admin/reload) by result (ok, failed).', labelNames: ['result'], registers: reg });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'failed' }, 0);
    this.controlRefusals = new Counter({ name: 'licgate_control_refused_total', help: 'Peers a control listener (status, agent, admin) closed as soon as they connected: past 128 at once, or past 16 from one address (an IPv6 one by its /64) once 64 are open; on admin also the idle peers closed to take a new one in their place.', labelNames: ['listener'], registers: reg });
    this.controlDenials = new Counter({ name: 'licgate_control_denied_total', help: 'Peers the status or agent listener reset as soon as they connected because their address is not in its allow list.', labelNames: ['listener'], registers: reg });
    new Gauge({
      name: 'licgate_config_last_reload_successful',
      help: '1 if the last config reload succeeded (or none was tried), 0 if it failed and the previous config is still running.',
      registers: reg,
      collect() {
        this.set(metrics.lastReloadOk);
      },
    });
    new Gauge({
      name: 'licgate_config_last_reload_timestamp_seconds',
      help: 'When the last config reload was tried (0: never).',
      registers: reg,
      collect() {
        this.set(metrics.lastReloadAt / 1000);
      },
    });
    const notifyCounter = (name: string, help: string, pick: (n: NotifyCounts) => number): void => {
      new Counter({
        name,
        help,
        registers: reg,
        collect() {
          this.reset();
          this.inc(pick(metrics.notify() ?? { delivered: 0, failed: 0, dropped: 0, retries: 0, queued: 0 }));
        },
      });
    };
    notifyCounter('licgate_notifications_delivered_total', 'Webhook notifications delivered (2xx).', (n) => n.delivered);
    notifyCounter('licgate_notifications_failed_total', 'Webhook notifications given up after every retry.', (n) => n.failed);
    notifyCounter('licgate_notifications_dropped_total', 'Webhook notifications dropped because the queue was full (oldest first).', (n) => n.dropped);
    notifyCounter('licgate_notification_retries_total', 'Webhook delivery attempts retried after a failure.', (n) => n.retries);
    new Gauge({
      name: 'licgate_notification_queue_length',
      help: 'Webhook notifications waiting to be delivered.',
      registers: reg,
      collect() {
        this.set(metrics.notify()?.queued ?? 0);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The text of a scrape, one metric family per event-loop turn: at a few hundred servers the
   * whole text is some 18,000 series, built synchronously by prom-client for tens of milliseconds
   * in one piece, during which no relay moves a byte. A family is still read in one turn, so each
   * series is the value at one moment (see countOpenBytes).
   */
  async render(): Promise<string> {
    this.bindRoutes();
    this.bindEventSeries();
    const families: string[] = [];
    for (const { name } of this.registry.getMetricsAsArray()) {
      families.push(await this.registry.getSingleMetricAsString(name));
      await setImmediate();
    }
    return `${families.join('\n\n')}\n`;
  }

  /**
   * Each frontend's route series (sessions ended, retries), and its series for each server of its
   * backend (sessions, bytes, connect errors, races), exist from 0 before its first client: a
   * series that first appears at 3 is taken by increase() for one that was always 3, so clients
   * refused right after a start or a reload would not fire LicgateClientsRefused, nor would a
   * pair's first session or connect error count. Bound once per backend a frontend routes to (a
   * reload builds new Backends): at the reload (forget), else at the first scrape.
   */
  private bindRoutes(): void {
    for (const f of this.src.frontends) {
      if (this.routesBound.get(f) === f.backend) continue;
      this.routesBound.set(f, f.backend);
      const route = this.route(f.name, f.backend.name);
      for (const s of f.backend.servers) this.pair(route, s.name);
    }
  }

  /**
   * The bytes of open sessions, read at scrape time (by each bytes family, as it is collected)
   * rather than counted per chunk on the data path.
   * HAProxy's byte counters also grow while a session lasts; counted only at its end, a license
   * session of several hours would show its whole traffic in one scrape.
   */
  private countOpenBytes(): void {
    for (const c of this.pairCells()) c.openIn = c.openOut = 0;
    const count = (s: Session): void => {
      const open = s.openCounts();
      if (open === null) return;
      const c = this.pair(this.route(s.frontendName, s.backend.name), open.server);
      c.openIn += open.bytesIn;
      c.openOut += open.bytesOut;
    };
    for (const f of this.src.frontends) f.sessions.forEach(count);
    for (const f of this.src.retired) f.sessions.forEach(count);
  }

  /** Listens to one model's event bus (the daemon calls this again for the model a reload builds). */
  watch(events: ModelEvents): void {
    events.on('check-done', (e) => {
      this.eventSeries.set(`${e.backend}/${e.server}`, { backend: e.backend, server: e.server });
      this.checkDuration.observe({ backend: e.backend, server: e.server }, e.durationMs / 1000);
      this.checks.inc({ backend: e.backend, server: e.server, result: e.ok ? 'ok' : 'failed' });
    });
    events.on('server-state', (e) => {
      const to = stateLabel(e.to);
      if (to === stateLabel(e.from)) return;
      this.eventSeries.set(`${e.backend}/${e.server}`, { backend: e.backend, server: e.server });
      this.transitions.inc({ backend: e.backend, server: e.server, to });
    });
    events.on('tier-change', (e) => {
      const labels = { backend: e.backend, from: tierName(e.from), to: tierName(e.to) };
      this.failoverSeries.set(`${labels.backend}/${labels.from}/${labels.to}`, labels);
      this.failovers.inc(labels);
    });
  }

  /**
   * Each server's check and transition series, and each backend's failover series, exist from 0,
   * bound once: a series that first appears at 1 is taken by increase() for one that was always 1,
   * so a server's first fall to DOWN would not count (LicgateServerFlapping would miss the first
   * time a server flaps), nor a backend's first failover. Bound here, before the registry collects,
   * rather than in one counter's collect(): the counters are collected in turn.
   */
  private bindEventSeries(): void {
    for (const b of this.src.model.backends.values()) {
      for (const s of b.servers) {
        const key = `${b.name}/${s.name}`;
        if (this.zeroed.has(key)) continue;
        this.zeroed.add(key);
        this.eventSeries.set(key, { backend: b.name, server: s.name });
        for (const result of CHECK_RESULTS) this.checks.inc({ backend: b.name, server: s.name, result }, 0);
        for (const to of STATES) this.transitions.inc({ backend: b.name, server: s.name, to }, 0);
      }
      // A reload builds new Backends, which may bring tiers: their changes are bound then.
      if (this.tiersBound.has(b)) continue;
      this.tiersBound.add(b);
      for (const [from, to] of tierChanges(b.servers)) {
        const key = `${b.name}/${from}/${to}`;
        if (this.failoverSeries.has(key)) continue;
        const labels = { backend: b.name, from, to };
        this.failoverSeries.set(key, labels);
        this.failovers.inc(labels, 0);
      }
    }
  }

  // --- data path (FrontendHooks)

  sessionConnected(s: SessionRoute, server: Server, retries: number): void {
    const route = this.route(s.frontendName, s.backend.name);
    const c = this.pair(route, server.name);
    c.connections++;
    c.active++;
    route.retries += retries;
  }

  sessionEnded(rec: SessionRecord): void {
    const route = this.route(rec.frontend, rec.backend);
    route.ends[rec.end]++;
    // A session that failed on every server: its retries were not counted at connect.
    if (rec.end === 'no-server') route.retries += rec.retries;
    if (rec.server === null) return;
    const c = this.pair(route, rec.server);
    c.active--;
    if (c.gone && c.active <= 0) {
      route.pairs.delete(rec.server);
      if (route.gone && route.pairs.size === 0) this.dropRoute(route);
      return;
    }
    // An in-band STATUS answered after its connect (a server named, counted connected) relayed nothing there.
    if (rec.end === 'status') return;
    c.bytesIn += rec.bytes_in;
    c.bytesOut += rec.bytes_out;
  }

  attemptFailed(s: SessionRoute, server: Server, reason: string): void {
    this.pair(this.route(s.frontendName, s.backend.name), server.name)[errorClass(reason)]++;
  }

  attemptRaced(s: SessionRoute, slow: Server): void {
    this.pair(this.route(s.frontendName, s.backend.name), slow.name).races++;
  }

  // --- control plane

  /** The counter of one control listener's refusals, bound once: a flood bumps it thousands of times a second. */
  controlRefused(listener: ControlListener): { inc(): void } {
    const child = this.controlRefusals.labels({ listener });
    child.inc(0);
    return child;
  }

  /** The counter of a control listener's peers reset for their address (allow), bound once: a scan bumps it per address. */
  controlDenied(listener: 'status' | 'agent'): { inc(): void } {
    const child = this.controlDenials.labels({ listener });
    child.inc(0);
    return child;
  }

  reloaded(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'failed' });
    this.lastReloadOk = ok ? 1 : 0;
    this.lastReloadAt = Date.now();
  }

  /**
   * A frontend is no longer served: removed by a reload, at once or when its last session ended.
   * Its series go with it, unless a frontend of the same name serves on (a listener moved to
   * another address): its counters then go on from this one's, never down.
   */
  frontendGone(fe: FrontendCounts): void {
    if (![...this.servedFrontends()].some((f) => f.name === fe.name)) {
      // Idle cells only: a frontend renamed where it listens still counts the sessions it opened
      // under this name here.
      this.dropIdle(fe.name, () => true);
      this.carried.delete(fe.name);
      return;
    }
    let c = this.carried.get(fe.name);
    if (!c) this.carried.set(fe.name, (c = { name: fe.name, rejected: { full: 0, timeout: 0, stopping: 0, denied: 0 }, acceptErrors: 0 }));
    for (const r of REJECT_REASONS) c.rejected[r] += fe.rejected[r];
    c.acceptErrors += fe.acceptErrors;
  }

  /**
   * After a reload: drop the series of backends, servers and tiers that are gone (a frontend ×
   * server cell with sessions still open goes with its last one, see sessionEnded), and bind those
   * that came. A removed frontend's go with its last session (frontendGone), but those of its
   * servers and backends that are gone go here as everyone's do; a name no frontend serves any
   * more (renamed where it listens: the same Frontend goes on, so frontendGone never hears of its
   * old name) goes here.
   */
  forget(cfg: Config): void {
    const backends = new Map(cfg.backends.map((b) => [b.name, new Set(b.servers.map((s) => s.name))]));
    const changes = new Set(cfg.backends.flatMap((b) => tierChanges(b.servers).map(([from, to]) => `${b.name}/${from}/${to}`)));
    const served = new Set([...this.servedFrontends()].map((f) => f.name));
    for (const fe of this.routes.keys()) {
      const gone = !served.has(fe);
      this.dropIdle(fe, (be, server) => gone || (server === undefined ? !backends.has(be) : !backends.get(be)?.has(server)));
    }
    for (const name of this.carried.keys()) if (!served.has(name)) this.carried.delete(name);
    this.bindRoutes();
    for (const [key, { backend, server }] of this.eventSeries) {
      if (backends.get(backend)?.has(server)) continue;
      this.eventSeries.delete(key);
      this.zeroed.delete(key);
      this.checkDuration.remove({ backend, server });
      for (const result of CHECK_RESULTS) this.checks.remove({ backend, server, result });
      for (const to of STATES) this.transitions.remove({ backend, server, to });
    }
    for (const [key, labels] of this.failoverSeries) {
      if (changes.has(key)) continue;
      this.failoverSeries.delete(key);
      this.failovers.remove(labels);
    }
  }

  /**
   * Drops the cells of frontend `fe` with no session open whose server (or, server undefined, whose
   * backend) is `gone`, and the routes and frontend left with none; marks those with sessions open,
   * cells and routes, to go with their last (sessionEnded).
   */
  private dropIdle(fe: string, gone: (backend: string, server?: string) => boolean): void {
    const byBackend = this.routes.get(fe);
    if (!byBackend) return;
    for (const [be, route] of byBackend) {
      for (const [name, c] of route.pairs) {
        // Kept while sessions are open, and dropped with the last (sessionEnded); cleared for a
        // server removed with sessions open and added back before they ended.
        c.gone = gone(be, name);
        if (c.gone && c.active <= 0) route.pairs.delete(name);
      }
      route.gone = gone(be);
      if (route.pairs.size === 0 && route.gone) byBackend.delete(be);
    }
    if (byBackend.size === 0) this.routes.delete(fe);
  }

  /** A gone route's last session ended: its series (sessions ended, retries) go, and its frontend name's with the last. */
  private dropRoute(route: RouteCell): void {
    const byBackend = this.routes.get(route.frontend)!;
    byBackend.delete(route.backend);
    if (byBackend.size === 0) this.routes.delete(route.frontend);
  }

  private route(fe: string, be: string): RouteCell {
    let byBackend = this.routes.get(fe);
    if (!byBackend) this.routes.set(fe, (byBackend = new Map()));
    let r = byBackend.get(be);
    if (!r) byBackend.set(be, (r = new RouteCell(fe, be)));
    return r;
  }

  private pair(route: RouteCell, server: string): PairCell {
    let c = route.pairs.get(server);
    if (!c) route.pairs.set(server, (c = new PairCell(route.frontend, route.backend, server)));
    return c;
  }

  private *routeCells(): Generator<RouteCell> {
    for (const byBackend of this.routes.values()) yield* byBackend.values();
  }

  private *pairCells(): Generator<PairCell> {
    for (const r of this.routeCells()) yield* r.pairs.values();
  }

  private serverGauge(name: string, help: string, value: (s: Server) => number | null): void {
    const metrics = this;
    new Gauge({
      name,
      help,
      labelNames: ['backend', 'server'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of metrics.src.model.backends.values()) {
          for (const s of b.servers) {
            const v = value(s);
            if (v !== null) this.set({ backend: b.name, server: s.name }, v);
          }
        }
      },
    });
  }

  private backendGauge(name: string, help: string, value: (b: Backend) => number | null): void {
    const metrics = this;
    new Gauge({
      name,
      help,
      labelNames: ['backend'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of metrics.src.model.backends.values()) {
          const v = value(b);
          if (v !== null) this.set({ backend: b.name }, v);
        }
      },
    });
  }

  private backendCounter(name: string, help: string, value: (b: Backend) => number): void {
    const metrics = this;
    new Counter({
      name,
      help,
      labelNames: ['backend'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of metrics.src.model.backends.values()) this.inc({ backend: b.name }, value(b));
      },
    });
  }

  /** The frontends of the config running now, and those a reload removed that still have sessions (Daemon.retired). */
  private *servedFrontends(): Iterable<Frontend> {
    yield* this.src.frontends;
    yield* this.src.retired;
  }

  /** Whose counters make the frontend counters: the served frontends and what others left them. */
  private *countedFrontends(): Iterable<FrontendCounts> {
    yield* this.servedFrontends();
    yield* this.carried.values();
  }

  /** `frontends`: whose values the series sum by name (servedFrontends, or countedFrontends for a counter). */
  private frontendMetric<F extends FrontendCounts>(kind: typeof Gauge | typeof Counter, name: string, help: string, frontends: () => Iterable<F>, value: (f: F) => number): void {
    function collect(this: Gauge<'frontend'> | Counter<'frontend'>): void {
      this.reset();
      // inc, not set: a retired frontend may share its name with the one that replaced it.
      for (const f of frontends()) this.inc({ frontend: f.name }, value(f));
    }
    const opts = { name, help, labelNames: ['frontend'] as const, registers: [this.registry], collect };
    if (kind === Gauge) new Gauge(opts);
    else new Counter(opts);
  }

  /** `before`: run at the start of each collect, in the same turn as the values are read. */
  private pairMetric(kind: typeof Gauge | typeof Counter, name: string, help: string, value: (c: PairCell) => number, before: () => void = () => {}): void {
    const metrics = this;
    const labelNames = ['frontend', 'backend', 'server'] as const;
    if (kind === Gauge) {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          before();
          for (const c of metrics.pairCells()) this.set({ frontend: c.frontend, backend: c.backend, server: c.server }, value(c));
        },
      });
      return;
    }
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        before();
        for (const c of metrics.pairCells()) this.inc({ frontend: c.frontend, backend: c.backend, server: c.server }, value(c));
      },
    });
  }
}
