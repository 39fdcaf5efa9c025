import { EventEmitter } from 'node:events';
import type { Server } from './server.js';

export interface ServerStateEvent {
  backend: string;
  server: string;
  from: string;
  to: string;
  reason: string;
  /** Did the server's usability for new connections change (not only its transitional count)? */
  usableChanged: boolean;
}

export interface TierChangeEvent {
  backend: string;
  from: number | null;
  to: number | null;
  reason: string;
}

export interface ModelEventMap {
  'server-state': [ServerStateEvent];
  'tier-change': [TierChangeEvent];
  'check-done': [{ backend: string; server: string; ok: boolean; durationMs: number; reason: string }];
  'connect-error': [{ backend: string; server: string; reason: string }];
  /**
   * `on_marked_down: shutdown-sessions`: the sessions to `server` are to be closed now (the frontends
   * hold them); with `port`, only those that connected to that port (Server.downOnPort).
   * `rest`: the server was marked DOWN on `rest.port` only, and the sessions that DOWN kept go now,
   * for `rest.reason` (its own check failed, its agent said down).
   */
  'shutdown-sessions': [{ backend: string; server: Server; port: number | null; rest: { port: number; reason: string } | null }];
}

/** One bus per daemon: the model emits, observers (log, metrics, notifier) listen. */
export class ModelEvents extends EventEmitter<ModelEventMap> {}

export function tierName(tier: number | null): string {
  if (tier === null) return 'none';
  if (tier === 0) return 'active';
  if (tier === 1) return 'backup';
  return 'dr';
}

/**
 * The tier as a human reads it (logs, ctl, webhooks, the stats page): every tier from 2 up is `dr`
 * to tierName (STATUS, metric labels), and a backend with DR sites at tiers 2 and 3 moved `dr -> dr`.
 * The first DR tier keeps its bare name; a further one says its number.
 */
export function tierLabel(tier: number | null): string {
  return tier !== null && tier > 2 ? `dr tier ${tier}` : tierName(tier);
}
