import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { formatHostPort, type HostPort } from '../config/address.js';
import type { DaemonView } from '../daemon-view.js';
import type { Logger } from '../observe/log.js';
import { readVrrpState } from '../observe/vrrp-state.js';
import { foreignHost } from './admin-host.js';
import { backendJson } from './status-json.js';
import { listenAt, MAX_CONTROL_PEERS, type BindOptions } from '../io/listen.js';
import { LOCAL_RESERVE, MAX_PEERS_PER_ADDRESS, PeersByAddress, type OnRefused } from '../io/peers-by-address.js';
import { PeerEventSummary } from '../observe/peer-event-summary.js';
import { bearerRefusal, checkBearer } from './admin-auth.js';

/**
 * An answer the peer has not taken this long after it was written is dropped with its connection.
 * Node's request and keep-alive timeouts stop at the request's end: a peer that pipelines requests
 * and never reads stalls our writes, and was held for good, so that MAX_CONTROL_PEERS of them locked
 * keepalived and Prometheus out. Counted from the answer, not the request: a reload may take longer.
 */
const DELIVERY_MS = 10_000;

export type Route = (req: IncomingMessage, res: ServerResponse, params: string[]) => void | Promise<void>;

/**
 * The admin listener: health and readiness for keepalived and HAProxy, /status for people and
 * tools. Read-only routes need no token; routes that change state check one (see admin-api).
 * Timeouts are short because only local tools and load balancers should be talking to it.
 */
export class AdminHttp {
  private readonly server: HttpServer;
  private readonly routes: { method: string; pattern: RegExp; route: Route }[] = [];
  /**
   * Refused Hosts, in summary lines: a hostile page can send them in a loop, but an admin whose
   * reverse proxy sends its own name must find the reason in the log.
   */
  private readonly hostRefusals: PeerEventSummary<{ method: string | undefined; path: string; host: string }>;
  private readonly byAddress: PeersByAddress;
  /**
   * Calls refused for their bearer token, in summary lines per code. A web page can POST to
   * 127.0.0.1 in a loop without a token (a form or a no-cors fetch needs no preflight, and its Host
   * is ours), and a line per call filled the journal, whose rate limit then dropped licgate's other
   * lines, failovers among them.
   */
  private readonly authRefusals = new Map<string, PeerEventSummary<AuthRefusal>>();

  constructor(private readonly listenAt: HostPort, private readonly view: DaemonView, private readonly log: Logger, onRefused?: OnRefused) {
    // Node checks headersTimeout and requestTimeout only every connectionsCheckingInterval (30 s by
    // default), so a silent or slowloris peer was held 30 s, not 5.
    this.server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.underWay(req, res);
      void this.handle(req, res).finally(() => this.answered(req, res));
    });
    // One past the limit byAddress counts: a peer past it must reach admit to take an idle peer's
    // place, where Node would close it unseen. Node counts a destroyed socket out at once.
    this.server.maxConnections = MAX_CONTROL_PEERS + LOCAL_RESERVE + 1;
    this.hostRefusals = new PeerEventSummary(({ count, lastReason, top }) => {
      const { method, path, host } = lastReason!;
      this.log.warn(
        { status: 403, code: 'E_ADMIN_HOST', method, path, peer: top, host, refused: count },
        `admin call refused: ${hostRefusal(host)}${count > 1 ? ` (${count} refusals since the last such line, the last shown, most from ${top})` : ''}`,
      );
    });
    // Neither one host holding connections nor many filling the port may lock keepalived's /health out.
    // On a loopback listener every peer is 127.0.0.1: refused past 127.0.0.1's share, its check was
    // reset while any local user held idle connections, so it takes the place of an idle one.
    const byAddress = (this.byAddress = new PeersByAddress(onRefused, MAX_PEERS_PER_ADDRESS, MAX_CONTROL_PEERS, true));
    byAddress.watchDrops(this.server);
    this.server.on('connection', (sock: Socket) => {
      if (!byAddress.admit(sock)) sock.destroy();
    });
    // No 'clientError' listener: Node's own handling answers a request it cannot parse (curl -X FOO,
    // headers over maxHeaderSize, a timeout) with 400, 431 or 408 and closes, where closing without
    // a word left curl saying "Empty reply from server", as if licgate had crashed.
    this.add('GET', /^\/health$/, (_q, res) => {
      const v = this.view.healthVerdict();
      sendJson(res, v.ok ? 200 : 503, v);
    });
    this.add('GET', /^\/ready$/, (_q, res) => {
      const r = this.view.readiness();
      sendJson(res, r.ready ? 200 : 503, r);
    });
    this.add('GET', /^\/status$/, async (_q, res) => sendJson(res, 200, await this.statusJson()));
  }

  add(method: string, pattern: RegExp, route: Route): void {
    this.routes.push({ method, pattern, route });
  }

  async statusJson() {
    const v = this.view;
    const vrrp = v.cfg.vrrp ? await readVrrpState(v.cfg.vrrp.state_file) : null;
    return {
      version: v.version,
      pid: process.pid,
      uptime_s: Math.round((performance.now() - v.startedAt) / 1000),
      shutting_down: v.shuttingDown,
      vrrp,
      frontends: v.frontends.map((f) => ({ name: f.name, listen: formatHostPort(f.cfg.listen), port: f.address()?.port ?? null, backend: f.backend.name, active: f.sessions.size })),
      backends: [...v.model.backends.values()].map(backendJson),
      ...peersJson(v.peers?.status() ?? null),
    };
  }

  listen(bind?: BindOptions): Promise<void> {
    return listenAt(this.server, this.listenAt, 'admin', bind);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Peers connected now. */
  get connections(): number {
    return this.byAddress.open;
  }

  /**
   * A reload moved the listener: it stops accepting, the port free on return; a request under way
   * (the POST /admin/reload that moved it) gets its answer, and an idle peer is closed.
   */
  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  /**
   * Whether the call carries the admin token (compared in constant time: admin-auth). If not, it is
   * answered 401 (403 without admin.token_file) and logged as hostRefusals are.
   */
  authorized(req: IncomingMessage, res: ServerResponse, token: string | null): boolean {
    const verdict = checkBearer(req, token);
    if (verdict === 'ok') return true;
    const r = bearerRefusal(verdict);
    let summary = this.authRefusals.get(r.code);
    if (summary === undefined) {
      summary = new PeerEventSummary<AuthRefusal>(({ count, lastReason, top }) => {
        const { status, code, method, path, peer, error } = lastReason!;
        this.log.warn({ status, code, method, path, peer, error, ...(count > 1 ? { refused: count, top_address: top } : {}) }, count > 1 ? `admin call refused (${count} refusals with ${code} since the last such line, the last shown, most from ${top})` : 'admin call refused');
      });
      this.authRefusals.set(r.code, summary);
    }
    const peer = req.socket.remoteAddress;
    summary.note(peer, { status: r.status, code: r.code, method: req.method, path: pathOf(req), peer, error: r.error });
    if (r.status === 401) res.setHeader('WWW-Authenticate', verdict === 'wrong' ? 'Bearer realm="licgate", error="invalid_token"' : 'Bearer realm="licgate"');
    sendJson(res, r.status, { error: r.error, code: r.code });
    return false;
  }

  close(): Promise<void> {
    this.hostRefusals.close();
    for (const s of this.authRefusals.values()) s.close();
    this.server.closeAllConnections();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * A peer with a request under way is not closed for a new one until its answer is handed to the
   * kernel ('finish'): a POST /admin/reload may take seconds. One that sent part of a head has none
   * under way for Node ('request' comes with the whole head), so a slowloris peer can be closed.
   */
  private underWay(req: IncomingMessage, res: ServerResponse): void {
    const sock = req.socket;
    this.byAddress.busy(sock);
    res.once('finish', () => this.byAddress.answered(sock));
  }

  private answered(req: IncomingMessage, res: ServerResponse): void {
    boundDelivery(res);
    if (this.server.listening) return;
    // Moved by a reload (stopListening): a peer that keeps its connection alive would be served
    // here for as long as it asks within keepAliveTimeout; once answered, it reconnects to the new one.
    const end = (): void => void req.socket.end();
    if (res.writableFinished) end();
    else res.once('finish', end);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A browser must not take a JSON answer (a 404 echoing the path) for a script or HTML.
    res.setHeader('x-content-type-options', 'nosniff');
    const foreign = foreignHost(req.headers.host, this.listenAt.host);
    if (foreign !== null) {
      this.hostRefusals.note(req.socket.remoteAddress, { method: req.method, path: pathOf(req), host: foreign });
      sendJson(res, 403, { error: hostRefusal(foreign), code: 'E_ADMIN_HOST' });
      return;
    }
    const path = pathOf(req);
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== req.method && !(r.method === 'GET' && req.method === 'HEAD')) continue;
      let params: string[];
      try {
        params = m.slice(1).map(decodeURIComponent);
      } catch {
        sendJson(res, 400, { error: `malformed %-escape in ${path}` });
        return;
      }
      try {
        await r.route(req, res, params);
      } catch (e) {
        if (!res.headersSent) sendJson(res, 500, { error: (e as Error).message });
      }
      return;
    }
    if (pathMatched) {
      res.setHeader('Allow', this.routes.filter((r) => r.pattern.test(path)).map((r) => r.method).join(', '));
      sendJson(res, 405, { error: `method ${req.method} not allowed on ${path}` });
      return;
    }
    sendJson(res, 404, { error: `no route ${path}` });
  }
}

interface AuthRefusal {
  status: number;
  code: string;
  method: string | undefined;
  path: string;
  peer: string | undefined;
  error: string;
}

/**
 * A request's path without its query: what routes match and what the log names. A caller that puts
 * the token in `?access_token=` (RFC 6750 allows it; licgate does not) is refused, and the journal
 * must not keep the token.
 */
export function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?', 1)[0]!;
}

function hostRefusal(host: string): string {
  return `Host "${host}" is not this listener's: use 127.0.0.1 or localhost (names other than localhost are refused on a loopback listener, against DNS rebinding)`;
}

/** Every answer is written whole by its route: one not finished DELIVERY_MS later is stuck in a peer that does not read. */
function boundDelivery(res: ServerResponse): void {
  if (res.writableFinished || res.destroyed) return;
  const timer = setTimeout(() => res.destroy(), DELIVERY_MS);
  const clear = (): void => clearTimeout(timer);
  res.once('finish', clear).once('close', clear);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * Sends `{...head, [key]: [...]}` (200), laid out as sendJson lays out an object, one list item a
 * line, for lists long enough to hold up relaying if written at once (a full stick table, 10,000
 * sessions): `perTurn` items per event-loop turn, and at the pace the peer reads, so that licgate
 * does not buffer the whole answer for each of MAX_CONTROL_PEERS peers. A write that fills the
 * socket's buffer waits for it to drain; a peer that takes nothing for DELIVERY_MS is cut off, as
 * boundDelivery cuts off one that does not take a whole answer (armed only once a route is done).
 * `render` reads an item when its part is written, or returns undefined to leave it out (gone since
 * the list was taken).
 */
export async function sendJsonList<T>(res: ServerResponse, head: Record<string, unknown>, key: string, items: readonly T[], render: (item: T) => unknown, perTurn: number): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  const h = JSON.stringify(head, null, 2);
  res.write(`${h === '{}' ? '{' : `${h.slice(0, -2)},`}\n  ${JSON.stringify(key)}: [`);
  let written = 0;
  let room = true;
  for (let i = 0; i < items.length; i += perTurn) {
    if (i > 0) await (room ? new Promise((resolve) => setImmediate(resolve)) : drainedOrClosed(res));
    if (res.destroyed) return;
    let text = '';
    for (let j = i; j < Math.min(i + perTurn, items.length); j++) {
      const v = render(items[j]!);
      if (v !== undefined) text += `${written++ ? ',' : ''}\n    ${JSON.stringify(v)}`;
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

/** /status's `peers`, only with a peers section: a config without one keeps its reply as it was. */
function peersJson(peers: object | null): { peers?: object } {
  return peers === null ? {} : { peers };
}
