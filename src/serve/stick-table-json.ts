import type { ServerResponse } from 'node:http';
import type { Backend } from '../model/backend.js';
import type { StickTable } from '../balance/stick-table.js';
import { wallTimeOf } from '../wall-time.js';
import { DELIVERY_MS } from './admin-http.js';

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
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  // The head as sendJson writes an object, left open for the entries, one per line.
  res.write(`${JSON.stringify(head, null, 2).slice(0, -2)},\n  "entries": [`);
  let written = 0;
  let room = true;
  for (let i = 0; i < keys.length; i += BATCH) {
    // A peer that reads slowly is written to as it reads, not buffered the whole table (14 MB at
    // 100,000 entries, and the admin port serves 128 peers); one that stops reading is cut off, as
    // the admin listener cuts off one that does not take a whole answer.
    if (i > 0) await (room ? new Promise((resolve) => setImmediate(resolve)) : drainedOrClosed(res));
    if (res.destroyed) return;
    let text = '';
    for (const key of keys.slice(i, i + BATCH)) {
      const e = backend.stick.entry(key, now);
      if (!e) continue;
      const entry = { client: key, server: e.server, sessions: e.sessions, since: new Date(e.since + wall).toISOString(), age_s: seconds(now - e.since), expires_in_s: e.sessions > 0 ? null : seconds(e.expires - now) };
      text += `${written++ ? ',' : ''}\n    ${JSON.stringify(entry)}`;
    }
    room = res.write(text);
  }
  res.end(written ? '\n  ]\n}\n' : ']\n}\n');
}

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => res.destroy(), DELIVERY_MS);
    const done = (): void => {
      clearTimeout(timer);
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}
