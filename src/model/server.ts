import { isIP } from 'node:net';
import type { HostPort } from '../config/address.js';
import { LIMITS, type InitState, type ServerConfig } from '../config/schema.js';
import { HealthState } from '../health/health-state.js';
import type { LicenseInfo } from '../health/parse/license-info.js';
import { ConnectTime } from './connect-time.js';

export type AdminState = 'ready' | 'drain' | 'maint';

/** What a sidecar's agent said last (HAProxy agent-check semantics). */
export interface AgentView {
  /** 'up' (or a bare weight) clears the agent's own down/drain/maint. */
  state: 'up' | 'down' | 'drain' | 'maint' | 'ready';
  weightPercent: number | null;
  /** HAProxy's `maxconn:N` word (0: no limit); null keeps the configured maxconn. */
  maxconn: number | null;
  reason: string;
}

export interface CheckResult {
  ok: boolean;
  reason: string;
  durationMs: number;
  /** performance.now() time (src/wall-time.ts). */
  at: number;
  license?: LicenseInfo;
  /** With ok: a FlexLM triad member UP while another member is the MASTER (Server.standby). */
  standby?: boolean;
  /** With standby: the MASTER's host as the check names it. */
  master?: string;
}

interface ConnectionCounts {
  active: number;
  total: number;
  connectErrors: number;
  overdue: number;
  secondStepsOverdue: number;
}

/**
 * `markedDown`: health (checks, passive or the agent's "down") took the server from UP to DOWN, as
 * HAProxy's srv_set_stopped; not a drain, a MAINT or a weight of 0, which leave it up.
 */
export type ServerChange = (server: Server, from: string, reason: string, usableBefore: boolean, markedDown: boolean) => void;
/** A mutation that may have opened slots without a visible state change (the agent raised maxconn). */
export type ServerCapacity = (server: Server) => void;

/**
 * One license server as the proxy sees it: health (active + passive), admin state, runtime weight
 * and connection counts. Every mutation goes through a method that reports the change, so the
 * backend can recompute its serving tier and observers hear about it exactly once.
 */
export class Server {
  readonly name: string;
  readonly address: HostPort;
  private host!: string;
  private family = 0;
  /** Why the last DNS lookup of a host name failed; null when it resolved. */
  dnsError: string | null = null;
  readonly tier: number;
  readonly configuredWeight: number;
  readonly configuredMaxconn: number;
  readonly health: HealthState;
  /** How its health starts, at a start and again on leaving maintenance (config init_state). */
  private readonly initState: InitState;
  /** Checks of type none: always UP. */
  readonly checked: boolean;

  weight: number;
  admin: AdminState = 'ready';
  agent: AgentView | null = null;
  /** Why the last read of this server's agent (backend agent_port) failed; null after a reply. */
  agentError: string | null = null;
  /** Shared with the Server that replaces this one on a reload, or adds it back (adoptRuntime, adoptSessions). */
  private counts: ConnectionCounts = { active: 0, total: 0, connectErrors: 0, overdue: 0, secondStepsOverdue: 0 };
  private consecutiveErrors = 0;
  /**
   * The server that replaced this one by a reload (see succeed), or this one while it runs:
   * a connect launched before the reload reports its outcome to this object, and passive health
   * must count it on the server the running config has. One cell shared by every server replaced
   * with it, as Backend's lineage, not a chain through the servers of every config in between.
   */
  private lineage: { live: Server } = { live: this };
  /** The server this one adopted the runtime state of, and how, until the reload commits (Backend.adoptRuntime). */
  private adopted: { from: Server; sameCheck: boolean; sameAgent: boolean } | null = null;
  /**
   * The port of the live-traffic connect error that last marked this server DOWN, until a
   * connect to it succeeds; null when none. A FlexLM vendor daemon can die while its lmgrd lives
   * on: the check, on lmgrd's port, passes, and the server came back UP `rise` checks later, to
   * fail the next clients' vendor connects again. While this is set the checks connect to that
   * port too (CheckScheduler), as HAProxy checks a vendor-port backend's server on that port.
   */
  failedPort: number | null = null;
  /**
   * The port a DOWN by live traffic is confined to: a connect to another port than the server's own
   * (a `server_port` frontend's, a vendor daemon's) failed while its checks passed; or a check's
   * DOWN that only its connect to failedPort found (checkFailed). on_marked_down then ends only
   * the sessions to that port: the other vendor daemons on that host still hold their clients'
   * licenses, as HAProxy, with a backend per vendor port, ends only that backend's. Until the
   * server is UP again, a check that fails on its own port, or its agent saying `down`, ends the
   * rest (restLost): the host itself is in trouble then. null otherwise.
   */
  downOnPort: number | null = null;
  /** Connect times seen on live traffic (the connector's race delay); kept across a reload. */
  connectTime = new ConnectTime();
  lastCheck: CheckResult | null = null;
  /**
   * The license usage of the last passed check whose output was read whole. A busy server's output
   * is cut at read_limit exactly at peak use; agent.weight_from falls back to this for a feature
   * whose line came after the cut, rather than to "not listed, full weight".
   */
  lastWholeLicense: { license: LicenseInfo; at: number } | null = null;
  /**
   * The last passed check found this server a FlexLM triad member that is not the MASTER. Only the
   * MASTER serves licenses, so a standby takes no client at all, not even one whose stick entry
   * names it: its lmgrd would send the client to the MASTER's vendor daemon, which the client could
   * only reach through this proxy's choice of server. Its health is untouched (no DOWN, no
   * on_marked_down, no alert): it is healthy, and takes clients from the check that finds it
   * MASTER, with no `rise` to wait for.
   */
  standby = false;
  /** Set after the first active check, so /ready knows every server has been looked at. */
  firstCheckDone: boolean;
  /**
   * Started DOWN by its init_state, not UP yet, and no check has failed. It is no failed server: the
   * tier it is in is the one the start meant to serve (Backend.provisional), and `failback: manual`
   * must not hold the backup tier for good against it (see Backend.reconsider). A passed check that
   * leaves it DOWN (`fully-down`, rise 3: DOWN 1/3) does not end it: ended there, a primary on its
   * way up counted as failed, and `failback: manual` held the backup for good.
   */
  awaitingFirstUp: boolean;
  /**
   * Installed by the check scheduler running this server's checks. Passive health calls it when it
   * marks the server DOWN, so the next active check comes at fastinter rather than a whole `inter`
   * later (HAProxy's on-error forces fastinter): a server that refused one connect while it
   * restarted is back in service as soon as its checks say so.
   */
  recheckSoon: (() => void) | null = null;
  /**
   * Installed by the check scheduler too: runs a check now. A server leaving maintenance has not
   * been checked since it entered it (checksPaused), so its health is a guess until this check.
   */
  checkNow: (() => void) | null = null;
  /** performance.now() time (src/wall-time.ts). */
  stateSince = performance.now();

  /** The address connects and checks use: the host, or the last good DNS answer for a name. */
  get connectHost(): string {
    return this.host;
  }

  set connectHost(host: string) {
    this.host = host;
    this.family = isIP(host);
  }

  /** 4 or 6 when connectHost is an address, 0 for a name not resolved yet (worked out once, not per connect). */
  get connectFamily(): number {
    return this.family;
  }

  /**
   * The resolver found the first address of this server's name after start-up: it leaves
   * "DOWN (no address)" (an event, like any state change) and is checked soon rather than at the
   * down interval. A new address for a name that had one changes no state.
   */
  addressFound(address: string, reason: string): void {
    if (this.family !== 0) {
      this.connectHost = address;
      return;
    }
    this.change(reason, () => (this.connectHost = address));
    this.recheckSoon?.();
  }

  /** Why a check or connect cannot reach this server: its name has no address (connectFamily 0). */
  get noAddressReason(): string {
    return `no address for ${this.address.host} (${this.dnsError ?? 'not looked up yet'})`;
  }

  constructor(
    cfg: ServerConfig,
    rise: number,
    fall: number,
    checked: boolean,
    /**
     * Checked by a command (type exec) that resolves the name itself: the health it reports holds
     * without an address (a sidecar may know its license host by name only), so a missing address
     * does not make this server DOWN; a session to it then fails over at once (Connector.launch).
     */
    private readonly commandCheck: boolean,
    /** Checked by reading its agent (type agent): that check is how an agent-set MAINT ends. */
    private readonly agentCheck: boolean,
    private readonly onChange: ServerChange,
    private readonly onCapacity: ServerCapacity = () => {},
    /** on_marked_down for the sessions a DOWN confined to `port` kept (downOnPort): lost too, for `reason`. */
    private readonly onRestLost: (server: Server, port: number, reason: string) => void = () => {},
    /** It is no longer `awaited` (a check, or an admin), whatever it changed (a failure from DOWN changes no state). */
    private readonly onJudged: (server: Server, reason: string) => void = () => {},
  ) {
    this.name = cfg.name;
    this.address = cfg.address;
    this.connectHost = cfg.address.host;
    this.tier = cfg.tier;
    this.configuredWeight = cfg.weight;
    this.weight = cfg.weight;
    this.configuredMaxconn = cfg.maxconn;
    this.checked = checked;
    this.firstCheckDone = !checked;
    this.initState = checked ? cfg.init_state : 'up';
    // Set, not changed: a server that starts DOWN (init_state) logs and notifies no DOWN at start.
    this.health = new HealthState(rise, fall, this.initState);
    this.awaitingFirstUp = !this.health.up;
  }

  /** Sessions holding a slot now (maxconn, leastconn, /status). */
  get active(): number {
    return this.counts.active;
  }

  set active(n: number) {
    this.counts.active = n;
  }

  get total(): number {
    return this.counts.total;
  }

  set total(n: number) {
    this.counts.total = n;
  }

  get connectErrors(): number {
    return this.counts.connectErrors;
  }

  set connectErrors(n: number) {
    this.counts.connectErrors = n;
  }

  /**
   * Connects to this server still unanswered after their race delay. While there is one, new
   * sessions go to another server if one can take them (Backend.choose): only the sessions that
   * started within one race delay of a black hole pay that delay, not every session until the
   * server is marked DOWN. Back to 0 as soon as those connects answer, fail or time out.
   */
  get overdue(): number {
    return this.counts.overdue;
  }

  set overdue(n: number) {
    this.counts.overdue = n;
  }

  /**
   * Those of `overdue` that are second steps (to a `server_port` frontend's port): a vendor daemon
   * slow to accept, not a host gone silent (see Backend.choose, `balance: source`).
   */
  get secondStepsOverdue(): number {
    return this.counts.secondStepsOverdue;
  }

  set secondStepsOverdue(n: number) {
    this.counts.secondStepsOverdue = n;
  }

  /**
   * Reload: this server replaces `old` (same backend, name and address). It takes over what was
   * learned at runtime — health, admin state, a weight set at runtime, the agent's word, the last
   * check — without an event (nothing changed for the outside). The connection counts are shared,
   * not copied: sessions opened before the reload still hold `old` and release their slot on it,
   * so maxconn, leastconn and /status stay right until they end. The last check and the agent's word
   * are kept apart: a reload that only retunes the health check keeps what the agent set (drain,
   * weight %, maxconn), which only the agent may revert. `sameCheck`: the check still reads the
   * same thing (only its timing, rise/fall or read_limit changed), so its last result, the license
   * count last read whole and "checked once" hold for the new one.
   */
  adoptRuntime(old: Server, sameCheck: boolean, sameAgent: boolean): void {
    this.counts = old.counts;
    this.connectTime = old.connectTime;
    this.adopted = { from: old, sameCheck, sameAgent };
    this.takeState(old, sameCheck, sameAgent);
  }

  /**
   * Reload: this server is added back (same backend, name and address) while sessions to the one
   * an earlier reload removed are still open. It is the same license server, holding those
   * sessions: it shares their counts as adoptRuntime does, so maxconn, leastconn and /status count
   * them and each one ending frees its slot here. Nothing else carries over: health starts over,
   * as for any server a reload adds.
   */
  adoptSessions(old: Server): void {
    this.counts = old.counts;
  }

  /** Whether this server counts the same sessions as `other` (one adopted the other's). */
  countsWith(other: Server): boolean {
    return this.counts === other.counts;
  }

  /**
   * The state learned at runtime, copied from `old`. Taken at adoption, so a listener new in the
   * reloaded config that accepts before the commit chooses with it, and again at the commit (see
   * commitAdoption): each field is set from `old` alone, whatever an earlier copy left.
   */
  private takeState(old: Server, sameCheck: boolean, sameAgent: boolean): void {
    this.connectHost = old.connectHost;
    this.dnsError = old.dnsError;
    const h = old.health;
    // A server nothing checks stays UP: a DOWN carried over from the old check would never be undone.
    if (!this.checked) this.health.health = this.health.rise;
    else if (h.rise === this.health.rise && h.fall === this.health.fall) this.health.health = h.health;
    // UP: the failures counted so far stay counted on the new scale, short of DOWN (a reload marks
    // nothing down); DOWN: the successes so far, short of UP.
    else if (h.up) this.health.health = Math.max(this.health.rise, this.health.max - (h.max - h.health));
    else this.health.health = h.phase === 'down' ? 0 : Math.min(h.health, this.health.rise - 1);
    this.admin = old.admin;
    // Until the new check's first pass says otherwise: a standby taking clients for one reload is
    // what this is there to prevent. A server nothing checks any more has no check to clear it.
    this.standby = this.checked && old.standby;
    this.failedPort = old.failedPort;
    this.downOnPort = old.downOnPort;
    // An admin's weight holds only while the configured one it was set against does (HAProxy's
    // srv_iweight rule, as admin.state_file applies it at a start): a weight the config changed wins.
    this.weight = old.weight !== old.configuredWeight && old.configuredWeight === this.configuredWeight ? old.weight : this.configuredWeight;
    if (sameAgent) {
      this.agent = old.agent;
      this.agentError = old.agentError;
    }
    if (sameCheck) {
      this.lastCheck = old.lastCheck;
      this.lastWholeLicense = old.lastWholeLicense;
    }
    this.firstCheckDone = !this.checked || (sameCheck && old.firstCheckDone);
    this.awaitingFirstUp = this.checked && old.awaitingFirstUp;
    this.stateSince = firstWord(this.stateText) === firstWord(old.stateText) ? old.stateSince : performance.now();
  }

  /**
   * The reload that adopted a server commits. Not in adoptRuntime: that runs before the new
   * listeners are bound, and a reload that fails there must leave the running servers as they were.
   * What changed on the running server while the listeners were being bound (an admin drain, a
   * check result, an agent reply) is taken now, or it would be lost with the old config. Connects
   * still under way to the old server report their outcome here from now on, so the run of
   * consecutive errors is taken now too.
   */
  commitAdoption(): void {
    const a = this.adopted;
    if (a === null) return;
    this.adopted = null;
    this.takeState(a.from, a.sameCheck, a.sameAgent);
    this.succeed(a.from);
    this.consecutiveErrors = a.from.consecutiveErrors;
  }

  /**
   * At the commit: this server is the one the running config has for `old` (adopted, or added back
   * at its address while its sessions are open, adoptSessions), so what a connect launched to
   * `old` reports lands here (live).
   */
  succeed(old: Server): void {
    this.lineage = old.lineage;
    this.lineage.live = this;
  }

  /**
   * A name with no address yet is not up: a connect would have to look it up on the connection
   * path, on libuv's four threads, waiting resolv.conf's timeouts during a DNS outage (HAProxy's
   * init-addr: such a server is not used until its name resolves).
   */
  get up(): boolean {
    return (this.family !== 0 || this.commandCheck) && this.health.up && this.agent?.state !== 'down';
  }

  get draining(): boolean {
    return this.admin === 'drain' || this.agent?.state === 'drain';
  }

  get inMaint(): boolean {
    return this.admin === 'maint' || this.agent?.state === 'maint';
  }

  /**
   * HAProxy stops a server's health checks while it is in maintenance: the license service is
   * expected to be down then, and its failed checks would log DOWN, alert and notify for a planned
   * outage. An agent-set MAINT pauses them too (the sidecar says so for the same reason); the
   * auxiliary agent keeps being read, as it is what ends that MAINT. A check of type agent is that
   * agent, so it goes on during an agent-set MAINT.
   */
  get checksPaused(): boolean {
    return this.checked && (this.admin === 'maint' || (this.agent?.state === 'maint' && !this.agentCheck));
  }

  /**
   * In maintenance no check result counts. The same as checksPaused but for a type agent check in
   * the agent's own MAINT: that check goes on, for the agent's word only, as a licgate sidecar says
   * "down maint" all through a maintenance (CheckScheduler).
   */
  get healthPaused(): boolean {
    return this.checked && this.inMaint;
  }

  /** Runtime weight scaled by the agent's percentage (see percentOfWeight). */
  get effectiveWeight(): number {
    const pct = this.agent?.weightPercent;
    return pct == null ? this.weight : percentOfWeight(this.weight, pct);
  }

  /**
   * The same, not made whole (capped at 256): the share a sidecar reports (agent-reply), which
   * HAProxy applies to weights of its own; at weight 1, 50% must read 50%, not the balancer's 1.
   */
  get agentScaledWeight(): number {
    const pct = this.agent?.weightPercent;
    return pct == null ? this.weight : Math.min(LIMITS.maxWeight, (this.weight * pct) / 100);
  }

  /** The agent's maxconn when it gave one (HAProxy `set maxconn server`), else the configured one; 0 is no limit. */
  get maxconn(): number {
    const agent = this.agent;
    return agent !== null && agent.maxconn !== null ? agent.maxconn : this.configuredMaxconn;
  }

  /** May this server take a new connection? */
  get usable(): boolean {
    return this.eligible && !this.full;
  }

  /** At its maxconn: a connection that must reach this server waits for a slot (Backend.enqueueOn). */
  get full(): boolean {
    const max = this.maxconn;
    return max !== 0 && this.active >= max;
  }

  /**
   * May a client whose stick entry names this server still come to it (a FlexLM checkout's vendor
   * connection after its lmgrd one)? A drain or weight 0 stops only new clients: HAProxy sends
   * persistent ones to a DRAIN server, so that work under way finishes before maintenance.
   */
  get servesPersistent(): boolean {
    return this.up && !this.inMaint && !this.standby;
  }

  /**
   * Would be eligible but for its init_state DOWN (awaitingFirstUp): Backend.provisional waits for
   * it. An admin's drain, maint or weight 0 ends that as its check does (see change).
   */
  get awaited(): boolean {
    return this.awaitingFirstUp && !this.draining && !this.inMaint && this.effectiveWeight > 0;
  }

  /** Same as usable but ignoring maxconn: whether the server counts for tier selection. */
  get eligible(): boolean {
    return this.up && !this.draining && !this.inMaint && !this.standby && this.effectiveWeight > 0;
  }

  /**
   * HAProxy stats-page state: MAINT, DRAIN, DRAIN 1/3, UP, UP 1/3, DOWN, DOWN 1/2, or "no check".
   * A drain or maint only the agent set says "(agent)": the admin state is still ready then, and
   * an admin who sees a bare DRAIN would set ready and wonder why the server still gets nothing.
   * A triad standby reads "UP (standby)": healthy (the first word, which metrics and the stats page
   * read, stays the health), and the parenthesis says why it takes nothing, as "(agent)" does.
   */
  get stateText(): string {
    if (this.inMaint) return this.admin === 'maint' ? 'MAINT' : 'MAINT (agent)';
    if (this.family === 0 && !this.commandCheck) return 'DOWN (no address)';
    if (this.agent?.state === 'down') return 'DOWN (agent)';
    if (this.checked && !this.health.up) return this.health.text;
    if (this.standby) return `${this.health.text} (standby)`;
    if (!this.draining) return this.checked ? this.health.text : 'no check';
    if (this.admin !== 'drain') return 'DRAIN (agent)';
    // UP 1/3 while drained: HAProxy's DRAIN 1/3, the failing checks stay visible.
    return this.checked ? this.health.text.replace(/^UP/, 'DRAIN') : 'DRAIN';
  }

  /**
   * stateText for a change's log line, webhook and failover reason: an UP server that takes nothing
   * only for its weight 0 (the admin's, or an agent's 0%) says so, or that change read "UP -> UP".
   */
  get changeText(): string {
    const text = this.stateText;
    return this.up && !this.draining && !this.inMaint && !this.standby && this.effectiveWeight === 0 ? `${text} (weight 0)` : text;
  }

  /** `judge`: a check's verdict in the same change, counted from the health a resumed check starts at. */
  private change(reason: string, mutate: () => void, judge?: () => void): void {
    const from = this.changeText;
    const usableBefore = this.eligible;
    const maxconnBefore = this.maxconn;
    const pausedBefore = this.checksPaused;
    const healthPausedBefore = this.healthPaused;
    const upBefore = this.up && !this.inMaint;
    const awaitedBefore = this.awaited;
    mutate();
    // Leaving maintenance, health is as old as the maintenance: as HAProxy 3.1, the server comes
    // back in its init_state (by default UP with one failure of margin, "start OK but check
    // immediately"; with down, DOWN until a check passes) and is checked at once. An admin's ready
    // under the agent's own MAINT resumes a type agent check, counting nothing yet.
    const resumed = healthPausedBefore && !this.healthPaused;
    if (resumed) this.health.restart(this.initState);
    // UP (leaving MAINT too): a DOWN from now on is a new one, which says what it is confined to.
    if (this.health.up) this.downOnPort = null;
    judge?.();
    if (this.changeText !== from || this.eligible !== usableBefore) {
      if (firstWord(this.stateText) !== firstWord(from)) this.stateSince = performance.now();
      this.onChange(this, from, reason, usableBefore, upBefore && !this.up && !this.inMaint);
    } else if (this.maxconn !== maxconnBefore) {
      this.onCapacity(this);
    }
    // Not only a check: a drain or maint in the window changes no eligibility either (DOWN before
    // and after), and left the backend provisional, announcing its failover at some later change.
    if (awaitedBefore && !this.awaited) this.onJudged(this, reason);
    if (resumed || (pausedBefore && !this.checksPaused)) this.checkNow?.();
  }

  checkSucceeded(result: CheckResult): void {
    this.recordCheck(result);
    this.firstCheckDone = true;
    this.change(result.reason, () => {
      this.health.success();
      if (this.health.up) this.awaitingFirstUp = false;
      this.consecutiveErrors = 0;
      this.standby = result.standby === true;
    });
  }

  /**
   * `ownPortPassed`: only the connect to failedPort failed, the check itself passed. `agent`: what
   * the failed reply of a type agent check says, taken in the same change. Taken first, `down ready`
   * ended the agent's MAINT as UP 1/fall, usable for an instant, and the failure then took it DOWN:
   * a failback and a failover, and a DOWN marked (on_marked_down) for a server that never served.
   * HAProxy too applies the reply's admin word first and leaves maintenance DOWN when its health
   * word says so ("DOWN/READY (leaving forced maintenance)").
   */
  checkFailed(result: CheckResult, ownPortPassed = false, agent?: AgentView): void {
    this.recordCheck(result);
    this.firstCheckDone = true;
    const view = (): void => {
      if (agent !== undefined) this.agent = agent;
    };
    this.change(result.reason, view, () => {
      const wasUp = this.health.up;
      this.health.failure();
      this.awaitingFirstUp = false;
      // A DOWN only the connect to failedPort found (UP out of MAINT, that port still refusing) is
      // that port's, as the passive DOWN that set it was (connectFailed).
      const port = this.failedPort;
      if (ownPortPassed && wasUp && !this.health.up && port !== null && port !== this.address.port) this.downOnPort = port;
    });
    if (!ownPortPassed) this.restLost(result.reason);
  }

  /** A DOWN confined to one port (downOnPort) turns out to be the host's: the sessions it kept are lost too. */
  private restLost(reason: string): void {
    const port = this.downOnPort;
    if (port === null) return;
    this.downOnPort = null;
    this.onRestLost(this, port, reason);
  }

  private recordCheck(result: CheckResult): void {
    this.lastCheck = result;
    // Not a failed check's: "cannot connect to license server" lists no feature, and kept as the
    // last count it gave every feature cut off later "not in license output", full weight.
    if (result.ok && result.license && !result.license.truncated) this.lastWholeLicense = { license: result.license, at: result.at };
  }

  /**
   * A refused/reset/timed-out connect to `port` seen on live traffic (HAProxy `observe layer4`).
   * `alone`: no other server can take new clients (Backend.takesClientsAlone); the errors then do
   * not mark this server DOWN, but still bring its next check forward to fastinter, as every
   * HAProxy `on-error` mode does: with a long `inter`, a dead last server cost each client its
   * connect for `fall` whole intervals.
   */
  connectFailed(reason: string, observeErrors: number, port: number | null = null, alone = false): void {
    // Launched before a reload: a DOWN must reach the server new sessions are placed on.
    if (this.lineage.live !== this) return this.lineage.live.connectFailed(reason, observeErrors, port, alone);
    this.connectErrors++;
    this.consecutiveErrors++;
    if (observeErrors > 0 && this.consecutiveErrors >= observeErrors && this.health.up && this.checked) {
      if (!alone) {
        // The port says which daemon refused: a vendor daemon's, while lmgrd answers the checks.
        this.change(`passive: ${reason}${port === null ? '' : ` on port ${port}`}`, () => {
          this.health.forceDown();
          this.failedPort = port;
          this.downOnPort = port !== null && port !== this.address.port ? port : null;
        });
      }
      this.recheckSoon?.();
    }
  }

  connectSucceeded(): void {
    if (this.lineage.live !== this) return this.lineage.live.connectSucceeded();
    this.consecutiveErrors = 0;
  }

  /** This server, or the one that replaced it by a reload (and so on): the one the running config has. */
  live(): Server {
    return this.lineage.live;
  }

  /**
   * A check found `port` (a failedPort) accepting, or no longer used by live traffic: the checks
   * are the check alone again, unless a connect error on another port set another one meanwhile.
   */
  failedPortCleared(port: number): void {
    const live = this.lineage.live;
    if (live.failedPort === port) live.failedPort = null;
  }

  setAdmin(state: AdminState, reason: string): void {
    this.setAdminAndWeight(state, undefined, reason);
  }

  setWeight(weight: number, reason: string): void {
    this.setAdminAndWeight(undefined, weight, reason);
  }

  /**
   * An admin call that sets both (the API takes them together) is one change: applied one after the
   * other, `ready` with weight 0 on a drained server of the best tier failed back to its tier and
   * over again, each counted, logged and notified, for a call that leaves the server out of service.
   */
  setAdminAndWeight(state: AdminState | undefined, weight: number | undefined, reason: string): void {
    this.change(reason, () => {
      if (state !== undefined) this.admin = state;
      if (weight !== undefined) this.weight = weight;
    });
  }

  setAgent(view: AgentView | null, reason: string): void {
    const downBefore = this.agent?.state === 'down';
    this.change(reason, () => (this.agent = view));
    // Its sidecar says the license service itself is down, as a check failing on the server's own
    // port would: in HAProxy, each vendor backend's server reads that agent and ends its sessions.
    if (view?.state === 'down' && !downBefore && !this.inMaint) this.restLost(reason);
  }
}

const firstWord = (s: string): string => s.split(' ', 1)[0]!;

/**
 * `percent`% of `weight`, for an agent's `N%` and an admin's "N%" alike, as HAProxy 2.6 computes
 * both: a whole number, rounded down, at most 256 (an agent may say up to 25600%; uncapped, that
 * one server took nearly every new connection of its backend). Unlike HAProxy, a percentage above 0
 * of a weight above 0 gives at least 1: HAProxy makes 33% of weight 1 a weight of 0, which takes a
 * license server with free tokens out of service, and two weight-1 servers both told 50% refuse
 * every client. 0% (and weight 0) still give 0.
 */
export function percentOfWeight(weight: number, percent: number): number {
  const w = Math.min(LIMITS.maxWeight, Math.floor((weight * percent) / 100));
  return w === 0 && weight > 0 && percent > 0 ? 1 : w;
}
