import type { Socket } from 'node:net';
import { renderStatus } from '../serve/status-reply.js';
import type { Server } from '../model/server.js';
import { Connector, KEEPALIVE_DELAY_MS, type ConnectFailure, type ConnectOwner } from './connector.js';
import type { Frontend } from './frontend.js';
import { Relay, type EndReason, type RelayOwner } from './relay.js';
import { sniffStatus } from './status-sniff.js';

/** How long a client may sit on a partial "STATUS" prefix before its bytes are forwarded as-is. */
const SNIFF_TIMEOUT_MS = 2000;
/** Client bytes held while the upstream connect is under way; beyond this the client is paused. */
const PREBUFFER_LIMIT = 64 * 1024;
/** Sessions younger than this never get TCP keepalive: it only matters after a minute of silence. */
export const KEEPALIVE_ARM_AFTER_MS = 1000;

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

const kSession = Symbol('licgate.session');
type SessionSocket = Socket & { [kSession]: Session };

/**
 * One accepted client connection: connects upstream at once (in parallel with in-band STATUS
 * sniffing, so a normal session pays no extra round trip), then hands both sockets to a Relay.
 * Client bytes that arrive before the upstream connect are held, not paused for: a pause and
 * resume would cost two epoll_ctl calls on nearly every session.
 */
export class Session implements ConnectOwner, RelayOwner {
  private readonly started = Date.now();
  private readonly connector: Connector;
  private relay: Relay | null = null;
  private server: Server | null = null;
  /** Client bytes not yet forwarded: a partial STATUS prefix, or what came before the connect. */
  private pending: Buffer | null = null;
  private sniffing: boolean;
  /** Bounds the sniff (a partial prefix, or no server while the first bytes are awaited); not the socket timeout, which is the relay's idle_timeout. */
  private sniffTimer: NodeJS.Timeout | null = null;
  /** Every server failed while the first bytes were still awaited: they may be an in-band STATUS, answered even then. */
  private failure: ConnectFailure | null = null;
  private retries = 0;
  private ended = false;
  private keepaliveArmed = false;
  readonly clientKey: string;

  constructor(private readonly fe: Frontend, private readonly client: Socket) {
    const addr = client.remoteAddress ?? '';
    this.clientKey = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    client.setNoDelay(true);
    this.sniffing = fe.cfg.inband_status;
    (client as SessionSocket)[kSession] = this;
    client.on('error', onEarlyError);
    client.on('close', onEarlyClose);
    client.on('data', onEarlyData);
    if (this.sniffing) client.on('end', onEarlyEnd);
    this.connector = new Connector(fe.backend, this.clientKey, fe.cfg.server_port, this);
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

  /**
   * TCP keepalive on both sockets, for sessions that lived past KEEPALIVE_ARM_AFTER_MS (the
   * frontend sweeps once a second). It exists to find peers that vanished during long silences,
   * so arming it a second late changes nothing, and short sessions skip eight setsockopt calls.
   */
  armKeepalive(now: number): void {
    if (this.keepaliveArmed || this.relay === null || now - this.started < KEEPALIVE_ARM_AFTER_MS) return;
    this.keepaliveArmed = true;
    if (this.fe.cfg.keepalive && !this.client.destroyed) this.client.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    if (!this.relay.server.destroyed) this.relay.server.setKeepAlive(true, KEEPALIVE_DELAY_MS);
  }

  earlyData(chunk: Buffer): void {
    if (this.ended) return;
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = buf;
    if (this.sniffing) {
      const verdict = sniffStatus(buf);
      if (verdict === 'partial') {
        this.armSniffTimer();
        return;
      }
      if (verdict === 'status') {
        this.pending = null;
        this.endSniff();
        this.answerStatus();
        return;
      }
      this.stopSniffing();
      return;
    }
    if (buf.length >= PREBUFFER_LIMIT) this.client.pause();
  }

  /**
   * The first bytes are not a STATUS request (or the client stalled on a prefix, or half-closed):
   * relay them, or give up if no server could be reached.
   */
  stopSniffing(): void {
    if (!this.sniffing) return;
    this.endSniff();
    if (this.failure) {
      this.client.destroy();
      this.endWith('no-server', this.failure.reason);
    } else if (this.relay) this.startClientSide();
  }

  private endSniff(): void {
    this.sniffing = false;
    this.clearSniffTimer();
  }

  private armSniffTimer(): void {
    if (this.sniffTimer) return;
    this.sniffTimer = setTimeout(() => this.stopSniffing(), SNIFF_TIMEOUT_MS);
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
      this.client.on('error', onEarlyError);
    }
    this.client.end(renderStatus(this.fe.backend));
    this.endWith('status');
  }

  connected(socket: Socket, server: Server, failed: number): void {
    const { client } = this;
    this.server = server;
    this.retries = failed;
    this.fe.hooks.sessionConnected(this.fe, server, failed);
    client.removeListener('error', onEarlyError);
    client.removeListener('close', onEarlyClose);
    if (client.destroyed) {
      socket.destroy();
      this.fe.backend.release(server, this.clientKey);
      this.endWith('client-gone');
      return;
    }
    this.relay = new Relay(client, socket, this);
    if (this.fe.cfg.idle_timeout > 0) client.setTimeout(this.fe.cfg.idle_timeout);
    if (!this.sniffing) this.startClientSide();
  }

  private startClientSide(): void {
    this.client.removeListener('data', onEarlyData);
    if (this.fe.cfg.inband_status) this.client.removeListener('end', onEarlyEnd);
    const pending = this.pending;
    this.pending = null;
    this.relay!.startClient(pending);
  }

  failed(f: ConnectFailure): void {
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
  }

  attemptFailed(server: Server, reason: string): void {
    this.fe.hooks.attemptFailed(this.fe, server, reason);
  }

  earlyClose(): void {
    if (this.relay || this.ended) return;
    this.connector.cancel();
    this.endWith('client-gone');
  }

  relayDone(relay: Relay, reason: EndReason): void {
    this.fe.backend.release(this.server!, this.clientKey);
    this.endWith(reason, undefined, relay);
  }

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

// Shared by every session until its relay takes over; `this` is the client socket.
function onEarlyData(this: SessionSocket, chunk: Buffer): void {
  this[kSession].earlyData(chunk);
}

/** A client that half-closes while we still sniff: its bytes are forwarded as they are. */
function onEarlyEnd(this: SessionSocket): void {
  this[kSession].stopSniffing();
}

function onEarlyClose(this: SessionSocket): void {
  this[kSession].earlyClose();
}

function onEarlyError(): void {
  // The client reset before we were connected; 'close' follows and cleans up.
}
