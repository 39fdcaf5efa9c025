import { connect, type Socket } from 'node:net';
import { isLocalResourceError } from '../io/local-errors.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';

export const KEEPALIVE_DELAY_MS = 60_000;

export interface ConnectOutcome {
  socket: Socket;
  server: Server;
  /** Servers that failed before this one (for logs and the retries metric). */
  failed: number;
}

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
export class Connector {
  private tried: Server[] | null = null;
  private attempt: Socket | null = null;
  private server: Server | null = null;
  private cancelled = false;
  private queueTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly backend: Backend,
    private readonly clientKey: string,
    private readonly port: number | null,
    private readonly onConnected: (o: ConnectOutcome) => void,
    private readonly onFailed: (f: ConnectFailure) => void,
    private readonly onAttemptFailed: (server: Server, reason: string) => void,
  ) {}

  start(): void {
    const server = this.backend.choose(this.clientKey, this.tried);
    if (!server && this.backend.enqueue(this)) {
      // Woken but the freed slot was on a server no longer usable: back in the queue, same deadline.
      this.queueTimer ??= setTimeout(this.queueExpired, this.backend.cfg.queue_timeout);
      return;
    }
    if (this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
    }
    if (!server) {
      this.onFailed({ reason: this.tried ? `all ${this.tried.length} tried servers failed` : 'no usable server', tried: this.tried?.length ?? 0 });
      return;
    }
    this.server = server;
    this.backend.acquire(server, this.clientKey);
    // allowHalfOpen: a server's FIN is forwarded as a half-close; without it Node would end our side
    // to the server at once and the client's later bytes would hit a closed socket (EPIPE → reset).
    const sock = connect({ host: server.connectHost, port: this.port ?? server.address.port, allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_DELAY_MS });
    this.attempt = sock;
    sock.setTimeout(this.backend.cfg.connect_timeout);
    sock.once('connect', this.connected);
    sock.once('timeout', this.timedOut);
    sock.once('error', this.errored);
  }

  /** Called by the backend when a slot freed up for this queued connection. */
  wake(): void {
    if (!this.cancelled) this.start();
  }

  private readonly queueExpired = (): void => {
    this.queueTimer = null;
    this.backend.dequeue(this, true);
    if (!this.cancelled) this.onFailed({ reason: `no free slot within queue_timeout ${this.backend.cfg.queue_timeout}ms (every server at maxconn)`, tried: this.tried?.length ?? 0 });
  };

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
    if (this.server) this.backend.release(this.server, this.clientKey);
    this.server = null;
    this.attempt = null;
  }

  private readonly connected = (): void => {
    const sock = this.attempt!;
    const server = this.server!;
    sock.setTimeout(0);
    sock.off('timeout', this.timedOut);
    sock.off('error', this.errored);
    server.connectSucceeded();
    server.total++;
    this.attempt = null;
    this.onConnected({ socket: sock, server, failed: this.tried?.length ?? 0 });
  };

  private readonly timedOut = (): void => {
    this.failAttempt(`connect timeout after ${this.backend.cfg.connect_timeout}ms`);
  };

  private readonly errored = (err: NodeJS.ErrnoException): void => {
    if (isLocalResourceError(err.code)) {
      // Out of descriptors (or local ports) is our problem: counting it against the server would
      // mark healthy license servers DOWN, and every other server would fail the same way.
      this.attempt!.destroy();
      this.release();
      if (!this.cancelled) this.onFailed({ reason: `licgate cannot open a connection: ${err.code}`, tried: this.tried?.length ?? 0, local: err });
      return;
    }
    this.failAttempt(err.code === 'ECONNREFUSED' ? 'connection refused' : err.code === 'ECONNRESET' ? 'connection reset' : (err.code ?? err.message));
  };

  private failAttempt(reason: string): void {
    const server = this.server!;
    this.attempt!.destroy();
    this.release();
    if (this.cancelled) return;
    server.connectFailed(reason, this.backend.cfg.observe_errors);
    this.onAttemptFailed(server, reason);
    (this.tried ??= []).push(server);
    if (this.tried.length > this.backend.cfg.retries) {
      this.onFailed({ reason: `${server.name}: ${reason} (after ${this.tried.length} attempts)`, tried: this.tried.length });
      return;
    }
    this.start();
  }
}
