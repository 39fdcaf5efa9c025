import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookConfig } from '../../src/config/schema.js';
import { ModelEvents } from '../../src/model/events.js';
import { Notifier, type Notification } from '../../src/observe/notifier.js';
import { waitFor } from '../helpers/wait-for.js';

interface Received {
  at: number;
  headers: IncomingMessage['headers'];
  /** Names as sent, repeats kept (node's `headers` keeps one content-type of several). */
  names: string[];
  body: Notification;
}

/** A real HTTP receiver on 127.0.0.1:0; `answer` decides per request (status, or 'hang'). */
async function receiver(answer: (n: number, req: IncomingMessage) => number | 'hang' = () => 204): Promise<{ url: string; got: Received[]; attempts: number[]; server: Server }> {
  const got: Received[] = [];
  const attempts: number[] = [];
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      attempts.push(Date.now());
      const a = answer(attempts.length, req);
      if (a === 'hang') {
        hanging.push(res);
        return;
      }
      if (a >= 200 && a < 300) got.push({ at: Date.now(), headers: req.headers, names: req.rawHeaders.filter((_, i) => i % 2 === 0), body: JSON.parse(text) as Notification });
      res.writeHead(a).end();
    });
  });
  server.on('close', () => hanging.forEach((r) => r.destroy()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=secret`, got, attempts, server };
}

/** A port where nothing listens (bound, then closed): connections are refused. */
async function deadPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const servers: Server[] = [];
const notifiers: Notifier[] = [];

afterEach(async () => {
  await Promise.all(notifiers.splice(0).map((n) => n.close(0)));
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

function lines(): { log: Logger; out: Record<string, unknown>[] } {
  const out: Record<string, unknown>[] = [];
  const log: Logger = pino({ level: 'info' }, { write: (s: string) => void out.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, out };
}

function hook(url: string, extra: Partial<WebhookConfig> = {}): WebhookConfig {
  return { url, headers: {}, events: null, ...extra };
}

function make(hooks: WebhookConfig[], opts: ConstructorParameters<typeof Notifier>[2] = {}, log = lines().log): Notifier {
  const n = new Notifier(hooks, log, opts);
  notifiers.push(n);
  return n;
}

describe('Notifier (webhooks over undici, real HTTP receivers)', () => {
  it('POSTs one JSON body per model event with time, backend, server, from, to, reason, and custom headers', async () => {
    const r = await receiver();
    const n = make([hook(r.url, { headers: { 'x-api-key': 'k1' } })]);
    const events = new ModelEvents();
    n.watch(events);
    events.emit('server-state', { backend: 'licenses', server: 'primary', from: 'UP', to: 'DOWN', reason: 'connection refused', usableChanged: true });
    events.emit('server-state', { backend: 'licenses', server: 'primary', from: 'UP', to: 'UP 2/3', reason: 'timeout', usableChanged: false });
    events.emit('tier-change', { backend: 'licenses', from: 0, to: 1, reason: 'active -> backup: primary DOWN' });
    events.emit('tier-change', { backend: 'licenses', from: 1, to: null, reason: 'backup -> none: backup DOWN' });
    n.notify({ event: 'reload-ok', reason: '1 change' });
    await n.idle();
    expect(r.got.map((g) => g.body.event)).toEqual(['server-state', 'tier-change', 'backend-down', 'reload-ok']);
    const first = r.got[0]!;
    expect(first.body).toMatchObject({ backend: 'licenses', server: 'primary', from: 'UP', to: 'DOWN', reason: 'connection refused' });
    expect(Date.parse(first.body.time)).toBeGreaterThan(Date.now() - 60_000);
    expect(first.headers['content-type']).toBe('application/json');
    expect(first.headers['x-api-key']).toBe('k1');
    expect(r.got[1]!.body).toMatchObject({ from: 'active', to: 'backup', server: null });
    expect(r.got[2]!.body).toMatchObject({ from: 'backup', to: 'none' });
    expect(r.got[3]!.body).toMatchObject({ backend: null, server: null, reason: '1 change' });
    expect(n.counts).toMatchObject({ delivered: 4, failed: 0, dropped: 0, retries: 0, queued: 0 });
  });

  it('sends a webhook only the events it subscribed to', async () => {
    const all = await receiver();
    const some = await receiver();
    const n = make([hook(all.url), hook(some.url, { events: ['backend-down', 'reload-failed'] })]);
    n.notify({ event: 'tier-change', backend: 'b', from: 'active', to: 'backup', reason: 'x' });
    n.notify({ event: 'reload-failed', reason: 'bad yaml' });
    await n.idle();
    expect(all.got.map((g) => g.body.event)).toEqual(['tier-change', 'reload-failed']);
    expect(some.got.map((g) => g.body.event)).toEqual(['reload-failed']);
  });

  it('retries with growing backoff after 5xx and connection refused, then counts and logs a failure', async () => {
    const flaky = await receiver((i) => (i <= 2 ? 503 : 200));
    const port = await deadPort();
    const { log, out } = lines();
    const n = make([hook(flaky.url), hook(`http://127.0.0.1:${port}/down?token=secret`)], { retries: 3, backoffMs: 50, timeoutMs: 2000 }, log);
    n.notify({ event: 'backend-down', backend: 'licenses', reason: 'all down' });
    await n.idle();
    // flaky: two 503s, then delivered; gaps grow (50 ms, then 100 ms).
    expect(flaky.attempts).toHaveLength(3);
    expect(flaky.got).toHaveLength(1);
    const gap1 = flaky.attempts[1]! - flaky.attempts[0]!;
    const gap2 = flaky.attempts[2]! - flaky.attempts[1]!;
    expect(gap1).toBeGreaterThanOrEqual(45);
    expect(gap2).toBeGreaterThanOrEqual(95);
    // down: 1 + 3 retries, all refused, then given up.
    expect(n.counts).toMatchObject({ delivered: 1, failed: 1, retries: 2 + 3, queued: 0 });
    const failure = out.find((l) => String(l.msg).includes('not delivered'));
    expect(failure).toMatchObject({ attempts: 4, reason: 'connection refused', event: 'backend-down' });
    // Query strings (where tokens travel) never reach the log.
    expect(JSON.stringify(out)).not.toContain('secret');
  });

  it('does not retry a 4xx answer other than 408/429', async () => {
    const r = await receiver(() => 400);
    const n = make([hook(r.url)], { retries: 3, backoffMs: 10 });
    n.notify({ event: 'reload-ok', reason: 'x' });
    await n.idle();
    expect(r.attempts).toHaveLength(1);
    expect(n.counts).toMatchObject({ delivered: 0, failed: 1, retries: 0 });
  });

  it("waits for a rate-limited receiver's Retry-After (seconds or an HTTP-date) before retrying, up to the longest backoff", async () => {
    // Refuses every POST for 900 ms after the first, as a rate limit does; a retry before then is wasted.
    const limitedFor = (ms: number, retryAfter: () => string): Promise<{ url: string; attempts: number[]; server: Server }> => {
      let first = 0;
      const attempts: number[] = [];
      const server = createServer((req, res) => {
        req.resume().on('end', () => {
          attempts.push(Date.now());
          first ||= Date.now();
          if (Date.now() - first < ms) res.writeHead(429, { 'retry-after': retryAfter() }).end();
          else res.writeHead(204).end();
        });
      });
      servers.push(server);
      return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, attempts, server })));
    };
    const seconds = await limitedFor(900, () => '1');
    const date = await limitedFor(900, () => new Date(Date.now() + 2000).toUTCString());
    const forever = await limitedFor(300, () => '3600');
    const n = make([hook(seconds.url), hook(date.url), hook(forever.url)], { retries: 3, backoffMs: 20, maxBackoffMs: 1500 });
    n.notify({ event: 'backend-down', backend: 'licenses', reason: 'all down' });
    await n.idle();
    expect(n.counts).toMatchObject({ delivered: 3, failed: 0 });
    expect(seconds.attempts).toHaveLength(2);
    expect(seconds.attempts[1]! - seconds.attempts[0]!).toBeGreaterThanOrEqual(950);
    // An HTTP-date 1-2 s ahead (its whole seconds) waits that long, not past maxBackoffMs.
    expect(date.attempts).toHaveLength(2);
    expect(date.attempts[1]! - date.attempts[0]!).toBeGreaterThanOrEqual(900);
    // An hour is capped at maxBackoffMs: the receiver cannot hold the queue.
    expect(forever.attempts).toHaveLength(2);
    expect(forever.attempts[1]! - forever.attempts[0]!).toBeLessThan(1500 + 1500);
  });

  it('times out a receiver that never answers, retries, and keeps its queue bounded (oldest dropped)', async () => {
    const slow = await receiver(() => 'hang');
    const fast = await receiver();
    const n = make([hook(slow.url), hook(fast.url)], { timeoutMs: 200, retries: 1, backoffMs: 20, maxQueue: 5 });
    const started = Date.now();
    for (let i = 0; i < 20; i++) n.notify({ event: 'tier-change', backend: 'b', reason: `event ${i}` });
    // Per webhook: the first went in flight at once, 5 wait behind it, 14 were dropped (oldest first).
    expect(n.counts.queued).toBe(5 + 5);
    expect(n.counts.dropped).toBe(14 + 14);
    // notify() never waits: 20 calls took no time although the receiver hangs.
    expect(Date.now() - started).toBeLessThan(100);
    // The fast receiver gets its first and the newest 5, not held up by the slow one.
    await waitFor(() => fast.got.length === 6, { timeoutMs: 5000, what: 'the fast webhook delivering its 6' });
    expect(fast.got.map((g) => g.body.reason)).toEqual(['event 0', 'event 15', 'event 16', 'event 17', 'event 18', 'event 19']);
    await waitFor(() => slow.attempts.length >= 2, { timeoutMs: 5000, what: 'a retry after the first timeout' });
    expect(slow.attempts[1]! - slow.attempts[0]!).toBeGreaterThanOrEqual(200);
    await n.idle();
    // Slow: 6 notifications (event 0 + the newest 5), each timed out twice.
    expect(slow.attempts).toHaveLength(12);
    expect(n.counts).toMatchObject({ delivered: 6, failed: 6, dropped: 28, retries: 6, queued: 0 });
  });

  it('counts a 2xx as delivered although its body trickles past the timeout, and does not post it again', async () => {
    let posts = 0;
    const server = createServer((req, res) => {
      posts++;
      req.resume().on('end', () => {
        res.writeHead(200);
        const drip = setInterval(() => res.write('.'), 50);
        res.on('close', () => clearInterval(drip));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const n = make([hook(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`)], { timeoutMs: 300, retries: 2, backoffMs: 10 });
    n.notify({ event: 'backend-down', backend: 'licenses', reason: 'all down' });
    await n.idle();
    expect(n.counts).toMatchObject({ delivered: 1, failed: 0, retries: 0 });
    expect(posts).toBe(1);
  });

  it('sends the user and password of a webhook URL as Basic authorization, and never logs them', async () => {
    const basic = `Basic ${Buffer.from('alerts:s3cr:t@x').toString('base64')}`;
    const r = await receiver((_n, req) => (req.headers.authorization === basic ? 204 : 401));
    const { log, out } = lines();
    const n = make([hook(r.url.replace('http://', 'http://alerts:s3cr%3At%40x@'))], { retries: 0 }, log);
    n.notify({ event: 'backend-down', backend: 'licenses', reason: 'all down' });
    await n.idle();
    expect(r.attempts).toHaveLength(1);
    expect(n.counts).toMatchObject({ delivered: 1, failed: 0 });
    expect(r.got[0]!.headers.authorization).toBe(basic);
    expect(JSON.stringify(out)).not.toContain('s3cr');
  });

  it('a header the config names replaces the default of that name, whatever its case: one Content-Type, one User-Agent', async () => {
    const r = await receiver();
    const n = make([hook(r.url.replace('http://', 'http://alerts:pw@'), { headers: { 'Content-Type': 'application/json; charset=utf-8', 'User-Agent': 'ops-bot', Authorization: 'Bearer t0k' } })]);
    n.notify({ event: 'reload-ok', reason: 'x' });
    await n.idle();
    const sent = r.got[0]!;
    expect(sent.names.filter((k) => /^(content-type|user-agent|authorization)$/i.test(k)).sort()).toEqual(['Authorization', 'Content-Type', 'User-Agent']);
    expect(sent.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8', 'user-agent': 'ops-bot', authorization: 'Bearer t0k' });
  });

  it('names a failed webhook by its place in notify.webhooks, so two on one host can be told apart', async () => {
    const ok = await receiver();
    const missing = await receiver(() => 404);
    const { log, out } = lines();
    const n = make([hook(ok.url.replace('/hook?token=secret', '/services/A')), hook(missing.url.replace('/hook?token=secret', '/services/B'))], { retries: 0 }, log);
    n.notify({ event: 'reload-ok', reason: 'x' });
    await n.idle();
    const failure = out.find((l) => String(l.msg).includes('not delivered'));
    expect(failure).toMatchObject({ webhook_index: 1, msg: expect.stringMatching(/^notify\.webhooks\[1\] http:\/\/127\.0\.0\.1:\d+\/…: reload-ok not delivered after 1 attempt: HTTP 404$/) });
    // A reload that puts it first names it by its new place.
    n.configure([hook(missing.url.replace('/hook?token=secret', '/services/B'))]);
    n.notify({ event: 'reload-ok', reason: 'y' });
    await n.idle();
    expect(out.filter((l) => String(l.msg).includes('not delivered')).map((l) => l.webhook_index)).toEqual([1, 0]);
  });

  it('does not follow or retry a redirect, and logs where it points (scheme and host only)', async () => {
    let posts = 0;
    const server = createServer((req, res) => {
      posts++;
      req.resume().on('end', () => res.writeHead(301, { location: 'https://alerts.example/services/T1/B2/secretInPath' }).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const { log, out } = lines();
    const n = make([hook(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`)], { retries: 3, backoffMs: 10 }, log);
    n.notify({ event: 'reload-ok', reason: 'x' });
    await n.idle();
    expect(posts).toBe(1);
    expect(n.counts).toMatchObject({ delivered: 0, failed: 1, retries: 0 });
    const failure = out.find((l) => String(l.msg).includes('not delivered'));
    expect(failure).toMatchObject({ attempts: 1, reason: 'HTTP 301 to https://alerts.example/…: redirects are not followed; set the webhook url to where it points' });
    expect(JSON.stringify(out)).not.toContain('secretInPath');
  });

  it('never logs a secret that travels in the URL path (Slack, Discord, Teams style webhook URLs)', async () => {
    const r = await receiver(() => 404);
    const { log, out } = lines();
    const n = make([hook(r.url.replace('/hook?token=secret', '/services/T0001/B0002/pathSecretXyz'))], { retries: 0 }, log);
    n.notify({ event: 'backend-down', backend: 'licenses', reason: 'all down' });
    await n.idle();
    const failure = out.find((l) => String(l.msg).includes('not delivered'));
    expect(failure).toMatchObject({ reason: 'HTTP 404', webhook: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\//) });
    expect(JSON.stringify(out)).not.toContain('pathSecretXyz');
  });

  it('close() logs which queued notifications a stop leaves unsent, per webhook', async () => {
    const slow = await receiver(() => 'hang');
    const { log, out } = lines();
    const n = new Notifier([hook(slow.url)], log, { timeoutMs: 10_000, retries: 5 });
    n.notify({ event: 'server-state', backend: 'licenses', server: 'primary', from: 'UP', to: 'DOWN', reason: 'refused' });
    await waitFor(() => slow.attempts.length === 1, { timeoutMs: 5000, what: 'the first delivery to start' });
    n.notify({ event: 'tier-change', backend: 'licenses', from: 'active', to: 'backup', reason: 'primary DOWN' });
    n.notify({ event: 'server-state', backend: 'licenses', server: 'primary', from: 'DOWN', to: 'UP', reason: 'ok' });
    await n.close(100);
    const unsent = out.find((l) => String(l.msg).includes('not sent'));
    expect(unsent).toMatchObject({ level: 40, not_sent: 2, webhook_index: 0, msg: expect.stringMatching(/^notify\.webhooks\[0\] http:\/\/127\.0\.0\.1:\d+\/…: licgate is stopping; 2 queued notifications not sent: tier-change licenses active -> backup, server-state licenses\/primary DOWN -> UP$/) });
    // The one in flight is logged as not delivered, as before.
    await waitFor(() => out.find((l) => String(l.msg).includes('not delivered')), { timeoutMs: 2000, what: 'the aborted delivery logged' });
    expect(JSON.stringify(out)).not.toContain('secret');
  });

  it('DR sites at tiers 2 and 3: a tier-change carries from_tier and to_tier beside the names (both "dr"), and the log says which', async () => {
    const slow = await receiver(() => 'hang');
    const { log, out } = lines();
    const n = new Notifier([hook(slow.url)], log, { timeoutMs: 10_000, retries: 5 });
    const events = new ModelEvents();
    n.watch(events);
    n.notify({ event: 'reload-ok', reason: 'held in flight' });
    await waitFor(() => slow.attempts.length === 1, { timeoutMs: 5000, what: 'the first delivery to start' });
    events.emit('tier-change', { backend: 'licenses', from: 2, to: 3, reason: 'dr -> dr tier 3: dr2 DOWN' });
    events.emit('tier-change', { backend: 'licenses', from: 3, to: null, reason: 'dr tier 3 -> none: dr3 DOWN' });
    await n.close(100);
    const unsent = out.find((l) => String(l.msg).includes('not sent'));
    expect(unsent?.msg).toMatch(/; 2 queued notifications not sent: tier-change licenses dr -> dr tier 3, backend-down licenses dr tier 3 -> none$/);

    const r = await receiver();
    const m = make([hook(r.url)]);
    m.watch(events);
    events.emit('tier-change', { backend: 'licenses', from: 2, to: 3, reason: 'dr -> dr tier 3: dr2 DOWN' });
    events.emit('tier-change', { backend: 'licenses', from: 3, to: null, reason: 'dr tier 3 -> none: dr3 DOWN' });
    events.emit('server-state', { backend: 'licenses', server: 'dr3', from: 'UP', to: 'DOWN', reason: 'refused', usableChanged: true });
    await m.idle();
    expect(r.got.map((g) => g.body)).toMatchObject([
      { event: 'tier-change', from: 'dr', to: 'dr', from_tier: 2, to_tier: 3 },
      { event: 'backend-down', from: 'dr', to: 'none', from_tier: 3, to_tier: null },
      { event: 'server-state', from: 'UP', to: 'DOWN' },
    ]);
    expect(r.got[2]!.body).not.toHaveProperty('from_tier');
  });

  it('close() gives queued notifications a grace, then aborts a hanging delivery', async () => {
    const slow = await receiver(() => 'hang');
    const n = new Notifier([hook(slow.url)], lines().log, { timeoutMs: 10_000, retries: 5 });
    n.notify({ event: 'reload-ok', reason: 'x' });
    await waitFor(() => slow.attempts.length === 1, { timeoutMs: 5000, what: 'the delivery to start' });
    const t0 = Date.now();
    await n.close(150);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(n.counts.delivered).toBe(0);
    n.notify({ event: 'reload-ok', reason: 'after close' });
    expect(n.counts.queued).toBe(0);
  });
});
