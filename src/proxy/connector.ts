import { connect, type Socket } from 'node:net';
import { deadlineList, type DeadlineList, type Expiring } from '../io/deadline-list.js';
import { isLocalResourceError } from '../io/local-errors.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';

export const KEEPALIVE_DELAY_MS = 60_000;

const kConnector = Symbol('licgate.connector');
type AttemptSocket = Socket & { [kConnector]: Connector };

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
  private attempt: Socket | null = null;
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
    if (!server && this.backend.enqueue(this)) {
      // Woken but the freed slot was on a server no longer usable: back in the queue, same deadline.
      this.queueTimer ??= setTimeout(() => this.queueExpired(), this.backend.cfg.queue_timeout);
      return;
    }
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
    }
    if (!server) {
      this.owner.failed({ reason: this.tried ? `all ${this.tried.length} tried servers failed` : 'no usable server', tried: this.tried?.length ?? 0 });
      return;
    }
    this.server = server;
    this.backend.acquire(server, this.clientKey);
    // allowHalfOpen: a server's FIN is forwarded as a half-close; without it Node would end our side
    // to the server at once and the client's later bytes would hit a closed socket (EPIPE → reset).
    // TCP keepalive is armed later by the frontend's sweep (Session.armKeepalive): four setsockopt
    // calls per socket are wasted on the many sessions that last under a second.
    const sock = connect({ host: server.connectHost, port: this.port ?? server.address.port, allowHalfOpen: true, noDelay: true }) as AttemptSocket;
    sock[kConnector] = this;
    this.attempt = sock;
    this.deadlines.add(this);
    sock.once('connect', onAttemptConnect);
    sock.on('error', onAttemptError);
  }

  /** Called by the backend when a slot freed up for this queued connection. */
  wake(): void {
    if (!this.cancelled) this.start();
  }

  private queueExpired(): void {
    this.queueTimer = null;
    this.backend.dequeue(this, true);
    if (!this.cancelled) this.owner.failed({ reason: `no free slot within queue_timeout ${this.backend.cfg.queue_timeout}ms (every server at maxconn)`, tried: this.tried?.length ?? 0 });
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
      this.attempt.destroy();
      this.release();
    }
  }

  private release(): void {
    if (this.attempt) this.deadlines.remove(this);
    if (this.server) this.backend.release(this.server, this.clientKey);
    this.server = null;
    this.attempt = null;
  }

  connected(): void {
    const sock = this.attempt!;
    const server = this.server!;
    this.deadlines.remove(this);
    sock.removeListener('error', onAttemptError);
    server.connectSucceeded();
    server.total++;
    this.attempt = null;
    this.owner.connected(sock, server, this.tried?.length ?? 0);
  }

  /** The connect did not complete within connect_timeout (called by the deadline list). */
  expire(): void {
    this.failAttempt(`connect timeout after ${this.backend.cfg.connect_timeout}ms`);
  }

  errored(err: NodeJS.ErrnoException): void {
    if (isLocalResourceError(err.code)) {
      // Out of descriptors (or local ports) is our problem: counting it against the server would
      // mark healthy license servers DOWN, and every other server would fail the same way.
      this.attempt!.destroy();
      this.release();
      if (!this.cancelled) this.owner.failed({ reason: `licgate cannot open a connection: ${err.code}`, tried: this.tried?.length ?? 0, local: err });
      return;
    }
    this.failAttempt(err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ECONNRESET' ? 'connection reset' : (err.code ?? err.message));
  }

  private failAttempt(reason: string): void {
    const server = this.server!;
    this.attempt!.destroy();
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
  connected(socket: Socket, server: Server, failed: number): void;
  failed(f: ConnectFailure): void;
  attemptFailed(server: Server, reason: string): void;
}

// Shared by every attempt: the socket carries its Connector, so no closures are made per connect.
function onAttemptConnect(this: AttemptSocket): void {
  this[kConnector].connected();
}

function onAttemptError(this: AttemptSocket, err: NodeJS.ErrnoException): void {
  this[kConnector].errored(err);
}
