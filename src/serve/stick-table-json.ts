import type { Backend } from '../model/backend.js';
import type { EntryVisitor, StickTable } from '../balance/stick-table.js';
import { wallTimeOf } from '../wall-time.js';

/**
 * GET /backends/B/stick-table: HAProxy's `show table B`, for "which server is this client stuck
 * to, since when, until when?". `expires_in_s` is null while the client has sessions open: the
 * entry lasts until the last one ends, then stick_ttl counts from there.
 */
export function stickTableJson(backend: Backend & { stick: StickTable }, client: string | null, now = performance.now()) {
  const entries: { client: string; server: string; sessions: number; since: string; age_s: number; expires_in_s: number | null }[] = [];
  // One wall-clock offset for the whole table, not a clock read per entry.
  const wall = wallTimeOf(now) - now;
  const visit: EntryVisitor = (key, server, since, expires, sessions) => {
    entries.push({ client: key, server, sessions, since: new Date(since + wall).toISOString(), age_s: seconds(now - since), expires_in_s: sessions > 0 ? null : seconds(expires - now) });
  };
  if (client === null) backend.stick.forEachLive(visit, now);
  else backend.stick.visitOne(client, visit, now);
  return { backend: backend.name, stick: backend.cfg.stick, stick_ttl_s: backend.cfg.stick_ttl / 1000, stick_size: backend.cfg.stick_size, ...(client === null ? {} : { client }), entries };
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}
