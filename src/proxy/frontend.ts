import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { FrontendConfig } from '../config/schema.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { KEEPALIVE_ARM_AFTER_MS, Session, type SessionRecord } from './session.js';
import { listenAt } from '../io/listen.js';

export interface FrontendHooks {
  sessionEnded(rec: SessionRecord): void;
  /** A session reached `server` after `retries` failed attempts (counted once, not per chunk). */
  sessionConnected(fe: Frontend, server: Server, retries: number): void;
  attemptFailed(fe: Frontend, server: Server, reason: string): void;
  acceptFailed(fe: Frontend, err: NodeJS.ErrnoException): void;
}

/** A listening port whose connections go to one backend. */
export class Frontend {
  name: string;
  readonly sessions = new Set<Session>();
  /** Accepted clients waiting for a session slot while `maxconn` sessions are open. */
  private readonly waiting: Socket[] = [];
  rejected = 0;
  acceptErrors = 0;
  private readonly server: NetServer;
  private keepaliveSweep: NodeJS.Timeout | null = null;

  /** cfg and backend change on a reload that keeps this listener (see retarget). */
  constructor(public cfg: FrontendConfig, public backend: Backend, readonly hooks: FrontendHooks) {
    this.name = cfg.name;
    // allowHalfOpen: a license client's FIN must reach the server as a half-close, not a full close.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, this.accept);
    // accept() failures (EMFILE, ENFILE) arrive here. libuv keeps a spare descriptor to accept and
    // close the waiting connection, so the listener stays up and recovers once descriptors free up.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      this.acceptErrors++;
      this.hooks.acceptFailed(this, err);
    });
  }

  async listen(): Promise<void> {
    await listenAt(this.server, this.cfg.listen, `frontend "${this.name}"`, 4096);
    this.keepaliveSweep = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) s.armKeepalive(now);
    }, KEEPALIVE_ARM_AFTER_MS);
    this.keepaliveSweep.unref();
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; open sessions continue (server.close's callback waits for them, so it is not used). */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
    if (this.keepaliveSweep) clearInterval(this.keepaliveSweep);
    this.keepaliveSweep = null;
    // Clients still waiting for a session slot would otherwise start sessions during shutdown.
    for (const c of this.waiting.splice(0)) c.destroy();
  }

  /**
   * Reload: the same listener now serves `cfg` and sends new connections to `backend`; the
   * listening socket is not touched and open sessions keep the server they have.
   */
  retarget(cfg: FrontendConfig, backend: Backend): void {
    this.name = cfg.name;
    this.cfg = cfg;
    this.backend = backend;
  }

  abortAll(): void {
    for (const s of this.sessions) s.abort('shutdown');
  }

  sessionEnded(session: Session, rec: SessionRecord): void {
    this.sessions.delete(session);
    this.hooks.sessionEnded(rec);
    let next: Socket | undefined;
    while ((next = this.waiting.shift()) && next.destroyed);
    if (next) this.begin(next);
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Over `maxconn`, HAProxy stops accepting and clients wait in the kernel's backlog. Node cannot
   * pause accept(), so a waiting client is accepted but paused, and not connected upstream, until a
   * session ends — the same from the client's side — for at most the backend's queue_timeout.
   */
  private readonly accept = (client: Socket): void => {
    if (this.cfg.maxconn > 0 && this.sessions.size >= this.cfg.maxconn) {
      if (this.waiting.length >= this.backend.cfg.max_queue) {
        this.rejected++;
        client.destroy();
        return;
      }
      client.pause();
      client.setTimeout(this.backend.cfg.queue_timeout, () => this.giveUp(client));
      client.once('close', () => this.giveUp(client));
      client.on('error', noop);
      this.waiting.push(client);
      return;
    }
    this.begin(client);
  };

  private giveUp(client: Socket): void {
    const i = this.waiting.indexOf(client);
    if (i < 0) return;
    this.waiting.splice(i, 1);
    this.rejected++;
    client.destroy();
  }

  private begin(client: Socket): void {
    client.setTimeout(0);
    client.removeAllListeners('timeout');
    client.removeAllListeners('close');
    const session = new Session(this, client);
    // With no usable server the session may already have ended inside its constructor.
    if (!session.isEnded) this.sessions.add(session);
  }
}

const noop = (): void => {};
