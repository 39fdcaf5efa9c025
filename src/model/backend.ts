import { sameHost } from '../config/address.js';
import type { BackendConfig } from '../config/schema.js';
import type { Balancer } from '../balance/balancer.js';
import { LeastConn } from '../balance/least-conn.js';
import { SmoothRoundRobin } from '../balance/smooth-round-robin.js';
import { SourceHash } from '../balance/source-hash.js';
import { StickTable } from '../balance/stick-table.js';
import { IntrusiveList, type Linked } from '../io/intrusive-list.js';
import { tierLabel, type ModelEvents } from './events.js';
import { Server } from './server.js';

/**
 * A named set of servers in tiers. The best tier with an eligible server serves new connections
 * (with `failback: manual`, the tier in use keeps serving while it can). Inside the tier the
 * balancer picks; a sticky client keeps its server while that server is usable and in the serving tier,
 * or in any tier, drained too, for a second-step connection (see choose).
 */
export class Backend {
  readonly name: string;
  readonly servers: Server[];
  /** Not readonly: a reload hands the running table to the backend that replaces this one. */
  stick: StickTable | null;
  servingTier: number | null = null;
  /** servingTier came from admin.state_file (keepServing) and settle() has not judged it yet. */
  private kept = false;
  /**
   * Serving from a worse tier (or none) only because servers of a better one start DOWN by their
   * init_state and await their first UP (Server.awaited). Their checks decide the start's tier: one
   * that comes UP takes its tier back without an event (else, with `failback: manual`, a primary DOWN
   * only until its first check kept the backup in use for good, and every start was a failover);
   * once none awaits, a tier in use that is not the first is announced as the failover it is
   * (reconsider). Never after keepServing: that tier is an admin's, which manual failback holds.
   */
  provisional = false;
  private readonly tiers: { tier: number; servers: Server[] }[];
  private readonly balancer: Balancer;
  /**
   * Connections waiting for a slot while every eligible server is at its maxconn (FIFO). Linked
   * lists, so that a connection leaving (its client gone, its queue_timeout) is unlinked in O(1):
   * max_queue of them leaving at once searched and spliced an array in time square in its length.
   */
  private readonly queue = new IntrusiveList<QueuePlace>();
  /** Sticky clients waiting for a slot on their own server (HAProxy's per-server queue), FIFO each. */
  private readonly serverQueues = new Map<Server, IntrusiveList<QueuePlace>>();
  queueRejected = 0;
  queueTimeouts = 0;
  /**
   * The backend of this name in the config running now, one cell shared by every backend a reload
   * replaced with it (see adoptSessions). Not a link to the next one: a session held across many
   * reloads kept the backends and servers of every config in between alive through that chain.
   */
  private lineage: { live: Backend } = { live: this };
  /**
   * Servers reloads removed from this backend whose sessions were still open at the last reload:
   * one added back with the same name and address takes their counts (Server.adoptSessions).
   */
  retired: readonly Server[] = [];

  constructor(
    readonly cfg: BackendConfig,
    private readonly events: ModelEvents,
    /**
     * The `server_port` of each frontend that sends clients here (a FlexLM vendor daemon's). With
     * the servers' own ports, the ports live traffic connects to: a Server.failedPort not among
     * them (a reload removed its frontend or moved its port) has no client left to fail.
     */
    readonly stepPorts: readonly number[] = [],
  ) {
    this.name = cfg.name;
    const checked = cfg.check.type !== 'none';
    this.servers = cfg.servers.map(
      (s) => new Server(s, cfg.check.rise, cfg.check.fall, checked, cfg.check.type === 'exec', cfg.check.type === 'agent', (srv, from, reason, usableBefore, markedDown) => this.serverChanged(srv, from, reason, usableBefore, markedDown), () => this.serveQueue(), (srv, port, reason) => this.sessionsLost(srv, null, { port, reason }), (srv, reason) => this.reconsider(`${srv.name} ${srv.changeText}: ${reason}`)),
    );
    const tierNums = [...new Set(this.servers.map((s) => s.tier))].sort((a, b) => a - b);
    this.tiers = tierNums.map((tier) => ({ tier, servers: this.servers.filter((s) => s.tier === tier) }));
    this.balancer = cfg.balance === 'leastconn' ? new LeastConn() : cfg.balance === 'source' ? new SourceHash() : new SmoothRoundRobin();
    this.stick = cfg.stick ? new StickTable(cfg.stick_ttl, cfg.stick_size) : null;
    this.servingTier = this.bestTier();
    this.provisional = this.awaitedAbove();
  }

  /**
   * Whether a second step (a `server_port` frontend) of `clientKey` holds a ticket from the server
   * choose() gives it now, so that it must wait for that server rather than be raced elsewhere:
   * with `stick: source`, while the client has an entry (the server its first step reached); with
   * `balance: source` alone, always (the hash places both steps). Asked before choose(), which
   * makes an entry. A client without one (expired, licgate restarted, table full) has no server
   * its ticket belongs to, and is placed and raced as any connection.
   */
  keepsSecondStep(clientKey: string): boolean {
    return this.stick !== null ? this.stick.get(clientKey) !== undefined : this.cfg.balance === 'source';
  }

  server(name: string): Server | undefined {
    return this.servers.find((s) => s.name === name);
  }

  /**
   * The server for a new connection from `clientKey`, skipping those already tried for it.
   * Tries the serving tier first, then every other tier in order, so a retry can reach the backup.
   * A sticky client's own server comes back even when it is full (up, in the serving tier, at its
   * maxconn): the caller queues on it with enqueueOn rather than placing the client elsewhere,
   * since a FlexLM client's vendor-daemon connection must reach the server its lmgrd one did.
   * A server with an overdue connect (see Server.overdue) is taken only when no other can be,
   * except as the server of a second step's stick entry; with `balance: source` only its overdue
   * first steps count, for both steps.
   *
   * `secondStep`: the connection came to a `server_port` frontend, the second step of a two-port
   * protocol (a FlexLM vendor daemon after lmgrd, an RLM ISV after rlm). The client's entry names
   * the server its first step reached, whose ticket it carries: it is honoured in any tier, as
   * HAProxy honours a stick entry to any usable server, backup or not. Its first step may have
   * overflowed to the backup (primary at maxconn), or the tier may have changed between the two
   * steps (failback); the serving tier's vendor daemon would deny the checkout. For the same reason
   * it is honoured while that server is drained (Server.servesPersistent); a first step is not,
   * as a drain takes no new checkouts.
   */
  choose(clientKey: string, tried: readonly Server[] | null, secondStep = false): Server | null {
    const ok = tried === null ? isUsable : (s: Server) => s.usable && !tried.includes(s);
    let stuck: Server | null = null;
    if (this.stick) {
      const name = this.stick.get(clientKey);
      const s = name === undefined ? undefined : this.server(name);
      // A first step only inside the serving tier: after a failback a client stuck on the backup
      // returns to the recovered active tier on its next lmgrd connection, and the entry follows so
      // that its vendor connection does too. A server that is not usable any more is replaced below
      // and the entry with it.
      if (s && (secondStep || s.tier === this.servingTier) && (ok(s) || (tried === null && (secondStep ? s.servesPersistent : s.eligible)))) stuck = s;
      // A server with an overdue connect is passed over by a first step (lmgrd), which any server
      // can answer, but not by a second step: its ticket is good on this server only, and a server
      // slow to accept (a busy vendor daemon) answers a second later.
      if (stuck !== null && (stuck.overdue === 0 || secondStep)) {
        this.stick.set(clientKey, stuck.name);
        return stuck;
      }
    }
    // A source hash places a client's two steps by its address alone, so both pass over the same
    // servers: one whose first-step (lmgrd) connects are overdue, a host gone silent, but not one
    // whose vendor daemon is only slow to accept, where its clients' vendor connections wait.
    const answers = this.stick === null && this.cfg.balance === 'source' ? isAnsweringFirstSteps : isAnswering;
    // A second step whose entry was honoured returned above; one without (or whose server is down
    // or in maint) has no server that would wait for it, and passes over an overdue one as any.
    const answering = this.pick(tried === null ? answers : (s) => answers(s) && !tried.includes(s), clientKey);
    const chosen = answering ?? stuck ?? this.pick(ok, clientKey);
    if (chosen && this.stick) this.stick.set(clientKey, chosen.name);
    return chosen;
  }

  /** The balancer's pick among the servers that pass `ok`: the serving tier first, then the others in order. */
  private pick(ok: (s: Server) => boolean, clientKey: string): Server | null {
    const serving = this.servingTier;
    let chosen: Server | null = null;
    if (serving !== null) chosen = this.balancer.pick(this.tierServers(serving), ok, clientKey);
    for (let i = 0; chosen === null && i < this.tiers.length; i++) {
      if (this.tiers[i]!.tier !== serving) chosen = this.balancer.pick(this.tiers[i]!.servers, ok, clientKey);
    }
    return chosen;
  }

  /**
   * Whether no other server, in any tier, can take new clients: passive health then does not mark
   * `server` DOWN (Server.connectFailed). It exists to send clients to another server; with none
   * left, one lost SYN (a connect_timeout) marked the last server DOWN and failed every client at
   * once until `rise` checks passed, though it answered the next connect. Its checks still mark it
   * DOWN, as they do any server (HAProxy's default, `on-error fail-check`, counts `error-limit`
   * consecutive errors as one failed check, and also leaves the verdict to the checks). Asked only
   * on a failed connect, not per connection.
   */
  takesClientsAlone(server: Server): boolean {
    return !this.servers.some((s) => s !== server && s.eligible);
  }

  /** A session of `clientKey` took a slot on `server` (its stick entry cannot expire while it is open). */
  acquire(server: Server, clientKey: string): void {
    server.active++;
    this.stick?.sessionOpened(clientKey);
  }

  /**
   * A session of `clientKey` left `server`, acquired from this backend: its slot may let the oldest
   * queued connection go. A session opened before a reload ends here too (its stick count is in this
   * table, which a reload hands on), but its slot frees up in the config running now: the server's
   * connection counts are shared with its successor of the same name, and the queues are there.
   */
  release(server: Server, clientKey: string): void {
    server.active--;
    this.stick?.sessionClosed(clientKey);
    const live = this.live;
    const s = live === this ? server : live.server(server.name);
    // Not when the server is still full (an agent lowered its maxconn below the sessions it holds):
    // the woken connection would only go back to the end of the queue. Its own sticky clients
    // first: they can go nowhere else (a drained server's, second steps, are its only ones).
    if (!s || !takesOwn(s)) return;
    const own = live.serverQueues.get(s);
    if (own) live.serveOwn(s, own);
    if (s.usable) live.wakeQueue();
  }

  /** The backend of this name in the config running now: this one, or the successor a reload put in place. */
  get live(): Backend {
    return this.lineage.live;
  }

  /**
   * Slots appeared without a session ending: a server came up or back from drain/maint, or its
   * agent raised maxconn. Queued connections take them at once, oldest first, as HAProxy's
   * pendconn_grab_from_px / process_srv_queue do, instead of waiting for a release or queue_timeout.
   * A reload calls it too, once the new config is live: it may have added room for the queue it took over.
   */
  serveQueue(): void {
    for (const [server, own] of this.serverQueues) this.serveOwn(server, own);
    this.wakeQueue();
  }

  /**
   * Wakes `server`'s own waiters while it has room. One woken may leave for another server (its
   * client's stick entry moved: a first step from the same address during a drain), leaving the
   * slot to the next; woken one per freed slot, those behind it waited for their queue_timeout.
   */
  private serveOwn(server: Server, own: IntrusiveList<QueuePlace>): void {
    for (let n = own.size; n > 0 && own.size > 0 && takesOwn(server); n--) this.wakeOwn(own);
  }

  /**
   * Wakes the backend queue oldest first while a server has room. A waiter that cannot take it (it
   * already failed on that server) goes back to the end, and the next one gets its turn: waking one
   * per freed slot would leave the slot to new arrivals and the waiters behind to their queue_timeout.
   */
  private wakeQueue(): void {
    for (let n = this.queue.size; n > 0 && this.queue.size > 0 && this.servers.some(isUsable); n--) this.unlink(this.queue.head!).wake();
  }

  private wakeOwn(own: IntrusiveList<QueuePlace>): void {
    this.unlink(own.head!).wake();
  }

  /** Takes `place` out of the queue it is in (and its server's entry with its last waiter); returns its connection. */
  private unlink(place: QueuePlace): QueuedConnect {
    const list = place.list;
    if (list !== null) {
      list.remove(place);
      place.list = null;
      if (list.size === 0 && place.server !== null && this.serverQueues.get(place.server) === list) this.serverQueues.delete(place.server);
    }
    return place.waiter;
  }

  /**
   * A server that left service (down, drain, maint) releases its sticky waiters: like HAProxy's
   * redispatch of a dead server's queue, they are placed again (another server, or the backend queue;
   * a second step comes back to its drained server, see choose).
   */
  private redispatchOwn(server: Server): void {
    const own = this.serverQueues.get(server);
    if (!own) return;
    // Detached first: a waiter placed on this server again joins a queue of its own.
    this.serverQueues.delete(server);
    for (let p = own.head; p !== null; p = own.head) this.unlink(p).wake();
  }

  /** Connections waiting for a slot: in the backend queue and on their sticky servers. */
  get queued(): number {
    let n = this.queue.size;
    for (const own of this.serverQueues.values()) n += own.size;
    return n;
  }

  /**
   * Parks a connection when no server is usable only because every eligible one is full (HAProxy's
   * backend queue). Returns false when that is not the reason, or the queue is at `max_queue`.
   * `tried`: the servers the connection failed on, which a slot there would not help; a server
   * passive health leaves eligible after its connect errors (the last one, takesClientsAlone)
   * parked a client every server had refused for queue_timeout, as though they were full.
   */
  enqueue(waiter: QueuedConnect, tried: readonly Server[] | null = null): boolean {
    if (!this.servers.some((s) => s.eligible && s.maxconn > 0 && (tried === null || !tried.includes(s)))) return false;
    if (this.queued >= this.cfg.max_queue) {
      this.queueRejected++;
      return false;
    }
    this.join(this.queue, null, waiter);
    return true;
  }

  /** Parks a sticky client on its full server (choose returned it); false when the queue is at `max_queue`. */
  enqueueOn(server: Server, waiter: QueuedConnect): boolean {
    if (this.queued >= this.cfg.max_queue) {
      this.queueRejected++;
      return false;
    }
    this.join(this.ownQueue(server), server, waiter);
    return true;
  }

  private ownQueue(server: Server): IntrusiveList<QueuePlace> {
    let own = this.serverQueues.get(server);
    if (!own) this.serverQueues.set(server, (own = new IntrusiveList()));
    return own;
  }

  /** Appends `waiter` (out of any queue: a woken one was unlinked first) to `list`, `server`'s own queue or the backend's. */
  private join(list: IntrusiveList<QueuePlace>, server: Server | null, waiter: QueuedConnect): void {
    const place = (waiter.queuePlace ??= new QueuePlace(waiter));
    place.list = list;
    place.server = server;
    list.push(place);
  }

  /** A queued connection gave up (client left, queue timeout). */
  dequeue(waiter: QueuedConnect, timedOut: boolean): void {
    if (waiter.queuePlace) this.unlink(waiter.queuePlace);
    if (timedOut) this.queueTimeouts++;
  }

  /** STATUS "Running": at least one server UP and not in MAINT (a DRAINed server still counts). */
  get running(): boolean {
    return this.servers.some((s) => s.up && !s.inMaint);
  }

  get upCount(): number {
    let n = 0;
    for (const s of this.servers) if (s.up && !s.inMaint) n++;
    return n;
  }

  /** A server in maintenance counts no check (Server.healthPaused): /ready must not wait for it. */
  get allChecked(): boolean {
    return this.servers.every((s) => s.firstCheckDone || s.healthPaused);
  }

  /**
   * Reload: take over from `old`, the backend of the same name in the running config, after each
   * surviving server adopted its runtime state. Keeps the serving tier (announced by `reconsider`
   * once the new config is live), the balancer's turn and the stick table, also when its ttl or
   * size changed, so a reload neither fails back nor moves a sticky FlexLM client to another server.
   */
  adoptRuntime(old: Backend): void {
    this.adoptSessions(old);
    for (const s of this.servers) s.commitAdoption();
    this.servingTier = old.servingTier;
    this.provisional = old.provisional;
    this.balancer.adopt(old.balancer, (s) => this.server(s.name));
    this.queueRejected = old.queueRejected;
    this.queueTimeouts = old.queueTimeouts;
    if (this.stick && old.stick) {
      this.stick = old.stick;
      for (const s of old.servers) if (!this.server(s.name)) this.stick.forgetServer(s.name, undefined, false);
      this.stick.resize(this.cfg.stick_ttl, this.cfg.stick_size);
    }
  }

  /**
   * Reload: the sessions `old` (the backend of this name in the running config, or one a reload
   * removed: Model.removed) still has end here: each frees its slot in this backend (see release)
   * and counts on a server of the same name and address (adoptServers); the connections queued
   * there wait here. Nothing else carries over to a backend added back: it starts as any backend a
   * reload adds.
   */
  adoptSessions(old: Backend): void {
    this.lineage = old.lineage;
    this.lineage.live = this;
    const holding = old.holdingSessions;
    // A server added back at its address: a connect in flight to the removed one reports to it.
    for (const r of holding) this.servers.find((s) => s.countsWith(r))?.succeed(r);
    // Looked at only here, not when a session ends: a removed server leaves once it has none.
    this.retired = holding.filter((r) => !this.servers.some((s) => s.countsWith(r)));
    // Read no more once replaced. Kept, each retired server (through its backend) held the list its
    // own config had, and so on back: a chain of every config in between while sessions last.
    old.retired = [];
    // Queued connections wait here from now on, in their order: slots free up in this backend (see
    // release), and the reload may be what makes room. A sticky waiter whose server is gone joins
    // the backend queue, to be placed again like a removed server's waiters (redispatchOwn).
    for (let p = old.queue.head; p !== null; p = old.queue.head) this.join(this.queue, null, movedTo(old.unlink(p), this));
    for (const [server, own] of [...old.serverQueues]) {
      const s = this.server(server.name);
      for (let p = own.head; p !== null; p = own.head) {
        const w = movedTo(old.unlink(p), this);
        if (s) this.join(this.ownQueue(s), s, w);
        else this.join(this.queue, null, w);
      }
    }
  }

  /** Its servers, and those reloads removed from it (retired), that have sessions open. */
  get holdingSessions(): Server[] {
    return [...this.retired, ...this.servers].filter((r) => r.active > 0);
  }

  /** Serve from the right tier after a change (failback manual keeps the tier in use while it can serve). */
  reconsider(reason: string): void {
    // As before the change: the server it is about may no longer be awaited now.
    const provisional = this.provisional;
    // A server of the tier in use that awaits its first UP has not failed: a tier an admin kept
    // through a restart (keepServing) is held while its servers start DOWN by their init_state.
    const keep = this.cfg.failback === 'manual' && !provisional && this.servingTier !== null && this.tierServers(this.servingTier).some((s) => s.eligible || s.awaited || this.handingOver(s));
    if (keep) return;
    const to = this.bestTier();
    const from = this.servingTier;
    // The tier the start meant to serve from, once its first check passed: no failover, as it is
    // none when its servers start UP (init_state up) and pass.
    const quiet = provisional && to !== null && (from === null || to < from);
    this.setServing(to, reason, !quiet);
    if (!provisional) return;
    this.provisional = this.awaitedAbove();
    // The start's own tier failed its first checks: serving from another is a failover now, as with
    // init_state up. Unannounced, `failback: manual` held the backup with no line saying so.
    const meant = this.tiers[0]?.tier ?? null;
    if (!this.provisional && (to === from || quiet) && this.servingTier !== meant) {
      this.events.emit('tier-change', { backend: this.name, from: meant, to: this.servingTier, reason: `${tierLabel(meant)} -> ${tierLabel(this.servingTier)}: ${reason}` });
    }
  }

  /** A server of a better tier than the serving one (any, when none serves) awaits its first UP. */
  private awaitedAbove(): boolean {
    const serving = this.servingTier;
    return this.servers.some((s) => (serving === null || s.tier < serving) && s.awaited);
  }

  /**
   * A FlexLM triad's MASTER role moving inside one tier: `s` is a standby whose check names as
   * MASTER another live server of its tier, which licgate holds a standby of `s` until its own
   * check (the scheduler runs that at once). No member takes new clients meanwhile, but the tier has not
   * failed: `failback: manual` must not leave it for the backup tier for good at every handover.
   */
  private handingOver(s: Server): boolean {
    if (!s.up || !s.standby || s.inMaint) return false;
    const master = this.masterOf(s);
    // Each names the other: one of the two checks predates the handover. A MASTER that names a
    // third member, or is no standby and still cannot serve (drained), is not a handover under way.
    return master !== undefined && master.tier === s.tier && master.up && !master.inMaint && master.standby && this.masterOf(master) === s;
  }

  /**
   * The other server a triad standby's last check names as the MASTER: by server name or address
   * host, spelt as lmstat prints it (full or short name, any case), as the verdict matches them.
   */
  masterOf(standby: Server): Server | undefined {
    const host = standby.standby ? standby.lastCheck?.master : undefined;
    if (host === undefined) return undefined;
    return this.servers.find((s) => s !== standby && (sameHost(host, s.name) || sameHost(host, s.address.host)));
  }

  /**
   * Start-up, before the frontends accept: admin.state_file says an admin kept `tier` serving
   * (`failback: manual`, not failed back yet). settle() keeps it if it can serve then.
   */
  keepServing(tier: number): void {
    this.servingTier = tier;
    this.kept = true;
    this.provisional = false;
  }

  /**
   * Start-up, once the server names have their first addresses: the serving tier the constructor
   * would have chosen had they been known then, unless keepServing's tier can serve (as reconsider
   * keeps it). Nothing was announced yet, so no event. Returns the kept tier it gave up, or null.
   */
  settle(): number | null {
    const kept = this.kept ? this.servingTier : null;
    this.kept = false;
    if (kept !== null && this.tierServers(kept).some((s) => s.eligible || s.awaited)) return null;
    this.servingTier = this.bestTier();
    this.provisional = this.awaitedAbove();
    return kept;
  }

  /** Admin action for `failback: manual`: serve from the best tier again. */
  failback(reason: string): void {
    this.setServing(this.bestTier(), reason);
  }

  private tierServers(tier: number): readonly Server[] {
    return this.tiers.find((t) => t.tier === tier)?.servers ?? [];
  }

  /** The tier `failback: auto` serves from: the first with a server that can take new connections. */
  private bestTier(): number | null {
    for (const t of this.tiers) if (t.servers.some((s) => s.eligible)) return t.tier;
    return null;
  }

  private serverChanged(server: Server, from: string, reason: string, usableBefore: boolean, markedDown: boolean): void {
    const usableChanged = usableBefore !== server.eligible;
    this.events.emit('server-state', { backend: this.name, server: server.name, from, to: server.changeText, reason, usableChanged });
    if (usableChanged) this.reconsider(`${server.name} ${server.changeText}: ${reason}`);
    if (usableChanged && server.eligible) this.serveQueue();
    // A drained server keeps the second steps queued on it (see choose) until it is DOWN or in MAINT.
    else if (usableChanged || !server.servesPersistent) this.redispatchOwn(server);
    // Last: new connections already go elsewhere when the clients whose sessions end reconnect.
    if (markedDown) this.sessionsLost(server, server.downOnPort);
  }

  /**
   * on_marked_down: the sessions to `server` are lost, those to `port` only when it is not null;
   * `rest`: those a DOWN confined to a port kept, for a reason found since (Server.restLost).
   */
  private sessionsLost(server: Server, port: number | null, rest: { port: number; reason: string } | null = null): void {
    if (this.cfg.on_marked_down === 'shutdown-sessions') this.events.emit('shutdown-sessions', { backend: this.name, server, port, rest });
  }

  private setServing(tier: number | null, reason: string, announce = true): void {
    if (tier === this.servingTier) return;
    const from = this.servingTier;
    this.servingTier = tier;
    if (announce) this.events.emit('tier-change', { backend: this.name, from, to: tier, reason: `${tierLabel(from)} -> ${tierLabel(tier)}: ${reason}` });
    // Sticky clients wait on their server only inside the serving tier (see choose); a second step
    // placed again comes back to its own server's queue.
    for (const server of [...this.serverQueues.keys()]) if (server.tier !== tier) this.redispatchOwn(server);
  }
}

const isUsable = (s: Server): boolean => s.usable;
const isAnswering = (s: Server): boolean => s.usable && s.overdue === 0;
const isAnsweringFirstSteps = (s: Server): boolean => s.usable && s.overdue === s.secondStepsOverdue;
/** Has a slot for the clients queued on it (enqueueOn): a drained server's second steps too. */
const takesOwn = (s: Server): boolean => s.servesPersistent && !s.full;

export interface QueuedConnect {
  wake(): void;
  /** A reload moved it to `backend`, its backend's successor (see adoptRuntime). */
  movedTo(backend: Backend): void;
  /** Its place in a queue: made by the backend when it first queues, kept after. */
  queuePlace?: QueuePlace | null;
}

/**
 * A queued connection's links in its queue, apart from the connection: a Connector's own links
 * belong to its race timer (a DeadlineList), and a connection that never queues allocates none.
 */
export class QueuePlace implements Linked<QueuePlace> {
  listPrev: QueuePlace | null = null;
  listNext: QueuePlace | null = null;
  /** The queue it is in, null when in none; `server`: whose own queue that is, null for the backend's. */
  list: IntrusiveList<QueuePlace> | null = null;
  server: Server | null = null;
  constructor(readonly waiter: QueuedConnect) {}
}

function movedTo(w: QueuedConnect, backend: Backend): QueuedConnect {
  w.movedTo(backend);
  return w;
}
