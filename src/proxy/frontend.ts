import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { formatHostPort } from '../config/address.js';
import type { FrontendConfig } from '../config/schema.js';
import { ListenError } from '../errors.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { Session, type SessionRecord } from './session.js';

export interface FrontendHooks {
  sessionEnded(rec: SessionRecord): void;
  attemptFailed(fe: Frontend, server: Server, reason: string): void;
}

/** A listening port whose connections go to one backend. */
export class Frontend {
  readonly name: string;
  readonly sessions = new Set<Session>();
  private readonly server: NetServer;

  constructor(readonly cfg: FrontendConfig, readonly backend: Backend, readonly hooks: FrontendHooks) {
    this.name = cfg.name;
    // allowHalfOpen: a license client's FIN must reach the server as a half-close, not a full close.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, this.accept);
    if (cfg.maxconn > 0) this.server.maxConnections = cfg.maxconn;
    this.server.on('error', () => {
      // Accept errors such as EMFILE surface here; the listener keeps running and Node retries.
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError(`frontend "${this.name}"`, formatHostPort(this.cfg.listen), err));
      this.server.once('error', onError);
      this.server.listen({ host: this.cfg.listen.host, port: this.cfg.listen.port, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; open sessions continue (server.close's callback waits for them, so it is not used). */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  abortAll(): void {
    for (const s of this.sessions) s.abort('shutdown');
  }

  sessionEnded(session: Session, rec: SessionRecord): void {
    this.sessions.delete(session);
    this.hooks.sessionEnded(rec);
  }

  private readonly accept = (client: Socket): void => {
    const session = new Session(this, client);
    // With no usable server the session may already have ended inside its constructor.
    if (!session.isEnded) this.sessions.add(session);
  };
}
