import type { ServerResponse } from 'node:http';
import type { Backend } from '../model/backend.js';
import type { StickTable } from '../balance/stick-table.js';
import { wallTimeOf } from '../wall-time.js';
import { sendJsonList } from './admin-http.js';

/** Entries written per loop turn: about 2 ms of work, so that a full table does not stall relaying. */
const BATCH = 1000;

/**
 * GET /backends/B/stick-table: HAProxy's `show table B`, for "which server is this client stuck
 * to, since when, until when?". `expires_in_s` is null while the client has sessions open: the
 * entry lasts until the last one ends, then stick_ttl counts from there. Written in batches, one
 * loop turn each: built whole, a table of the default stick_size (100,000) held up every session's
 * relaying for about 200 ms. Each entry is read when its batch is written; one gone by then is left
 * out.
 */
export async function sendStickTable(res: ServerResponse, backend: Backend & { stick: StickTable }, client: string | null, now = performance.now()): Promise<void> {
  const head = { backend: backend.name, stick: backend.cfg.stick, stick_ttl_s: backend.cfg.stick_ttl / 1000, stick_size: backend.cfg.stick_size, ...(client === null ? {} : { client }) };
  const keys = client === null ? backend.stick.clients(now) : [client];
  // One wall-clock offset for the whole table, not a clock read per entry.
  const wall = wallTimeOf(now) - now;
  await sendJsonList(res, head, 'entries', keys, (key) => {
    const e = backend.stick.entry(key, now);
    return e && { client: key, server: e.server, sessions: e.sessions, since: new Date(e.since + wall).toISOString(), age_s: seconds(now - e.since), expires_in_s: e.sessions > 0 ? null : seconds(e.expires - now) };
  }, BATCH);
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}
