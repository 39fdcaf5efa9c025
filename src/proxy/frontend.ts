import { isIP, type AddressInfo } from 'node:net';
import { formatHostPort } from '../config/address.js';
import type { FrontendConfig } from '../config/schema.js';
import { ListenError } from '../errors.js';
import { allowListOf, type AllowList } from '../io/allow-list.js';
import { IntrusiveList } from '../io/intrusive-list.js';
import { bindAddress, type BindOptions } from '../io/listen.js';
import { replyAndClose } from '../io/reply-and-close.js';
import { errnoError, newServerHandle, type SockAddr, type TcpHandle } from '../io/tcp-handle.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { renderStatus } from '../serve/status-reply.js';
import { clientAddress, clientText, KEEPALIVE_ARM_AFTER_MS, Session, SNIFF_TIMEOUT_MS, UNKNOWN_CLIENT, type ClientPeer, type SessionRecord, type SessionRoute } from './session.js';
import { SessionList } from './session-list.js';
import { Waiting, type WaitingOwner } from './waiting.js';

export interface FrontendHooks {
  sessionEnded(rec: SessionRecord): void;
  /** A session reached `server` after `retries` failed attempts (counted once, not per chunk). */
  sessionConnected(route: SessionRoute, server: Server, retries: number): void;
  /** `settled`: the session had already connected elsewhere (this attempt lost a race) or was gone. `retrying`: see ConnectOwner. */
  attemptFailed(route: SessionRoute, server: Server, reason: string, settled: boolean, retrying: boolean): void;
  /** A connect to `slow` was unanswered after `afterMs` (connect_race): `next` got an attempt too. */
  attemptRaced(route: SessionRoute, slow: Server, next: Server, afterMs: number): void;
  acceptFailed(fe: Frontend, err: NodeJS.ErrnoException): void;
  /** A client from an address not in the frontend's allow list was reset at accept (counted in rejected.denied). */
  denied(fe: Frontend, client: string): void;
}

/**
 * Why a client was closed without a session: `full` (the wait list was at max_queue), `timeout`
 * (its wait passed queue_timeout), `stopping` (the frontend stopped accepting while it waited: a
 * stop, or its removal by a reload), `denied` (its address is not in the frontend's allow list).
 * The first two say the frontend is short of room; the others are planned, and
 * LicgateFrontendRejecting leaves them out.
 */
export const REJECT_REASONS = ['full', 'timeout', 'stopping', 'denied'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** A listening port whose connections go to one backend. */
export class Frontend implements WaitingOwner {
  name: string;
  readonly sessions = new SessionList<Session>();
  /**
   * Accepted clients waiting for a session slot while `maxconn` sessions are open, oldest first.
   * Linked through the clients so that one leaving is unlinked in O(1): with an array, each of
   * max_queue (10,000) clients leaving at once (a reset storm, a shared queue_timeout) searched and
   * shifted the array, a cost that grows with the square of the wait list.
   */
  private readonly waiting = new IntrusiveList<Waiting>();
  /** admitWaiting is running (see there). */
  private admitting = false;
  readonly rejected: Record<RejectReason, number> = { full: 0, timeout: 0, stopping: 0, denied: 0 };
  acceptErrors = 0;
  private listener: ListenHandle | null = null;
  /** cfg.allow, built for matching: a reload that changes it applies to the next accept (retarget). */
  private allow: AllowList | null;
  /** Keepalive arming and busy-read counting (Session.everySecond), while listening or sessions remain. */
  private secondSweep: NodeJS.Timeout | null = null;
  private idleSweep: NodeJS.Timeout | null = null;

  /** cfg and backend change on a reload that keeps this listener (see retarget). */
  constructor(public cfg: FrontendConfig, public backend: Backend, readonly hooks: FrontendHooks) {
    this.name = cfg.name;
    this.allow = allowListOf(cfg.allow);
  }

  async listen(bind: BindOptions = {}): Promise<void> {
    const at = this.cfg.listen;
    const what = `frontend "${this.name}"`;
    const host = await bindAddress(at, what, bind);
    const handle = newServerHandle() as ListenHandle;
    // Dual-stack on "::" as net.Server has it (flags 0, not UV_TCP_IPV6ONLY); libuv sets SO_REUSEADDR.
    let err = isIP(host) === 6 ? handle.bind6(host, at.port, 0) : handle.bind(host, at.port);
    if (err === 0) err = handle.listen(4096);
    if (err !== 0) {
      handle.close();
      throw new ListenError(what, formatHostPort(at), Object.assign(errnoError(err, 'listen', `${host}:${at.port}`), { address: host }));
    }
    handle[kFrontend] = this;
    handle.onconnection = onConnection;
    this.listener = handle;
    // Listening again after unbind(): its sessions may have kept the sweep running.
    if (this.secondSweep) clearInterval(this.secondSweep);
    this.secondSweep = setInterval(() => {
      const now = performance.now();
      this.sessions.forEach((s) => s.everySecond(now));
    }, KEEPALIVE_ARM_AFTER_MS);
    this.secondSweep.unref();
    this.startIdleSweep();
  }

  /**
   * idle_timeout: a relay that moved no byte for that long is closed. One sweep per frontend
   * instead of a timer per session that every chunk would have to re-arm; it looks four times per
   * timeout, so a session is closed between 1 and 1.25 idle_timeouts of silence.
   */
  private startIdleSweep(): void {
    if (this.idleSweep) clearInterval(this.idleSweep);
    this.idleSweep = null;
    const timeout = this.cfg.idle_timeout;
    if (timeout <= 0 || this.listener === null) return;
    const tick = Math.max(25, Math.min(1000, Math.floor(timeout / 4)));
    this.idleSweep = setInterval(() => {
      this.sessions.forEach((s) => s.idleTick(tick, timeout));
    }, tick);
    this.idleSweep.unref();
  }

  private stopSweepsIfDone(): void {
    if (this.listener !== null || this.sessions.size > 0) return;
    if (this.idleSweep) clearInterval(this.idleSweep);
    if (this.secondSweep) clearInterval(this.secondSweep);
    this.idleSweep = null;
    this.secondSweep = null;
  }

  address(): AddressInfo {
    const out: SockAddr = {};
    this.listener?.getsockname(out);
    return { address: out.address ?? '', family: out.family ?? '', port: out.port ?? 0 };
  }

  /**
   * Closes the listening socket only: a reload that moves its port to another listener closes it
   * before that one binds, and listens again if the reload is refused. Waiting clients stay.
   */
  unbind(): void {
    this.listener?.close();
    this.listener = null;
  }

  /** Stops accepting; open sessions continue. Returns how many waiting clients were closed. */
  stopAccepting(): number {
    this.unbind();
    // The sweeps serve open sessions until the last one ends (sessionEnded stops them then).
    this.stopSweepsIfDone();
    // Clients still waiting for a session slot would otherwise start sessions during shutdown.
    // They are turned away like those whose wait timed out: every accepted client is counted once.
    const dropped = this.waiting.size;
    this.rejected.stopping += dropped;
    for (let w = this.waiting.head; w !== null; w = this.waiting.head) {
      this.waiting.remove(w);
      w.drop();
    }
    return dropped;
  }

  /**
   * Reload: the same listener now serves `cfg` and sends new connections to `backend`; the
   * listening socket is not touched and open sessions keep the server they have (and get the new
   * idle_timeout).
   */
  retarget(cfg: FrontendConfig, backend: Backend): void {
    this.name = cfg.name;
    this.cfg = cfg;
    this.backend = backend;
    this.allow = allowListOf(cfg.allow);
    this.startIdleSweep();
  }

  /** Reload, after retarget: its sessions waiting on another backend than `backend` (queued, or in a turn-around) move to it (Session.followFrontend). */
  placeQueued(): void {
    this.sessions.forEach((s) => s.followFrontend());
  }

  /**
   * Reload: this frontend was removed. Its sessions still waiting (queued for a server slot, or in
   * the turn-around before a retry) are closed as its waiting clients are (`stopping`): nothing
   * sends its clients anywhere any more. Returns how many.
   */
  closeQueued(): number {
    let closed = 0;
    this.sessions.forEach((s) => {
      if (!s.closeQueued()) return;
      this.sessions.delete(s);
      closed++;
    });
    this.rejected.stopping += closed;
    return closed;
  }

  abortAll(): void {
    this.sessions.forEach((s) => s.abort('shutdown'));
  }

  /**
   * Closes the sessions relaying to `server` (on_marked_down, or an admin's shutdown-sessions), with
   * `port` those relaying to that port only (Session.endIfTo); returns how many.
   */
  endSessionsTo(server: Server, end: 'server-down' | 'admin', port: number | null = null): number {
    let n = 0;
    this.sessions.forEach((s) => {
      if (s.endIfTo(server, end, port)) n++;
    });
    return n;
  }

  sessionEnded(session: Session, rec: SessionRecord): void {
    this.sessions.delete(session);
    this.stopSweepsIfDone();
    this.hooks.sessionEnded(rec);
    this.admitWaiting();
  }

  /** Waiting clients take the session slots free under maxconn, oldest first (also after a reload changed it). */
  admitWaiting(): void {
    // With no usable server a session ends inside begin(), and its end calls this again: the loop
    // below admits the next client instead, or a long wait list overflowed the stack (a crash).
    if (this.admitting) return;
    this.admitting = true;
    try {
      for (let w = this.waiting.head; w !== null && (this.cfg.maxconn === 0 || this.sessions.size < this.cfg.maxconn); w = this.waiting.head) {
        this.waiting.remove(w);
        this.begin(w.take(), w.peer, w.early, w.eof);
      }
    } finally {
      this.admitting = false;
    }
  }

  get queued(): number {
    return this.waiting.size;
  }

  /**
   * Over `maxconn`, HAProxy stops accepting and clients wait in the kernel's backlog. libuv cannot
   * pause accept(), so a waiting client is accepted but not connected upstream until a session
   * ends — the same from the client's side — for at most the backend's queue_timeout. It is read
   * meanwhile: an in-band STATUS request is answered, a client that gives up leaves, other bytes
   * are kept for its session (see Waiting).
   */
  accept(client: TcpHandle): void {
    const peer = clientAddress(client);
    if (peer === null) {
      // Reset before it was accepted: nobody is left to serve, so no server is picked or connected
      // (nor a place in the queue taken). Counted and logged as a waiting client that leaves is.
      client.close();
      this.unserved(UNKNOWN_CLIENT, 0, 0, 'client-gone');
      return;
    }
    if (this.allow !== null && !this.allow.admits(peer.key)) {
      // A reset, as HAProxy's `tcp-request connection reject` sends: the client fails at once
      // instead of reading an end of stream, and licgate keeps no TIME_WAIT for it.
      this.rejected.denied++;
      if (client.reset() !== 0) client.close();
      this.hooks.denied(this, peer.key);
      return;
    }
    if (this.cfg.maxconn > 0 && this.sessions.size >= this.cfg.maxconn) {
      if (this.waiting.size >= this.backend.cfg.max_queue) {
        this.rejected.full++;
        client.close();
        return;
      }
      this.waiting.push(new Waiting(this, client, peer, this.backend.cfg.queue_timeout));
      return;
    }
    this.begin(client, peer);
  }

  get inbandStatus(): boolean {
    return this.cfg.inband_status;
  }

  /** A waiting client's queue_timeout expired. */
  giveUp(w: Waiting): void {
    if (!this.unqueue(w)) return;
    this.rejected.timeout++;
    w.drop();
  }

  statusWhileWaiting(w: Waiting): void {
    if (!this.unqueue(w)) return;
    // The handle now belongs to the reply. Logged and counted as a STATUS session answered at once.
    this.waiterEnded(w, 'status', replyAndClose(w.client, renderStatus(this.backend), SNIFF_TIMEOUT_MS));
  }

  leftWhileWaiting(w: Waiting): void {
    if (!this.unqueue(w)) return;
    w.drop();
    // Logged and counted as a session whose client left before a server answered: every accepted client is counted once.
    this.waiterEnded(w, 'client-gone');
  }

  /** `bytesOut`: licgate's own STATUS reply. */
  private waiterEnded(w: Waiting, end: 'status' | 'client-gone', bytesOut = 0): void {
    this.unserved(clientText(w.peer.key, w.peer.port), w.early?.length ?? 0, Math.round(performance.now() - w.since), end, bytesOut);
  }

  /** A client that ended before it had a session: no server, nothing sent to it but licgate's own reply. */
  private unserved(client: string, bytesIn: number, durationMs: number, end: 'status' | 'client-gone', bytesOut = 0): void {
    this.hooks.sessionEnded({
      client,
      frontend: this.name,
      backend: this.backend.name,
      server: null,
      bytes_in: bytesIn,
      bytes_out: bytesOut,
      duration_ms: durationMs,
      end,
      retries: 0,
    });
  }

  private unqueue(w: Waiting): boolean {
    if (!this.waiting.has(w)) return false;
    this.waiting.remove(w);
    return true;
  }

  acceptFailed(status: number): void {
    // libuv keeps a spare descriptor to accept and close the waiting connection on EMFILE, so the
    // listener stays up and recovers once descriptors free up.
    this.acceptErrors++;
    this.hooks.acceptFailed(this, errnoError(status, 'accept'));
  }

  private begin(client: TcpHandle, peer: ClientPeer, early: Buffer | null = null, eof = false): void {
    const session = new Session(this, client, peer, early, eof);
    // With no usable server the session may already have ended inside its constructor.
    if (!session.isEnded) this.sessions.add(session);
  }
}

const kFrontend = Symbol('licgate.frontend');
type ListenHandle = TcpHandle & { [kFrontend]: Frontend };

function onConnection(this: ListenHandle, status: number, client?: TcpHandle): void {
  if (status !== 0 || !client) this[kFrontend].acceptFailed(status);
  else this[kFrontend].accept(client);
}
