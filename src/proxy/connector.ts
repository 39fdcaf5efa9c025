import { errnoError, newConnectReq, newSocketHandle, type ConnectReq, type TcpHandle } from '../io/tcp-handle.js';
import { deadlineList, type DeadlineList, type Expiring } from '../io/deadline-list.js';
import { isLocalResourceError } from '../io/local-errors.js';
import type { Backend, QueuePlace } from '../model/backend.js';
import type { Server } from '../model/server.js';

export const KEEPALIVE_DELAY_MS = 60_000;

type AttemptReq = ConnectReq & { attempt: Attempt };

export interface ConnectFailure {
  reason: string;
  tried: number;
  /** Set when licgate itself ran out of a resource (descriptors): no server was at fault. */
  local?: NodeJS.ErrnoException;
}

/**
 * One connect to one server. An attempt that lost a race stays open until its own answer or
 * connect_timeout, so that a black-holed server is still seen timing out (passive health) and a
 * slow one still counts as answering; then it is closed unused.
 */
class Attempt implements Expiring {
  deadline = 0;
  listPrev: Expiring | null = null;
  listNext: Expiring | null = null;
  /** The connector's other attempts still under way (a short list: at most retries + 1). */
  next: Attempt | null = null;
  open = true;
  /** Still unanswered after its race delay: counted in its server's `overdue` until it settles. */
  overdue = false;

  constructor(
    readonly connector: Connector,
    readonly server: Server,
    readonly handle: TcpHandle,
    /** Where it took its slot, and the connect_timeout list it joined: a reload may move its connector meanwhile (Connector.follow). */
    readonly backend: Backend,
    readonly deadlines: DeadlineList,
  ) {}

  /** No answer within connect_timeout (called by the deadline list). */
  expire(): void {
    this.connector.attemptFailed(this, `connect timeout after ${this.deadlines.ms}ms`, true, true);
  }
}

/**
 * Connects a new session to a server of `backend`, retrying on the next server after a refused,
 * reset or timed-out connect (HAProxy `retries` + `redispatch`). Each failure counts against its
 * server (passive health). The client sees a failure only when every attempt failed. With no
 * server left that it has not tried, a retry goes to the one that failed, as HAProxy's `retries`
 * do (see again); a kept second step always retries its own server.
 *
 * A connect still unanswered after the backend's `connect_race` (longer for a server whose connects
 * are usually slower, see ConnectTime) is raced: the next server gets an attempt of its own while
 * the first goes on, and whichever connects first takes the session. These are the staggered
 * attempts of RFC 8305 (Happy Eyeballs, 250 ms), across servers instead of addresses: a black-holed
 * server costs a new client that delay rather than connect_timeout, and a server that lost one SYN
 * (answered after Linux's 1 s retransmit) is neither marked down nor waited for. Every attempt,
 * raced or retried, comes out of the `retries` budget. No bytes are sent before the connect
 * completes, so the server that loses the race sees a connection opened and closed, nothing more.
 * While a server has a connect that is overdue like this, choose() passes it over for new sessions
 * (Server.overdue), so they do not each wait the race delay until the server is marked DOWN.
 */
export class Connector implements Expiring {
  /** Links for the race timer (the attempts have their own, for connect_timeout). */
  deadline = 0;
  listPrev: Expiring | null = null;
  listNext: Expiring | null = null;
  /** Attempts under way, newest first (null: none). */
  private attempts: Attempt | null = null;
  private launched = 0;
  private failures = 0;
  /** The first attempt's server; `skip` starts from it once a second server is wanted. */
  private firstServer: Server | null = null;
  /** Servers already attempted, for choose(); made only when a retry or race needs one. */
  private skipped: Server[] | null = null;
  /** The owner was told (connected or failed): attempts still under way only report to their servers. */
  private settled = false;
  private cancelled = false;
  /** A second step bound to its first server by the client's ticket (Backend.keepsSecondStep): never raced. */
  private kept = false;
  /**
   * The server whose connect failed last, retried when no other is left (or, kept, always): a
   * fresh SYN from a new source port often passes where one was dropped. Set only on a failure.
   */
  private again: Server | null = null;
  /**
   * HAProxy's turn-around before a retry on the same server after a refused or reset connect,
   * min(connect_timeout, 1 s): a refused port is a daemon restarting, and retrying at once would
   * only spend the budget. None after a timeout, whose time is spent already. While it runs no
   * attempt is under way, so it uses the race timer's links (expire tells them apart).
   */
  private turnaround = 0;
  private queueTimer: NodeJS.Timeout | null = null;
  /** Its links in a backend queue, made by the backend the first time it queues. */
  queuePlace: QueuePlace | null = null;
  /** The connect_timeout list of the attempts launched from now on (each keeps the one it joined). */
  private deadlines: DeadlineList;
  /** The race timer's list while it is armed (one list per delay value). */
  private raceList: DeadlineList | null = null;

  constructor(
    /** Where this connection takes its slot: the session's backend, or its successor once a reload moved it (movedTo). */
    public backend: Backend,
    private readonly clientKey: string,
    /** The frontend's `server_port` when this connection came (null: the server's own port). */
    readonly port: number | null,
    private readonly owner: ConnectOwner,
  ) {
    this.deadlines = deadlineList(backend.cfg.connect_timeout);
  }

  start(): void {
    if (this.port !== null && this.launched === 0) this.kept = this.backend.keepsSecondStep(this.clientKey);
    // Null on a first attempt: nothing more is looked at on the success path. Full or not: a full
    // one is waited for (retryAgain).
    const again = this.again !== null && (this.again.eligible || (this.kept && this.again.servesPersistent)) ? this.again : null;
    const server = this.kept && again !== null ? again : this.backend.choose(this.clientKey, this.skipped, this.port !== null);
    // No free server, or this sticky client's own server is full: wait for a slot. Woken but the
    // slot went to someone else: back in the queue, same deadline. Not usable but with room: a
    // second step's drained server (see Backend.choose).
    const full = server !== null && server.full;
    if (full ? this.backend.enqueueOn(server, this) : !server && this.backend.enqueue(this, this.skipped)) {
      this.waitForSlot();
      return;
    }
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
    }
    if (again !== null && (server === null || (server === again && !full))) {
      this.retryAgain(again);
      return;
    }
    if (!server || full) {
      // `failures` counts attempts, and a server may have had several (see again).
      this.fail({ reason: full ? `${server.name} is full and the queue is at max_queue` : this.failures ? `all tried servers failed (${this.failures} attempt${this.failures === 1 ? '' : 's'})` : 'no usable server', tried: this.failures });
      return;
    }
    this.launch(server);
  }

  /** A retry on the server that failed: after the turn-around if one is due (see turnaround). */
  private retryAgain(server: Server): void {
    const delay = this.turnaround;
    if (delay > 0) {
      this.turnaround = 0;
      this.raceList = deadlineList(delay);
      this.raceList.add(this);
      return;
    }
    // Its slot went to another client meanwhile: the retry waits in the server's own queue, as
    // HAProxy's does (assign_server_and_queue), rather than failing a client with retries left.
    if (server.full) {
      if (this.backend.enqueueOn(server, this)) this.waitForSlot();
      else this.fail({ reason: `${server.name} is full and the queue is at max_queue`, tried: this.failures });
      return;
    }
    this.launch(server);
  }

  private waitForSlot(): void {
    this.queueTimer ??= setTimeout(() => this.queueExpired(), this.backend.cfg.queue_timeout);
  }

  private launch(server: Server): void {
    if (this.launched++ === 0) this.firstServer = server;
    else if (!this.skipped!.includes(server)) this.skipped!.push(server);
    this.backend.acquire(server, this.clientKey);
    // TCP keepalive is armed later by the frontend's sweep (Session.everySecond): four setsockopt
    // calls per socket are wasted on the many sessions that last under a second.
    const handle = newSocketHandle();
    handle.setNoDelay(true);
    const a = new Attempt(this, server, handle, this.backend, this.deadlines);
    a.next = this.attempts;
    this.attempts = a;
    this.deadlines.add(a);
    this.armRace(server);
    // Nothing is looked up on the connection path: a server whose name has no address yet is not
    // usable (Server.up), except one a command checks, and that one fails over at once. It stays
    // eligible (a sidecar knows its license host by the license file's name, which lmstat resolves
    // and licgate may not: its tier and usable-server alerts follow the command), so the session
    // moves on without charging a connect that was never made to the server, its metrics or its log.
    const host = server.connectHost;
    const family = server.connectFamily;
    if (family === 0) {
      process.nextTick(() => {
        if (a.open) this.attemptFailed(a, server.noAddressReason, false);
      });
      return;
    }
    const port = this.port ?? server.address.port;
    const req = newConnectReq() as AttemptReq;
    req.oncomplete = onAttemptDone;
    req.attempt = a;
    const err = family === 6 ? handle.connect6(req, host, port) : handle.connect(req, host, port);
    // A synchronous failure (EMFILE from socket(2), say) is reported like an asynchronous one.
    if (err !== 0) process.nextTick(() => this.done(a, err));
  }

  /** The servers not to choose again: every one attempted so far. */
  private skip(): Server[] {
    return (this.skipped ??= [this.firstServer!]);
  }

  // --- racing

  /**
   * Arms the race timer for the attempt just launched on `server`. Also with the retries budget
   * spent: the timer then only marks the attempt overdue, which steers new sessions elsewhere.
   */
  private armRace(server: Server): void {
    this.stopRace();
    const floor = this.backend.cfg.connect_race;
    if (floor === 0) return;
    const delay = server.connectTime.raceDelay(floor);
    if (delay >= this.deadlines.ms) return;
    this.raceList = deadlineList(delay);
    this.raceList.add(this);
  }

  private stopRace(): void {
    if (this.raceList === null) return;
    this.raceList.remove(this);
    this.raceList = null;
  }

  /** The newest attempt is still unanswered after its race delay, or the turn-around is over (called by the deadline list). */
  expire(): void {
    const waited = this.raceList!.ms;
    this.raceList = null;
    if (this.attempts === null) {
      // The turn-around is over (a client gone meanwhile stopped it: cancel). A reload meanwhile
      // applies (follow), and a server that can take the client now and was not tried goes first.
      if (this.settled || this.cancelled) return;
      this.follow();
      this.start();
      return;
    }
    // The newest attempt under way: the timer was armed at its launch (or at a newer one's that has
    // failed since). An older attempt was marked when its own timer fired, unless a failure's
    // immediate retry re-armed the timer first; that rare one is not counted.
    const a = this.attempts;
    if (a !== null && !a.overdue) {
      a.overdue = true;
      a.server.overdue++;
      if (this.port !== null) a.server.secondStepsOverdue++;
    }
    this.race(waited);
  }

  /** Starts an attempt on the next server next to those under way, if the budget and a free server allow. */
  private race(waited: number): void {
    if (this.settled || this.cancelled || this.attempts === null) return;
    this.follow();
    if (this.launched > this.backend.cfg.retries) return;
    // A vendor-daemon connection carries the ticket its lmgrd connection got from the server the
    // client is kept on, which no other vendor daemon accepts: raced, a slow accept (one SYN
    // retransmit) became a denied checkout. It waits for its server; the timer still marked it overdue.
    if (this.kept) return;
    // Only a server with a free slot: a race does not queue (the attempts under way may still win).
    const next = this.backend.choose(this.clientKey, this.skip(), this.port !== null);
    if (next === null || !next.usable) return;
    if (waited > 0) this.owner.attemptRaced(this.attempts!.server, next, waited);
    this.launch(next);
  }

  // --- outcomes

  /** Called by the backend when a slot freed up for this queued connection. */
  wake(): void {
    if (!this.cancelled) this.start();
  }

  /**
   * A reload handed this queued connection to `backend`, the old one's successor (or follow() found
   * one before a retry or race, or placeOn the backend its frontend sends clients to now): the
   * servers it tried are the successor's of the same names, none of another backend's, and the new
   * connect_timeout applies to the attempts it launches from now on. A queued connection's
   * queue_timeout keeps running from when it first queued.
   */
  movedTo(backend: Backend): void {
    // A successor's s1 is the same license server; another backend's s1 is not (placeOn).
    const successor = this.backend.live === backend;
    this.backend = backend;
    this.deadlines = deadlineList(backend.cfg.connect_timeout);
    // Every server tried, the first one too (skip() lists it only once a second one is wanted).
    if (this.launched > 0) this.skipped = successor ? this.skip().flatMap((s) => backend.server(s.name) ?? []) : [];
    // Another backend's server of that name is not the one that failed.
    if (this.again !== null) this.again = successor ? (backend.server(this.again.name) ?? null) : null;
  }

  /** Waiting in a backend queue for a slot (the queue_timeout runs only then). */
  get queued(): boolean {
    return this.queueTimer !== null;
  }

  /**
   * No attempt under way, none launched until a slot frees or the turn-around ends: a reload treats
   * it as a queued connection (placeOn, or closed with its frontend), not as one whose connect is
   * in flight, which ends where it went.
   */
  get waiting(): boolean {
    return this.queueTimer !== null || (this.attempts === null && this.raceList !== null && !this.settled && !this.cancelled);
  }

  /**
   * Reload: this waiting connection's frontend sends its clients to `backend` now (another backend,
   * or one a reload added back). It leaves the queue or turn-around it is in and is placed there as
   * a new one would be: connected at once where there is room, else queued, its queue_timeout
   * running on.
   */
  placeOn(backend: Backend): void {
    // In the turn-around: another backend's server of that name is not the one to retry (movedTo).
    this.stopRace();
    this.backend.dequeue(this, false);
    this.movedTo(backend);
    this.start();
  }

  /**
   * Before a retry or a race chooses a server: when a reload replaced the backend since this
   * connection started, the next server comes from the config running now, as for a queued one
   * (movedTo), not from the old one, where a server the reload removed or put in maint or drain is
   * still usable. The attempts under way end on the backend they took their slot from.
   */
  private follow(): void {
    const live = this.backend.live;
    if (live !== this.backend) this.movedTo(live);
  }

  private queueExpired(): void {
    this.queueTimer = null;
    this.backend.dequeue(this, true);
    if (!this.cancelled) this.fail({ reason: `no free slot within queue_timeout ${this.backend.cfg.queue_timeout}ms (every server, or this client's sticky one, at maxconn)`, tried: this.failures });
  }

  /** The client went away (or asked for STATUS) before we connected. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.stopRace();
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
      this.backend.dequeue(this, false);
    }
    // Once settled, the attempts left are race losers: they finish on their own, for health's sake.
    if (this.settled) return;
    while (this.attempts !== null) this.drop(this.attempts);
  }

  /** The connect request of `a` completed with `status` (0, or a negative errno). */
  done(a: Attempt, status: number): void {
    // A late answer for an attempt we gave up on (timed out, cancelled): its handle is closed already.
    if (!a.open) return;
    if (status !== 0) {
      this.errored(a, errnoError(status, 'connect'));
      return;
    }
    const server = a.server;
    server.connectSucceeded();
    // The attempt joined its deadline list at deadline - timeout: no clock read at launch.
    server.connectTime.sample(a.deadlines.elapsed(a));
    if (this.settled || this.cancelled) {
      // It lost the race (or the client left): the server answered, which is all it had to say.
      this.drop(a);
      return;
    }
    a.deadlines.remove(a);
    this.unlink(a);
    this.settled = true;
    this.stopRace();
    // Launched before a reload that follow() has moved this connector past: the session releases
    // its slot where the attempt acquired it (Session.backend).
    this.backend = a.backend;
    server.total++;
    // choose() moved a sticky client's entry to each server it raced; the session is on this one.
    if (this.launched > 1) this.backend.stick?.set(this.clientKey, server.name);
    this.owner.connected(a.handle, server, this.failures);
  }

  private errored(a: Attempt, err: NodeJS.ErrnoException): void {
    if (isLocalResourceError(err.code)) {
      // Out of descriptors (or local ports) is our problem: counting it against the server would
      // mark healthy license servers DOWN, and every other server would fail the same way.
      this.drop(a);
      if (!this.settled && !this.cancelled && this.attempts === null) this.fail({ reason: `licgate cannot open a connection: ${err.code}`, tried: this.failures, local: err });
      return;
    }
    this.attemptFailed(a, err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ECONNRESET' ? 'connection reset' : (err.code ?? err.message));
  }

  /**
   * `attempted`: false when no connect was made (the server has no address), which is not the
   * server's error. `timedOut`: no answer within connect_timeout, rather than a refusal or reset.
   */
  attemptFailed(a: Attempt, reason: string, attempted = true, timedOut = false): void {
    const server = a.server;
    this.drop(a);
    const settled = this.settled || this.cancelled;
    if (attempted) {
      // The running config's observe_errors: the error counts on the server it has (Server.connectFailed).
      const live = this.backend.live;
      server.connectFailed(reason, live.cfg.observe_errors, this.port ?? server.address.port, live.takesClientsAlone(server.live()));
      // The budget is the running config's, as the retry's is (follow).
      this.owner.attemptFailed(server, reason, settled, !settled && this.launched <= live.cfg.retries);
    }
    if (settled) return;
    this.failures++;
    this.follow();
    if (this.attempts !== null) {
      // Another attempt is still under way: the next server starts now (a failure does not wait for
      // the race delay), or, with the budget spent, the attempts under way have the last word.
      this.race(0);
      return;
    }
    this.stopRace();
    if (this.launched > this.backend.cfg.retries) {
      this.fail({ reason: `${server.name}: ${reason} (after ${this.launched} attempts)`, tried: this.failures });
      return;
    }
    this.skip(); // from here on, choose() passes over every server tried
    // The running config's server of that name (a reload may have come between). Its connect
    // error was counted above as HAProxy counts each failed attempt (health_adjust); one that
    // marked it DOWN leaves it unusable, and it is not retried (start).
    this.again = attempted ? (a.backend === this.backend ? server : (this.backend.server(server.name) ?? null)) : null;
    this.turnaround = attempted && !timedOut ? Math.min(this.backend.cfg.connect_timeout, 1000) : 0;
    this.start();
  }

  private fail(f: ConnectFailure): void {
    this.settled = true;
    this.stopRace();
    this.owner.failed(f);
  }

  /** Closes an attempt and gives its slot back. */
  private drop(a: Attempt): void {
    a.open = false;
    a.deadlines.remove(a);
    a.handle.close();
    a.backend.release(a.server, this.clientKey);
    this.unlink(a);
  }

  /** Takes `a` off the attempts under way: it connected, failed or was closed. */
  private unlink(a: Attempt): void {
    if (a.overdue) {
      a.overdue = false;
      a.server.overdue--;
      if (this.port !== null) a.server.secondStepsOverdue--;
    }
    if (this.attempts === a) this.attempts = a.next;
    else for (let p = this.attempts; p !== null; p = p.next) if (p.next === a) p.next = a.next;
    a.next = null;
  }
}

/** What a Connector reports to (the Session); methods, not per-connection closures. */
export interface ConnectOwner {
  connected(handle: TcpHandle, server: Server, failed: number): void;
  failed(f: ConnectFailure): void;
  /**
   * `settled`: the session had connected elsewhere (a race loser) or was gone; nothing is retried
   * for it. `retrying`: its `retries` allow another attempt (the next server, or this one when none
   * is left); false and not settled: it has only the attempts under way, if any.
   */
  attemptFailed(server: Server, reason: string, settled: boolean, retrying: boolean): void;
  /** The connect to `slow` was unanswered after `afterMs`: `next` gets an attempt too. */
  attemptRaced(slow: Server, next: Server, afterMs: number): void;
}

// Shared by every attempt: the request carries its Attempt, so no closures are made per connect.
function onAttemptDone(this: AttemptReq, status: number): void {
  this.attempt.connector.done(this.attempt, status);
}
