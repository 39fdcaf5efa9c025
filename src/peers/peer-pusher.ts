import { connect, type Socket } from 'node:net';
import { formatHostPort, type HostPort } from '../config/address.js';
import { listenerEnd, PusherAuth } from './peer-auth.js';
import { KEEPALIVE_LINE, LineSplitter, PEER_IDLE_MS, PEER_KEEPALIVE_MS } from './peer-codec.js';

/** Lines written per loop turn: HAProxy's peers send at most 200 updates at once (PEER_DEF_MAX_UPDATES_AT_ONCE). */
export const PUSH_BATCH = 200;
/** A reconnect waits 0.5 s, doubling up to 5 s (HAProxy's PEER_RECONNECT_TIMEOUT is a flat 5 s). */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 5000;
/**
 * A connection must stay up this long to start the backoff over: a remote that takes the token and
 * hangs up at once (it refuses a line, or crash-loops) would otherwise get the whole table, and the
 * log a "connected" and a "not reachable" line, every 0.5 s.
 */
const STABLE_MS = BACKOFF_MAX_MS;
/** A remote that accepts but does not finish the handshake this long is given up and retried. */
const HANDSHAKE_MS = 5000;

/** What a pusher reads of the tables when it writes: each line says the entry's state at that moment. */
export interface PushSource {
  token(): string;
  /** The names of the shared tables now (stick: source backends). */
  tables(): string[];
  /** The clients of a table with a live entry (a copy: the full push reads it over several turns). */
  clients(backend: string): string[];
  /**
   * The line for `client` now: S with its entry, or D with its deletion marker when it has none
   * (`full`: '' instead of D; '' too when it has neither).
   */
  line(backend: string, client: string, now: number, full: boolean): string;
  /** The deletion markers a table holds now, for the full push: clients (D), servers (U), the whole table (C). */
  marks(backend: string): { clients: string[]; servers: string[]; cleared: boolean };
  /** A deletion marker's line now, with its age: '' once it has lapsed. `key`: the client, the server, or '' for C. */
  markLine(backend: string, kind: MarkKind, key: string, now: number): string;
  /** The pusher's state changed (connected, lost, auth failed, unreachable): logged by the caller. */
  changed(p: PeerPusher, to: PusherState, detail: string | null): void;
}

export type MarkKind = 'D' | 'U' | 'C';

export type PusherState = 'connecting' | 'connected' | 'down' | 'auth-failed';

/**
 * Pushes this host's stick entries to one remote: connects, proves the token (peer-auth.ts), sends
 * the whole of every shared table, then each change as it happens, and a keep-alive every 3 s so the
 * remote can tell silence from death. A lost or refused connection is retried with backoff; only a
 * change of state is reported, never an attempt.
 */
export class PeerPusher {
  state: PusherState = 'connecting';
  /** Date.now() of the last change of `state`. */
  since = Date.now();
  lastError: string | null = null;
  /** Entry lines (S, D, C) written since start. */
  sent = 0;
  readonly name: string;
  private sock: Socket | null = null;
  private authed = false;
  private readonly pending = new Map<string, Set<string>>();
  private readonly clears = new Set<string>();
  /** Servers unstuck (`ctl unstick --server`), per table. */
  private readonly servers = new Map<string, Set<string>>();
  /**
   * The full push under way: each table's deletion markers, then its clients, copied at connect and
   * sent a batch per turn. Markers first: they drop what the remote placed before them, and this
   * host's entries placed after follow.
   */
  private full: { backend: string; kind: MarkKind | 'S'; keys: string[]; i: number }[] = [];
  private backoff = BACKOFF_FIRST_MS;
  /** performance.now() of the last handshake. */
  private upAt = 0;
  private retry: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private pumping = false;
  /** A 'drain' listener waits on `sock` to pump. */
  private awaitingDrain = false;
  private stopped = false;

  /**
   * `localAddress`: this host's peers.listen address when it names one. The remote admits the
   * addresses in its own `remotes`, which list this host's listen address; without it the kernel
   * would pick the source, and on a keepalived MASTER that can be the VIP.
   */
  constructor(readonly remote: HostPort, private readonly src: PushSource, readonly localAddress: string | undefined) {
    this.name = formatHostPort(remote);
  }

  start(): void {
    this.open();
  }

  /** Stops for good: the connection is closed, no retry. */
  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.drop();
  }

  /**
   * The remote has just connected to this host (it is back: a restart, a link restored), so it
   * listens again: connect now instead of waiting out the backoff, up to 5 s in which keepalived can
   * already hand it the VIP with an empty table. HAProxy's restarted peer asks for a resync at once.
   */
  reconnectNow(): void {
    if (this.stopped || this.retry === null) return;
    clearTimeout(this.retry);
    this.retry = null;
    // The backoff stays: it starts over only after a connection that lasted (STABLE_MS), so a remote
    // that connects in and hangs up on this one's connection is not sent the table every 0.5 s.
    this.open();
  }

  /**
   * The token changed here: the connection up (or the handshake under way) proved the old one, so it
   * ends, and a new one proves the new token at once, without the backoff's wait (a remote waiting in
   * the backoff after a refusal is tried now too: its admin may have just rotated it first).
   */
  rekey(): void {
    if (this.stopped) return;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.drop();
    // Not reported: the new handshake's outcome is (connected again, or the token refused).
    this.state = 'connecting';
    this.since = Date.now();
    this.open();
  }

  /** Whether changes are taken now: a disconnected remote gets the whole table when it is back. */
  get live(): boolean {
    return this.authed;
  }

  /** `client`'s entry changed (added, moved, dropped): its state is read when the line is written. */
  queue(backend: string, client: string): void {
    let set = this.pending.get(backend);
    if (set === undefined) this.pending.set(backend, (set = new Set()));
    set.add(client);
  }

  queueClear(backend: string): void {
    this.pending.get(backend)?.clear();
    this.servers.get(backend)?.clear();
    this.clears.add(backend);
    for (const f of this.full) if (f.backend === backend) f.i = f.keys.length;
  }

  /** `ctl unstick --server`: one U line for the server. */
  queueServer(backend: string, server: string): void {
    let set = this.servers.get(backend);
    if (set === undefined) this.servers.set(backend, (set = new Set()));
    set.add(server);
  }

  /** Writes what is queued, a batch per loop turn, while the socket takes it. */
  pump(): void {
    if (this.pumping || !this.authed || this.sock === null) return;
    // Over the high-water mark (a batch, or a keep-alive, filled it), the next batch waits for
    // 'drain': a change that pumped meanwhile would write past the backpressure, and a remote that
    // stops reading would be sent the whole table.
    if (this.sock.writableNeedDrain) {
      if (!this.awaitingDrain) {
        this.awaitingDrain = true;
        this.sock.once('drain', this.drained);
      }
      return;
    }
    this.pumping = true;
    setImmediate(this.turn);
  }

  private readonly drained = (): void => {
    this.awaitingDrain = false;
    this.pump();
  };

  private readonly turn = (): void => {
    this.pumping = false;
    const sock = this.sock;
    if (sock === null || !this.authed) return;
    let out = '';
    let n = 0;
    const now = performance.now();
    let line: string;
    for (const b of this.clears) {
      if ((line = this.src.markLine(b, 'C', '', now)) === '') continue;
      out += line;
      n++;
    }
    this.clears.clear();
    for (const [b, set] of this.servers) {
      for (const sv of set) {
        if ((line = this.src.markLine(b, 'U', sv, now)) === '') continue;
        out += line;
        n++;
      }
    }
    this.servers.clear();
    for (const [b, set] of this.pending) {
      for (const c of set) {
        if (n >= PUSH_BATCH) break;
        set.delete(c);
        if ((line = this.src.line(b, c, now, false)) === '') continue;
        out += line;
        n++;
      }
      if (set.size === 0) this.pending.delete(b);
      if (n >= PUSH_BATCH) break;
    }
    while (n < PUSH_BATCH && this.full.length > 0) {
      const f = this.full[0]!;
      while (n < PUSH_BATCH && f.i < f.keys.length) {
        const key = f.keys[f.i++]!;
        line = f.kind === 'S' ? this.src.line(f.backend, key, now, true) : this.src.markLine(f.backend, f.kind, key, now);
        if (line !== '') {
          out += line;
          n++;
        }
      }
      if (f.i >= f.keys.length) this.full.shift();
    }
    if (out === '') return;
    this.sent += n;
    sock.write(out);
    this.pump();
  };

  private open(): void {
    if (this.stopped) return;
    const sock = connect({ host: this.remote.host, port: this.remote.port, ...(this.localAddress !== undefined ? { localAddress: this.localAddress } : {}) });
    this.sock = sock;
    sock.setNoDelay(true);
    const auth = new PusherAuth(this.src.token());
    const split = new LineSplitter();
    let greeted = false;
    let lastRead = performance.now();
    // Still connecting then: the SYNs went unanswered (dropped), which no listener of any kind does.
    const handshake = setTimeout(() => this.fail(sock, 'down', sock.connecting ? `no answer to the connect within ${HANDSHAKE_MS / 1000} s (a firewall dropping it, or the host down)` : `no handshake within ${HANDSHAKE_MS / 1000} s (not a licgate peers port?)`), HANDSHAKE_MS);
    sock.on('data', (chunk: Buffer) => {
      lastRead = performance.now();
      const whole = split.feed(chunk, (line) => {
        if (this.authed) {
          if (line === 'K') return true;
          // The remote's token changed (PeerListener.cutOffAll): ours is refused from now on.
          if (line === 'NO auth') return this.fail(sock, 'auth-failed', 'the remote\'s token changed and refuses ours: peers.token_file differs between the hosts');
          return this.fail(sock, 'down', `expected keep-alives from the remote, found "${line.slice(0, 40)}"`);
        }
        const step = greeted ? auth.check(line) : auth.answer(line, listenerEnd(sock.remoteAddress, sock.remotePort));
        if (!step.ok) return this.fail(sock, step.refused !== null ? 'auth-failed' : 'down', step.problem);
        if (!greeted) {
          greeted = true;
          sock.write(step.reply);
          return true;
        }
        clearTimeout(handshake);
        this.connected(sock, () => lastRead);
        return true;
      });
      if (!whole && this.sock === sock) this.fail(sock, 'down', 'a line from the remote over the length limit');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      this.lastError = e.code ?? e.message;
    });
    sock.on('close', () => {
      clearTimeout(handshake);
      if (this.sock !== sock) return;
      const was = this.state;
      this.drop();
      if (this.stopped) return;
      if (was === 'connected') this.moveTo('down', this.lastError ?? 'connection closed by the remote');
      // From auth-failed too: /status and the log would go on saying the token is refused.
      else if (was === 'connecting' || was === 'auth-failed') this.moveTo('down', this.lastError ?? 'connection closed during the handshake');
      this.schedule();
    });
  }

  private connected(sock: Socket, lastRead: () => number): void {
    this.authed = true;
    this.upAt = performance.now();
    this.lastError = null;
    this.pending.clear();
    this.clears.clear();
    this.servers.clear();
    this.full = this.src.tables().flatMap((backend) => {
      const m = this.src.marks(backend);
      return [
        { backend, kind: 'C' as const, keys: m.cleared ? [''] : [], i: 0 },
        { backend, kind: 'U' as const, keys: m.servers, i: 0 },
        { backend, kind: 'D' as const, keys: m.clients, i: 0 },
        { backend, kind: 'S' as const, keys: this.src.clients(backend), i: 0 },
      ];
    });
    this.moveTo('connected', null);
    this.ticker = setInterval(() => {
      if (performance.now() - lastRead() > PEER_IDLE_MS) {
        this.lastError = `nothing from the remote for ${PEER_IDLE_MS / 1000} s`;
        sock.destroy();
        return;
      }
      sock.write(KEEPALIVE_LINE);
    }, PEER_KEEPALIVE_MS);
    this.pump();
  }

  /** Returns false, for the line reader to stop. */
  private fail(sock: Socket, to: PusherState, why: string): false {
    this.lastError = why;
    if (this.sock === sock) {
      this.drop();
      this.moveTo(to, why);
      this.schedule();
    }
    sock.destroy();
    return false;
  }

  private drop(): void {
    if (this.authed && performance.now() - this.upAt >= STABLE_MS) this.backoff = BACKOFF_FIRST_MS;
    this.authed = false;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    this.sock?.destroy();
    this.sock = null;
    this.awaitingDrain = false;
    this.pending.clear();
    this.clears.clear();
    this.servers.clear();
    this.full = [];
  }

  private schedule(): void {
    if (this.stopped || this.retry) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.open();
    }, wait);
  }

  private moveTo(to: PusherState, detail: string | null): void {
    if (to === this.state && to !== 'connected') return;
    this.state = to;
    this.since = Date.now();
    this.src.changed(this, to, detail);
  }
}
