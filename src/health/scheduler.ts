import type { CheckConfig } from '../config/schema.js';
import type { Backend } from '../model/backend.js';
import type { ModelEvents } from '../model/events.js';
import type { Server } from '../model/server.js';
import { carryOver, carryOverTimers } from './carry-over.js';
import { failedFrom, type Probe, type ProbeOutcome } from './probes/probe.js';
import { tcpExchange } from './probes/tcp-exchange.js';
import { pollFirstTimeout } from '../io/poll-first-timeout.js';

/**
 * Runs one backend's active checks: `inter` when a server is fully UP, `fastinter` while it is
 * transitional, `downinter` when fully DOWN. First checks are spread over a short window so the
 * servers (of all backends) are not probed in the same millisecond, and every later interval gets a
 * little jitter for the same reason (HAProxy's spread-checks).
 */
export class CheckScheduler {
  /** Each server's next check: its timer and when it is due (performance.now() time:
   * a reload carries it over, and a wall-clock step must not postpone the check by the step). */
  private readonly timers = new Map<Server, { timer: NodeJS.Timeout; due: number }>();
  private readonly inflight = new Map<Server, AbortController>();
  private stopped = false;

  /** Not readonly: a reload that keeps the check config hands this scheduler to the new backend (retarget). */
  constructor(
    private backend: Backend,
    readonly check: CheckConfig,
    private readonly probe: Probe,
    private events: ModelEvents,
  ) {}

  get backendName(): string {
    return this.backend.name;
  }

  /**
   * `first` and `of`: where this backend's servers stand among all the checked servers of the
   * daemon, so that backends sharing license hosts are not probed in the same millisecond either.
   */
  start(first = 0, of = this.backend.servers.length): void {
    const window = Math.min(this.check.inter, 200);
    this.backend.servers.forEach((s, i) => {
      s.recheckSoon = () => this.soon(s);
      s.checkNow = () => this.now(s);
      this.schedule(s, Math.floor((window * (first + i)) / Math.max(of, 1)));
    });
  }

  /**
   * Reload with the same check config: go on with `backend`, the one that replaced this scheduler's.
   * A server that stays (same name and address, Server.live) keeps the time of its next check and a
   * check under way, whose result is its successor's: restarting them would kill an exec check
   * (lmstat) halfway and probe every server again at each reload. A server that left has its
   * check stopped; one the reload added gets its first check as at start.
   */
  retarget(backend: Backend, events: ModelEvents, first: number, of: number): void {
    for (const s of this.backend.servers) {
      s.recheckSoon = null;
      s.checkNow = null;
    }
    this.backend = backend;
    this.events = events;
    const staying = new Set(backend.servers);
    carryOver(this.inflight, staying, (ctl) => ctl.abort());
    carryOverTimers(this.timers, staying, (s, dueIn) => {
      // One the reload left unchecked (its agent changed: Server.adoptRuntime) is checked as at start.
      if (!this.inflight.has(s) && s.firstCheckDone) this.schedule(s, dueIn);
    });
    const window = Math.min(this.check.inter, 200);
    backend.servers.forEach((s, i) => {
      s.recheckSoon = () => this.soon(s);
      s.checkNow = () => this.now(s);
      if (!this.timers.has(s) && !this.inflight.has(s)) this.schedule(s, Math.floor((window * (first + i)) / Math.max(of, 1)));
    });
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.backend.servers) {
      s.recheckSoon = null;
      s.checkNow = null;
    }
    for (const t of this.timers.values()) clearTimeout(t.timer);
    for (const c of this.inflight.values()) c.abort();
    this.timers.clear();
    this.inflight.clear();
  }

  /** Check a server now (admin "check now", tests); the regular rhythm resumes afterwards. */
  runNow(server: Server): Promise<void> {
    clearTimeout(this.timers.get(server)?.timer);
    return this.run(server);
  }

  /** Brings the server's next check forward to fastinter from now, unless it is due sooner or running. */
  private soon(server: Server): void {
    const next = this.timers.get(server);
    if (this.stopped || this.inflight.has(server) || (next && next.due - performance.now() <= this.check.fastinter)) return;
    clearTimeout(next?.timer);
    this.schedule(server, this.check.fastinter);
  }

  /** A server leaving maintenance: check it now, unless a check is running (its result is fresh). */
  private now(server: Server): void {
    if (this.stopped || this.inflight.has(server)) return;
    clearTimeout(this.timers.get(server)?.timer);
    void this.run(server);
  }

  private schedule(server: Server, delay: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => void this.run(server), delay);
    timer.unref();
    this.timers.set(server, { timer, due: performance.now() + delay });
  }

  private nextDelay(server: Server): number {
    const phase = server.health.phase;
    const base = phase === 'up' ? this.check.inter : phase === 'down' ? this.check.downinter : this.check.fastinter;
    return Math.max(1, Math.round(base * (1 - 0.05 * Math.random())));
  }

  private async run(server: Server): Promise<void> {
    // In maintenance: no check and no next one; leaving it calls checkNow (Server.checksPaused).
    if (this.stopped || this.inflight.has(server) || server.checksPaused) return;
    const ctl = new AbortController();
    this.inflight.set(server, ctl);
    const timer = pollFirstTimeout(() => ctl.abort(), this.check.timeout);
    const started = performance.now();
    // An exec check's command resolves (and reports) the name itself; socket checks use the address.
    const target = {
      host: this.check.type === 'exec' ? server.address.host : server.connectHost,
      port: this.check.port ?? server.address.port,
      name: server.address.host,
      agent: server.agent,
    };
    let outcome;
    // Only the connect to failedPort failed: the check itself passed (Server.checkFailed).
    let ownPortPassed = false;
    try {
      // A name with no address yet: connecting would look it up on every check (Server.up).
      if (this.check.type !== 'exec' && server.connectFamily === 0) outcome = { ok: false, reason: server.noAddressReason };
      // A probe must settle when aborted; should one not, the race keeps this server's checks going.
      else {
        outcome = await Promise.race([this.probe.run(target, ctl.signal), abandoned(ctl.signal, this.check.timeout)]);
        if (outcome.ok && server.failedPort !== null) {
          ownPortPassed = true;
          outcome = await Promise.race([failedPortCheck(server, target.port, this.backend, outcome, ctl.signal), abandoned(ctl.signal, this.check.timeout)]);
        }
      }
    } catch (e) {
      outcome = { ok: false, reason: `check error: ${(e as Error).message}` };
    } finally {
      timer.clear();
    }
    // A reload that kept this server handed its check on (retarget): the result is its successor's.
    // Not in flight any more: stopped, or the server left with a reload.
    const live = server.live();
    if (this.stopped || this.inflight.get(live) !== ctl) return;
    server = live;
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    const standby = outcome.ok && outcome.standby === true;
    const result = {
      ok: outcome.ok,
      reason: outcome.reason,
      durationMs,
      at: performance.now(),
      ...(outcome.license ? { license: outcome.license } : {}),
      ...(standby ? { standby: true, ...(outcome.master !== undefined ? { master: outcome.master } : {}) } : {}),
    };
    // Put in maintenance while the check ran: its result would count against a planned outage.
    const paused = server.checksPaused;
    const agent = paused ? undefined : outcome.agent;
    // A failed reply that does not keep the agent's MAINT is one change with what it says
    // (Server.checkFailed): `down ready` leaves that MAINT DOWN, not UP 1/fall for an instant.
    const failedReply = agent !== undefined && !outcome.ok && !outcome.inconclusive && agent.state !== 'maint';
    // Taken while this check is still in flight: a reply that ends the agent's own MAINT is the
    // check made on leaving it, so the checkNow that leaving calls (Server.change) starts no other.
    if (failedReply) server.checkFailed(result, ownPortPassed, agent);
    else if (agent !== undefined) server.setAgent(agent, `agent: ${agent.reason}`);
    this.inflight.delete(server);
    if (paused) return;
    // A type agent check in the agent's own MAINT: read for what the agent says, its health counts
    // no more than a paused check's (a sidecar says "down maint" all through a maintenance).
    if (server.healthPaused) {
      this.schedule(server, this.nextDelay(server));
      return;
    }
    if (outcome.inconclusive) {
      // Our own shortage (out of descriptors): the server's health stays as it was.
      this.events.emit('check-done', { backend: this.backend.name, server: server.name, ok: false, durationMs, reason: outcome.reason });
      this.schedule(server, this.nextDelay(server));
      return;
    }
    const wasStandby = server.up && server.standby;
    if (outcome.ok) server.checkSucceeded(result);
    else if (!failedReply) server.checkFailed(result, ownPortPassed);
    this.events.emit('check-done', { backend: this.backend.name, server: server.name, ok: outcome.ok, durationMs, reason: outcome.reason });
    this.schedule(server, this.nextDelay(server));
    if (standby && !wasStandby) this.checkNamedMaster(server);
  }

  /**
   * A triad's MASTER moved: the old MASTER's check says standby before the new one's next check,
   * up to `inter` later, says MASTER, and meanwhile no member takes a client. So the member a
   * standby verdict names as MASTER is checked at once when this backend still holds it a standby.
   * Only when this check made the server a standby: two members that name each other during an
   * election would otherwise check each other back to back.
   */
  private checkNamedMaster(server: Server): void {
    const named = this.backend.masterOf(server);
    if (named?.standby && named.up) named.checkNow?.();
  }
}

/**
 * A check passed on a server that live traffic marked DOWN on another port (Server.failedPort: a
 * vendor daemon's, while lmgrd answers the check): it passes only if that port accepts a
 * connection too, within the same timeout. Once one does, or live traffic no longer uses that
 * port, the checks are the check alone again.
 */
async function failedPortCheck(server: Server, checkedPort: number, backend: Backend, passed: ProbeOutcome, signal: AbortSignal): Promise<ProbeOutcome> {
  const port = server.failedPort!;
  // A reload may have removed the frontend of that port or moved it: no client connects there any
  // more, and waiting for it to accept held the server DOWN for good.
  // Likewise one that turned passive health off (observe_errors: 0): nothing would mark the server
  // DOWN on live traffic now, as HAProxy's reload without `observe` forgets what it observed.
  // And while no other server can take new clients: held DOWN for one vendor daemon, the last
  // server served no vendor at all, where it can serve the others (HAProxy's other vendor backends
  // keep it UP); its connect errors do not mark it DOWN then either (Server.connectFailed).
  const used = backend.cfg.observe_errors > 0 && (port === server.address.port || backend.stepPorts.includes(port)) && !backend.takesClientsAlone(server);
  if (used && port !== checkedPort && server.connectFamily !== 0) {
    try {
      await tcpExchange({ host: server.connectHost, port }, signal, '', null, 1);
    } catch (e) {
      const f = failedFrom(e);
      return { ...passed, ok: false, reason: `${passed.reason}, but port ${port}, where a connect on live traffic failed: ${f.reason}`, ...(f.inconclusive ? { inconclusive: true } : {}) };
    }
  }
  server.failedPortCleared(port);
  return passed;
}

/** Settles as a failed check a little after the check's own timeout aborted it. */
function abandoned(signal: AbortSignal, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const give = (): void => void setTimeout(() => resolve({ ok: false, reason: `check did not settle within its ${timeoutMs}ms timeout` }), 100).unref();
    if (signal.aborted) give();
    else signal.addEventListener('abort', give, { once: true });
  });
}
