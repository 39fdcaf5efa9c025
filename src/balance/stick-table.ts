/**
 * Client address → server name, with a TTL and LRU eviction. One per backend, shared by every
 * frontend using it, so a FlexLM client's lmgrd and vendor-daemon connections meet the same server.
 * Map iteration order is insertion order; re-inserting on touch keeps the oldest entry first.
 */
export class StickTable {
  private readonly entries = new Map<string, { server: string; expires: number }>();

  constructor(readonly ttlMs: number, readonly maxSize: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now = Date.now()): string | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.server;
  }

  /** Sets or refreshes an entry (a new connection by a sticky client refreshes its TTL). */
  set(key: string, server: string, now = Date.now()): void {
    this.entries.delete(key);
    this.entries.set(key, { server, expires: now + this.ttlMs });
    if (this.entries.size > this.maxSize) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Drops entries for a server that no longer exists (reload). */
  forgetServer(server: string): void {
    for (const [k, e] of this.entries) if (e.server === server) this.entries.delete(k);
  }
}
