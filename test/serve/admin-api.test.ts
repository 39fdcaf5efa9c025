import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { parseServerChange, parseStickClear, parseWeight, stickClient } from '../../src/serve/admin-api.js';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { CROWDED, LOCAL_RESERVE, MAX_PEERS_PER_ADDRESS } from '../../src/io/peers-by-address.js';
import { peerFlood, type PeerFlood } from '../helpers/peer-flood.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'test-token-0123456789abcdef';
let dir: string;
let tokenFile: string;
const daemons: Daemon[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-admin-api-'));
  tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.close()));
});

interface Started {
  daemon: Daemon;
  /** The config file, for reloads. */
  file: string;
  base: { host: string; port: number };
  logText: () => string;
}

const ACTIVE_AND_BACKUP = `      - { name: a, address: 127.0.0.1:1, weight: 100 }
      - { name: b, address: 127.0.0.1:2, weight: 10, backup: true }
`;

/** An in-process daemon: backend `lic` (a: active, b: backup, or `servers`; failback manual unless told), status and agent responders, admin API. */
async function start(withToken = true, failback: 'auto' | 'manual' = 'manual', servers = ACTIVE_AND_BACKUP): Promise<Started> {
  const yaml = `
admin: { listen: 127.0.0.1:0${withToken ? `, token_file: ${tokenFile}` : ''} }
status: { listen: 127.0.0.1:0 }
agent: { listen: 127.0.0.1:0, backend: lic, server: a }
backends:
  - name: lic
    failback: ${failback}
    check: { type: none }
    servers:
${servers}  - name: other
    check: { type: none }
    servers:
      - { name: x, address: 127.0.0.1:3 }
`;
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const file = join(dir, `licgate-${daemons.length}.yaml`);
  writeFileSync(file, yaml);
  const daemon = new Daemon(loadConfigFile(file), pino({ level: 'info' }, sink));
  daemons.push(daemon);
  await daemon.start();
  return {
    daemon,
    file,
    base: { host: '127.0.0.1', port: daemon.admin!.address().port },
    logText: () => text,
  };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  json: { error?: string; code?: string; [k: string]: unknown };
}

function call(s: Started, method: string, path: string, opts: { body?: string; headers?: Record<string, string>; token?: string | null } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? TOKEN : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ ...s.base, method, path, headers, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(body) as Reply['json'] }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const post = (s: Started, path: string, body?: unknown, opts: { headers?: Record<string, string>; token?: string | null } = {}): Promise<Reply> =>
  call(s, 'POST', path, { ...opts, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });

/**
 * A local user's flood of the admin port: `count` connections from 127.0.0.1 that send nothing and
 * hold, each one the server closes opened again 250 ms later (a loop with a pause, not a spin).
 */
function localFlood(port: number, count: number): { connected: () => number; reopened: () => number; stop: () => void } {
  let stopped = false;
  let connected = 0;
  let reopened = 0;
  const socks = new Set<Socket>();
  const open = (): void => {
    if (stopped) return;
    const sock = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1' }, () => connected++);
    socks.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => {
      socks.delete(sock);
      if (stopped) return;
      reopened++;
      setTimeout(open, 250);
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    connected: () => connected,
    reopened: () => reopened,
    stop: () => {
      stopped = true;
      for (const x of socks) x.destroy();
    },
  };
}

/** 127.0.0.2 to 127.0.0.9, local users or monitoring scripts on addresses of their own, each holding its share silent. */
async function eightAddresses(s: Started, floods: PeerFlood[]): Promise<void> {
  for (let i = 0; i < MAX_CONTROL_PEERS / MAX_PEERS_PER_ADDRESS; i++) floods.push(await peerFlood(s.base.port, MAX_PEERS_PER_ADDRESS, `127.0.0.${i + 2}`));
}

/** Only one connection was closed for `newcomer`: one of 127.0.0.2's (floods[0]), which connected first and has been silent since. */
async function oldestClosed(floods: PeerFlood[], newcomer: string): Promise<void> {
  await waitFor(() => floods[0]!.closed() === 1 || undefined, { timeoutMs: 3000, intervalMs: 10, what: `127.0.0.2's oldest connection closed for ${newcomer}` });
  expect(floods.map((f) => f.closed())).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0]);
}

/** One TCP exchange with a line responder (STATUS / agent). */
function ask(port: number, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port }, () => sock.write(send));
    let out = '';
    sock.setEncoding('latin1').on('data', (d: string) => (out += d));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
    sock.setTimeout(3000, () => sock.destroy(new Error('no reply')));
  });
}

describe('admin API: authorization', () => {
  it('403 when no token_file is configured, even with a bearer token', async () => {
    const s = await start(false);
    const r = await post(s, '/admin/backends/lic/servers/a', { weight: 5 });
    expect(r.status).toBe(403);
    expect(r.json.error).toBe('the admin API is read-only: set admin.token_file to allow changes');
    expect(s.daemon.model.backend('lic')!.server('a')!.weight).toBe(100);
    expect((await post(s, '/admin/backends/lic/failback', undefined, { token: null })).status).toBe(403);
  });

  it('401 with WWW-Authenticate: Bearer without a token, with another scheme, or with a wrong token', async () => {
    const s = await start();
    const none = await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: null });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="licgate"');
    expect(none.json.error).toBe('expected an "Authorization: Bearer <token>" header, found none or a malformed one');

    const basic = await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    expect(basic.headers['www-authenticate']).toBe('Bearer realm="licgate"');

    for (const wrong of ['x', TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase()]) {
      const r = await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: wrong });
      expect(r.status, wrong).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="licgate", error="invalid_token"');
      expect(r.json.error).toBe('the bearer token does not match the one licgate read from admin.token_file (at start or at the last reload: a token written there since takes effect at the next reload)');
    }
    expect(s.daemon.model.backend('lic')!.server('a')!.weight).toBe(100);
  });

  it('checks the token before anything else: an unknown backend without a token is 401, not 404', async () => {
    const s = await start();
    expect((await post(s, '/admin/backends/nope/servers/a', { weight: 5 }, { token: null })).status).toBe(401);
    expect((await post(s, '/admin/backends/nope/failback', undefined, { token: 'wrong-wrong-wrong' })).status).toBe(401);
  });

  it('accepts the scheme case-insensitively; read-only routes need no token', async () => {
    const s = await start();
    const r = await post(s, '/admin/backends/lic/servers/a', { weight: 7 }, { token: null, headers: { authorization: `bearer ${TOKEN}` } });
    expect(r.status).toBe(200);
    expect((await call(s, 'GET', '/status', { token: null })).status).toBe(200);
  });

  it('every answer says nosniff and no-store, whatever the route and status; the stats page cannot be framed', async () => {
    const s = await start();
    const headersOf = (method: string, path: string, host?: string): Promise<{ status?: number; h: IncomingHttpHeaders }> =>
      new Promise((resolve, reject) => {
        const req = request({ ...s.base, method, path, timeout: 5000, headers: host ? { host } : {} }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, h: res.headers }));
        });
        req.on('error', reject);
        req.end();
      });
    const seen: Record<string, unknown> = {};
    for (const [method, path, host] of [['GET', '/'], ['GET', '/health'], ['GET', '/status'], ['GET', '/metrics'], ['GET', '/backends/lic/stick-table'], ['GET', '/nope'], ['DELETE', '/status'], ['POST', '/admin/reload'], ['GET', '/status', 'rebind.attacker.example']] as const) {
      const { status, h } = await headersOf(method, path, host);
      seen[`${method} ${path}${host ? ` Host ${host}` : ''} ${status}`] = { nosniff: h['x-content-type-options'], cache: h['cache-control'], frame: h['x-frame-options'] };
    }
    const plain = { nosniff: 'nosniff', cache: 'no-store', frame: undefined };
    expect(seen).toEqual({
      'GET / 200': { ...plain, frame: 'DENY' },
      'GET /health 200': plain,
      'GET /status 200': plain,
      'GET /metrics 200': plain,
      'GET /backends/lic/stick-table 404': plain,
      'GET /nope 404': plain,
      'DELETE /status 405': plain,
      'POST /admin/reload 401': plain,
      'GET /status Host rebind.attacker.example 403': plain,
    });
  });

  it('a loopback listener refuses a Host name that is not localhost (DNS rebinding), on every route', async () => {
    const s = await start();
    const port = s.base.port;
    // A hostile page whose name the attacker re-points at 127.0.0.1 reads with its own name as Host.
    for (const path of ['/status', '/health', '/metrics', '/']) {
      const r = await call(s, 'GET', path, { token: null, headers: { host: `rebind.attacker.example:${port}` } });
      expect(r.status, path).toBe(403);
      expect(r.json).toMatchObject({ code: 'E_ADMIN_HOST' });
      expect(r.json.error).toContain('"rebind.attacker.example"');
    }
    const change = await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { headers: { host: 'rebind.attacker.example' } });
    expect(change.status).toBe(403);
    expect(s.daemon.model.backend('lic')!.server('a')!.weight).toBe(100);
    // What local tools, an ssh tunnel and the stats page send.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, '127.0.0.2', 'localhost.']) {
      expect((await call(s, 'GET', '/status', { token: null, headers: { host } })).status, host).toBe(200);
    }
  });

  it('logs a refused Host, so an admin behind a reverse proxy that sends its own name sees why; a flood of them logs one line', async () => {
    const s = await start();
    const port = s.base.port;
    const refusals = (): Record<string, unknown>[] => s.logText().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.code === 'E_ADMIN_HOST');
    expect((await call(s, 'GET', '/status', { token: null, headers: { host: `licgate.example.com:${port}` } })).status).toBe(403);
    expect(refusals()).toEqual([expect.objectContaining({ level: 40, status: 403, method: 'GET', path: '/status', host: 'licgate.example.com', peer: '127.0.0.1' })]);
    expect(String(refusals()[0]!.msg)).toContain('"licgate.example.com"');
    // A hostile page retrying in a loop: the log does not grow with it.
    for (let i = 0; i < 50; i++) expect((await call(s, 'GET', '/metrics', { token: null, headers: { host: 'rebind.attacker.example' } })).status).toBe(403);
    expect(refusals()).toHaveLength(1);
    // Those 50 are written in one line when the 10 s end, or at the stop, which comes first here.
    await s.daemon.close();
    await s.daemon.log.flush();
    expect(refusals()).toHaveLength(2);
    expect(refusals()[1]).toMatchObject({ status: 403, method: 'GET', path: '/metrics', host: 'rebind.attacker.example', peer: '127.0.0.1', refused: 50 });
    expect(String(refusals()[1]!.msg)).toContain('50 refusals since the last such line');
  });

  it('warns at start when admin.token_file is readable by every user, as a file written with umask 022 is', async () => {
    chmodSync(tokenFile, 0o644);
    try {
      const open = await start();
      await open.daemon.log.flush();
      const warned = open.logText().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 40 && String(l.msg).includes('admin.token_file'));
      expect(warned).toHaveLength(1);
      expect(warned[0]!.msg).toMatch(/^.+:\d+:\d+: admin\.token_file /);
      expect(String(warned[0]!.msg).replace(/^.+?:\d+:\d+: /, '')).toBe(`admin.token_file ${tokenFile} is readable by every user on this host (mode 0644): any of them can drain servers or reload; chmod o-r ${tokenFile}`);
      expect(open.logText()).not.toContain(TOKEN);
    } finally {
      chmodSync(tokenFile, 0o640);
    }
    const closed = await start();
    await closed.daemon.log.flush();
    expect(closed.logText()).not.toContain('readable by every user');
  });

  it('logs one line per refused call and never the token', async () => {
    const s = await start();
    await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: 'wrong-token-wrong-token' });
    await post(s, '/admin/backends/lic/servers/a', { weight: 6 });
    await s.daemon.log.flush();
    const lines = s.logText().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = lines.filter((l) => l.msg === 'admin call refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ status: 401, code: 'E_ADMIN_BAD_TOKEN', method: 'POST', path: '/admin/backends/lic/servers/a' });
    expect(lines.filter((l) => String(l.msg).startsWith('admin: lic/a'))).toHaveLength(1);
    expect(s.logText()).not.toContain(TOKEN);
    expect(s.logText()).not.toContain('wrong-token-wrong-token');
  });

  it('never logs a token put in the query string: refused, and logged by its path alone', async () => {
    const s = await start();
    const r = await post(s, `/admin/backends/lic/servers/a?access_token=${TOKEN}`, { weight: 5 }, { token: null });
    expect(r.status).toBe(401);
    const port = s.base.port;
    expect((await call(s, 'GET', `/status?access_token=${TOKEN}`, { token: null, headers: { host: `licgate.example.com:${port}` } })).status).toBe(403);
    await s.daemon.close();
    await s.daemon.log.flush();
    const refused = s.logText().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith('admin call refused'));
    expect(refused.map((l) => [l.code, l.path])).toEqual([
      ['E_ADMIN_NO_TOKEN', '/admin/backends/lic/servers/a'],
      ['E_ADMIN_HOST', '/status'],
    ]);
    expect(s.logText()).not.toContain(TOKEN);
  });

  it('a loop of calls without the token (a page POSTing to 127.0.0.1) is logged in summary lines, not one line per call', async () => {
    const s = await start();
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push((await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: null })).status);
    // POST /admin/reload refuses through its own route: its refusals join the same summary.
    codes.push((await post(s, '/admin/reload', undefined, { token: null })).status);
    codes.push((await post(s, '/admin/backends/lic/servers/a', { weight: 5 }, { token: 'wrong-token-wrong-token' })).status);
    expect(new Set(codes)).toEqual(new Set([401]));
    const refusedLines = async (): Promise<Record<string, unknown>[]> => {
      await s.daemon.log.flush();
      return s.logText().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => String(l.msg).startsWith('admin call refused'));
    };
    // The first of each code at once; a wrong token is another reason, worth its own line.
    expect((await refusedLines()).map((l) => [l.msg, l.code])).toEqual([
      ['admin call refused', 'E_ADMIN_NO_TOKEN'],
      ['admin call refused', 'E_ADMIN_BAD_TOKEN'],
    ]);
    // The other 30 wait for their summary line, written at the latest when licgate stops.
    await s.daemon.close();
    const lines = await refusedLines();
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ level: 40, status: 401, code: 'E_ADMIN_NO_TOKEN', method: 'POST', path: '/admin/reload', peer: '127.0.0.1', refused: 30, top_address: '127.0.0.1' });
    expect(lines[2]!.msg).toBe('admin call refused (30 refusals with E_ADMIN_NO_TOKEN since the last such line, the last shown, most from 127.0.0.1)');
  });
});

describe('admin API: request checks', () => {
  it('404 for an unknown backend or server, naming what exists', async () => {
    const s = await start();
    const b = await post(s, '/admin/backends/nope/servers/a', { weight: 5 });
    expect(b.status).toBe(404);
    expect(b.json.error).toBe('no backend "nope" (backends: lic, other)');
    const sv = await post(s, '/admin/backends/lic/servers/zz', { weight: 5 });
    expect(sv.status).toBe(404);
    expect(sv.json.error).toBe('backend "lic" has no server "zz" (servers: a, b)');
    expect((await post(s, '/admin/backends/nope/failback')).status).toBe(404);
  });

  it('404 naming what exists also for a name no config can hold (a lookalike letter, a space, too long), as ctl sends it %-encoded', async () => {
    const s = await start();
    // "і" is Cyrillic: a name pasted from a chat looks right and is not.
    const sv = await post(s, `/admin/backends/lic/servers/${encodeURIComponent('і')}`, { weight: 5 });
    expect([sv.status, sv.json.error]).toEqual([404, 'backend "lic" has no server "і" (servers: a, b)']);
    const b = await post(s, `/admin/backends/${encodeURIComponent('lic a')}/failback`);
    expect([b.status, b.json.error]).toEqual([404, 'no backend "lic a" (backends: lic, other)']);
    const long = 'x'.repeat(65);
    expect((await post(s, `/admin/backends/lic/servers/${long}`, { weight: 5 })).json.error).toBe(`backend "lic" has no server "${long}" (servers: a, b)`);
    // An escaped letter of a real name is that name.
    expect((await post(s, '/admin/backends/lic/servers/%61', { weight: 5 })).status).toBe(200);
  });

  it('415 for a body that is not application/json', async () => {
    const s = await start();
    const r = await post(s, '/admin/backends/lic/servers/a', 'weight=5', { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(415);
    expect(r.json.error).toBe('expected Content-Type: application/json, found "application/x-www-form-urlencoded"');
    const withCharset = await post(s, '/admin/backends/lic/servers/a', '{"weight":9}', { headers: { 'Content-Type': 'Application/JSON; charset=utf-8' } });
    expect(withCharset.status).toBe(200);
  });

  it('413 for a declared body over 4 KiB, answered without reading it', async () => {
    const s = await start();
    const r = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request({ ...s.base, method: 'POST', path: '/admin/backends/lic/servers/a', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': '1000000' } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, connection: res.headers.connection });
      });
      req.on('error', reject);
      // Headers only: the server must answer without waiting for the megabyte.
      req.flushHeaders();
    });
    expect(r).toEqual({ status: 413, connection: 'close' });
  });

  it('413 for a streamed body that grows past 4 KiB, answered before the client has finished sending', async () => {
    const s = await start();
    const r = await new Promise<{ status: number; error: string }>((resolve, reject) => {
      const req = request({ ...s.base, method: 'POST', path: '/admin/backends/lic/servers/a', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, error: (JSON.parse(body) as { error: string }).error }));
      });
      req.on('error', reject);
      req.write(`{"weight": 5, "pad": "${'x'.repeat(5000)}`);
      // The request is never ended: only a server that stops reading can answer.
    });
    expect(r).toEqual({ status: 413, error: 'expected a body of at most 4096 bytes, found more' });
    expect(s.daemon.model.backend('lic')!.server('a')!.weight).toBe(100);
  });

  it('400 for bad JSON and bad values, saying what was expected and what was found', async () => {
    const s = await start();
    const cases: [string | undefined, string][] = [
      ['{"weight": 5', 'expected a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}, found invalid JSON'],
      ['[1,2]', 'expected a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}, found [1,2]'],
      ['"drain"', 'expected a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}, found "drain"'],
      ['{}', 'expected a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}, found {}'],
      [undefined, 'expected a JSON object like {"weight": 50}, {"weight": "50%"} or {"state": "drain"}, found an empty body'],
      ['{"weigth": 5}', 'expected the keys "weight" and/or "state", found "weigth"'],
      ['{"weight": 257}', '"weight": expected a whole number 0-256 or a percentage like "50%", found 257'],
      ['{"weight": -1}', '"weight": expected a whole number 0-256 or a percentage like "50%", found -1'],
      ['{"weight": 1.5}', '"weight": expected a whole number 0-256 or a percentage like "50%", found 1.5'],
      ['{"weight": "50"}', '"weight": expected a whole number 0-256 or a percentage like "50%", found "50"'],
      ['{"weight": null}', '"weight": expected a whole number 0-256 or a percentage like "50%", found null'],
      ['{"weight": 1e309}', '"weight": expected a whole number 0-256 or a percentage like "50%", found Infinity (a number too large to hold)'],
      ['{"weight": -1e309}', '"weight": expected a whole number 0-256 or a percentage like "50%", found -Infinity (a number too large to hold)'],
      ['{"weight": "50.5%"}', '"weight": expected a whole number 0-256 or a percentage like "50%", found "50.5%"'],
      ['{"state": "down"}', '"state": expected one of ready | drain | maint, found "down"'],
      ['{"state": "drain", "weight": "x"}', '"weight": expected a whole number 0-256 or a percentage like "50%", found "x"'],
    ];
    for (const [body, error] of cases) {
      const r = body === undefined ? await post(s, '/admin/backends/lic/servers/a') : await post(s, '/admin/backends/lic/servers/a', body);
      expect(r.status, body).toBe(400);
      expect(r.json.error, body).toContain(error);
    }
    // Nothing was applied, not even the valid half of a half-valid body.
    const a = s.daemon.model.backend('lic')!.server('a')!;
    expect([a.weight, a.admin]).toEqual([100, 'ready']);
    const fb = await post(s, '/admin/backends/lic/failback', { to: 'active' });
    expect(fb.status).toBe(400);
    expect(fb.json.error).toBe('failback takes no parameters: expected no body or {}, found {"to":"active"}');
  });

  it('cuts off a connection that sends no request, or only part of its headers, within headersTimeout (5 s)', async () => {
    const s = await start();
    const t0 = Date.now();
    const closedAt = (send: string): Promise<number> =>
      new Promise((resolve) => {
        const sock = connect(s.base, () => sock.write(send));
        // Read: the close comes after a 408, and an unread socket never sees the end.
        sock.resume();
        sock.on('error', () => {});
        sock.on('close', () => resolve(Date.now() - t0));
      });
    // The slowloris shapes: nothing at all, and a request line with headers that never end.
    const [silent, partial] = await Promise.all([closedAt(''), closedAt('GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n')]);
    expect(silent).toBeLessThan(8000);
    expect(partial).toBeLessThan(8000);
  });

  it('cuts off a peer that stops reading its answers, within 10 s of them being written, instead of holding it for good', async () => {
    const s = await start();
    // Pipelined requests for the stats page (about 19 KB each) from a peer that never reads: once
    // the socket buffers are full (a few MB on loopback) every write stalls.
    const sock = connect(s.base, () => sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(1000)));
    sock.pause();
    let cut: Error | null = null;
    sock.on('error', (e) => (cut = e));
    try {
      // A paused socket learns of the server's close only by writing: a blank line between
      // pipelined requests is allowed, and the server never gets to read it anyway.
      await waitFor(() => cut ?? void sock.write('\r\n'), { timeoutMs: 20_000, intervalMs: 250, what: 'the admin listener cutting off a peer that never reads' });
    } finally {
      sock.destroy();
    }
  });

  it('one host holding silent connections cannot take every slot: keepalived\'s /health from another address is still answered', async () => {
    const s = await start();
    const flood = await peerFlood(s.base.port, MAX_CONTROL_PEERS);
    try {
      // Well within headersTimeout (5 s), while the flood's connections are all still held.
      const health = await waitFor(() => call(s, 'GET', '/health', { token: null }), { timeoutMs: 3000, what: 'GET /health from 127.0.0.1 beside the flood from 127.0.0.2' });
      expect(health.status).toBe(200);
    } finally {
      flood.destroy();
    }
  });

  it('8 addresses each holding their share fill the port (128): /health from 127.0.0.1 is still answered, from a reserve a ninth address cannot take (it takes the place of the connection idle longest)', async () => {
    const s = await start();
    const floods: PeerFlood[] = [];
    try {
      await eightAddresses(s, floods);
      await waitFor(() => s.daemon.admin!.connections === MAX_CONTROL_PEERS, { timeoutMs: 3000, intervalMs: 10, what: `${MAX_CONTROL_PEERS} flood connections admitted` });
      // As keepalived's vrrp_script asks it, well within headersTimeout (5 s) of the flood.
      const health = await call(s, 'GET', '/health', { token: null }).then((h) => h.status, (e: Error) => e.message);
      expect(health).toBe(200);
      const ninth = await peerFlood(s.base.port, 1, '127.0.0.10');
      floods.push(ninth);
      await oldestClosed(floods, 'the ninth address');
    } finally {
      for (const f of floods) f.destroy();
    }
  });

  it('with the 128 and the 8 kept for this host all held idle, /health from 127.0.0.1 takes the place of the connection idle longest instead of being closed unseen', async () => {
    const s = await start();
    const floods: PeerFlood[] = [];
    try {
      await eightAddresses(s, floods);
      floods.push(await peerFlood(s.base.port, LOCAL_RESERVE, '127.0.0.1'));
      await waitFor(() => s.daemon.admin!.connections === MAX_CONTROL_PEERS + LOCAL_RESERVE, { timeoutMs: 3000, intervalMs: 10, what: `${MAX_CONTROL_PEERS + LOCAL_RESERVE} flood connections admitted` });
      const health = await call(s, 'GET', '/health', { token: null, headers: { connection: 'close' } }).then((h) => h.status, (e: Error) => e.message);
      expect(health).toBe(200);
      await oldestClosed(floods, '/health');
    } finally {
      for (const f of floods) f.destroy();
    }
  });

  it('on its default loopback listener, where every peer is 127.0.0.1, 24 idle keep-alive connections of local monitoring do not lock keepalived\'s /health out', async () => {
    const s = await start();
    // Prometheus, stats pages opened through an SSH tunnel and a monitoring agent's connection pool:
    // each connection has had its answer and waits for its next request (keep-alive, 5 s).
    const idle = await Promise.all(
      Array.from({ length: 24 }, () => new Promise<Socket>((resolve, reject) => {
        const sock = connect(s.base, () => sock.write('GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        sock.once('data', () => resolve(sock));
        sock.once('error', reject);
        sock.once('close', () => reject(new Error('a monitoring connection was closed before its answer')));
      }).catch((e: Error) => e)),
    );
    try {
      expect(idle.filter((x) => x instanceof Error).map((e) => (e as Error).message)).toEqual([]);
      const health = await call(s, 'GET', '/health', { token: null });
      expect(health.status).toBe(200);
    } finally {
      for (const x of idle) if (!(x instanceof Error)) x.destroy();
    }
  });

  it('a local process holding 140 idle connections (every peer 127.0.0.1) and opening again each one closed cannot lock keepalived\'s /health out', async () => {
    const s = await start();
    const flood = localFlood(s.base.port, 140);
    try {
      await waitFor(() => flood.connected() >= 140 && s.daemon.admin!.connections === CROWDED, { timeoutMs: 5000, intervalMs: 10, what: '140 flood connections tried, 127.0.0.1\'s share held' });
      for (let i = 0; i < 5; i++) {
        const reopened = flood.reopened();
        const t0 = Date.now();
        // As keepalived's vrrp_script asks it: within its `timeout 2` (keepalived/keepalived.conf).
        const health = await call(s, 'GET', '/health', { token: null, headers: { connection: 'close' } }).then((h) => h.status, (e: Error) => e.message);
        expect(health).toBe(200);
        expect(Date.now() - t0).toBeLessThan(2000);
        // The flood has taken its place back before the next check.
        await waitFor(() => flood.reopened() > reopened && s.daemon.admin!.connections === CROWDED, { timeoutMs: 3000, intervalMs: 10, what: 'the flood reconnecting what was closed' });
      }
    } finally {
      flood.stop();
    }
  });

  it('a peer that sent part of its headers (slowloris) has no request under way: one of 64 such from 127.0.0.1 is closed for keepalived\'s /health', async () => {
    const s = await start();
    const flood = await peerFlood(s.base.port, CROWDED, '127.0.0.1', 'GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    try {
      await waitFor(() => s.daemon.admin!.connections === CROWDED, { timeoutMs: 3000, intervalMs: 10, what: "127.0.0.1's share held by the slowloris peers" });
      const health = await call(s, 'GET', '/health', { token: null, headers: { connection: 'close' } }).then((h) => h.status, (e: Error) => e.message);
      expect(health).toBe(200);
      await waitFor(() => flood.closed() > 0 || undefined, { timeoutMs: 3000, intervalMs: 10, what: 'a slowloris peer closed' });
      expect(flood.closed()).toBe(1);
    } finally {
      flood.destroy();
    }
  });

  it('a request under way is not closed for the flood\'s new connections, though its connection is the oldest: its answer comes once its body does', async () => {
    const s = await start();
    // Head sent, body held back: for Node a request under way, as a POST /admin/reload being served is.
    const held = connect(s.base);
    let answer = '';
    held.setEncoding('latin1').on('data', (d: string) => (answer += d));
    held.on('error', () => {});
    const body = JSON.stringify({ weight: 7 });
    held.write(`POST /admin/backends/lic/servers/a HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    await waitFor(() => s.daemon.admin!.connections === 1, { timeoutMs: 3000, intervalMs: 10, what: 'the held request admitted' });
    const flood = localFlood(s.base.port, 140);
    try {
      await waitFor(() => flood.connected() >= 140 && flood.reopened() >= 20, { timeoutMs: 5000, intervalMs: 10, what: 'the flood closing its own connections to take their places' });
      expect((await call(s, 'GET', '/health', { token: null, headers: { connection: 'close' } })).status).toBe(200);
      held.end(body);
      await waitFor(() => answer.includes('\r\n\r\n{') || held.destroyed, { timeoutMs: 3000, intervalMs: 10, what: 'the answer to the held request' });
      expect(answer.split('\r\n', 1)[0]).toBe('HTTP/1.1 200 OK');
      expect(s.daemon.model.backend('lic')!.server('a')!.weight).toBe(7);
    } finally {
      flood.stop();
      held.destroy();
    }
  });

  it('405 for another method on an admin route', async () => {
    const s = await start();
    const r = await call(s, 'GET', '/admin/backends/lic/servers/a');
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST');
  });

  it('answers a request it cannot parse with an HTTP status (curl -X FOO: 400, headers over 16 KiB: 431), not a close without a word', async () => {
    const s = await start();
    // Everything the peer got before the close, whether the close is a FIN or a reset.
    const answer = (send: string): Promise<string> =>
      new Promise((resolve) => {
        let out = '';
        const sock = connect(s.base, () => sock.write(send));
        sock.setEncoding('latin1').on('data', (d: string) => (out += d));
        sock.on('error', () => {});
        sock.on('close', () => resolve(out));
      });
    expect(await answer('FOO /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await answer(`GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
  });
});

describe('admin API: changes apply at once everywhere', () => {
  it('weight: selection, /status and the agent reply follow', async () => {
    const s = await start();
    const lic = s.daemon.model.backend('lic')!;
    const agentPort = s.daemon.agentResponder!.address().port;
    const r = await post(s, '/admin/backends/lic/servers/a', { weight: 50 });
    expect(r.status).toBe(200);
    expect(r.json.before).toEqual({ state: 'no check', admin: 'ready', weight: 100 });
    expect(r.json.tier).toEqual({ from: 'active', to: 'active', failback: 'manual', from_tier: 0, to_tier: 0 });
    expect(r.json.server).toMatchObject({ name: 'a', weight: 50, configured_weight: 100, effective_weight: 50 });
    expect(lic.server('a')!.weight).toBe(50);
    expect(await ask(agentPort, '')).toBe('up ready 50%\n');
    const pct = await post(s, '/admin/backends/lic/servers/a', { weight: '25%' });
    expect(pct.json.server).toMatchObject({ weight: 25 });
    expect(await ask(agentPort, '')).toBe('up ready 25%\n');
    const status = (await call(s, 'GET', '/status', { token: null })).json as unknown as { backends: { name: string; servers: { name: string; weight: number }[] }[] };
    expect(status.backends[0]!.servers[0]).toMatchObject({ name: 'a', weight: 25 });
  });

  it('drain: new connections skip the server, STATUS still says Running, the agent says drain', async () => {
    const s = await start();
    const lic = s.daemon.model.backend('lic')!;
    const statusPort = s.daemon.statusResponder!.address().port;
    const agentPort = s.daemon.agentResponder!.address().port;
    expect(lic.choose('10.0.0.1', null)!.name).toBe('a');
    const r = await post(s, '/admin/backends/lic/servers/a', { state: 'drain' });
    expect(r.status).toBe(200);
    expect(r.json.server).toMatchObject({ state: 'DRAIN', admin: 'drain', usable: false });
    expect(r.json.tier).toEqual({ from: 'active', to: 'backup', failback: 'manual', from_tier: 0, to_tier: 1 });
    expect(lic.choose('10.0.0.1', null)!.name).toBe('b');
    expect(await ask(statusPort, 'STATUS\r\n')).toBe('Server Status: Running\r\nBackend: lic\r\nTier: backup\r\nServers: 2/2 up\r\n');
    expect(await ask(agentPort, '')).toBe('up drain 0% #draining\n');

    await post(s, '/admin/backends/lic/servers/a', { state: 'maint' });
    expect(await ask(statusPort, 'STATUS\r\n')).toBe('Server Status: Running\r\nBackend: lic\r\nTier: backup\r\nServers: 1/2 up\r\n');
    expect(await ask(agentPort, '')).toBe('down maint 0% #maintenance\n');

    // failback: manual — a is back, but the backup tier keeps serving until an admin says so.
    const both = await post(s, '/admin/backends/lic/servers/a', { state: 'ready', weight: 100 });
    expect(both.json.server).toMatchObject({ state: 'no check', admin: 'ready', weight: 100 });
    expect(lic.servingTier).toBe(1);
    expect(lic.choose('10.0.0.2', null)!.name).toBe('b');
    expect(await ask(agentPort, '')).toBe('up ready 100%\n');
    const fb = await post(s, '/admin/backends/lic/failback');
    expect(fb.status).toBe(200);
    expect(fb.json).toEqual({ backend: 'lic', failback: 'manual', from: 'backup', to: 'active', from_tier: 1, to_tier: 0, changed: true });
    expect(lic.choose('10.0.0.3', null)!.name).toBe('a');
    const again = await post(s, '/admin/backends/lic/failback', {});
    expect(again.json).toMatchObject({ from: 'active', to: 'active', changed: false });
  });

  it('DR sites at tiers 2 and 3: the answers give the tier numbers beside the names, and the log says which DR tier', async () => {
    const s = await start(true, 'manual', `      - { name: a, address: 127.0.0.1:1 }
      - { name: d2, address: 127.0.0.1:2, tier: 2 }
      - { name: d3, address: 127.0.0.1:4, tier: 3 }
`);
    const lic = s.daemon.model.backend('lic')!;
    await post(s, '/admin/backends/lic/servers/a', { state: 'drain' });
    expect(lic.servingTier).toBe(2);
    const over = await post(s, '/admin/backends/lic/servers/d2', { state: 'drain' });
    expect(over.json.tier).toEqual({ from: 'dr', to: 'dr', failback: 'manual', from_tier: 2, to_tier: 3 });
    expect(s.logText()).toContain('backend lic now serves from dr tier 3');
    await post(s, '/admin/backends/lic/servers/d2', { state: 'ready' });
    expect(lic.servingTier).toBe(3);
    const fb = await post(s, '/admin/backends/lic/failback');
    expect(fb.json).toEqual({ backend: 'lic', failback: 'manual', from: 'dr', to: 'dr', from_tier: 3, to_tier: 2, changed: true });
    expect(s.logText()).toContain('admin: failback lic: dr tier 3 -> dr"');
    const again = await post(s, '/admin/backends/lic/failback');
    expect(again.json).toMatchObject({ from_tier: 2, to_tier: 2, changed: false });
    expect(s.logText()).toContain('admin: failback lic: already serving from dr"');
  });

  it('state and weight in one call are one change: a drained active set ready at weight 0 moves no tier (failback: auto)', async () => {
    const s = await start(true, 'auto');
    const lic = s.daemon.model.backend('lic')!;
    const tiers: string[] = [];
    const states: string[] = [];
    s.daemon.model.events.on('tier-change', (e) => tiers.push(e.reason));
    s.daemon.model.events.on('server-state', (e) => states.push(`${e.server}: ${e.from} -> ${e.to}`));
    await post(s, '/admin/backends/lic/servers/a', { state: 'drain' });
    expect(lic.servingTier).toBe(1);
    tiers.length = 0;
    states.length = 0;
    // Taken out of service either way: drained, then ready at weight 0. Applied one key after the
    // other, the ready alone failed back to the active tier and the weight 0 failed over again.
    const r = await post(s, '/admin/backends/lic/servers/a', { state: 'ready', weight: 0 });
    expect(r.status).toBe(200);
    expect(r.json.tier).toEqual({ from: 'backup', to: 'backup', failback: 'auto', from_tier: 1, to_tier: 1 });
    expect(tiers, 'tier changes for one call that leaves the backup serving').toEqual([]);
    expect(states).toEqual(['a: DRAIN -> no check (weight 0)']);
    expect(s.logText()).not.toContain('now serves from active');
    // And back: ready at weight 100 is one failback.
    await post(s, '/admin/backends/lic/servers/a', { state: 'ready', weight: 100 });
    expect(tiers).toEqual(['backup -> active: a no check: admin API from 127.0.0.1']);
  });
});

describe('admin API: a reload while the body is on its way', () => {
  /** Sends the head with Expect: 100-continue; once the route waits for the body, runs `between`, then sends the body. */
  function postAround(s: Started, path: string, body: unknown, between: () => Promise<void>): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request({ ...s.base, method: 'POST', path, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', expect: '100-continue' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(text) as Reply['json'] }));
      });
      req.on('continue', () => void between().then(() => req.end(JSON.stringify(body)), reject));
      req.on('error', reject);
      req.flushHeaders();
    });
  }

  it('the change goes to the server of the config running now', async () => {
    const s = await start();
    const r = await postAround(s, '/admin/backends/lic/servers/a', { state: 'drain' }, async () => {
      expect((await s.daemon.reload('test')).ok).toBe(true);
    });
    expect(r.status).toBe(200);
    expect(s.daemon.model.backend('lic')!.server('a')!.admin).toBe('drain');
    const f = await postAround(s, '/admin/backends/lic/failback', {}, async () => {
      expect((await s.daemon.reload('test')).ok).toBe(true);
    });
    expect(f.status).toBe(200);
  });

  it('404 when the reload removed the server', async () => {
    const s = await start();
    const r = await postAround(s, '/admin/backends/lic/servers/b', { weight: 5 }, async () => {
      writeFileSync(s.file, readFileSync(s.file, 'utf8').replace(/^ *- \{ name: b,.*\n/m, ''));
      expect((await s.daemon.reload('test')).ok).toBe(true);
    });
    expect(r.status).toBe(404);
    expect(r.json.error).toBe('backend "lic" has no server "b" (servers: a)');
  });
});

describe('parseWeight / parseServerChange', () => {
  it('a percentage is of the configured weight, rounded down and capped at 256 like HAProxy, never 0 unless it is 0%', () => {
    expect(parseWeight('50%', 100)).toBe(50);
    expect(parseWeight('50%', 3)).toBe(1);
    expect(parseWeight('99%', 3)).toBe(2);
    expect(parseWeight('33%', 1)).toBe(1);
    expect(parseWeight('0%', 100)).toBe(0);
    expect(parseWeight('50%', 0)).toBe(0);
    expect(parseWeight('256%', 100)).toBe(256);
    expect(parseWeight('257%', 100)).toBe(256);
    expect(parseWeight('163%', 200)).toBe(256);
    expect(parseWeight(0, 100)).toBe(0);
    expect(parseWeight(256, 1)).toBe(256);
  });

  it('takes weight and state together', () => {
    expect(parseServerChange({ state: 'maint', weight: '10%' }, { configuredWeight: 200 })).toEqual({ state: 'maint', weight: 20 });
  });
});

describe('admin API: stick table', () => {
  /** A daemon whose backend lic (servers a and b) has a full stick table of the default stick_size: 14 MB listed, far more than the kernel's socket buffers hold. */
  async function fullTable(): Promise<{ daemon: Daemon; clients: string[] }> {
    const file = join(dir, 'licgate-stick.yaml');
    writeFileSync(file, `
admin: { listen: 127.0.0.1:0 }
backends:
  - name: lic
    stick: source
    check: { type: none }
    servers: [{ name: a, address: 127.0.0.1:1 }, { name: b, address: 127.0.0.1:2 }]
`);
    const daemon = new Daemon(loadConfigFile(file), pino({ level: 'silent' }));
    daemons.push(daemon);
    await daemon.start();
    const stick = daemon.model.backend('lic')!.stick!;
    const clients = Array.from({ length: 100_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    for (const [i, c] of clients.entries()) stick.set(c, i % 2 ? 'b' : 'a');
    return { daemon, clients };
  }

  it('writes a large table over several loop turns, each entry as it is then: one cleared while the table is on its way is left out', async () => {
    const { daemon, clients } = await fullTable();
    const stick = daemon.model.backend('lic')!.stick!;
    // The writer waits for this reader, so the last entry is not written when the first bytes come.
    const last = clients.at(-1)!;
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: daemon.admin!.address().port, path: '/backends/lic/stick-table', timeout: 8000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          if (text === '') stick.delete(last);
          text += d;
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject).end();
    });
    const table = JSON.parse(body) as { backend: string; stick_size: number; entries: { client: string; server: string; sessions: number; expires_in_s: number }[] };
    expect([table.backend, table.stick_size]).toEqual(['lic', 100_000]);
    expect(table.entries.map((e) => e.client)).toEqual(clients.slice(0, -1));
    expect(table.entries[1]).toMatchObject({ client: '10.0.0.1', server: 'b', sessions: 0 });
    expect(table.entries[1]!.expires_in_s).toBeGreaterThan(8 * 3600 - 60); // the default stick_ttl, 8 h
  });

  it('writes a full table to a peer that reads slowly as it reads, never holding more than a batch or two of it', async () => {
    const { daemon } = await fullTable();
    // The admin listener's side of the connection: what it holds for the peer beyond the kernel's buffers.
    let served: Socket | undefined;
    (daemon.admin as unknown as { server: import('node:http').Server }).server.once('connection', (s: Socket) => (served = s));
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, served?.writableLength ?? 0)), 2);
    try {
      const entries = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: daemon.admin!.address().port, path: '/backends/lic/stick-table', timeout: 8000 }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          // The slow reader is the fault under test: it takes nothing for 300 ms, then reads.
          res.pause();
          setTimeout(() => res.resume(), 300);
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve((JSON.parse(text) as { entries: unknown[] }).entries.length));
        });
        req.on('error', reject).end();
      });
      expect(entries).toBe(100_000);
    } finally {
      clearInterval(sample);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThan(1_000_000);
  });
});

describe('stickClient / parseStickClear', () => {
  it('finds a client by any spelling of its address, as the stick table keys it (IPv4-mapped as IPv4, IPv6 as getpeername writes it)', () => {
    expect(stickClient('127.0.0.2')).toBe('127.0.0.2');
    expect(stickClient(' ::ffff:127.0.0.2 ')).toBe('127.0.0.2');
    expect(stickClient('[2001:DB8:0::5]')).toBe('2001:db8::5');
    expect(stickClient('::1')).toBe('::1');
    for (const bad of ['lic-client.example', '127.0.0.2:27000', '']) expect(() => stickClient(bad), bad).toThrow(/"client": expected an IP address like 10\.1\.2\.3 or 2001:db8::5, found/);
  });

  it('takes {}, one client or one server, and refuses a bare POST, both keys or others, saying what was expected', () => {
    expect(parseStickClear({})).toEqual({});
    expect(parseStickClear({ client: '::ffff:10.1.2.3' })).toEqual({ client: '10.1.2.3' });
    expect(parseStickClear({ server: 'lic1' })).toEqual({ server: 'lic1' });
    const refused: [unknown, string][] = [
      [undefined, 'expected {} (every entry), {"client": "10.1.2.3"} or {"server": "NAME"}, found an empty body'],
      [[], 'expected {} (every entry), {"client": "10.1.2.3"} or {"server": "NAME"}, found []'],
      [{ client: '10.1.2.3', server: 'lic1' }, 'expected "client" or "server", not both: found {"client":"10.1.2.3","server":"lic1"}'],
      [{ key: '10.1.2.3' }, 'expected the key "client" or "server", or none, found "key"'],
      [{ server: 5 }, '"server": expected a server name, found 5'],
      [{ client: 5 }, '"client": expected an IP address like 10.1.2.3 or 2001:db8::5, found 5'],
    ];
    for (const [body, message] of refused) expect(() => parseStickClear(body), JSON.stringify(body)).toThrow(message);
  });
});
