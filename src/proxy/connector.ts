import { lookup } from 'node:dns';
import { errnoError, newConnectReq, newSocketHandle, type ConnectReq, type TcpHandle } from '../io/tcp-handle.js';
import { deadlineList, type DeadlineList, type Expiring } from '../io/deadline-list.js';
import { isLocalResourceError } from '../io/local-errors.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';

export const KEEPALIVE_DELAY_MS = 60_000;

type AttemptReq = ConnectReq & { connector: Connector };

export interface ConnectFailure {
  reason: string;
  tried: number;
  /** Set when licgate itself ran out of a resource (descriptors): no server was at fault. */
  local?: NodeJS.ErrnoException;
}

/**
 * Connects a new session to a server of `backend`, retrying on the next server after a refused,
 * reset or timed-out connect (HAProxy `retries` + `redispatch`). Each failure counts against its
 * server (passive health). The client sees a failure only when every attempt failed.
 */
export class Connector implements Expiring {
  deadline = 0;
  dlPrev: Expiring | null = null;
  dlNext: Expiring | null = null;
  private tried: Server[] | null = null;
  private attempt: TcpHandle | null = null;
  private server: Server | null = null;
  private cancelled = false;
  private queueTimer: NodeJS.Timeout | null = null;
  /** Resolved once: an attempt must leave the very list it joined. */
  private readonly deadlines: DeadlineList;

  constructor(
    private readonly backend: Backend,
    private readonly clientKey: string,
    private readonly port: number | null,
    private readonly owner: ConnectOwner,
  ) {
    this.deadlines = deadlineList(backend.cfg.connect_timeout);
  }

  start(): void {
    const server = this.backend.choose(this.clientKey, this.tried);
    // No free server, or this sticky client's own server is full: wait for a slot. Woken but the
    // slot went to someone else: back in the queue, same deadline.
    const full = server !== null && !server.usable;
    if (full ? this.backend.enqueueOn(server, this) : !server && this.backend.enqueue(this)) {
      this.queueTimer ??= setTimeout(() => this.queueExpired(), this.backend.cfg.queue_timeout);
      return;
    }
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
    }
    if (!server || full) {
      this.owner.failed({ reason: full ? `${server.name} is full and the queue is at max_queue` : this.tried ? `all ${this.tried.length} tried servers failed` : 'no usable server', tried: this.tried?.length ?? 0 });
      return;
    }
    this.server = server;
    this.backend.acquire(server, this.clientKey);
    // TCP keepalive is armed later by the frontend's sweep (Session.everySecond): four setsockopt
    // calls per socket are wasted on the many sessions that last under a second.
    const handle = newSocketHandle();
    handle.setNoDelay(true);
    this.attempt = handle;
    this.deadlines.add(this);
    const host = server.connectHost;
    const port = this.port ?? server.address.port;
    const family = server.connectFamily;
    if (family === 0) this.resolveThenConnect(handle, host, port);
    else this.connect(handle, host, port, family);
  }

  private connect(handle: TcpHandle, host: string, port: number, family: number): void {
    const req = newConnectReq() as AttemptReq;
    req.oncomplete = onAttemptDone;
    req.connector = this;
    const err = family === 6 ? handle.connect6(req, host, port) : handle.connect(req, host, port);
    // A synchronous failure (EMFILE from socket(2), say) is reported like an asynchronous one.
    if (err !== 0) process.nextTick(() => this.done(handle, err));
  }

  /** A server given by name whose address the resolver has not found yet: look it up for this attempt. */
  private resolveThenConnect(handle: TcpHandle, host: string, port: number): void {
    lookup(host, (err, address, family) => {
      if (this.attempt !== handle) return;
      if (err) this.failAttempt(`cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      else this.connect(handle, address, port, family);
    });
  }

  /** Called by the backend when a slot freed up for this queued connection. */
  wake(): void {
    if (!this.cancelled) this.start();
  }

  private queueExpired(): void {
    this.queueTimer = null;
    this.backend.dequeue(this, true);
    if (!this.cancelled) this.owner.failed({ reason: `no free slot within queue_timeout ${this.backend.cfg.queue_timeout}ms (every server, or this client's sticky one, at maxconn)`, tried: this.tried?.length ?? 0 });
  }

  /** The client went away (or asked for STATUS) before we connected. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
      this.backend.dequeue(this, false);
    }
    if (this.attempt) {
      this.attempt.close();
      this.release();
    }
  }

  private release(): void {
    if (this.attempt) this.deadlines.remove(this);
    if (this.server) this.backend.release(this.server, this.clientKey);
    this.server = null;
    this.attempt = null;
  }

  /** The connect request of `handle` completed with `status` (0, or a negative errno). */
  done(handle: TcpHandle, status: number): void {
    // A late answer for an attempt we gave up on (timed out, cancelled): its handle is closed already.
    if (this.attempt !== handle) return;
    if (status !== 0) {
      this.errored(errnoError(status, 'connect'));
      return;
    }
    const server = this.server!;
    this.deadlines.remove(this);
    server.connectSucceeded();
    server.total++;
    this.attempt = null;
    this.owner.connected(handle, server, this.tried?.length ?? 0);
  }

  /** The connect did not complete within connect_timeout (called by the deadline list). */
  expire(): void {
    this.failAttempt(`connect timeout after ${this.backend.cfg.connect_timeout}ms`);
  }

  errored(err: NodeJS.ErrnoException): void {
    if (isLocalResourceError(err.code)) {
      // Out of descriptors (or local ports) is our problem: counting it against the server would
      // mark healthy license servers DOWN, and every other server would fail the same way.
      this.attempt!.close();
      this.release();
      if (!this.cancelled) this.owner.failed({ reason: `licgate cannot open a connection: ${err.code}`, tried: this.tried?.length ?? 0, local: err });
      return;
    }
    this.failAttempt(err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ECONNRESET' ? 'connection reset' : (err.code ?? err.message));
  }

  private failAttempt(reason: string): void {
    const server = this.server!;
    this.attempt!.close();
    this.release();
    if (this.cancelled) return;
    server.connectFailed(reason, this.backend.cfg.observe_errors);
    this.owner.attemptFailed(server, reason);
    (this.tried ??= []).push(server);
    if (this.tried.length > this.backend.cfg.retries) {
      this.owner.failed({ reason: `${server.name}: ${reason} (after ${this.tried.length} attempts)`, tried: this.tried.length });
      return;
    }
    this.start();
  }
}

/** What a Connector reports to (the Session); methods, not per-connection closures. */
export interface ConnectOwner {
  connected(handle: TcpHandle, server: Server, failed: number): void;
  failed(f: ConnectFailure): void;
  attemptFailed(server: Server, reason: string): void;
}

// Shared by every attempt: the request carries its Connector, so no closures are made per connect.
function onAttemptDone(this: AttemptReq, status: number, handle: TcpHandle): void {
  this.connector.done(handle, status);
}
