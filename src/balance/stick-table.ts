import { ExpiryHeap } from './expiry-heap.js';

/**
 * Client address → server name. One per backend, shared by every frontend using it, so a FlexLM
 * client's lmgrd and vendor-daemon connections meet the same server.
 *
 * An entry lives `ttlMs` past the client's last activity — a new connection, or the end of its last
 * open session — and never expires while the client has a session open: a FlexLM client holds its
 * vendor-daemon connection for hours with only heartbeats on it, and a second checkout from the same
 * host must not land on another server (that server would count a second license).
 *
 * Map iteration order is activity order (every touch re-inserts), so `expires` never decreases from
 * the oldest entry to the newest: sweeping and LRU eviction only ever look at the head. A peer's
 * entry (applyPeer) can expire before the entries ahead of it: those are listed in `late`.
 */
interface Entry {
  server: string;
  /** performance.now() time the client was put on `server` (for the admin's "stuck since when"). */
  since: number;
  /** performance.now() time: an NTP step or a VM's clock sync must not expire every entry at once. */
  expires: number;
  /** The expiry the peers (src/peers/) were last told, or were told by: their copy lives that long. */
  told: number;
}

/**
 * What the peers (src/peers/peer-sync.ts) need of a table: the clients whose entry was added, moved
 * to another server or dropped since they last took the set, and whether the whole table was
 * cleared. Separate from `dirty`, which admin.state_file's writer reads and clears.
 */
export interface PeerTracking {
  readonly pending: Set<string>;
  /** Servers unstuck (`ctl unstick --server`) since the peers last took the set: one U line each. */
  readonly servers: Set<string>;
  cleared: boolean;
  /** Called when `pending` or `servers` gains its first key or the table is cleared (one flush per loop turn). */
  readonly wake: () => void;
}

/**
 * An unstick the peers must not undo (see StickTable.unstuck): the server the client's entry named
 * (ANY when this host had none), and the performance.now() time it was made.
 */
interface Unstuck {
  server: string;
  at: number;
}

/** An Unstuck's server when the unstick found no entry here (peer-codec's ANY_SERVER). */
const ANY = '*';

/**
 * A time that crossed the wire is late: a line's age counts from when it was written, so the time
 * on the wire, in the socket while the other loop was busy (a peer's full push holds it up to 18 ms
 * a turn) and the rounding to whole ms all add to it, more for one line than for the next. A
 * deletion marker drops, or refuses, only what was placed more than this before it: an entry placed
 * on one host just after the unstick would otherwise be dropped on the other.
 */
const PEER_SLACK_MS = 25;
/**
 * A peer's marker this close to the one held for the same client, server or table is that same
 * unstick come back (see unstuckByPeer): the earlier time is kept.
 */
const SAME_UNSTICK_MS = 1000;

/** How many entries with open sessions an insertion may step over before it evicts one anyway. */
const EVICT_SCAN = 8;

export class StickTable {
  private readonly entries = new Map<string, Entry>();
  /** Open sessions per client, only for clients that have at least one. Bounded by open connections. */
  private readonly open = new Map<string, number>();
  /**
   * Some entry was added, moved or dropped since admin.state_file's writer last wrote the table (it
   * clears this). A flag and no more on the connection path: the writer copies the table every few
   * seconds while it is set, not once per entry.
   */
  dirty = false;
  /**
   * Some entry's expiry only moved (a known client connected again, its last session ended) since
   * the writer last wrote the table. Kept apart from `dirty`: every connection of a known client
   * refreshes, and the expiry it moves is hours away, so the writer writes for it once a minute,
   * not every few seconds (a full table is 5 MB).
   */
  refreshed = false;
  /** Set while a `peers` section shares this table; null otherwise (one null check per new entry). */
  peers: PeerTracking | null = null;
  /** The latest expiry put at the map's end: an entry put there expiring before it is late. */
  private newest = -Infinity;
  /**
   * Entries put at the map's end with an expiry before `newest` (a peer's, or a restored one), by
   * that expiry. The head-only sweep stops at the first live entry, so without this an expired one
   * behind it stayed: counted in size, and a live entry was evicted before it. A heap, not a scan:
   * a full table of them, each new client evicting, cost 4.7 ms per connection when every
   * insertion scanned them all. A line whose entry went or moved since stays until it comes up.
   */
  private readonly late = new ExpiryHeap();
  /**
   * Deletion markers, kept while the table is shared: the clients, servers and whole-table unstucks
   * of the last `ttlMs` (an entry placed before one could not have lived longer), made here or
   * received. A peer's entry placed before a marker for it is refused, and the full push sends them,
   * so the other host drops what it placed before them even when it was away at the unstick. HAProxy's
   * peers have no deletion markers: an entry cleared while a peer was away comes back from it.
   * Clients in the order their marker was made (at most maxSize; the oldest go first). Only unstick
   * and the peers' lines touch these: get and set never do.
   */
  private readonly unstuck = new Map<string, Unstuck>();
  private readonly unstuckServers = new Map<string, number>();
  private clearedAt = -Infinity;

  constructor(private ttlMs: number, private maxSize: number) {}

  /** Live entries (expired ones are swept first, so this is what /status and metrics show). */
  get size(): number {
    this.sweep(performance.now());
    return this.entries.size;
  }

  get(key: string, now = performance.now()): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      if (!this.open.has(key)) {
        this.entries.delete(key);
        return undefined;
      }
      this.touch(key, e, now);
    }
    return e.server;
  }

  /** Sets or refreshes an entry (every new connection of a sticky client refreshes its TTL). */
  set(key: string, server: string, now = performance.now()): void {
    const e = this.entries.get(key);
    if (e) {
      if (e.server !== server) {
        e.server = server;
        e.since = now;
        this.dirty = true;
        if (this.peers !== null) this.notePeer(key);
      }
      this.touch(key, e, now);
      return;
    }
    this.entries.set(key, { server, since: now, expires: now + this.ttlMs, told: 0 });
    if (now + this.ttlMs > this.newest) this.newest = now + this.ttlMs;
    this.dirty = true;
    if (this.peers !== null) this.notePeer(key);
    if (this.entries.size > this.maxSize) this.evictOne(now);
  }

  /**
   * Start-up, from admin.state_file: each saved entry with the time it has left (`expiresIn`) and
   * how long ago its client was put on its server (`sinceAgo`), both in ms. Taken in expiry order,
   * so the map's order stays expiry order; one past its time is not taken, and none keeps more than
   * the ttl configured now (a config that lowered `stick_ttl` meanwhile). An entry the table has
   * already is left as it is. Neither `dirty` nor `refreshed`: the file holds these.
   */
  restore(saved: readonly { client: string; server: string; expiresIn: number; sinceAgo: number }[], now = performance.now()): number {
    let n = 0;
    const sorted = saved.filter((e) => e.expiresIn > 0).sort((a, b) => a.expiresIn - b.expiresIn);
    // Only the last maxSize can stay (eviction takes the head): inserting the others only to evict
    // them one at a time from a Map's head held a start 8 s for 400,000 saved entries at
    // stick_size 100,000 (a stick_size lowered since, or a file not of licgate's making), 27 s for 1M.
    for (let i = Math.max(0, sorted.length - this.maxSize); i < sorted.length; i++) {
      const e = sorted[i]!;
      if (this.entries.has(e.client)) continue;
      this.place(e.client, { server: e.server, since: now - Math.max(0, e.sinceAgo), expires: now + Math.min(e.expiresIn, this.ttlMs), told: 0 });
      n++;
      if (this.entries.size > this.maxSize) this.evictOne(now);
    }
    return Math.min(n, this.entries.size);
  }

  /**
   * Drops `key`'s entry, so its next connection is balanced afresh; false when it had none live.
   * Its open-session count stays (see clear).
   */
  delete(key: string, now = performance.now()): boolean {
    this.sweep(now);
    const server = this.entries.get(key)?.server;
    const had = this.entries.delete(key);
    if (had) this.dirty = true;
    // Told even when this host had no entry: the other host's, whatever it names, goes (ANY).
    if (this.peers !== null) {
      this.markUnstuck(key, server ?? ANY, now, now);
      this.notePeer(key);
    }
    return had;
  }

  /**
   * A peer's D line: `key` was unstuck from `server` (ANY: from whatever it was on) at `at`. Its
   * entry here goes when it names that server and was placed before (by PEER_SLACK_MS): in a split
   * brain, this host's entry to another server, or one placed after the unstick, is not what the
   * admin removed.
   */
  unstuckByPeer(key: string, server: string, at: number, now = performance.now()): void {
    const u = this.unstuck.get(key);
    // The same unstick come back: the full push sends received markers too (a third host, or one
    // restarted without its state file, learns them), so the one made here returns at every
    // reconnect, a little later each time. Taken as news, it crept later and dropped the entry
    // the client got right after the unstick.
    if (u !== undefined && u.server === server && Math.abs(at - u.at) <= SAME_UNSTICK_MS) {
      if (at < u.at) u.at = at;
      return;
    }
    this.markUnstuck(key, server, at, now);
    const e = this.entries.get(key);
    if (e !== undefined && (server === ANY || e.server === server) && e.since <= at - PEER_SLACK_MS) {
      this.entries.delete(key);
      this.dirty = true;
    }
  }

  /** A peer's U line: every entry naming `server` placed before `at` (by PEER_SLACK_MS) goes. */
  serverUnstuckByPeer(server: string, at: number, now = performance.now()): void {
    const held = this.heldFor(this.unstuckServers.get(server) ?? -Infinity, at, now);
    if (held === null) return;
    this.unstuckServers.set(server, held.at);
    this.dirty = true;
    if (held.news) this.dropPlacedBy(at - PEER_SLACK_MS, server);
  }

  /** A peer's C line: every entry placed before `at` (by PEER_SLACK_MS) goes. */
  clearedByPeer(at: number, now = performance.now()): void {
    const held = this.heldFor(this.clearedAt, at, now);
    if (held === null) return;
    this.clearedAt = held.at;
    this.dirty = true;
    if (held.news) this.dropPlacedBy(at - PEER_SLACK_MS, null);
  }

  /**
   * A peer's U or C marker made at `at`, next to the one held (made at `held`): the time to hold,
   * and whether it is news, or null when the held one stays as it is. Only news walks the table:
   * what was placed before the held one went when it came, and every reconnect's full push sends
   * the markers again (the same unstick, or an older one).
   */
  private heldFor(held: number, at: number, now: number): { at: number; news: boolean } | null {
    if (at + this.ttlMs <= now) return null;
    if (held + this.ttlMs <= now || at > held + SAME_UNSTICK_MS) return { at, news: true };
    return at < held && at >= held - SAME_UNSTICK_MS ? { at, news: false } : null;
  }

  /** The deletion markers this host holds now, for the full push: ages in ms. */
  unstucks(now = performance.now()): { clients: [string, string, number][]; servers: [string, number][]; clearedAgo: number | null } {
    this.sweepUnstuck(now);
    const live = (at: number): boolean => at + this.ttlMs > now;
    const clients: [string, string, number][] = [];
    for (const [k, u] of this.unstuck) if (live(u.at)) clients.push([k, u.server, now - u.at]);
    const servers: [string, number][] = [];
    for (const [s, at] of this.unstuckServers) if (live(at)) servers.push([s, now - at]);
    return { clients, servers, clearedAgo: live(this.clearedAt) ? now - this.clearedAt : null };
  }

  /**
   * Start-up, from admin.state_file: the markers `unstucks` gave, their ages from now. One past the
   * ttl configured now is not taken. Not `dirty`: the file holds these.
   */
  restoreUnstucks(saved: { clients: [string, string, number][]; servers: [string, number][]; clearedAgo: number | null }, now = performance.now()): void {
    const dirty = this.dirty;
    for (const [c, sv, ago] of [...saved.clients].sort((x, y) => y[2] - x[2])) this.markUnstuck(c, sv, now - ago, now);
    for (const [sv, ago] of saved.servers) if (ago < this.ttlMs) this.unstuckServers.set(sv, now - ago);
    if (saved.clearedAgo !== null && saved.clearedAgo < this.ttlMs) this.clearedAt = now - saved.clearedAgo;
    this.dirty = dirty;
  }

  /** `key`'s marker, as a D line needs it: server and age; undefined when none is held. */
  unstuckEntry(key: string, now = performance.now()): { server: string; ago: number } | undefined {
    const u = this.unstuck.get(key);
    return u === undefined || u.at + this.ttlMs <= now ? undefined : { server: u.server, ago: now - u.at };
  }

  /** How long ago `server` was unstuck (`ctl unstick --server`), or undefined. */
  serverUnstuckAgo(server: string, now = performance.now()): number | undefined {
    const at = this.unstuckServers.get(server);
    return at === undefined || at + this.ttlMs <= now ? undefined : now - at;
  }

  /** How long ago the whole table was cleared (`ctl unstick --all`), or undefined. */
  clearedAgo(now = performance.now()): number | undefined {
    return this.clearedAt + this.ttlMs <= now ? undefined : now - this.clearedAt;
  }

  private markUnstuck(key: string, server: string, at: number, now: number): void {
    if (at + this.ttlMs <= now) return;
    const u = this.unstuck.get(key);
    if (u !== undefined && u.at >= at) return;
    this.unstuck.delete(key);
    this.unstuck.set(key, { server, at });
    // admin.state_file keeps the markers too (see serve/admin-state-file.ts).
    this.dirty = true;
    this.sweepUnstuck(now);
    if (this.unstuck.size > this.maxSize) this.unstuck.delete(this.unstuck.keys().next().value!);
  }

  /** Markers past the ttl, from the oldest made (a received one older than those after it waits its turn). */
  private sweepUnstuck(now: number): void {
    for (const [k, u] of this.unstuck) {
      if (u.at + this.ttlMs > now) break;
      this.unstuck.delete(k);
    }
  }

  /** Whether a peer's entry for `key` on `server`, placed at `since`, is one an unstick here removed. */
  private unstuckBefore(key: string, server: string, since: number, now: number): boolean {
    if (this.placedBefore(since, this.clearedAt, now)) return true;
    const s = this.unstuckServers.get(server);
    if (s !== undefined && this.placedBefore(since, s, now)) return true;
    const u = this.unstuck.get(key);
    return u !== undefined && (u.server === ANY || u.server === server) && this.placedBefore(since, u.at, now);
  }

  /** Whether an entry placed at `since` was placed before a live marker made at `at` (see PEER_SLACK_MS). */
  private placedBefore(since: number, at: number, now: number): boolean {
    return since <= at - PEER_SLACK_MS && at + this.ttlMs > now;
  }

  /** Drops the entries placed no later than `at`, those naming `server` only when given. */
  private dropPlacedBy(at: number, server: string | null): void {
    for (const [k, e] of this.entries) {
      if (e.since > at || (server !== null && e.server !== server)) continue;
      this.entries.delete(k);
      this.dirty = true;
    }
  }

  /** A session of `key` took a slot (its entry cannot expire until the last one ends). */
  sessionOpened(key: string): void {
    this.open.set(key, (this.open.get(key) ?? 0) + 1);
  }

  /** A session of `key` ended; after its last one, the TTL counts from now. */
  sessionClosed(key: string, now = performance.now()): void {
    const n = this.open.get(key);
    if (n === undefined) return;
    if (n > 1) {
      this.open.set(key, n - 1);
      return;
    }
    this.open.delete(key);
    const e = this.entries.get(key);
    if (e) this.touch(key, e, now);
  }

  /** Clients with at least one open session (for tests and diagnostics). */
  get clientsWithSessions(): number {
    return this.open.size;
  }

  /**
   * A reload changed `stick_ttl` or `stick_size`: the entries stay (a host holding a license must not
   * be sent to another server for its next checkout, which would count a second license). Every
   * entry's expiry moves by the change in ttl, so activity order stays expiry order; a smaller size
   * evicts as an insertion would.
   */
  resize(ttlMs: number, maxSize: number, now = performance.now()): void {
    const shift = ttlMs - this.ttlMs;
    if (shift !== 0) {
      for (const e of this.entries.values()) e.expires += shift;
      this.late.shift(shift);
      this.newest += shift;
    }
    this.ttlMs = ttlMs;
    this.maxSize = maxSize;
    if (shift !== 0) this.dirty = true;
    while (this.entries.size > maxSize) this.evictOne(now);
    // The client markers are held to stick_size too: markUnstuck drops one per marker it adds, so a
    // lowered size would otherwise never be reached.
    for (const k of this.unstuck.keys()) {
      if (this.unstuck.size <= maxSize) break;
      this.unstuck.delete(k);
      this.dirty = true;
    }
  }

  /**
   * Drops the entries that send clients to `server` (a reload removed it, or an admin replaced it);
   * returns how many. `tellPeers` false for a reload: it changed this host's config only, and the
   * other host may still serve `server` to clients holding licenses there (the backup host is
   * reloaded first), so its entries stay; an admin's `ctl unstick --server` is told.
   */
  forgetServer(server: string, now = performance.now(), tellPeers = true): number {
    this.sweep(now);
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.server !== server) continue;
      this.entries.delete(k);
      n++;
    }
    if (n > 0) this.dirty = true;
    // A reload removed the server: its marker, pushed at each reconnect, was skipped by the other
    // host once it removed the server too, and logged there as configs that differ.
    if (!tellPeers && this.unstuckServers.delete(server)) this.dirty = true;
    // One marker for the server, not a line per client: the other host also drops its entries to
    // `server` that this host never had (a split brain, or entries made while the link was down).
    if (tellPeers && this.peers !== null) {
      this.unstuckServers.set(server, now);
      this.dirty = true;
      const p = this.peers;
      if (p.pending.size === 0 && p.servers.size === 0 && !p.cleared) p.wake();
      p.servers.add(server);
    }
    return n;
  }

  /**
   * Drops every entry (the admin's `clear table`); returns how many were live. The open-session
   * counts stay, here as in delete and forgetServer: those sessions still run, and they end
   * through sessionClosed. Dropped with the entries, a client that connects again before its old
   * sessions end would be counted from 0, the first old session to end would take its count to 0,
   * and its new entry could expire or be evicted under the sessions still open. Kept, the last
   * one to end finds no entry and makes none (or refreshes the client's new one).
   */
  clear(now = performance.now()): number {
    this.sweep(now);
    const n = this.entries.size;
    this.entries.clear();
    this.late.clear();
    if (n > 0) this.dirty = true;
    if (this.peers !== null) {
      // The table-wide marker covers every earlier one.
      this.clearedAt = now;
      this.dirty = true;
      this.unstuck.clear();
      this.unstuckServers.clear();
      this.peers.pending.clear();
      this.peers.servers.clear();
      this.peers.cleared = true;
      this.peers.wake();
    }
    return n;
  }

  /**
   * An entry a peer pushed: `expiresIn` and `sinceAgo` in ms as the peer measured them, the expiry
   * capped at this table's ttl. Not noted for the peers (no echo), and its `told` is its expiry, so
   * the refresh pass does not send it back either. Conflicts: a client with sessions open here keeps
   * its entry, and otherwise the more recent assignment wins (within PEER_SLACK_MS, the first server
   * by name). An entry placed before an unstick here that covers it (see `unstuck`) is refused:
   * 'unstuck'. 'kept': this host's entry (or none) stayed.
   *
   * A taken entry goes to the map's end like a touch, though its expiry may be earlier than the
   * entries before it: `late` lists it for the sweep.
   */
  applyPeer(key: string, server: string, expiresIn: number, sinceAgo: number, now = performance.now()): 'applied' | 'kept' | 'unstuck' {
    const expires = now + Math.min(expiresIn, this.ttlMs);
    const since = now - sinceAgo;
    if (this.unstuckBefore(key, server, since, now)) return 'unstuck';
    const e = this.entries.get(key);
    if (e !== undefined && (e.expires > now || this.open.has(key))) {
      // Expiring there as it was sent (setLine rounds under 0.5 ms to 0): no placement to take.
      if (expiresIn <= 0) return e.server === server ? 'applied' : 'kept';
      if (e.server !== server) {
        // Placed within PEER_SLACK_MS of each other, the wire may have made either look the later
        // on each host, and both would take the other's: the server whose name sorts first wins.
        const tie = Math.abs(e.since - since) < PEER_SLACK_MS;
        if (this.open.has(key) || (tie ? e.server < server : e.since > since)) return 'kept';
        e.server = server;
        e.since = since;
        this.dirty = true;
      }
      if (expires > e.expires) {
        e.expires = expires;
        this.refreshed = true;
        this.entries.delete(key);
        this.place(key, e);
      }
      if (e.told < e.expires) e.told = e.expires;
      return 'applied';
    }
    if (e !== undefined) this.entries.delete(key);
    if (expiresIn <= 0) return 'applied';
    this.place(key, { server, since, expires, told: expires });
    this.dirty = true;
    if (this.entries.size > this.maxSize) this.evictOne(now);
    return 'applied';
  }

  /**
   * `key`'s entry as the peers are told it, or undefined when it has none live: a client with
   * sessions open is told as if they ended now, as admin.state_file saves it. Records what was told.
   */
  peerEntry(key: string, now = performance.now()): { server: string; expiresIn: number; sinceAgo: number } | undefined {
    if (this.get(key, now) === undefined) return undefined;
    const e = this.entries.get(key)!;
    const expires = this.open.has(key) ? now + this.ttlMs : e.expires;
    e.told = expires;
    return { server: e.server, expiresIn: expires - now, sinceAgo: now - e.since };
  }

  /**
   * Whether the peers' copy of `key`'s entry needs its expiry refreshed: this host's entry lives past
   * what they were told (the client came back, or holds a session), and their copy has less than
   * `margin` ms left. So a copy never lapses while this host's entry lives, and an entry held for
   * hours costs one line per ttl - margin, not one per connection.
   */
  peerStale(key: string, margin: number, now = performance.now()): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    const expires = this.open.has(key) ? now + this.ttlMs : e.expires;
    return expires > e.told + 1000 && e.told - now < margin;
  }

  private notePeer(key: string): void {
    const p = this.peers!;
    if (p.pending.size === 0 && !p.cleared) {
      p.pending.add(key);
      p.wake();
    } else p.pending.add(key);
  }

  /**
   * The clients with a live entry, least recently active first. A listing of stick_size entries
   * reads them with entry() over several loop turns: keys alone copy in about a millisecond.
   */
  clients(now = performance.now()): string[] {
    this.sweep(now);
    return Array.from(this.entries.keys());
  }

  /** `key`'s live entry with its client's open sessions (0 when none); `expires` means nothing while there are some. */
  entry(key: string, now = performance.now()): { server: string; since: number; expires: number; sessions: number } | undefined {
    if (this.get(key, now) === undefined) return undefined;
    const e = this.entries.get(key)!;
    return { server: e.server, since: e.since, expires: e.expires, sessions: this.open.get(key) ?? 0 };
  }

  /**
   * Removes expired entries from the head, and late ones when one may have expired; an expired one
   * whose client is still connected is refreshed instead.
   */
  sweep(now = performance.now()): void {
    for (const [key, e] of this.entries) {
      if (e.expires > now) break;
      if (this.open.has(key)) this.touch(key, e, now);
      else this.entries.delete(key);
    }
    if (now >= this.late.top) this.sweepLate(now);
  }

  /** Entries behind the first live one that expired: all late (see `late`). */
  private sweepLate(now: number): void {
    const late = this.late;
    while (late.top <= now) {
      const key = late.topKey;
      const x = late.top;
      late.pop();
      const e = this.entries.get(key);
      // Gone, or put at the end again since (a touch, a peer's later expiry: late again if so).
      if (e === undefined || e.expires !== x) continue;
      if (this.open.has(key)) this.touch(key, e, now);
      else this.entries.delete(key);
    }
  }

  /** Puts `e` at the map's end, in `late` when it expires before an entry ahead of it. */
  private place(key: string, e: Entry): void {
    this.entries.set(key, e);
    if (e.expires >= this.newest) {
      this.newest = e.expires;
      return;
    }
    this.late.push(key, e.expires);
    // Lines of entries gone or moved since (each goes when it comes up, within a ttl) outnumbering
    // the table: a peer moving the same clients again and again must not grow the heap past it.
    if (this.late.length > 2 * this.entries.size + 1024) this.late.compact((k, x) => this.entries.get(k)?.expires === x);
  }

  private touch(key: string, e: Entry, now: number): void {
    e.expires = now + this.ttlMs;
    if (e.expires > this.newest) this.newest = e.expires;
    this.refreshed = true;
    this.entries.delete(key);
    this.entries.set(key, e);
  }

  /**
   * Over `maxSize`: evict the least recently active entry, stepping over (and refreshing) a few whose
   * clients still have sessions open. If even those are all in use, the oldest goes regardless —
   * the size bound wins over one client's stickiness.
   */
  private evictOne(now: number): void {
    if (now >= this.late.top) {
      this.sweepLate(now);
      if (this.entries.size <= this.maxSize) return;
    }
    for (let i = 0; i < EVICT_SCAN; i++) {
      const [key, e] = this.entries.entries().next().value!;
      if (!this.open.has(key)) {
        this.entries.delete(key);
        return;
      }
      this.touch(key, e, now);
    }
    this.entries.delete(this.entries.keys().next().value!);
  }
}
