import type { Socket } from 'node:net';
import { renderStatus } from '../serve/status-reply.js';
import type { Server } from '../model/server.js';
import { Connector, KEEPALIVE_DELAY_MS, type ConnectFailure, type ConnectOutcome } from './connector.js';
import type { Frontend } from './frontend.js';
import { Relay, type EndReason } from './relay.js';
import { sniffStatus } from './status-sniff.js';

/** How long a client may sit on a partial "STATUS" prefix before its bytes are forwarded as-is. */
const SNIFF_TIMEOUT_MS = 2000;

export interface SessionRecord {
  client: string;
  frontend: string;
  backend: string;
  server: string | null;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  end: EndReason | 'status' | 'no-server' | 'client-gone';
  retries: number;
  error?: string;
}

/**
 * One accepted client connection: connects upstream at once (in parallel with in-band STATUS
 * sniffing, so a normal session pays no extra round trip), then hands both sockets to a Relay.
 */
export class Session {
  private readonly started = Date.now();
  private readonly connector: Connector;
  private relay: Relay | null = null;
  private server: Server | null = null;
  private sniffed: Buffer | null = null;
  private sniffing: boolean;
  /** Bounds the sniff (a partial prefix, or no server while the first bytes are awaited); not the socket timeout, which is the relay's idle_timeout. */
  private sniffTimer: NodeJS.Timeout | null = null;
  /** Every server failed while the first bytes were still awaited: they may be an in-band STATUS, answered even then. */
  private failure: ConnectFailure | null = null;
  private retries = 0;
  private ended = false;
  readonly clientKey: string;

  constructor(private readonly fe: Frontend, private readonly client: Socket) {
    const addr = client.remoteAddress ?? '';
    this.clientKey = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    client.setNoDelay(true);
    if (fe.cfg.keepalive) client.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.sniffing = fe.cfg.inband_status;
    client.on('error', this.earlyError);
    client.on('close', this.earlyClose);
    if (this.sniffing) {
      client.on('data', this.sniff);
      client.once('end', this.stopSniffing);
    } else client.pause();
    this.connector = new Connector(fe.backend, this.clientKey, fe.cfg.server_port, this.connected, this.failed, this.attemptFailed);
    this.connector.start();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Shutdown or admin: end this session now. */
  abort(reason: EndReason): void {
    if (this.relay) this.relay.abort(reason);
    else {
      this.connector.cancel();
      this.client.destroy();
    }
  }

  private readonly sniff = (chunk: Buffer): void => {
    const buf = this.sniffed ? Buffer.concat([this.sniffed, chunk]) : chunk;
    const verdict = sniffStatus(buf);
    if (verdict === 'partial') {
      this.sniffed = buf;
      this.armSniffTimer();
      return;
    }
    this.sniffing = false;
    this.client.off('data', this.sniff);
    this.client.off('end', this.stopSniffing);
    this.clearSniffTimer();
    if (verdict === 'status') {
      this.answerStatus();
      return;
    }
    this.sniffed = buf;
    this.client.pause();
    this.sniffDone();
  };

  /** A client that stalls on a partial prefix, or half-closes first, is forwarded as it is. */
  private readonly stopSniffing = (): void => {
    if (!this.sniffing) return;
    this.sniffing = false;
    this.client.off('data', this.sniff);
    this.client.off('end', this.stopSniffing);
    this.clearSniffTimer();
    this.client.pause();
    this.sniffDone();
  };

  /** The first bytes are not a STATUS request: relay them, or give up if no server could be reached. */
  private sniffDone(): void {
    if (this.failure) {
      this.client.destroy();
      this.endWith('no-server', this.failure.reason);
    } else if (this.relay) this.startClientSide();
  }

  private armSniffTimer(): void {
    if (this.sniffTimer) return;
    this.sniffTimer = setTimeout(this.stopSniffing, SNIFF_TIMEOUT_MS);
    this.sniffTimer.unref();
  }

  private clearSniffTimer(): void {
    if (this.sniffTimer) clearTimeout(this.sniffTimer);
    this.sniffTimer = null;
  }

  private answerStatus(): void {
    this.connector.cancel();
    if (this.relay) {
      // The upstream connect won the race with the request: drop that connection, keep the client for the reply.
      this.relay.dropServer();
      this.relay = null;
      this.fe.backend.release(this.server!, this.clientKey);
      this.server = null;
      this.client.on('error', this.earlyError);
    }
    this.client.end(renderStatus(this.fe.backend));
    this.endWith('status');
  }

  private readonly connected = ({ socket, server, failed }: ConnectOutcome): void => {
    this.server = server;
    this.retries = failed;
    this.fe.hooks.sessionConnected(this.fe, server, failed);
    this.client.off('error', this.earlyError);
    this.client.off('close', this.earlyClose);
    if (this.client.destroyed) {
      socket.destroy();
      this.fe.backend.release(server, this.clientKey);
      this.endWith('client-gone');
      return;
    }
    this.relay = new Relay(this.client, socket, this.relayDone);
    if (this.fe.cfg.idle_timeout > 0) this.client.setTimeout(this.fe.cfg.idle_timeout);
    if (!this.sniffing) this.startClientSide();
  };

  private startClientSide(): void {
    if (this.fe.cfg.idle_timeout > 0) this.client.setTimeout(this.fe.cfg.idle_timeout);
    const pending = this.sniffed;
    this.sniffed = null;
    this.relay!.startClient(pending);
  }

  private readonly failed = (f: ConnectFailure): void => {
    this.retries = f.tried;
    if (f.local) this.fe.hooks.acceptFailed(this.fe, f.local);
    if (this.ended) return;
    if (this.sniffing) {
      // Wait (bounded) for the first bytes: an in-band STATUS still gets its "Server Status: Down".
      this.failure = f;
      this.armSniffTimer();
      return;
    }
    this.client.destroy();
    this.endWith('no-server', f.reason);
  };

  private readonly attemptFailed = (server: Server, reason: string): void => {
    this.fe.hooks.attemptFailed(this.fe, server, reason);
  };

  private readonly earlyError = (): void => {
    // The client reset before we were connected; 'close' follows and cleans up.
  };

  private readonly earlyClose = (): void => {
    if (this.relay || this.ended) return;
    this.connector.cancel();
    this.endWith('client-gone');
  };

  private readonly relayDone = (relay: Relay, reason: EndReason): void => {
    this.fe.backend.release(this.server!, this.clientKey);
    this.endWith(reason, undefined, relay);
  };

  private endWith(end: SessionRecord['end'], error?: string, relay?: Relay): void {
    if (this.ended) return;
    this.ended = true;
    this.clearSniffTimer();
    this.fe.sessionEnded(this, {
      client: `${this.clientKey}:${this.client.remotePort ?? 0}`,
      frontend: this.fe.name,
      backend: this.fe.backend.name,
      server: this.server?.name ?? null,
      bytes_in: this.client.bytesRead,
      bytes_out: relay ? relay.server.bytesRead : 0,
      duration_ms: Date.now() - this.started,
      end,
      retries: this.retries,
      ...(error ? { error } : {}),
    });
  }
}
