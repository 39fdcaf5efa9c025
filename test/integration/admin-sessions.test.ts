import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { sample } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'sessions-test-token-0123456789abcdef';
let dir: string;
let tokenFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-sessions-'));
  tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => stopAll());

interface Entry {
  client: string;
  frontend: string;
  backend: string;
  server: string;
  started: string;
  age_s: number;
  idle_s: number | null;
  bytes_in: number;
  bytes_out: number;
}

/** An upstream that names itself in a first line, then echoes (a FIN too): a client knows which server it reached. */
async function namedEcho(name: string) {
  return startTcpServer((s) => {
    s.write(`${name}\n`);
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
}

/**
 * Frontend lmgrd → backend lic (servers a and b, round-robin), frontend other → backend other,
 * whose one server is also called a: ending lic/a must not touch it.
 */
async function daemon(): Promise<ProxyProcess> {
  const [a, b, x] = await Promise.all([namedEcho('lic/a'), namedEcho('lic/b'), namedEcho('other/a')]);
  return startProxy(`
admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: lic }
  - { name: other, listen: "127.0.0.1:0", backend: other }
backends:
  - name: lic
    check: { type: none }
    servers:
      - { name: a, address: "127.0.0.1:${a.port}" }
      - { name: b, address: "127.0.0.1:${b.port}" }
  - name: other
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:${x.port}" }]
`);
}

interface Client {
  sock: Socket;
  /** Its address:port as licgate's session log writes it. */
  name: string;
  /** backend/server, from the upstream's first line. */
  reached: string;
  /** What the client has read after that line. */
  echoed: () => Buffer;
  sent: number;
  bannerBytes: number;
  events: string[];
}

/** A client whose session is relaying: it read the server's name and had `first` echoed back. */
async function open(port: number, first = 'hello\n'): Promise<Client> {
  const sock = connect({ host: '127.0.0.1', port });
  const events: string[] = [];
  let got = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  sock.on('end', () => events.push('end'));
  sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
  sock.on('close', () => events.push('close'));
  await waitFor(() => got.includes(10), { timeoutMs: 5000, intervalMs: 5, what: 'the server name line' });
  const bannerBytes = got.indexOf(10) + 1;
  const c: Client = { sock, name: `127.0.0.1:${sock.localPort}`, reached: got.subarray(0, bannerBytes - 1).toString(), echoed: () => got.subarray(bannerBytes), sent: 0, bannerBytes, events };
  await exchange(c, Buffer.from(first));
  return c;
}

/** Sends `data` and waits until all of it came back, byte for byte. */
async function exchange(c: Client, data: Buffer): Promise<void> {
  const before = c.sent;
  c.sock.write(data);
  c.sent += data.length;
  await waitFor(() => c.echoed().length >= c.sent, { timeoutMs: 5000, intervalMs: 5, what: `${c.sent} bytes echoed` });
  expect(c.echoed().subarray(before).equals(data)).toBe(true);
}

async function sessions(p: ProxyProcess, query = ''): Promise<{ status: number; json: { sessions?: Entry[]; error?: string; code?: string } }> {
  const r = await p.get(`/sessions${query}`);
  return { status: r.status, json: r.json as { sessions?: Entry[]; error?: string } };
}

function post(p: ProxyProcess, path: string, token: string | null): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(p.adminUrl + path, { method: 'POST', headers: token === null ? {} : { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${path}: no answer within 5 s`))).on('error', reject);
    req.end();
  });
}

const clientOf = (c: Client): string => c.name;

describe('GET /sessions and POST .../shutdown-sessions (HAProxy show sess / shutdown sessions server)', { timeout: 60_000 }, () => {
  it('lists each relaying session oldest first with its route and bytes; filters; a session ended meanwhile is gone', async () => {
    const p = await daemon();
    const t0 = Date.now();
    const c1 = await open(p.ports.lmgrd!);
    const c2 = await open(p.ports.lmgrd!, 'a longer first message\n');
    const c3 = await open(p.ports.other!);
    await exchange(c1, randomBytes(3000));
    expect(new Set([c1.reached, c2.reached])).toEqual(new Set(['lic/a', 'lic/b']));
    expect(c3.reached).toBe('other/a');

    const all = await sessions(p);
    expect(all.status).toBe(200);
    const list = all.json.sessions!;
    const expected = (c: Client) => ({ client: clientOf(c), frontend: c === c3 ? 'other' : 'lmgrd', backend: c.reached.split('/')[0], server: c.reached.split('/')[1], idle_s: null, bytes_in: c.sent, bytes_out: c.bannerBytes + c.sent });
    expect(list.map(({ client, frontend, backend, server, idle_s, bytes_in, bytes_out }) => ({ client, frontend, backend, server, idle_s, bytes_in, bytes_out }))).toEqual([c1, c2, c3].map(expected));
    for (const e of list) {
      expect(Date.parse(e.started)).toBeGreaterThanOrEqual(t0 - 1000);
      expect(Date.parse(e.started)).toBeLessThanOrEqual(Date.now());
      expect(e.age_s).toBeGreaterThanOrEqual(0);
      expect(e.age_s).toBeLessThan(30);
    }
    expect(Date.parse(list[0]!.started)).toBeLessThanOrEqual(Date.parse(list[2]!.started));

    expect((await sessions(p, '?backend=lic')).json.sessions!.map((e) => e.client)).toEqual([clientOf(c1), clientOf(c2)]);
    const onA = c1.reached === 'lic/a' ? c1 : c2;
    expect((await sessions(p, '?backend=lic&server=a')).json.sessions!.map((e) => e.client)).toEqual([clientOf(onA)]);
    // The same server name in another backend is another server.
    expect((await sessions(p, '?backend=other&server=a')).json.sessions!.map((e) => e.client)).toEqual([clientOf(c3)]);

    const typo = await sessions(p, '?backend=lics');
    expect(typo).toEqual({ status: 404, json: { error: 'no backend "lics" (backends: lic, other)', code: 'E_ADMIN_NOT_FOUND' } });
    expect((await sessions(p, '?backend=lic&server=c')).json.error).toBe('backend "lic" has no server "c" (servers: a, b)');
    expect(await sessions(p, '?server=a')).toEqual({ status: 400, json: { error: 'expected ?backend=B with ?server=a, found no backend', code: 'E_ADMIN_BAD_VALUE' } });
    expect((await sessions(p, '?host=x')).status).toBe(400);

    // c1 leaves: its log line names the client as the list did, and the list no longer has it.
    c1.sock.end();
    const line = await waitFor(() => p.logs.find((l) => l.msg === 'session closed' && l.client === clientOf(c1)), { timeoutMs: 5000, what: "c1's session closed line" });
    expect(line).toMatchObject({ frontend: 'lmgrd', bytes_in: c1.sent, bytes_out: c1.bannerBytes + c1.sent, end: 'closed' });
    expect((await sessions(p)).json.sessions!.map((e) => e.client)).toEqual([clientOf(c2), clientOf(c3)]);
  });

  it('idle_s counts a session\'s silence where the frontend has an idle_timeout (its sweep measures it)', async () => {
    const up = await namedEcho('lic/a');
    const p = await startProxy(`
frontends:
  - { name: fe, listen: "127.0.0.1:0", backend: lic, idle_timeout: 1m }
backends:
  - name: lic
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:${up.port}" }]
`);
    const c = await open(p.port);
    const idle = async (): Promise<number | null | undefined> => (await sessions(p)).json.sessions![0]?.idle_s;
    await waitFor(async () => ((await idle()) ?? 0) >= 2, { timeoutMs: 6000, what: 'idle_s 2 after 2 s of silence' });
    await exchange(c, Buffer.from('again\n'));
    await waitFor(async () => (await idle()) === 0, { timeoutMs: 3000, what: 'idle_s 0 again after traffic' });
  });

  it('a list longer than one part of the answer arrives whole, oldest first', async () => {
    const p = await daemon();
    const clients: Client[] = [];
    // Over two of the parts the list is sent in (sessions-route.ts ENTRIES_PER_TURN).
    for (let i = 0; i < 1100; i += 100) clients.push(...(await Promise.all(Array.from({ length: 100 }, () => open(p.ports.lmgrd!)))));
    const r = await sessions(p);
    expect(r.status).toBe(200);
    const listed = r.json.sessions!;
    expect(listed).toHaveLength(clients.length);
    expect(new Set(listed.map((e) => e.client))).toEqual(new Set(clients.map(clientOf)));
    expect(listed.every((e, i) => i === 0 || Date.parse(e.started) >= Date.parse(listed[i - 1]!.started))).toBe(true);
    for (const c of clients) c.sock.destroy();
  });

  it('shutdown-sessions ends exactly that server\'s sessions, logged and counted as admin; the others keep relaying byte-exact', async () => {
    const p = await daemon();
    const lic: Client[] = [];
    for (let i = 0; i < 4; i++) lic.push(await open(p.ports.lmgrd!));
    const other = await open(p.ports.other!);
    const onA = lic.filter((c) => c.reached === 'lic/a');
    const rest = [...lic.filter((c) => c.reached !== 'lic/a'), other];
    expect(onA.length).toBe(2);

    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', null)).toMatchObject({ status: 401, json: { code: 'E_ADMIN_NO_TOKEN' } });
    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', 'wrong-token')).toMatchObject({ status: 401, json: { code: 'E_ADMIN_BAD_TOKEN' } });
    expect(await post(p, '/admin/backends/lic/servers/zz/shutdown-sessions', TOKEN)).toEqual({ status: 404, json: { error: 'backend "lic" has no server "zz" (servers: a, b)', code: 'E_ADMIN_NOT_FOUND' } });
    expect(await post(p, '/admin/backends/nope/servers/a/shutdown-sessions', TOKEN)).toMatchObject({ status: 404, json: { code: 'E_ADMIN_NOT_FOUND' } });
    expect((await sessions(p)).json.sessions!.length).toBe(5);

    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toEqual({ status: 200, json: { backend: 'lic', server: 'a', closed: 2 } });
    for (const c of onA) await waitFor(() => c.events.includes('close'), { timeoutMs: 5000, intervalMs: 5, what: 'a client of lic/a closed' });
    expect(onA.map((c) => c.events)).toEqual(onA.map(() => ['end', 'close']));
    for (const c of rest) await exchange(c, randomBytes(256 * 1024));
    expect(rest.every((c) => c.events.length === 0)).toBe(true);
    // Oldest first: in the order they were opened.
    expect((await sessions(p)).json.sessions!.map((e) => e.client)).toEqual([...lic, other].filter((c) => c.reached !== 'lic/a').map(clientOf));

    // Session lines are written in batches (flushed every second).
    const ended = await waitFor(() => { const e = p.logs.filter((l) => l.msg === 'session closed'); return e.length >= 2 && e; }, { timeoutMs: 5000, what: 'two session closed lines' });
    expect(ended.map((l) => [l.client, l.backend, l.server, l.end]).sort()).toEqual(onA.map((c) => [clientOf(c), 'lic', 'a', 'admin']).sort());
    const admin = p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('admin: shutdown-sessions'));
    expect(admin).toHaveLength(1);
    expect(admin[0]).toMatchObject({ backend: 'lic', server: 'a', peer: '127.0.0.1', sessions: 2, msg: 'admin: shutdown-sessions lic/a from 127.0.0.1: closed 2 session(s)' });
    const text = (await p.get('/metrics')).body;
    expect(sample(text, 'licgate_sessions_ended_total', { frontend: 'lmgrd', backend: 'lic', end: 'admin' })).toBe(2);
    expect(sample(text, 'licgate_sessions_ended_total', { frontend: 'other', backend: 'other', end: 'admin' })).toBe(0);

    // Nothing left to end: still 200, with 0.
    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toMatchObject({ status: 200, json: { closed: 0 } });
  });

  it('shutdown-sessions ends the sessions /sessions still lists to a server a reload removed', async () => {
    const [a, b] = await Promise.all([namedEcho('lic/a'), namedEcho('lic/b')]);
    const cfg = (servers: string) => `
admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: lic }
backends:
  - name: lic
    check: { type: none }
    servers:
${servers}`;
    const serverA = `      - { name: a, address: "127.0.0.1:${a.port}" }\n`;
    const serverB = `      - { name: b, address: "127.0.0.1:${b.port}" }\n`;
    const p = await startProxy(cfg(serverA + serverB));
    const lic: Client[] = [];
    for (let i = 0; i < 2; i++) lic.push(await open(p.ports.lmgrd!));
    const onA = lic.find((c) => c.reached === 'lic/a')!;
    const onB = lic.find((c) => c.reached === 'lic/b')!;

    p.reload(cfg(serverB));
    await waitFor(() => p.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload line' });
    expect((await sessions(p, '?backend=lic&server=a')).json.sessions!.map((e) => e.client)).toEqual([clientOf(onA)]);

    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toEqual({ status: 200, json: { backend: 'lic', server: 'a', closed: 1 } });
    await waitFor(() => onA.events.includes('close'), { timeoutMs: 5000, intervalMs: 5, what: 'the client of the removed lic/a closed' });
    await exchange(onB, randomBytes(1024));
    expect((await sessions(p)).json.sessions!.map((e) => e.client)).toEqual([clientOf(onB)]);
    // Once none is left, the name is unknown again.
    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toMatchObject({ status: 404, json: { code: 'E_ADMIN_NOT_FOUND' } });
  });

  it('shutdown-sessions ends the sessions /sessions still lists to a backend a reload removed (or renamed)', async () => {
    const a = await namedEcho('lic/a');
    const cfg = (backend: string) => `
admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: ${backend} }
backends:
  - name: ${backend}
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:${a.port}" }]
`;
    const p = await startProxy(cfg('lic'));
    const c = await open(p.ports.lmgrd!);
    p.reload(cfg('licenses'));
    await waitFor(() => p.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload line' });
    expect((await sessions(p, '?backend=lic&server=a')).json.sessions!.map((e) => e.client)).toEqual([clientOf(c)]);

    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toEqual({ status: 200, json: { backend: 'lic', server: 'a', closed: 1 } });
    await waitFor(() => c.events.includes('close'), { timeoutMs: 5000, intervalMs: 5, what: 'the client of the removed backend closed' });
    expect(await post(p, '/admin/backends/lic/servers/a/shutdown-sessions', TOKEN)).toMatchObject({ status: 404, json: { code: 'E_ADMIN_NOT_FOUND' } });
  });
});
