import { appendBytes } from '../io/append-bytes.js';
import { replyAndClose } from '../io/reply-and-close.js';
import type { Linked } from '../io/intrusive-list.js';
import { readOffset, readResult, UV_EOF, type SockAddr, type TcpHandle } from '../io/tcp-handle.js';
import { renderStatus } from '../serve/status-reply.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';
import { Connector, KEEPALIVE_DELAY_MS, type ConnectFailure, type ConnectOwner } from './connector.js';
import type { Frontend } from './frontend.js';
import { Relay, type EndReason, type RelayOwner } from './relay.js';
import { sniffStatus } from './status-sniff.js';

/** How long a client may sit on a partial "STATUS" prefix before its bytes are forwarded as-is. */
export const SNIFF_TIMEOUT_MS = 2000;
/** Client bytes held while the upstream connect is under way; beyond this the client is not read. */
const PREBUFFER_LIMIT = 64 * 1024;
/** Sessions younger than this never get TCP keepalive: it only matters after a minute of silence. */
export const KEEPALIVE_ARM_AFTER_MS = 1000;

export interface SessionRecord {
  /** address:port (an IPv6 address in brackets), or UNKNOWN_CLIENT for a client already gone when accepted. */
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

/** A relaying session as GET /sessions shows it (Session.openView). */
export interface OpenSessionView {
  /** As its record will write it. */
  client: string;
  frontend: string;
  backend: string;
  server: string;
  /** performance.now() time. */
  startedAt: number;
  bytesIn: number;
  bytesOut: number;
  idleMs: number | null;
}

/**
 * Where a session was accepted: the frontend's name and backend at that moment. A reload may rename
 * the frontend or point it at another backend; its open sessions end where they began, so each is
 * released, counted and logged against the backend it acquired its server slot from.
 */
export interface SessionRoute {
  readonly frontendName: string;
  readonly backend: Backend;
}

/** The client's address (an IPv4-mapped IPv6 one as plain IPv4: the stick-table key) and port. */
export interface ClientPeer {
  key: string;
  port: number;
}

/** The record's client when its address is unknown: HAProxy's log writes '-' for an unknown field. */
export const UNKNOWN_CLIENT = '-';

/**
 * Read once per accepted connection, by the frontend. Null when getpeername fails: the client
 * reset (a connect scan, or a client that gave up while the accept backlog was full) before licgate
 * accepted it, and libuv's accept does not return the address.
 */
export function clientAddress(client: TcpHandle): ClientPeer | null {
  const peer: SockAddr = {};
  if (client.getpeername(peer) !== 0) return null;
  const addr = peer.address ?? '';
  const key = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return { key, port: peer.port ?? 0 };
}

/** The record's client, an IPv6 address in brackets (`[2001:db8::5]:50123`) as licgate writes every address:port. */
export function clientText(key: string, port: number): string {
  // The key is an address that getpeername wrote, IPv4-mapped ones already plain IPv4: a ':' means IPv6.
  return key.includes(':') ? `[${key}]:${port}` : `${key}:${port}`;
}

const kSession = Symbol('licgate.session');
type SessionHandle = TcpHandle & { [kSession]: Session };

/**
 * One accepted client connection: connects upstream at once (in parallel with in-band STATUS
 * sniffing, so a normal session pays no extra round trip), then hands both handles to a Relay.
 * Client bytes that arrive before the upstream connect are held (up to PREBUFFER_LIMIT, then the
 * client is not read until the relay starts).
 */
export class Session implements ConnectOwner, RelayOwner, Linked<Session>, SessionRoute {
  /** The frontend's SessionList links. */
  listPrev: Session | null = null;
  listNext: Session | null = null;
  readonly frontendName: string;
  /** performance.now(): a wall-clock step must not make a duration negative or an hour long. */
  private readonly started = performance.now();
  private readonly connector: Connector;
  private relay: Relay | null = null;
  private server: Server | null = null;
  /** Client bytes not yet forwarded: a partial STATUS prefix, or what came before the connect. */
  private pending: Buffer | null = null;
  /** Where the chunks after the first are appended (appendBytes). */
  private pendingStore: Buffer | null = null;
  /** Bytes read from the client before the relay took over. */
  private earlyBytes = 0;
  /** The client's FIN arrived before the relay took over. */
  private clientEof = false;
  /** The client handle is closed (it reset before the relay, or we gave up on it). */
  private clientClosed = false;
  private sniffing: boolean;
  /** Bounds the sniff (a partial prefix, or no server while the first bytes are awaited); not the relay's idle_timeout. */
  private sniffTimer: NodeJS.Timeout | null = null;
  /** Every server failed while the first bytes were still awaited: they may be an in-band STATUS, answered even then. */
  private failure: ConnectFailure | null = null;
  private retries = 0;
  private ended = false;
  private keepaliveArmed = false;
  readonly clientKey: string;
  private readonly clientPort: number;

  /** `early` and `eof`: what the client sent (never a whole STATUS line) while it waited for a slot at maxconn. */
  constructor(private readonly fe: Frontend, private readonly client: TcpHandle, peer: ClientPeer, early: Buffer | null = null, eof = false) {
    this.frontendName = fe.name;
    this.clientKey = peer.key;
    this.clientPort = peer.port;
    client.setNoDelay(true);
    this.sniffing = fe.cfg.inband_status;
    (client as SessionHandle)[kSession] = this;
    client.onread = onEarlyRead;
    if (!eof) client.readStart();
    this.connector = new Connector(fe.backend, this.clientKey, fe.cfg.server_port, this);
    if (early !== null) this.earlyData(early);
    if (eof) this.earlyEnd();
    if (!this.ended) this.connector.start();
  }

  /** The frontend's backend when this session was accepted, or its successor if a reload moved it while it was queued. */
  get backend(): Backend {
    return this.connector.backend;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /**
   * What a relaying session has moved so far, counted as its record will count it when it ends (the
   * metrics add it at scrape time, so a license session that lasts hours shows its traffic while it
   * lasts, and the counters only grow). Null until the relay has both sides: before that the session
   * may still end as an in-band STATUS request or on no server, and count no bytes.
   */
  openCounts(): { server: string; bytesIn: number; bytesOut: number } | null {
    if (this.relay === null || this.sniffing || this.ended) return null;
    return { server: this.server!.name, bytesIn: this.clientBytes(this.relay), bytesOut: this.relay.serverBytes };
  }

  /**
   * What GET /sessions lists of a relaying session (null when openCounts is), read when asked:
   * nothing is kept for it on the data path. `idleMs` is the idle sweep's count of silence, so
   * only with idle_timeout set (null without), and true to within one sweep tick (at most 1 s).
   */
  openView(): OpenSessionView | null {
    const relay = this.relay;
    if (relay === null || this.sniffing || this.ended) return null;
    // One literal, not openCounts() spread into another: with 10,000 sessions the spread alone
    // held the event loop ~35 ms.
    return {
      client: clientText(this.clientKey, this.clientPort),
      frontend: this.frontendName,
      backend: this.backend.name,
      server: this.server!.name,
      startedAt: this.started,
      bytesIn: this.clientBytes(relay),
      bytesOut: relay.serverBytes,
      idleMs: this.fe.cfg.idle_timeout > 0 ? relay.idleMs : null,
    };
  }

  /** Client bytes as the session's record counts them: those read before the relay took over, and the relay's. */
  private clientBytes(relay: Relay | undefined | null): number {
    return this.earlyBytes + (relay ? relay.clientBytes : 0);
  }

  /**
   * Reload: a session still waiting (queued for a server slot, or in the turn-around before a retry:
   * Connector.waiting) goes where its frontend sends clients now, if that is not where it waits
   * (the frontend was pointed at another backend, or its backend removed).
   */
  followFrontend(): void {
    const c = this.connector;
    if (c.waiting && c.backend.live !== this.fe.backend) c.placeOn(this.fe.backend);
  }

  /**
   * Reload: its frontend was removed. Still waiting (queued for a server slot, or in the turn-around
   * before a retry), it is closed as a client waiting at the frontend is, and counted as one
   * (Frontend.rejected, not as a session); returns whether it was.
   */
  closeQueued(): boolean {
    if (!this.connector.waiting) return false;
    this.connector.cancel();
    this.closeClient();
    this.clearSniffTimer();
    this.ended = true;
    return true;
  }

  /** Shutdown or admin: end this session now (also one still connecting, queued for a slot, or sniffing). */
  abort(reason: EndReason): void {
    if (this.relay) this.relay.abort(reason);
    else {
      this.connector.cancel();
      this.closeClient();
      this.endWith(reason);
    }
  }

  /**
   * on_marked_down (`server-down`) or an admin's shutdown-sessions (`admin`): ends this session if
   * it relays to `server`, or to the server of that name a reload replaced by it (they share their
   * counts): one opened before a reload is to the same license server. With `port`, only if it
   * relays to that port: the one it connected to, which a reload since may have moved the
   * frontend's `server_port` from. Returns whether it did.
   */
  endIfTo(server: Server, end: 'server-down' | 'admin', port: number | null = null): boolean {
    if (this.relay === null || !this.server!.countsWith(server) || (port !== null && this.connector.port !== port)) return false;
    this.relay.abort(end);
    return true;
  }

  /**
   * The frontend's sweep, once a second. Arms TCP keepalive on both handles of sessions that lived
   * past KEEPALIVE_ARM_AFTER_MS: it exists to find peers that vanished during long silences, so
   * arming it a second late changes nothing, and short sessions skip eight setsockopt calls. And
   * the relay's read counting (busy directions, see BUSY_READS) starts over. `now`: performance.now().
   */
  everySecond(now: number): void {
    const relay = this.relay;
    if (relay !== null) relay.sweep();
    if (this.keepaliveArmed || relay === null || relay.closed || now - this.started < KEEPALIVE_ARM_AFTER_MS) return;
    this.keepaliveArmed = true;
    if (this.fe.cfg.keepalive) relay.client.setKeepAlive(true, KEEPALIVE_DELAY_MS / 1000);
    relay.server.setKeepAlive(true, KEEPALIVE_DELAY_MS / 1000);
  }

  /** Called by the frontend's idle sweep every `tickMs`: ends a relay silent for `idleTimeout`. */
  idleTick(tickMs: number, idleTimeout: number): void {
    const relay = this.relay;
    if (relay === null || relay.closed) return;
    if (relay.active) {
      relay.active = false;
      relay.idleMs = 0;
    } else if ((relay.idleMs += tickMs) >= idleTimeout) relay.abort('idle-timeout');
  }

  earlyData(chunk: Buffer): void {
    this.earlyBytes += chunk.length;
    if (this.ended) return;
    let buf = chunk;
    if (this.pending !== null) {
      this.pendingStore = appendBytes(this.pendingStore, this.pending, chunk, PREBUFFER_LIMIT);
      buf = this.pendingStore.subarray(0, this.pending.length + chunk.length);
    }
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
    if (buf.length >= PREBUFFER_LIMIT) this.client.readStop();
  }

  /** The client sent its FIN before the relay took over: its bytes are forwarded as they are. */
  earlyEnd(): void {
    this.clientEof = true;
    // With nothing sent, while its session waits for a slot (queued at a full server, or in the
    // turn-around before a retry), the client gave up, as one waiting at the frontend does
    // (Waiting.ended, HAProxy's `option abortonclose`): connected later, the license server would
    // get a connection for nobody, and the queue place would hold up the clients behind it.
    if (this.earlyBytes === 0 && this.connector.waiting) return this.clientGone();
    if (this.sniffing) this.stopSniffing();
  }

  /** The client reset (or failed) before the relay took over (while we sniffed, the relay may exist). */
  earlyError(errno: number): void {
    if (this.relay) {
      this.relay.fail(this.relay.toServer, errno);
      return;
    }
    this.clientGone();
  }

  /** Before any server is connected for it: nothing to relay, no connect to make. */
  private clientGone(): void {
    this.closeClient();
    if (this.ended) return;
    this.connector.cancel();
    this.endWith('client-gone');
  }

  /**
   * The first bytes are not a STATUS request (or the client stalled on a prefix, or half-closed):
   * relay them, or give up if no server could be reached.
   */
  stopSniffing(): void {
    if (!this.sniffing) return;
    this.endSniff();
    if (this.failure) {
      this.closeClient();
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

  private closeClient(): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    this.client.close();
  }

  private answerStatus(): void {
    this.connector.cancel();
    // A server that speaks first had its bytes relayed to the client while the sniff waited: they count as sent.
    let relayed = 0;
    if (this.relay) {
      // The upstream connect won the race with the request: drop that connection, keep the client for the reply.
      // The record keeps the server, so the metrics close the connection they counted (sessionConnected).
      relayed = this.relay.serverBytes;
      this.relay.dropServer();
      this.relay = null;
      this.backend.release(this.server!, this.clientKey);
    }
    // The handle now belongs to the reply; this session is over.
    this.clientClosed = true;
    this.endWith('status', undefined, undefined, relayed + replyAndClose(this.client, renderStatus(this.fe.backend), SNIFF_TIMEOUT_MS));
  }

  connected(handle: TcpHandle, server: Server, failed: number): void {
    this.server = server;
    this.retries = failed;
    this.fe.hooks.sessionConnected(this, server, failed);
    if (this.clientClosed) {
      handle.close();
      this.backend.release(server, this.clientKey);
      this.endWith('client-gone');
      return;
    }
    this.relay = new Relay(this.client, handle, this);
    if (!this.sniffing) this.startClientSide();
  }

  private startClientSide(): void {
    const pending = this.pending;
    this.pending = null;
    this.pendingStore = null;
    this.relay!.startClient(pending, this.clientEof);
  }

  failed(f: ConnectFailure): void {
    // `tried` counts failed attempts; the record counts retries, as a connected session's does.
    this.retries = Math.max(0, f.tried - 1);
    if (f.local) this.fe.hooks.acceptFailed(this.fe, f.local);
    if (this.ended) return;
    if (this.sniffing) {
      // Wait (bounded) for the first bytes: an in-band STATUS still gets its "Server Status: Down".
      this.failure = f;
      this.armSniffTimer();
      return;
    }
    this.closeClient();
    this.endWith('no-server', f.reason);
  }

  attemptFailed(server: Server, reason: string, settled: boolean, retrying: boolean): void {
    this.fe.hooks.attemptFailed(this, server, reason, settled, retrying);
  }

  attemptRaced(slow: Server, next: Server, afterMs: number): void {
    this.fe.hooks.attemptRaced(this, slow, next, afterMs);
  }

  relayDone(relay: Relay, reason: EndReason, error?: string): void {
    this.backend.release(this.server!, this.clientKey);
    this.endWith(reason, error, relay);
  }

  /** `bytesOut`: what the client was sent, by the relay or (an in-band STATUS) by licgate. */
  private endWith(end: SessionRecord['end'], error?: string, relay?: Relay, bytesOut = relay ? relay.serverBytes : 0): void {
    if (this.ended) return;
    this.ended = true;
    this.clearSniffTimer();
    this.fe.sessionEnded(this, {
      client: clientText(this.clientKey, this.clientPort),
      frontend: this.frontendName,
      backend: this.backend.name,
      server: this.server?.name ?? null,
      bytes_in: this.clientBytes(relay),
      bytes_out: bytesOut,
      duration_ms: Math.round(performance.now() - this.started),
      end,
      retries: this.retries,
      error,
    });
  }
}

// Shared by every session until its relay takes over; `this` is the client handle.
function onEarlyRead(this: SessionHandle, buf: ArrayBuffer | undefined): void {
  const n = readResult();
  if (n > 0) this[kSession].earlyData(Buffer.from(buf!, readOffset(), n));
  else if (n === UV_EOF) this[kSession].earlyEnd();
  else if (n < 0) this[kSession].earlyError(n);
}
