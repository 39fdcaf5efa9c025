import { isIP } from 'node:net';
import { sameToken } from '../config/admin-token.js';
import { boundHost, formatHostPort, isWildcard } from '../config/address.js';
import type { PeersConfig } from '../config/schema.js';
import { allowListOf } from '../io/allow-list.js';
import type { BindOptions } from '../io/listen.js';
import type { Model } from '../model/model.js';
import type { Logger } from '../observe/log.js';
import { PeerEventSummary } from '../observe/peer-event-summary.js';
import { clearLine, deleteLine, setLine, unstickServerLine, type PeerMessage } from './peer-codec.js';
import { PeerListener, type PeerInbox } from './peer-listener.js';
import { PeerPusher, type MarkKind, type PushSource, type PusherState } from './peer-pusher.js';

/**
 * How often the refresh pass looks for entries whose peers' copy would lapse before this host's, at
 * most: a shared table with a `stick_ttl` under 4 minutes has it every quarter ttl (1 s at least),
 * or a copy lived 30 s of every minute with `stick_ttl: 30s` (see passEvery).
 */
export const REFRESH_PASS_MS = 60_000;
const MIN_PASS_MS = 1000;
/** Entries checked per loop turn by the refresh pass (as admin.state_file's writer reads tables). */
const PASS_BATCH = 2000;
/** Skipped entries, cut-offs and refused tokens: one log line a minute at most of each (PeerEventSummary). */
const LOG_EVERY_MS = 60_000;

/** Per incoming peer address: what it sent and what became of it. */
interface Incoming {
  connected: number;
  since: number | null;
  received: number;
  applied: number;
  /** Entries this host kept against the peer's: sessions open here, or a more recent assignment. */
  kept: number;
  /** Entries refused for a deletion marker here: placed before an unstick that covers them. */
  unstuck: number;
  skipped: number;
  cutOff: number;
  lastSkip: string | null;
  lastCutOff: string | null;
}

/**
 * The `peers` section at work: every `stick: source` table is shared, by backend name, with the
 * remotes. Changes are noted by the table (StickTable.peers, a Set add per new or moved entry) and
 * handed to each connected pusher once per loop turn; expiries that only moved travel in a pass
 * once a minute (see StickTable.peerStale), so a client that connects again costs nothing here.
 * Entries pushed by the remotes are applied without being pushed back.
 */
export class PeerSync implements PushSource, PeerInbox {
  cfg: PeersConfig | null = null;
  private tokenText: string | null = null;
  listener: PeerListener | null = null;
  readonly pushers = new Map<string, PeerPusher>();
  readonly incoming = new Map<string, Incoming>();
  private flushQueued = false;
  private pass: NodeJS.Timeout | null = null;
  /** The running pass's interval (passEvery when it was set). */
  private passMs = REFRESH_PASS_MS;
  private passing = false;

  constructor(private readonly model: () => Model, private readonly log: Logger) {}

  /** A listener for `cfg` (not bound): a reload binds it before its commit. */
  buildListener(cfg: PeersConfig): PeerListener {
    const l = new PeerListener(cfg.listen, this, (peer) => this.stray(peer, 'too many connections at once'));
    this.restrict(l, cfg);
    return l;
  }

  /** Start-up: binds the listener, connects to the remotes. */
  async start(cfg: PeersConfig, token: string, bind: BindOptions): Promise<void> {
    const l = this.buildListener(cfg);
    await l.listen(bind);
    this.configure(cfg, token, l);
  }

  /**
   * Start-up and reload commit: `listener`, when given, is bound and replaces the one running (its
   * peers are cut off: they reconnect to the new address). Remotes kept keep their connection, unless
   * the token changed: then every connection that proved the old one ends, in and out (the pushers
   * prove the new one at once), as a rotated secret must not leave open what the old one opened.
   * Null: peers removed, every table unshared.
   */
  configure(cfg: PeersConfig | null, token: string | null, listener: PeerListener | null): void {
    const rekeyed = this.tokenChanged(token);
    this.cfg = cfg;
    this.tokenText = token;
    const cut: string[] = [];
    if (listener !== null || cfg === null) {
      // A moved listener's connections proved the old token too: ended and counted as the kept
      // listener's are, before close() destroys them without a word.
      if (rekeyed && this.listener !== null && cfg !== null) this.endConnections(this.listener, cfg, rekeyed, cut);
      void this.listener?.close();
      this.listener = listener;
    }
    if (this.listener !== null && cfg !== null) this.endConnections(this.listener, cfg, rekeyed, cut);
    const want = new Set((cfg?.remotes ?? []).map(formatHostPort));
    const local = cfg === null ? undefined : sourceAddress(cfg.listen.host);
    // A remote still listed keeps its count across a new local address: licgate_peer_updates_total
    // is a counter, and one that goes back reads to Prometheus as a restart.
    const sent = new Map<string, number>();
    for (const [name, p] of this.pushers) {
      if (want.has(name) && p.localAddress === local) {
        if (rekeyed) p.rekey();
        continue;
      }
      if (want.has(name)) sent.set(name, p.sent);
      p.stop();
      this.pushers.delete(name);
    }
    for (const r of cfg?.remotes ?? []) {
      const name = formatHostPort(r);
      if (this.pushers.has(name)) continue;
      const p = new PeerPusher(r, this, local);
      p.sent = sent.get(name) ?? 0;
      this.pushers.set(name, p);
      p.start();
    }
    if (rekeyed) this.cutOffRekeyed(cut);
    this.attach();
    const every = this.passEvery();
    if (this.pass !== null && (cfg === null || every !== this.passMs)) {
      clearInterval(this.pass);
      this.pass = null;
    }
    if (cfg !== null && this.pass === null) {
      this.passMs = every;
      this.pass = setInterval(() => void this.refreshPass(), every);
    }
  }

  /**
   * Resets `l`'s connections from hosts no longer in remotes (one would otherwise push on for as long
   * as it lasts) and, when the token changed, ends the others, adding their peers to `cut`: a
   * removed remote's is counted once, as reset.
   */
  private endConnections(l: PeerListener, cfg: PeersConfig, rekeyed: boolean, cut: string[]): void {
    this.restrict(l, cfg);
    l.cutOffDenied();
    if (rekeyed) cut.push(...l.cutOffAll());
  }

  /** Whether `next` replaces a token in force with another (start-up and removing peers replace none). */
  tokenChanged(next: string | null): boolean {
    return this.tokenText !== null && next !== null && !sameToken(this.tokenText, next);
  }

  /** The connections in that a token change ended: counted as cut off, logged in one line. */
  private cutOffRekeyed(peers: string[]): void {
    const why = 'the token changed here (peers.token_file): the connection proved the old one';
    for (const peer of peers) {
      const st = this.incomingOf(peer);
      st.cutOff++;
      st.lastCutOff = why;
    }
    const from = [...new Set(peers)].join(', ');
    this.log.info({ cut_off: peers.length, reconnecting: this.pushers.size }, `peers: the token changed: cut off ${peers.length} connection(s) in that proved the old one${from === '' ? '' : ` (from ${from})`}, and the pushers prove the new one now; a host with another token refuses it`);
  }

  /** The refresh pass's interval for the tables of the model now: a quarter of the shortest stick_ttl, 1 s to 60 s. */
  private passEvery(): number {
    let every = REFRESH_PASS_MS;
    for (const b of this.model().backends.values()) if (b.stick !== null) every = Math.min(every, b.cfg.stick_ttl / 4);
    return Math.max(MIN_PASS_MS, Math.round(every));
  }

  /**
   * Tracks every stick table of the model running now (again after each reload: a backend that gained
   * `stick: source` starts with an empty table, and its entries travel as they are made); with peers
   * off, none.
   */
  attach(): void {
    for (const b of this.model().backends.values()) {
      const t = b.stick;
      if (t === null) continue;
      if (this.cfg === null) t.peers = null;
      else t.peers ??= { pending: new Set(), servers: new Set(), cleared: false, wake: this.wake };
    }
  }

  async close(): Promise<void> {
    if (this.pass !== null) clearInterval(this.pass);
    this.pass = null;
    for (const p of this.pushers.values()) p.stop();
    this.pushers.clear();
    await this.listener?.close();
    this.listener = null;
    for (const l of [this.cutOffs, this.strayLines, this.skipLines]) l.close();
  }

  private restrict(l: PeerListener, cfg: PeersConfig): void {
    l.restrict(allowListOf(cfg.remotes.map((r) => `${r.host}/${r.host.includes(':') ? 128 : 32}`)), (peer) => this.stray(peer, 'not in peers.remotes'));
  }

  // --- PushSource

  token(): string {
    return this.tokenText ?? '';
  }

  tables(): string[] {
    return [...this.model().backends.values()].filter((b) => b.stick !== null).map((b) => b.name);
  }

  clients(backend: string): string[] {
    return this.model().backend(backend)?.stick?.clients() ?? [];
  }

  line(backend: string, client: string, now: number, full: boolean): string {
    const b = this.model().backend(backend);
    const e = b?.stick?.peerEntry(client, now);
    const s = e === undefined ? undefined : b!.server(e.server);
    if (e !== undefined && s !== undefined) return setLine(backend, client, e.server, formatHostPort(s.address), e.expiresIn, e.sinceAgo);
    return full ? '' : this.markLine(backend, 'D', client, now);
  }

  marks(backend: string): { clients: string[]; servers: string[]; cleared: boolean } {
    const u = this.model().backend(backend)?.stick?.unstucks();
    return { clients: u?.clients.map((c) => c[0]) ?? [], servers: u?.servers.map((x) => x[0]) ?? [], cleared: u?.clearedAgo != null };
  }

  markLine(backend: string, kind: MarkKind, key: string, now: number): string {
    const t = this.model().backend(backend)?.stick;
    if (t == null) return '';
    if (kind === 'C') {
      const ago = t.clearedAgo(now);
      return ago === undefined ? '' : clearLine(backend, ago);
    }
    if (kind === 'U') {
      const ago = t.serverUnstuckAgo(key, now);
      return ago === undefined ? '' : unstickServerLine(backend, key, ago);
    }
    const u = t.unstuckEntry(key, now);
    return u === undefined ? '' : deleteLine(backend, key, u.server, u.ago);
  }

  changed(p: PeerPusher, to: PusherState, detail: string | null): void {
    const line = { peer: p.name, state: to, ...(detail !== null ? { reason: detail } : {}) };
    if (to === 'connected') this.log.info(line, `peers: pushing stick tables to ${p.name}: connected, sending the whole table, then changes`);
    else if (to === 'auth-failed') this.log.error(line, `peers: ${p.name} refused: ${detail}; retrying every few seconds, quietly`);
    else this.log.warn(line, `peers: ${p.name} not reachable (${detail}); retrying every few seconds, quietly, and sending the whole table once back`);
  }

  // --- PeerInbox

  authenticated(peer: string): void {
    const st = this.incomingOf(peer);
    st.connected++;
    st.since = Date.now();
    if (st.connected === 1) this.log.info({ peer }, `peers: ${peer} connected and proved the token; applying its stick entries`);
    const host = boundHost(peer);
    for (const p of this.pushers.values()) if (boundHost(p.remote.host) === host) p.reconnectNow();
  }

  closed(peer: string): void {
    const st = this.incomingOf(peer);
    st.connected = Math.max(0, st.connected - 1);
    if (st.connected === 0) st.since = null;
  }

  cutOff(peer: string, why: string, auth: boolean): void {
    const st = this.incomingOf(peer);
    st.cutOff++;
    st.lastCutOff = why;
    this.cutOffs.note(peer, { why, auth });
  }

  /**
   * Lines about peers: the first at once, then at most one a minute with how many since, so a
   * remote stuck retrying a wrong token (every 5 s) or a peer config that differs (an entry skipped
   * per line) cannot fill the log.
   */
  private readonly cutOffs = new PeerEventSummary<{ why: string; auth: boolean }>(({ count, lastReason, top, topCount }) => {
    const msg = `peers: cut off ${top}: ${lastReason!.why}${count > 1 ? ` (${count} cut off since the last such line, ${topCount} from ${top})` : ''}`;
    if (lastReason!.auth) this.log.error({ peer: top, reason: lastReason!.why, cut_off: count }, msg);
    else this.log.warn({ peer: top, reason: lastReason!.why, cut_off: count }, msg);
  }, LOG_EVERY_MS);

  private readonly strayLines = new PeerEventSummary(({ count, lastReason, top, topCount }) =>
    this.log.warn({ peer: top, reason: lastReason, reset: count }, `peers: reset a connection from ${top}: ${lastReason}${count > 1 ? ` (${count} since the last such line, ${topCount} from ${top})` : ''}`),
  LOG_EVERY_MS);

  private readonly skipLines = new PeerEventSummary(({ count, lastReason, top }) =>
    this.log.warn({ peer: top, reason: lastReason, skipped: count }, `peers: skipped ${count > 1 ? `${count} entries` : 'an entry'} from ${top}: ${lastReason}; both hosts need the same backends and servers`),
  LOG_EVERY_MS);

  received(peer: string, m: Exclude<PeerMessage, { type: 'K' }>): void {
    const st = this.incomingOf(peer);
    st.received++;
    const b = this.model().backend(m.backend);
    const t = b?.stick;
    if (b === undefined || t == null) return this.skip(peer, st, `backend ${m.backend} ${b ? 'has no "stick: source" here' : 'does not exist here'}`);
    const now = performance.now();
    if (m.type === 'D') t.unstuckByPeer(m.client, m.server, now - m.ago, now);
    else if (m.type === 'U') {
      // Only servers this host has: the markers it keeps are bounded by its config, not by the peer.
      if (b.server(m.server) === undefined) return this.skip(peer, st, `backend ${b.name} has no server ${m.server} here`);
      t.serverUnstuckByPeer(m.server, now - m.ago, now);
    } else if (m.type === 'C') t.clearedByPeer(now - m.ago, now);
    else {
      const s = b.server(m.server);
      if (s === undefined) return this.skip(peer, st, `backend ${b.name} has no server ${m.server} here`);
      const at = formatHostPort(s.address);
      if (at !== m.address) return this.skip(peer, st, `server ${b.name}/${m.server} is ${at} here, ${m.address} there`);
      const r = t.applyPeer(m.client, m.server, m.expiresIn, m.sinceAgo, now);
      if (r !== 'applied') {
        st[r]++;
        return;
      }
    }
    st.applied++;
  }

  /**
   * A connection reset at accept (an address not in peers.remotes, or too many at once): counted
   * apart from the remotes, so a scan of the port grows no table, and logged once a minute at most.
   */
  private stray(peer: string | undefined, why: string): void {
    this.strays++;
    this.strayLines.note(peer, why);
  }

  /** Connections reset at accept since start (see stray). */
  strays = 0;

  private skip(peer: string, st: Incoming, why: string): void {
    st.skipped++;
    st.lastSkip = why;
    this.skipLines.note(peer, why);
  }

  private incomingOf(peer: string): Incoming {
    let st = this.incoming.get(peer);
    if (st === undefined) {
      st = { connected: 0, since: null, received: 0, applied: 0, kept: 0, unstuck: 0, skipped: 0, cutOff: 0, lastSkip: null, lastCutOff: null };
      this.incoming.set(peer, st);
    }
    return st;
  }

  // --- changes to the pushers

  private readonly wake = (): void => {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(this.flush);
  };

  /** Hands each table's noted changes to the connected pushers (a disconnected one gets the whole table later). */
  private readonly flush = (): void => {
    this.flushQueued = false;
    const live = [...this.pushers.values()].filter((p) => p.live);
    for (const b of this.model().backends.values()) {
      const p = b.stick?.peers;
      if (p == null) continue;
      if (p.cleared) for (const pu of live) pu.queueClear(b.name);
      for (const sv of p.servers) for (const pu of live) pu.queueServer(b.name, sv);
      for (const key of p.pending) for (const pu of live) pu.queue(b.name, key);
      p.cleared = false;
      p.servers.clear();
      p.pending.clear();
    }
    for (const pu of live) pu.pump();
  };

  /**
   * Once a minute (see REFRESH_PASS_MS): entries whose peers' copy would lapse within half a ttl
   * (plus a pass) while this host's lives on go to the connected pushers, a batch of keys per turn.
   */
  async refreshPass(): Promise<void> {
    if (this.passing) return;
    this.passing = true;
    try {
      for (const b of this.model().backends.values()) {
        const t = b.stick;
        if (t === null || t.peers === null) continue;
        const margin = b.cfg.stick_ttl / 2 + this.passMs;
        const clients = t.clients();
        let live: PeerPusher[] = [];
        for (let i = 0; i < clients.length; i++) {
          if (i % PASS_BATCH === 0) {
            if (i > 0) await new Promise(setImmediate);
            // A pusher that connected meanwhile sends the whole table; one lost takes nothing.
            live = [...this.pushers.values()].filter((p) => p.live);
            if (live.length === 0) return;
          }
          if (t.peerStale(clients[i]!, margin)) for (const p of live) p.queue(b.name, clients[i]!);
        }
      }
      for (const p of this.pushers.values()) p.pump();
    } finally {
      this.passing = false;
    }
  }

  /** /status's `peers`. */
  status(): object | null {
    if (this.cfg === null) return null;
    const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
    return {
      listen: formatHostPort(this.cfg.listen),
      reset_at_connect: this.strays,
      remotes: [...this.pushers.values()].map((p) => ({ remote: p.name, connected: p.live, state: p.state, since: iso(p.since), last_error: p.lastError, entries_sent: p.sent })),
      incoming: [...this.incoming].map(([peer, s]) => ({ peer, connected: s.connected > 0, since: iso(s.since), received: s.received, applied: s.applied, kept: s.kept, unstuck: s.unstuck, skipped: s.skipped, last_skip: s.lastSkip, cut_off: s.cutOff, last_cut_off: s.lastCutOff })),
    };
  }
}

/** The address pushers connect from: peers.listen's, unless it is a wildcard or a name. */
function sourceAddress(host: string): string | undefined {
  return isIP(host) !== 0 && !isWildcard(host) ? host : undefined;
}
