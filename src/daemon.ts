import type { Config } from './config/schema.js';
import type { DaemonView, HealthVerdict } from './daemon-view.js';
import { createProbe } from './health/probes/create-probe.js';
import { CheckScheduler } from './health/scheduler.js';
import type { LineServer } from './io/line-server.js';
import { tierName } from './model/events.js';
import { Model } from './model/model.js';
import type { Logger } from './observe/log.js';
import { Frontend } from './proxy/frontend.js';
import { AdminHttp } from './serve/admin-http.js';
import { createStatusResponder } from './serve/status-responder.js';
import { VERSION } from './version.js';

/**
 * Builds everything a config declares and owns its lifecycle. Data flows one way: the config
 * builds the model; checks write health into it; frontends and responders read it.
 */
export class Daemon implements DaemonView {
  readonly version = VERSION;
  readonly model: Model;
  readonly frontends: Frontend[] = [];
  readonly schedulers: CheckScheduler[] = [];
  readonly startedAt = Date.now();
  shuttingDown = false;
  statusResponder: LineServer | null = null;
  admin: AdminHttp | null = null;

  constructor(readonly cfg: Config, readonly log: Logger) {
    this.model = new Model(cfg);
    this.observe();
    for (const f of cfg.frontends) {
      this.frontends.push(
        new Frontend(f, this.model.backend(f.backend)!, {
          sessionEnded: (rec) => log.info(rec, 'session closed'),
          attemptFailed: (fe, server, reason) => log.warn({ frontend: fe.name, backend: fe.backend.name, server: server.name, reason }, 'connect to server failed; trying the next one'),
          acceptFailed: (fe, err) => this.acceptFailed(fe, err),
        }),
      );
    }
    if (cfg.status) {
      const name = cfg.status.backend ?? cfg.backends[0]!.name;
      this.statusResponder = createStatusResponder(cfg.status.listen, () => this.model.backend(name)!, (why) => log.warn({ why }, 'status peer cut off'));
    }
    if (cfg.admin) this.admin = new AdminHttp(cfg.admin.listen, this);
  }

  async start(): Promise<void> {
    try {
      for (const f of this.frontends) await f.listen();
      await this.statusResponder?.listen();
      await this.admin?.listen();
    } catch (e) {
      await this.close();
      throw e;
    }
    for (const b of this.model.backends.values()) {
      const probe = createProbe(b.cfg.check);
      if (!probe) continue;
      const s = new CheckScheduler(b, b.cfg.check, probe, this.model.events);
      this.schedulers.push(s);
      s.start();
    }
    this.log.info({ version: this.version, frontends: this.frontends.map((f) => `${f.name}@${f.address().address}:${f.address().port}`), admin: this.admin?.address().port ?? null, status: this.statusResponder?.address().port ?? null }, 'licgate started');
  }

  /** The backends /health answers for: every frontend's, plus the status and agent backends. */
  healthVerdict(): HealthVerdict {
    const names = new Set<string>(this.cfg.frontends.map((f) => f.backend));
    if (this.cfg.agent) names.add(this.cfg.agent.backend);
    if (this.cfg.status) names.add(this.cfg.status.backend ?? this.cfg.backends[0]!.name);
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
    const pending = [...this.model.backends.values()].filter((b) => !b.allChecked).map((b) => b.name);
    if (pending.length) return { ready: false, reason: `first checks pending in ${pending.join(', ')}` };
    return { ready: true, reason: 'listening, every server checked once' };
  }

  /**
   * Graceful stop: /health and /ready turn 503 at once (keepalived and HAProxy move away), no new
   * connections, open sessions get `graceMs` to finish, then are closed.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const open = (): number => this.frontends.reduce((n, f) => n + f.sessions.size, 0);
    this.log.info({ open_sessions: open(), grace_ms: graceMs }, 'shutting down: no new connections, waiting for open sessions');
    for (const f of this.frontends) f.stopAccepting();
    await this.statusResponder?.close();
    const deadline = Date.now() + graceMs;
    while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const left = open();
    if (left) this.log.warn({ sessions: left }, 'shutdown grace expired; closing remaining sessions');
    await this.close();
  }

  async close(): Promise<void> {
    this.shuttingDown = true;
    for (const s of this.schedulers) s.stop();
    for (const f of this.frontends) {
      f.stopAccepting();
      f.abortAll();
    }
    await this.statusResponder?.close();
    await this.admin?.close();
  }

  private lastAcceptLog = 0;

  /** At most one line a second: under EMFILE every waiting connection fails the same way. */
  private acceptFailed(fe: Frontend, err: NodeJS.ErrnoException): void {
    const now = Date.now();
    if (now - this.lastAcceptLog < 1000) return;
    this.lastAcceptLog = now;
    this.log.error({ frontend: fe.name, code: err.code, accept_errors: fe.acceptErrors }, `frontend ${fe.name} cannot accept connections: ${err.code ?? err.message}${err.code === 'EMFILE' ? ' (out of file descriptors; raise LimitNOFILE)' : ''}`);
  }

  private observe(): void {
    const ev = this.model.events;
    ev.on('server-state', (e) => {
      const line = { backend: e.backend, server: e.server, from: e.from, to: e.to, reason: e.reason };
      if (e.usableChanged) this.log.warn(line, `server ${e.backend}/${e.server} is ${e.to}`);
      else this.log.info(line, `server ${e.backend}/${e.server} is ${e.to}`);
    });
    ev.on('tier-change', (e) => {
      this.log.warn({ backend: e.backend, from: tierName(e.from), to: tierName(e.to), reason: e.reason }, e.to === null ? `backend ${e.backend} has no usable server` : `backend ${e.backend} now serves from ${tierName(e.to)}`);
    });
  }
}
