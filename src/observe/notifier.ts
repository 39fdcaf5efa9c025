import { hostname } from 'node:os';
import { Agent, request } from 'undici';
import type { NotifyEventName, WebhookConfig } from '../config/schema.js';
import { tierLabel, tierName, type ModelEvents } from '../model/events.js';
import { VERSION } from '../version.js';
import type { Logger } from './log.js';
import type { NotifyCounts } from './metrics.js';

export { NOTIFY_EVENTS, type NotifyEventName } from '../config/schema.js';

/** The JSON body of one POST. */
export interface Notification {
  event: NotifyEventName;
  time: string;
  host: string;
  version: string;
  backend: string | null;
  server: string | null;
  from: string | null;
  to: string | null;
  /** tier-change and backend-down only: the tier numbers, as `from`/`to` name every tier from 2 up `dr`. */
  from_tier?: number | null;
  to_tier?: number | null;
  reason: string;
}

export type NotificationInput = Pick<Notification, 'event' | 'reason'> & Partial<Pick<Notification, 'backend' | 'server' | 'from' | 'to' | 'from_tier' | 'to_tier'>>;

export interface NotifierOptions {
  /** One attempt (connect, headers and body) may take this long. */
  timeoutMs: number;
  /** Attempts after the first one failed; 4xx answers other than 408/429 are not retried. */
  retries: number;
  /** Wait before the first retry; doubles after each, up to maxBackoffMs. A longer Retry-After in the answer wins, also up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Notifications waiting per webhook; past this the oldest is dropped (and counted). */
  maxQueue: number;
}

export const NOTIFIER_DEFAULTS: NotifierOptions = { timeoutMs: 5000, retries: 3, backoffMs: 1000, maxBackoffMs: 30_000, maxQueue: 1000 };

interface Failure {
  reason: string;
  permanent: boolean;
  /** The receiver's Retry-After, in ms from now (RFC 9110 10.2.3). */
  retryAfterMs?: number;
}

/** One webhook target: its own FIFO and a single delivery loop, so a slow receiver delays only itself. */
class Webhook {
  readonly queue: Notification[] = [];
  busy = false;
  dropping = false;
  readonly where: string;
  /** Its place in notify.webhooks, set again at each reload: two webhooks on one host (two Slack channels) differ only in the path, which is not logged. */
  index = 0;
  /** Where the POST goes: the URL without its user:password, which travel as headers. */
  readonly target: string;
  readonly headers: Record<string, string>;
  constructor(readonly cfg: WebhookConfig) {
    this.where = redact(cfg.url);
    const { target, authorization } = splitCredentials(cfg.url);
    this.target = target;
    // undici sends nothing for a URL's user:password, so the receiver would answer 401. A header the
    // config names replaces the default of that name: undici sends both spellings of a name.
    const own = new Set(Object.keys(cfg.headers).map((k) => k.toLowerCase()));
    const defaults: Record<string, string> = { 'content-type': 'application/json', 'user-agent': `licgate/${VERSION}`, ...(authorization ? { authorization } : {}) };
    this.headers = { ...Object.fromEntries(Object.entries(defaults).filter(([k]) => !own.has(k))), ...cfg.headers };
  }
  get label(): string {
    return `notify.webhooks[${this.index}] ${this.where}`;
  }
  wants(event: NotifyEventName): boolean {
    return this.cfg.events === null || this.cfg.events.includes(event);
  }
  get key(): string {
    return JSON.stringify([this.cfg.url, this.cfg.headers, this.cfg.events]);
  }
}

/**
 * Webhook notifications (undici): a JSON POST per event to every webhook that wants it. Sending
 * never blocks anything: `notify` only appends to a bounded per-webhook queue (dropping the oldest
 * when full), and one async loop per webhook delivers in order with a timeout per attempt and
 * retries with exponential backoff. Failures are logged once per notification and counted.
 */
export class Notifier {
  readonly counts: NotifyCounts = { delivered: 0, failed: 0, dropped: 0, retries: 0, queued: 0 };
  private hooks: Webhook[] = [];
  /** Webhooks removed by a reload that still have notifications to deliver. */
  private readonly leaving = new Set<Webhook>();
  private readonly opts: NotifierOptions;
  private readonly dispatcher: Agent;
  private readonly closing = new AbortController();
  private readonly host = hostname();
  private idleWaiters: (() => void)[] = [];

  constructor(webhooks: readonly WebhookConfig[], private readonly log: Logger, opts: Partial<NotifierOptions> = {}) {
    this.opts = { ...NOTIFIER_DEFAULTS, ...opts };
    this.dispatcher = new Agent({ connect: { timeout: this.opts.timeoutMs }, headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs, keepAliveTimeout: 4000 });
    this.configure(webhooks);
  }

  /** Reload: webhooks whose url, headers and events are unchanged keep their queue. */
  configure(webhooks: readonly WebhookConfig[]): void {
    const old = new Map(this.hooks.map((h) => [h.key, h]));
    this.hooks = webhooks.map((cfg, i) => {
      const fresh = new Webhook(cfg);
      const h = old.get(fresh.key) ?? fresh;
      old.delete(h.key);
      h.index = i;
      return h;
    });
    for (const h of old.values()) if (h.busy || h.queue.length) this.leaving.add(h);
  }

  /** Turns one model's events into notifications (called again for the model a reload builds). */
  watch(events: ModelEvents): void {
    events.on('server-state', (e) => {
      // Transitional steps (UP 2/3) are not news; a change of usability is.
      if (e.usableChanged) this.notify({ event: 'server-state', backend: e.backend, server: e.server, from: e.from, to: e.to, reason: e.reason });
    });
    events.on('tier-change', (e) => {
      this.notify({ event: e.to === null ? 'backend-down' : 'tier-change', backend: e.backend, from: tierName(e.from), to: tierName(e.to), from_tier: e.from, to_tier: e.to, reason: e.reason });
    });
  }

  notify(input: NotificationInput): void {
    if (this.closing.signal.aborted) return;
    const n: Notification = { event: input.event, time: new Date().toISOString(), host: this.host, version: VERSION, backend: input.backend ?? null, server: input.server ?? null, from: input.from ?? null, to: input.to ?? null, ...(input.from_tier === undefined ? {} : { from_tier: input.from_tier, to_tier: input.to_tier ?? null }), reason: input.reason };
    for (const h of this.hooks) {
      if (!h.wants(n.event)) continue;
      if (h.queue.length >= this.opts.maxQueue) {
        h.queue.shift();
        this.counts.dropped++;
        this.counts.queued--;
        if (!h.dropping) this.log.warn({ webhook: h.where, webhook_index: h.index, max_queue: this.opts.maxQueue }, `${h.label}: queue full, dropping the oldest notifications`);
        h.dropping = true;
      }
      h.queue.push(n);
      this.counts.queued++;
      void this.pump(h);
    }
  }

  /** Resolves when every queue is empty and nothing is in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Gives queued notifications up to `graceMs` to go out, then aborts what is left. */
  async close(graceMs: number): Promise<void> {
    if (!this.isIdle()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    this.closing.abort();
    for (const h of [...this.hooks, ...this.leaving]) {
      // Said, not silently lost: after a stop nothing else tells the admin that a DOWN (or the UP
      // after it) never reached the webhook.
      if (h.queue.length) {
        const shown = h.queue.slice(0, 10).map(describe);
        const more = h.queue.length > shown.length ? `, and ${h.queue.length - shown.length} more` : '';
        this.log.warn({ webhook: h.where, webhook_index: h.index, not_sent: h.queue.length, events: shown }, `${h.label}: licgate is stopping; ${h.queue.length} queued notification${h.queue.length > 1 ? 's' : ''} not sent: ${shown.join(', ')}${more}`);
      }
      this.counts.queued -= h.queue.length;
      h.queue.length = 0;
    }
    await this.dispatcher.destroy();
  }

  private isIdle(): boolean {
    return [...this.hooks, ...this.leaving].every((h) => !h.busy && h.queue.length === 0);
  }

  private async pump(h: Webhook): Promise<void> {
    if (h.busy) return;
    h.busy = true;
    try {
      let n: Notification | undefined;
      while (!this.closing.signal.aborted && (n = h.queue.shift())) {
        this.counts.queued--;
        await this.deliver(h, n);
      }
    } finally {
      h.busy = false;
      h.dropping = false;
      if (h.queue.length === 0) this.leaving.delete(h);
      if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async deliver(h: Webhook, n: Notification): Promise<void> {
    const body = JSON.stringify(n);
    let delay = this.opts.backoffMs;
    for (let attempt = 1; ; attempt++) {
      const failure = await this.post(h, body);
      if (failure === null) {
        this.counts.delivered++;
        return;
      }
      if (failure.permanent || attempt > this.opts.retries || this.closing.signal.aborted) {
        this.counts.failed++;
        this.log.warn({ webhook: h.where, webhook_index: h.index, event: n.event, backend: n.backend, server: n.server, attempts: attempt, reason: failure.reason }, `${h.label}: ${n.event} not delivered after ${attempt} attempt${attempt > 1 ? 's' : ''}: ${failure.reason}`);
        return;
      }
      this.counts.retries++;
      // A rate-limited receiver (Slack, Discord, Teams answer 429) refuses every retry sent before
      // its Retry-After, and the notification would be lost after 1 + 2 + 4 s. Capped, so a
      // receiver cannot hold its queue for an hour.
      await sleep(Math.min(Math.max(delay, failure.retryAfterMs ?? 0), this.opts.maxBackoffMs), this.closing.signal);
      delay = Math.min(delay * 2, this.opts.maxBackoffMs);
    }
  }

  /** One attempt; null when the receiver answered 2xx. */
  private async post(h: Webhook, body: string): Promise<Failure | null> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = AbortSignal.any([timeout, this.closing.signal]);
    try {
      const res = await request(h.target, {
        method: 'POST',
        headers: h.headers,
        body,
        dispatcher: this.dispatcher,
        signal,
      });
      const ok = res.statusCode >= 200 && res.statusCode < 300;
      try {
        await res.body.dump({ limit: 64 * 1024, signal });
      } catch (e) {
        // The 2xx status is the receipt: a body that trickles past the timeout does not unsend it,
        // and retrying would post the alert twice.
        if (!ok) throw e;
      }
      if (ok) return null;
      // Not followed: a POST redirected is re-sent as a GET (301/302) or with its headers to another
      // host. Retrying gets the same answer; the fix is the url, so say where it points.
      if (res.statusCode >= 300 && res.statusCode < 400) {
        const to = res.headers.location;
        return { reason: `HTTP ${res.statusCode}${typeof to === 'string' ? ` to ${redact(to, h.target)}` : ''}: redirects are not followed; set the webhook url to where it points`, permanent: true };
      }
      const permanent = res.statusCode >= 400 && res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429;
      const retryAfterMs = retryAfter(res.headers['retry-after']);
      return { reason: `HTTP ${res.statusCode}`, permanent, ...(retryAfterMs === null ? {} : { retryAfterMs }) };
    } catch (e) {
      if (timeout.aborted) return { reason: `no answer within ${this.opts.timeoutMs}ms`, permanent: false };
      if (this.closing.signal.aborted) return { reason: 'shutting down', permanent: true };
      const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
      const code = err.code ?? err.cause?.code;
      return { reason: code === 'ECONNREFUSED' ? 'connection refused' : code ? `${code}: ${err.message}` : err.message, permanent: false };
    }
  }
}

/** A queued notification in a log line: what it would have said, without its reason. */
function describe(n: Notification): string {
  const what = [n.backend, n.server].filter((x) => x !== null).join('/');
  return `${n.event}${what ? ` ${what}` : ''}${n.to !== null ? ` ${n.from_tier !== undefined ? tierLabel(n.from_tier) : n.from ?? '?'} -> ${n.to_tier !== undefined ? tierLabel(n.to_tier) : n.to}` : ''}`;
}

/**
 * A URL for logs: scheme and host only. Credentials and query strings carry tokens, and so does the
 * path of many webhook URLs (Slack's /services/T…/B…/secret, Discord's /api/webhooks/id/token).
 */
function redact(url: string, base?: string): string {
  try {
    const u = new URL(url, base);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '/' : '/…'}`;
  } catch {
    return '<invalid url>';
  }
}

/** Retry-After as delay-seconds or an HTTP-date (RFC 9110 10.2.3), in ms from now; null when absent or unreadable. */
function retryAfter(value: string | string[] | undefined): number | null {
  if (typeof value !== 'string') return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** A URL's user:password as a Basic authorization header (RFC 7617), and the URL without them. */
function splitCredentials(url: string): { target: string; authorization: string | null } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { target: url, authorization: null };
  }
  if (u.username === '' && u.password === '') return { target: url, authorization: null };
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  return { target: u.toString(), authorization: `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}` };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
