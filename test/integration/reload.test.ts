import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce, LicenseClient } from '../helpers/license-client.js';
import { parseSamples, sample } from '../helpers/prom-text.js';
import { httpGetText, startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess, type StartProxyOptions, type TestServer } from '../helpers/proxy-harness.js';
import { holdsFor, waitFor } from '../helpers/wait-for.js';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { connects } from '../helpers/reload-by-hand.js';
import { wallClockStep } from '../helpers/wall-clock-step.js';

const TOKEN = 'reload-test-token-0123456789abcdef';
const clients: LicenseClient[] = [];
const tokenFiles: string[] = [];
const cleanup: (() => void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await stopAll();
  for (const f of tokenFiles.splice(0)) rmSync(f, { force: true });
  for (const f of cleanup.splice(0)) f();
});

/** The admin section every config here shares. */
function header(tokenFile: string): string {
  return `admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }\nlog: { level: info, format: json }\nshutdown_grace: 500ms\nshutdown_delay: 0s\n`;
}

function backendYaml(servers: { name: string; port: number; extra?: string }[], opts = ''): string {
  return `backends:
  - name: licenses
    check: { type: status, inter: 300ms, rise: 1, fall: 2, timeout: 500ms }${opts}
    servers:
${servers.map((s) => `      - { name: ${s.name}, address: 127.0.0.1:${s.port}${s.extra ?? ''} }`).join('\n')}
`;
}

const FRONTEND = `frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
`;

async function start(body: string, opts: StartProxyOptions = {}): Promise<{ p: ProxyProcess; tokenFile: string; write: (body: string) => void }> {
  const tokenFile = join(tmpdir(), `licgate-reload-token-${process.pid}-${Math.random().toString(36).slice(2)}`);
  // Not readable by every user: licgate would warn of it at each reload.
  writeFileSync(tokenFile, TOKEN, { mode: 0o600 });
  tokenFiles.push(tokenFile);
  const p = await startProxy(header(tokenFile) + body, opts);
  return { p, tokenFile, write: (b) => writeFileSync(p.configFile, header(tokenFile) + b) };
}

async function reloadApi(p: ProxyProcess, token: string | null = TOKEN): Promise<{ status: number; json: { ok: boolean; errors: string[]; changes: string[] } }> {
  const res = await fetch(`${p.adminUrl}/admin/reload`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, json: (await res.json()) as { ok: boolean; errors: string[]; changes: string[] } };
}

/** Inode of the socket listening on 127.0.0.1:port, or [::]:port (from /proc/net/tcp, tcp6): the same inode means the same socket. */
function listenInode(port: number, on: '127.0.0.1' | '[::]' = '127.0.0.1'): string | undefined {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const [file, local] = on === '[::]' ? ['/proc/net/tcp6', '0'.repeat(32)] : ['/proc/net/tcp', '0100007F'];
  for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === `${local}:${hex}` && f[3] === '0A') return f[9];
  }
  return undefined;
}

function reloadLogs(p: ProxyProcess): Record<string, unknown>[] {
  return p.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload'));
}

/** What a control listener at host:port answers, `send` written (and our side closed) on connect. */
function ask(host: string, port: number, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    connect({ host, port }, function (this: Socket) {
      if (send !== undefined) this.end(send);
    })
      .setEncoding('latin1')
      .on('data', (d: string) => (got += d))
      .on('end', () => resolve(got))
      .on('error', reject);
  });
}

/**
 * Sessions to the echo server a, opened before a reload removed it (`removed`: the server, or its
 * whole backend) and a later one added it back at the same address, count on it: its maxconn holds
 * on the real server, a slot one of them frees goes to a queued client, and /status and /metrics
 * count them. Once they end, removing and adding it back again loses no slot and counts none twice.
 */
/** lmgrd on a backend of unchecked `servers` whose connections may wait 30 s in its queue. */
function oneBackend(backend: string, servers: string): string {
  return `frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: ${backend}, inband_status: false }
backends:
  - name: ${backend}
    check: { type: none }
    queue_timeout: 30s
    servers:
${servers}`;
}

async function addedBackWhileOpen(removed: 'server' | 'backend'): Promise<void> {
  // The license server: an echo, whose open sockets are the sessions it really has.
  const open = new Set<Socket>();
  let peak = 0;
  const a = await startTcpServer((s) => {
    open.add(s);
    peak = Math.max(peak, open.size);
    s.on('close', () => open.delete(s));
    s.pipe(s);
  });
  const other = await startTcpServer((s) => s.pipe(s));
  const body = oneBackend;
  const withA = (maxconn: number): string => body('licenses', `      - { name: a, address: 127.0.0.1:${a.port}, maxconn: ${maxconn} }\n`);
  // The backend case: the frontend points at another backend, and licenses is gone from the file.
  const withoutA = body(removed === 'server' ? 'licenses' : 'spare', `      - { name: other, address: 127.0.0.1:${other.port} }\n`);
  const [removedLine, addedLine] =
    removed === 'server' ? ['backend licenses: server a removed', `backend licenses: server a added (127.0.0.1:${a.port}, tier 0, weight 1)`] : ['backend licenses removed', 'backend licenses added'];
  const { p, write } = await start(withA(2));
  const reload = async (yaml: string): Promise<string[]> => {
    write(yaml);
    const r = await reloadApi(p);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    return r.json.changes;
  };
  const sessions: { sock: Socket; echoed: () => boolean }[] = [];
  const opened = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const sock = connect(p.port, '127.0.0.1');
      sock.on('error', () => {});
      let got = '';
      sock.setEncoding('utf8').on('data', (d: string) => (got += d));
      sock.write('x\n');
      sessions.push({ sock, echoed: () => got === 'x\n' });
    }
  };
  /** a's sessions as /status, the server gauge and the per-frontend gauge see them. */
  const counts = async (): Promise<number[]> => {
    const m = (await p.get('/metrics')).body;
    const st = (await p.backend('licenses')).servers.find((s) => s.name === 'a');
    return [st?.active ?? -1, sample(m, 'licgate_server_active_connections', { server: 'a' }) ?? -1, sample(m, 'licgate_connections_active', { server: 'a' }) ?? -1];
  };
  const queued = async (): Promise<number> => sample((await p.get('/metrics')).body, 'licgate_backend_queue_length', { backend: 'licenses' }) ?? -1;

  try {
    opened(2);
    await waitFor(() => sessions.every((s) => s.echoed()), { timeoutMs: 5000, what: 'two sessions echoed by a' });
    expect(await reload(withoutA)).toContain(removedLine);
    expect(await reload(withA(2))).toContain(addedLine);

    // a is full with the two sessions it still has: two more wait in the queue, none reaches it.
    opened(2);
    await waitFor(async () => open.size + (await queued()) === 4, { timeoutMs: 5000, what: 'two more sessions at a or in the queue' });
    expect(open.size).toBe(2);
    expect(await counts()).toEqual([2, 2, 2]);
    // A session opened before the reloads ends: its slot goes to the oldest waiting one.
    sessions[0]!.sock.destroy();
    await waitFor(() => sessions[2]!.echoed(), { timeoutMs: 5000, what: 'the first waiting session to reach a' });
    expect([open.size, await queued(), sessions[3]!.echoed()]).toEqual([2, 1, false]);
    expect(await counts()).toEqual([2, 2, 2]);

    // A third reload that keeps a (more room) lets the last one in; then every session ends.
    expect(await reload(withA(3))).toEqual(['backend licenses: server a maxconn 2 -> 3']);
    await waitFor(() => sessions[3]!.echoed(), { timeoutMs: 5000, what: 'the last waiting session to reach a' });
    expect(await counts()).toEqual([3, 3, 3]);
    for (const s of sessions) s.sock.destroy();
    await waitFor(async () => open.size === 0 && (await counts()).join() === '0,0,0', { timeoutMs: 5000, what: 'every session of a to end' });
    // Removed and added back once more with nothing open: no slot was lost or counted twice.
    await reload(withoutA);
    await reload(withA(3));
    opened(1);
    await waitFor(() => sessions[4]!.echoed(), { timeoutMs: 5000, what: 'a session after the last reload' });
    expect(await counts()).toEqual([1, 1, 1]);
    expect(peak).toBe(3);
  } finally {
    for (const s of sessions) s.sock.destroy();
  }
}

describe('config reload on a real licgate run (SIGHUP and POST /admin/reload)', () => {
  it('adds a server with SIGHUP and new sessions reach it; the frontend keeps its listening socket', async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const inode = listenInode(p.port);
    expect(inode).toBeDefined();
    for (let i = 0; i < 3; i++) expect(await helloOnce(p.port)).toBe('s1');

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]));
    p.child.kill('SIGHUP');
    const line = await waitFor(() => reloadLogs(p)[0], { timeoutMs: 10_000, what: 'the reload log line' });
    expect(line.msg).toBe(`config reloaded from ${p.configFile} (SIGHUP): 1 change: backend licenses: server s2 added (127.0.0.1:${s2.port}, tier 0, weight 1)`);
    const seen = new Set<string>();
    await waitFor(async () => (seen.add(await helloOnce(p.port)), seen.has('s2')), { timeoutMs: 10_000, what: 'a session answered by the new server s2' });
    expect((await p.status()).frontends[0]!.port).toBe(p.port);
    expect(listenInode(p.port)).toBe(inode);
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_config_reloads_total', { result: 'ok' })).toBe(1);
    expect(sample(metrics, 'licgate_server_up', { backend: 'licenses', server: 's2' })).toBe(1);
  });

  it('removing a server keeps its open session alive until it ends; new sessions avoid it', async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]));
    // Round robin: hold one session on each server.
    const held: Record<string, LicenseClient> = {};
    while (!held.s1 || !held.s2) {
      const c = await LicenseClient.connect(p.port);
      clients.push(c);
      const who = await c.hello();
      if (held[who]) c.destroy();
      else held[who] = c;
    }
    const grant = await held.s2.checkout('solver', 1);
    expect(grant.granted).toBe(true);

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const r = await reloadApi(p);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ok: true, errors: [], changes: ['backend licenses: server s2 removed'] });
    expect((await p.backend('licenses')).servers.map((s) => s.name)).toEqual(['s1']);
    for (let i = 0; i < 4; i++) expect(await helloOnce(p.port)).toBe('s1');

    // The session on the removed server still works, with the license it holds.
    expect(await held.s2.request('CHECKIN ' + (grant as { handle: string }).handle)).toBe('OK');
    expect((await held.s2.checkout('solver', 2)).granted).toBe(true);
    expect((await p.status()).frontends[0]!.active).toBe(2);
    await held.s2.close();
    await waitFor(async () => (await p.status()).frontends[0]!.active === 1, { timeoutMs: 5000, what: 'the removed server session to end' });
    const ended = await waitFor(() => p.logs.find((l) => l.msg === 'session closed' && l.server === 's2'), { timeoutMs: 5000, what: 'the session closed log line of s2' });
    expect(ended).toMatchObject({ end: 'closed', frontend: 'lmgrd' });
    expect(await held.s1.hello()).toBe('s1');
  });

  it('a server removed and added back while its sessions are open counts them: its maxconn holds on the real server, in /status and /metrics alike', () =>
    addedBackWhileOpen('server'));

  it('a backend removed and added back while its sessions are open: its server counts them, in its maxconn, queue, /status and /metrics', () =>
    addedBackWhileOpen('backend'));

  it('a frontend moved to another backend: its open session ends counted on the backend it was opened on', async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const twoBackends = (to: string): string => `frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: ${to} }
backends:
  - name: licenses
    stick: source
    stick_ttl: 1s
    check: { type: status, inter: 300ms, rise: 1, fall: 2, timeout: 500ms }
    servers: [{ name: s1, address: 127.0.0.1:${s1.port} }]
  - name: other
    check: { type: status, inter: 300ms, rise: 1, fall: 2, timeout: 500ms }
    servers: [{ name: s2, address: 127.0.0.1:${s2.port} }]
`;
    const { p, write } = await start(twoBackends('licenses'));
    const held = await LicenseClient.connect(p.port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');

    write(twoBackends('other'));
    const r = await reloadApi(p);
    expect(r.json.changes).toEqual(['frontend lmgrd changed: backend licenses -> other']);
    expect(await helloOnce(p.port)).toBe('s2');
    expect(await held.hello()).toBe('s1');
    await held.close();
    const ended = await waitFor(() => p.logs.find((l) => l.msg === 'session closed' && l.server === 's1'), { timeoutMs: 5000, what: 'the session closed log line of s1' });
    expect(ended).toMatchObject({ frontend: 'lmgrd', backend: 'licenses', end: 'closed' });
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_connections_active', { frontend: 'lmgrd', backend: 'licenses', server: 's1' })).toBe(0);
    expect(sample(metrics, 'licgate_connections_active', { frontend: 'lmgrd', backend: 'other', server: 's1' })).toBeUndefined();
    // The client's stick entry on licenses expires a stick_ttl after the session's end; it is not held open for good.
    await waitFor(async () => (await p.backend('licenses')).stick_entries === 0, { timeoutMs: 5000, intervalMs: 50, what: 'the stick entry on licenses to expire' });
  });

  it('an invalid config keeps the old one running; every error is logged with line:col; POST answers 400 with them', async () => {
    const s1 = await startSimulator('s1');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const good = readFileSync(p.configFile, 'utf8');
    write(FRONTEND + `backends:
  - name: licenses
    balnce: roundrobin
    retries: many
    servers:
      - { name: s1, address: 127.0.0.1:${s1.port}, weight: 999 }
`);
    const lines = readFileSync(p.configFile, 'utf8').split('\n');
    // The error's position is `at` inside `needle` (default: its start). A needle of the value alone
    // could match inside the simulator's random port first ("999" in 127.0.0.1:39991).
    const pos = (needle: string, at = ''): string => {
      const i = lines.findIndex((l) => l.includes(needle));
      return `${p.configFile}:${i + 1}:${lines[i]!.indexOf(needle) + needle.indexOf(at) + 1}:`;
    };
    const r = await reloadApi(p);
    expect(r.status).toBe(400);
    expect(r.json.ok).toBe(false);
    expect(r.json.errors).toHaveLength(3);
    expect(r.json.errors[0]).toMatch(new RegExp(`^${escape(pos('balnce'))} backends\\[0\\]: unknown key "balnce" \\(did you mean "balance"\\?\\)`));
    expect(r.json.errors[1]).toMatch(new RegExp(`^${escape(pos('many'))} `));
    expect(r.json.errors[2]).toMatch(new RegExp(`^${escape(pos('weight: 999', '999'))} `));
    // SIGHUP gives the same verdict in the log: one line with every error.
    p.child.kill('SIGHUP');
    const failed = await waitFor(() => reloadLogs(p).filter((l) => l.level === 50)[1], { timeoutMs: 10_000, what: 'the failed SIGHUP reload log line' });
    expect(failed.errors).toEqual(r.json.errors);
    expect(String(failed.msg)).toContain('still running the previous config');
    for (const e of r.json.errors) expect(String(failed.msg)).toContain(e);
    // Still serving with the old config; the metrics say the last reload failed.
    expect(await helloOnce(p.port)).toBe('s1');
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_config_last_reload_successful')).toBe(0);
    expect(sample(metrics, 'licgate_config_reloads_total', { result: 'failed' })).toBe(2);
    // Fixed: the next reload succeeds.
    writeFileSync(p.configFile, good);
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
    expect(sample((await p.get('/metrics')).body, 'licgate_config_last_reload_successful')).toBe(1);
  });

  it('a config read with warnings logs each at start, and the reload line carries them at warn level', async () => {
    const s1 = await startSimulator('s1');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }], '\n    connect_timeout: 3000'));
    const started = await waitFor(() => p.logs.find((l) => l.level === 40 && String(l.msg).includes('connect_timeout')), { timeoutMs: 10_000, what: 'the start-up warning' });
    expect(started.msg).toBe(`${p.configFile}:11:22: backend "licenses".connect_timeout: 3000 has no unit, so it is read as 3000ms; write 3s to keep that, or 3000s for seconds`);

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }], '\n    connect_timeout: 3s'));
    p.child.kill('SIGHUP');
    const clean = await waitFor(() => reloadLogs(p)[0], { timeoutMs: 10_000, what: 'the first reload line' });
    expect([clean.level, clean.warnings]).toEqual([30, undefined]);

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }], '\n    connect_timeout: 5000'));
    p.child.kill('SIGHUP');
    const warned = await waitFor(() => reloadLogs(p)[1], { timeoutMs: 10_000, what: 'the second reload line' });
    const w = `${p.configFile}:10:22: backend "licenses".connect_timeout: 5000 has no unit, so it is read as 5000ms; write 5s to keep that, or 5000s for seconds`;
    expect(warned).toMatchObject({ level: 40, warnings: [w] });
    expect(warned.msg).toBe(`config reloaded from ${p.configFile} (SIGHUP): 2 changes: backend licenses: connect_timeout 3s -> 5s; backend licenses: queue_timeout 3s -> 5s; 1 warning: ${w}`);

    // Refused: the line names the warnings found with the errors, so one edit fixes both.
    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }], '\n    connect_timeout: 5000\n    retries: two'));
    p.child.kill('SIGHUP');
    const refused = await waitFor(() => reloadLogs(p)[2], { timeoutMs: 10_000, what: 'the refused reload line' });
    const e = `${p.configFile}:11:14: backend "licenses".retries: expected a whole number 0-16, found "two"`;
    expect(refused).toMatchObject({ level: 50, errors: [e], warnings: [w] });
    expect(refused.msg).toBe(`config reload failed (SIGHUP); still running the previous config: ${e}; 1 warning: ${w}`);
  });

  it('POST /admin/reload needs the bearer token (401 without or with a wrong one), and the refusal is logged', async () => {
    const s1 = await startSimulator('s1');
    const { p } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const none = await reloadApi(p, null);
    expect(none.status).toBe(401);
    const wrong = await reloadApi(p, 'x'.repeat(32));
    expect(wrong.status).toBe(401);
    expect(reloadLogs(p)).toHaveLength(0);
    const refused = await waitFor(() => {
      const r = p.logs.filter((l) => l.msg === 'admin call refused');
      return r.length === 2 && r;
    }, { timeoutMs: 5000, what: 'two "admin call refused" log lines' });
    expect(refused.map((l) => l.code)).toEqual(['E_ADMIN_NO_TOKEN', 'E_ADMIN_BAD_TOKEN']);
    expect(refused[0]).toMatchObject({ status: 401, path: '/admin/reload', level: 40 });
  });

  it('GET /reload (no token) numbers each reload and gives its outcome, a config error by its position only: its text may quote a secret', async () => {
    const s1 = await startSimulator('s1');
    const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(body);
    const state = async (): Promise<{ pid: number; file: string; asked: number; last: { seq: number; ok: boolean; trigger: string; errors: string[]; changes: string[] } | null }> => (await p.get('/reload')).json as never;
    expect(await state()).toEqual({ pid: p.child.pid, file: p.configFile, asked: 0, last: null });
    // A value in the wrong place (a key pasted into events): the error quotes it.
    write(`notify: { webhooks: [{ url: "http://127.0.0.1:9/hook", events: [key-8231947561] }] }\n${body}`);
    p.child.kill('SIGHUP');
    const refused = await waitFor(async () => (await state()).last, { timeoutMs: 10_000, what: 'the refused reload in GET /reload' });
    const at = `${p.configFile}:5:`;
    expect(refused).toMatchObject({ seq: 1, ok: false, trigger: 'SIGHUP', changes: [] });
    expect(refused.errors).toEqual([expect.stringMatching(/:5:\d+: invalid config here \(the message is not served without the token: licgate validate --config \S+ prints it\)$/)]);
    expect(refused.errors[0]!.startsWith(at)).toBe(true);
    expect((await p.get('/reload')).body).not.toContain('8231947561');
    // With the token, the whole message.
    const whole = await reloadApi(p);
    expect(whole.json.errors).toEqual([expect.stringContaining('found "key-8231947561"')]);
    write(body);
    expect((await reloadApi(p)).status).toBe(200);
    // The poster's address is the journal's: not served without the token.
    expect(await state()).toMatchObject({ asked: 3, last: { seq: 3, ok: true, errors: [], trigger: 'POST /admin/reload' } });
    expect((await p.get('/reload')).body).not.toContain('127.0.0.1');
  });

  it('says an admin.state_file or log.format change needs a restart for as long as the file differs from what runs, and not once it matches again', async () => {
    const s1 = await startSimulator('s1');
    const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, tokenFile } = await start(body);
    const stateFile = `${tokenFile}-state`;
    tokenFiles.push(stateFile);
    const notApplied = ['log.format changed: NOT applied, restart licgate to apply it', `admin.state_file none -> ${stateFile}: NOT applied, restart licgate to apply it`];
    writeFileSync(p.configFile, header(tokenFile).replace(' }\n', `, state_file: "${stateFile}" }\n`).replace('format: json', 'format: pretty') + body);
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: notApplied });
    // Neither was applied, so the same file still differs from what runs.
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: notApplied });
    expect(existsSync(stateFile)).toBe(false);
    // The file as licgate started with it: nothing to restart for.
    writeFileSync(p.configFile, header(tokenFile) + body);
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
  });

  it('moves the admin listener and takes a moved token_file\'s token: the POST that asked gets its answer, then the old address refuses', async () => {
    const s1 = await startSimulator('s1');
    const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, tokenFile } = await start(body);
    const oldPort = Number(new URL(p.adminUrl).port);
    const port = await freePort();
    const movedToken = 'moved-reload-token-0123456789abcdef';
    const movedFile = `${tokenFile}-moved`;
    writeFileSync(movedFile, movedToken, { mode: 0o600 });
    tokenFiles.push(movedFile);
    writeFileSync(p.configFile, header(movedFile).replace('127.0.0.1:0', `127.0.0.1:${port}`) + body);
    expect(await reloadApi(p)).toEqual({ status: 200, json: { ok: true, errors: [], changes: [`admin.listen 127.0.0.1:0 -> 127.0.0.1:${port}`, `admin.token_file ${tokenFile} -> ${movedFile}: its token from now on, the old one refused`] } });
    await expect(connects(oldPort)).rejects.toThrow(/ECONNREFUSED/);
    // Not on the connection fetch keeps alive from the POST either: it is closed after the answer.
    await expect(fetch(`${p.adminUrl}/health`, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow();
    const moved = `http://127.0.0.1:${port}`;
    expect((await httpGetText(`${moved}/health`)).status).toBe(200);
    const post = (token: string): Promise<number> => fetch(`${moved}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) }).then((r) => r.status);
    expect([await post(TOKEN), await post(movedToken)]).toEqual([401, 200]);
    expect(await helloOnce(p.port)).toBe('s1');
  });

  it('a move of the admin listener onto a port in use is refused: the old listener goes on answering', async () => {
    const s1 = await startSimulator('s1');
    const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, tokenFile } = await start(body);
    const blocker = await startTcpServer(() => undefined);
    writeFileSync(p.configFile, header(tokenFile).replace('127.0.0.1:0', `127.0.0.1:${blocker.port}`) + body);
    expect(await reloadApi(p)).toEqual({ status: 400, json: { ok: false, errors: [`cannot listen for admin on 127.0.0.1:${blocker.port}: address already in use (EADDRINUSE)`], changes: [] } });
    expect((await p.get('/health')).status).toBe(200);
  });

  it('a reload removes the admin section (its listener closes) and one adds it back (a listener on the new address)', async () => {
    const s1 = await startSimulator('s1');
    const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, tokenFile } = await start(body);
    const oldPort = Number(new URL(p.adminUrl).port);
    const rest = header(tokenFile).split('\n').slice(1).join('\n');
    writeFileSync(p.configFile, rest + body);
    expect(await reloadApi(p)).toEqual({ status: 200, json: { ok: true, errors: [], changes: ['admin removed (127.0.0.1:0)'] } });
    await expect(connects(oldPort)).rejects.toThrow(/ECONNREFUSED/);
    const port = await freePort();
    writeFileSync(p.configFile, header(tokenFile).replace('127.0.0.1:0', `127.0.0.1:${port}`) + body);
    p.child.kill('SIGHUP');
    const added = await waitFor(async () => {
      const r = JSON.parse((await httpGetText(`http://127.0.0.1:${port}/reload`)).body) as { last: { seq: number } | null };
      return r.last?.seq === 2 && r.last;
    }, { timeoutMs: 10_000, what: `the SIGHUP's reload in GET /reload on the added admin listener 127.0.0.1:${port}` });
    expect(added).toMatchObject({ seq: 2, ok: true, trigger: 'SIGHUP', changes: [`admin added on 127.0.0.1:${port}`] });
    expect(await helloOnce(p.port)).toBe('s1');
  });

  it('takes a token rotated in admin.token_file at the reload, refusing the old one from then on, with no restart', async () => {
    const s1 = await startSimulator('s1');
    const { p, tokenFile } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const rotated = 'rotated-reload-token-0123456789abcdef';
    writeFileSync(tokenFile, rotated + '\n', { mode: 0o600 });
    const applied = ['admin.token_file: a new token; the old one is refused from now on'];
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: applied });
    const line = await waitFor(() => reloadLogs(p)[0], { timeoutMs: 5000, what: 'the reload line' });
    expect(line.changes).toEqual(applied);
    const refused = await reloadApi(p);
    expect([refused.status, (refused.json as unknown as { error: string }).error]).toEqual([401, expect.stringContaining('a token written there since takes effect at the next reload')]);
    expect((await reloadApi(p, rotated)).json).toEqual({ ok: true, errors: [], changes: [] });
    // The mutating admin API checks the same token.
    const set = (token: string): Promise<number> => fetch(`${p.adminUrl}/admin/backends/licenses/servers/s1`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"weight": 50}', signal: AbortSignal.timeout(10_000) }).then((r) => r.status);
    expect([await set(TOKEN), await set(rotated)]).toEqual([401, 200]);
  });

  it('a connection attempt during reloads never fails, an open session continues, and added/removed frontends bind/close', async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const fe2 = `  - { name: vendor, listen: 127.0.0.1:0, backend: licenses }\n`;
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const held = await LicenseClient.connect(p.port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    const inode = listenInode(p.port);

    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const hammer = (async () => {
      while (!stop) {
        try {
          await helloOnce(p.port, { timeoutMs: 3000 });
          ok++;
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();
    let vendorPort = 0;
    for (let i = 0; i < 6; i++) {
      const withVendor = i % 2 === 0;
      write(FRONTEND + (withVendor ? fe2 : '') + backendYaml([{ name: 's1', port: s1.port, extra: `, weight: ${10 + i}` }, ...(i % 3 === 0 ? [{ name: 's2', port: s2.port }] : [])]));
      const r = await reloadApi(p);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      const st = await p.status();
      const vendor = st.frontends.find((f) => f.name === 'vendor');
      if (withVendor) {
        expect(vendor?.port).toBeGreaterThan(0);
        vendorPort = vendor!.port!;
        expect(await helloOnce(vendorPort)).toMatch(/^s[12]$/);
      } else {
        expect(vendor).toBeUndefined();
        await expect(new Promise((resolve, reject) => connect(vendorPort, '127.0.0.1').on('connect', resolve).on('error', reject))).rejects.toThrow(/ECONNREFUSED/);
      }
      await waitFor(() => ok >= 5 * (i + 1), { timeoutMs: 10_000, what: `sessions through the proxy after reload ${i + 1}` });
    }
    stop = true;
    await hammer;
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(30);
    expect(listenInode(p.port)).toBe(inode);
    expect(await held.hello()).toBe('s1');
    expect((await held.checkout('cad', 1)).granted).toBe(true);
  });

  // licgate's own listener holds the port: the new address is bound once the old one is closed.
  for (const [from, to] of [['127.0.0.1', '0.0.0.0'], ['localhost', '127.0.0.1']]) {
    it(`a frontend moved from ${from}:P to ${to}:P on the same port is rebound; its open session goes on`, async () => {
      const s1 = await startSimulator('s1');
      const port = await freePort();
      const fe = (host: string): string => `frontends:\n  - { name: lmgrd, listen: "${host}:${port}", backend: licenses }\n`;
      const { p, write } = await start(fe(from) + backendYaml([{ name: 's1', port: s1.port }]));
      const held = await LicenseClient.connect(port);
      clients.push(held);
      expect(await held.hello()).toBe('s1');
      write(fe(to) + backendYaml([{ name: 's1', port: s1.port }]));
      const r = await reloadApi(p);
      expect(r.json.errors).toEqual([]);
      expect(r.json.changes).toEqual([`frontend lmgrd added on ${to}:${port}`, `frontend lmgrd removed (${from}:${port})`]);
      expect(await helloOnce(port)).toBe('s1');
      expect(await held.hello()).toBe('s1');
    });
  }

  it('a frontend whose listen address is only written another way ([::0]:P to [::]:P) keeps its listening socket', async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const fe = (host: string): string => `frontends:\n  - { name: lmgrd, listen: "${host}:${port}", backend: licenses }\n`;
    const { p, write } = await start(fe('[::0]') + backendYaml([{ name: 's1', port: s1.port }]));
    const inode = listenInode(port, '[::]');
    expect(inode).toBeDefined();
    write(fe('[::]') + backendYaml([{ name: 's1', port: s1.port }]));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([]);
    expect(r.json.changes).toEqual([]);
    expect(listenInode(port, '[::]')).toBe(inode);
    expect(await helloOnce(port)).toBe('s1');
  });

  it('a frontend and the status listener that swap ports are both rebound', async () => {
    const s1 = await startSimulator('s1');
    const [a, b] = [await freePort(), await freePort()];
    const body = (fe: number, st: number): string => `status: { listen: "127.0.0.1:${st}" }\nfrontends:\n  - { name: lmgrd, listen: 127.0.0.1:${fe}, backend: licenses }\n` + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(body(a, b));
    expect(await helloOnce(a)).toBe('s1');
    write(body(b, a));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([]);
    expect(r.status).toBe(200);
    expect(await helloOnce(b)).toBe('s1');
    expect(await ask('127.0.0.1', a, 'STATUS\r\n')).toMatch(/^Server Status: Running\r\nBackend: licenses/);
  });

  // A move closes the listening socket only: what it accepted before ends as it would have.
  it('a status listener moved from 127.0.0.1:P to 0.0.0.0:P lets a peer mid-line finish: it gets its complete reply', async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const body = (host: string): string => `status: { listen: "${host}:${port}" }\n` + FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(body('127.0.0.1'));
    const peer = connect(port, '127.0.0.1').setEncoding('latin1');
    let got = '';
    const ended = new Promise<string>((resolve) => {
      peer.on('data', (d: string) => (got += d)).on('end', () => resolve(got)).on('error', (e: NodeJS.ErrnoException) => resolve(`${got}<${e.code}>`));
      peer.on('close', () => resolve(`${got}<closed>`));
    });
    await new Promise((resolve) => peer.once('connect', resolve));
    peer.write('STAT');
    write(body('0.0.0.0'));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([]);
    expect(r.json.changes).toEqual(['status changed']);
    peer.end('US\r\n');
    expect(await ended).toMatch(/^Server Status: Running\r\nBackend: licenses\r\n[^]*\r\n$/);
    // 127.0.0.2 reaches only the new listener: the old one was bound to 127.0.0.1.
    expect(await ask('127.0.0.2', port, 'STATUS\r\n')).toMatch(/^Server Status: Running\r\nBackend: licenses/);
  });

  it('an agent listener moved from 127.0.0.1:P to 0.0.0.0:P lets a peer still sending after its reply close with a FIN, not a reset', async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const body = (host: string): string => `agent: { listen: "${host}:${port}", backend: licenses }\n` + FRONTEND + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(body('127.0.0.1'));
    // As HAProxy's agent-check whose agent-send is still on its way when the reply comes; more than
    // the socket buffers hold, so a reset cannot pass unseen behind a write already queued.
    const peer = connect({ port, host: '127.0.0.1', allowHalfOpen: true }).setEncoding('latin1');
    let got = '';
    const ending = new Promise<string>((resolve) => {
      peer.on('data', (d: string) => (got += d)).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      peer.on('close', () => resolve('close'));
    });
    await waitFor(() => got.endsWith('\n'), { timeoutMs: 5000, what: 'the agent reply' });
    write(body('0.0.0.0'));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([]);
    expect(r.json.changes).toEqual(['agent changed']);
    peer.end(Buffer.alloc(16 * 1024 * 1024, 0x61));
    expect(await ending).toBe('close');
    expect(got).toMatch(/^up ready \d+%\n$/);
    expect(await ask('127.0.0.2', port)).toMatch(/^up ready \d+%\n$/);
  });

  it('a move that fails to bind puts the old listener back: the refused reload keeps serving on the old address', async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const blocker = await startTcpServer(() => undefined);
    const fe = (host: string): string => `frontends:\n  - { name: lmgrd, listen: "${host}:${port}", backend: licenses }\n`;
    const { p, write } = await start(fe('127.0.0.1') + backendYaml([{ name: 's1', port: s1.port }]));
    const held = await LicenseClient.connect(port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    write(`status: { listen: "127.0.0.1:${blocker.port}" }\n` + fe('0.0.0.0') + backendYaml([{ name: 's1', port: s1.port }]));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([`cannot listen for status on 127.0.0.1:${blocker.port}: address already in use (EADDRINUSE)`]);
    expect(listenInode(port)).toBeDefined();
    expect(await helloOnce(port)).toBe('s1');
    expect(await held.hello()).toBe('s1');
    expect((await p.status()).frontends.map((f) => [f.name, f.port])).toEqual([["lmgrd", port]]);
  });

  it("a listener moved onto the port licgate keeps for another is refused naming that one, not 'address already in use'", async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const fe = `frontends:\n  - { name: lmgrd, listen: "127.0.0.1:${port}", backend: licenses }\n`;
    const { p, write } = await start(fe + backendYaml([{ name: 's1', port: s1.port }]));
    // A name the validation cannot tell from another address: only the bind finds the overlap.
    write(`status: { listen: "localhost:${port}" }\n` + fe + backendYaml([{ name: 's1', port: s1.port }]));
    const r = await reloadApi(p);
    expect(r.json.errors).toEqual([`cannot listen for status on localhost:${port}: the port is held by licgate's own frontend "lmgrd" (127.0.0.1:${port}), which this config keeps there; give each listener its own port`]);
    expect(await helloOnce(port)).toBe('s1');
  });

  // A reload every few minutes (config management) with one connection between them would
  // otherwise send every connection to the first server.
  for (const balance of ['roundrobin', 'leastconn']) {
    it(`a reload that leaves a ${balance} backend as it was keeps its turn: sessions between reloads still alternate`, async () => {
      const s1 = await startSimulator('s1');
      const s2 = await startSimulator('s2');
      const body = FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }], `\n    balance: ${balance}`);
      const { p } = await start(body);
      const seen: string[] = [];
      for (let i = 0; i < 4; i++) {
        seen.push(await helloOnce(p.port));
        expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
      }
      expect(seen).toEqual(['s1', 's2', 's1', 's2']);
    });
  }

  it('a reload just after the wall clock stepped back an hour (NTP, VM clock sync) goes on checking at inter: a server that stops is marked DOWN', async (ctx) => {
    const clock = wallClockStep(ctx);
    cleanup.push(clock.dispose);
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]), { wrapper: clock.wrapper });
    clock.set('-1h');
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
    await s2.stop();
    // inter 300ms, fall 2.
    await waitFor(async () => (await p.server('licenses', 's2')).state.startsWith('DOWN'), { timeoutMs: 5000, what: 's2 marked DOWN after it stopped' });
  });

  it('a reload that leaves the check as it was lets a running exec check finish and counts it; no second check of that server starts meanwhile', async () => {
    const s1 = await startSimulator('s1');
    const trace = join(tmpdir(), `licgate-reload-exec-${process.pid}-${Math.random().toString(36).slice(2)}`);
    tokenFiles.push(trace);
    // Each check takes about 1 s and says when it starts and ends, under its process id.
    const cmd = `echo start $$ >> ${trace}; sleep 1; echo end $$ >> ${trace}`;
    const body = FRONTEND + `backends:
  - name: licenses
    check: { type: exec, argv: [/bin/sh, -c, ${JSON.stringify(cmd)}], inter: 1500ms, fastinter: 1500ms, downinter: 1500ms, rise: 1, fall: 1, timeout: 5s }
    servers: [{ name: s1, address: 127.0.0.1:${s1.port} }]
`;
    const { p } = await start(body);
    const lines = (): string[] => readFileSync(trace, 'utf8').split('\n').filter(Boolean);
    const running = (): string | undefined => {
      const l = lines();
      const last = l[l.length - 1];
      return last?.startsWith('start ') ? last.slice(6) : undefined;
    };
    const pid = await waitFor(running, { timeoutMs: 10_000, intervalMs: 20, what: 'a check in flight' });
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });

    await waitFor(() => lines().includes(`end ${pid}`), { timeoutMs: 5000, what: `the check running at the reload (pid ${pid}) to finish` });
    // One check process at a time: every start is followed by its own end.
    const l = lines();
    for (let i = 0; i < l.length; i++) expect(l[i]).toBe(i % 2 === 0 ? `start ${l[i]!.slice(6)}` : `end ${l[i - 1]!.slice(6)}`);
    // Its result counted: every check that finished is in licgate_checks_total, the one across the reload too.
    const ok = async (): Promise<number | undefined> => sample((await p.get('/metrics')).body, 'licgate_checks_total', { backend: 'licenses', server: 's1', result: 'ok' });
    await waitFor(async () => (await ok()) === lines().filter((x) => x.startsWith('end ')).length, { timeoutMs: 5000, intervalMs: 20, what: 'licgate_checks_total to count every finished check' });
    expect(await ok()).toBeGreaterThanOrEqual(2);
  });

  it('a reload that changes an exec check while one runs starts the check over without failing it: the killed process is not taken for a stuck one', async () => {
    const s1 = await startSimulator('s1');
    const trace = join(tmpdir(), `licgate-reload-exec2-${process.pid}-${Math.random().toString(36).slice(2)}`);
    tokenFiles.push(trace);
    const cmd = `echo start $$ >> ${trace}; sleep 1; echo end $$ >> ${trace}`;
    const body = (timeout: string): string => FRONTEND + `backends:
  - name: licenses
    check: { type: exec, argv: [/bin/sh, -c, ${JSON.stringify(cmd)}], inter: 1500ms, fastinter: 1500ms, downinter: 1500ms, rise: 1, fall: 1, timeout: ${timeout} }
    servers: [{ name: s1, address: 127.0.0.1:${s1.port} }]
`;
    const { p, write } = await start(body('5s'));
    const lines = (): string[] => readFileSync(trace, 'utf8').split('\n').filter(Boolean);
    await waitFor(() => lines().length > 0 && lines()[lines().length - 1]!.startsWith('start '), { timeoutMs: 10_000, intervalMs: 20, what: 'a check in flight' });
    const before = lines().length;
    write(body('6s'));
    expect((await reloadApi(p)).json).toMatchObject({ ok: true, changes: [expect.stringContaining('check')] });
    // The check that starts over runs to its end and passes; the server never goes DOWN.
    await waitFor(() => lines().slice(before).some((l) => l.startsWith('end ')), { timeoutMs: 5000, what: 'the check started over by the reload to end' });
    await waitFor(async () => ((await p.backend('licenses')).servers[0]!.last_check as { ok?: boolean } | null)?.ok === true, { timeoutMs: 5000, what: 'a passing check after the reload' });
    expect(p.logs.filter((l) => typeof l.msg === 'string' && /DOWN|still running/.test(l.msg)).map((l) => `${l.msg}: ${String(l.reason)}`)).toEqual([]);
  });
});

/**
 * A sidecar's agent (agent_port) that the test scripts: each connection gets `reply` at once, or,
 * while `reply` is null, is held without a reply (an agent read under way) until the test answers.
 * `cut` counts held connections closed by licgate before their reply.
 */
async function scriptedAgent(): Promise<{ srv: TestServer; say: (line: string | null) => void; held: () => Socket[]; cut: () => number }> {
  let reply: string | null = 'up\n';
  const held: Socket[] = [];
  let cut = 0;
  const srv = await startTcpServer((s) => {
    if (reply !== null) return void s.end(reply);
    held.push(s);
    s.on('end', () => cut++);
  });
  return { srv, say: (l) => (reply = l), held: () => held.filter((s) => !s.destroyed && s.readable), cut: () => cut };
}

describe('an auxiliary agent (agent_port) across reloads that leave its settings as they were', () => {
  const body = (s1: number, agentPort: number, inter = '300ms', agentInter = '5s'): string => FRONTEND + `backends:
  - name: licenses
    check: { type: tcp, inter: ${inter}, rise: 1, fall: 2, timeout: 5s }
    agent_port: ${agentPort}
    agent_inter: ${agentInter}
    servers: [{ name: s1, address: 127.0.0.1:${s1}, weight: 100 }]
`;

  it('an agent read under way goes on and its reply counts; reloads open no new agent connection before agent_inter', async () => {
    const s1 = await startSimulator('s1');
    const ag = await scriptedAgent();
    ag.say(null);
    const { p, write } = await start(body(s1.port, ag.srv.port));
    await waitFor(() => ag.held().length === 1, { timeoutMs: 5000, what: 'the first agent read, held by the agent' });
    write(body(s1.port, ag.srv.port, '400ms'));
    expect((await reloadApi(p)).json).toMatchObject({ ok: true, changes: [expect.stringContaining('check')] });
    for (let i = 0; i < 2; i++) expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
    // The read under way is not cut off, and no second read of the server starts beside it.
    await holdsFor(() => ag.cut() === 0 && ag.srv.accepted.length === 1, { forMs: 700, what: 'the agent read under way left alone by three reloads' }).catch((e: Error) => {
      throw new Error(`${e.message}: ${ag.cut()} read(s) cut off before the reply, ${ag.srv.accepted.length} agent connections`);
    });
    ag.held()[0]!.end('drain 50%\n');
    await waitFor(async () => (await p.server('licenses', 's1')).state === 'DRAIN (agent)', { timeoutMs: 5000, what: 'the drain from the reply that came after the reloads' });
    expect((await p.server('licenses', 's1')) as unknown as { effective_weight: number }).toMatchObject({ effective_weight: 50 });
    // The next read comes agent_inter (5 s) after that reply, not at the next reload.
    ag.say('up\n');
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
    await holdsFor(() => ag.srv.accepted.length === 1, { forMs: 700, what: 'no agent connection at a reload' });
  });

  it("an agent that said drain, then down, and after a reload up: the server stays DRAIN (agent), as in HAProxy", async () => {
    const s1 = await startSimulator('s1');
    const ag = await scriptedAgent();
    ag.say('drain\n');
    const { p, write } = await start(body(s1.port, ag.srv.port, '300ms', '200ms'));
    await waitFor(async () => (await p.server('licenses', 's1')).state === 'DRAIN (agent)', { timeoutMs: 5000, what: 'DRAIN from the agent' });
    ag.say('down\n');
    await waitFor(async () => (await p.server('licenses', 's1')).state === 'DOWN (agent)', { timeoutMs: 5000, what: 'DOWN from the agent' });
    write(body(s1.port, ag.srv.port, '400ms', '200ms'));
    expect((await reloadApi(p)).json).toMatchObject({ ok: true, changes: [expect.stringContaining('check')] });
    ag.say('up\n');
    const after = ag.srv.accepted.length;
    await waitFor(() => ag.srv.accepted.length >= after + 2, { timeoutMs: 5000, what: 'two agent reads answered "up" after the reload' });
    // "up" withdraws the agent's down only; the drain it said before stays until it says ready.
    await waitFor(async () => (await p.server('licenses', 's1')).state !== 'DOWN (agent)', { timeoutMs: 5000, what: 'the down withdrawn' });
    expect((await p.server('licenses', 's1')).state).toBe('DRAIN (agent)');
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

describe('metric series across reloads (GET /metrics)', () => {
  it("a reload that removes a backend's backup tier removes the failover series from and to that tier; the others stay", async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port, extra: ', backup: true' }]));
    const failovers = async (): Promise<string[]> => parseSamples((await p.get('/metrics')).body).filter((x) => x.name === 'licgate_backend_failovers_total').map((x) => `${x.labels.from}>${x.labels.to}`).sort();
    expect(await failovers()).toEqual(['active>backup', 'active>none', 'backup>active', 'backup>none', 'none>active', 'none>backup']);

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: ['backend licenses: server s2 removed'] });
    expect(await failovers()).toEqual(['active>none', 'none>active']);
  });

  it('a removed frontend keeps all its series while it has a session, and loses them with its last session', async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const two = backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]);
    const { p, write } = await start(FRONTEND + '  - { name: vendor, listen: 127.0.0.1:0, backend: licenses }\n' + two);
    const vendor = (await p.status()).frontends.find((f) => f.name === 'vendor')!.port!;
    // Round robin: a session on s2 ended, then one held on s1.
    let held: LicenseClient | null = null;
    let ended = 0;
    while (!held) {
      const c = await LicenseClient.connect(vendor);
      clients.push(c);
      if ((await c.hello()) === 's1' && ended) held = c;
      else await c.close().then(() => ended++);
    }
    const vendorSeries = async (): Promise<string[]> => parseSamples((await p.get('/metrics')).body).filter((x) => x.labels.frontend === 'vendor').map((x) => `${x.name}${JSON.stringify(x.labels)}=${x.value}`).sort();
    const closed = async (): Promise<number | undefined> => sample((await p.get('/metrics')).body, 'licgate_sessions_ended_total', { frontend: 'vendor', end: 'closed' });
    await waitFor(async () => (await closed()) === ended, { timeoutMs: 5000, what: "vendor's ended sessions counted" });
    const before = await vendorSeries();

    write(FRONTEND + two);
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: ['frontend vendor removed (127.0.0.1:0)'] });
    expect(await vendorSeries()).toEqual(before);
    await held.close();
    await waitFor(async () => (await vendorSeries()).length === 0, { timeoutMs: 5000, intervalMs: 50, what: "vendor's series to go once its last session ended" });
  });

  it('a frontend moved to another address keeps its counters through its old listener\'s drain and later reloads', async () => {
    const s1 = await startSimulator('s1');
    const fe = (listen: string): string => `frontends:\n  - { name: lmgrd, listen: "${listen}", backend: licenses, maxconn: 1 }\n` + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(fe('127.0.0.1:0'));
    const held = await LicenseClient.connect(p.port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    // A second client waits for the one slot; the move closes it: rejected{reason="stopping"} on the old listener.
    const waiting = connect(p.port, '127.0.0.1');
    waiting.on('error', () => {});
    const metric = async (name: string, labels: Record<string, string>): Promise<number | undefined> => sample((await p.get('/metrics')).body, name, { frontend: 'lmgrd', ...labels });
    await waitFor(async () => (await metric('licgate_frontend_waiting_connections', {})) === 1, { timeoutMs: 5000, what: 'a client waiting on lmgrd' });

    write(fe(`127.0.0.1:${await freePort()}`));
    expect((await reloadApi(p)).json.ok).toBe(true);
    const stopping = { reason: 'stopping' };
    expect(await metric('licgate_frontend_rejected_total', stopping)).toBe(1);
    await held.close();
    await waitFor(async () => (await metric('licgate_frontend_active_connections', {})) === 0, { timeoutMs: 5000, what: "the old listener's last session to end" });
    expect(await metric('licgate_frontend_rejected_total', stopping)).toBe(1);
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [] });
    expect(await metric('licgate_frontend_rejected_total', stopping)).toBe(1);
    waiting.destroy();
  });

  it('a frontend renamed at its address loses the old name\'s series at the reload, those its earlier move carried too', async () => {
    const s1 = await startSimulator('s1');
    const fe = (name: string, port: number): string => `frontends:\n  - { name: ${name}, listen: "127.0.0.1:${port}", backend: licenses, maxconn: 1 }\n` + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(fe('lmgrd', await freePort()));
    const held = await LicenseClient.connect(p.port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    // A client waiting for the one slot is closed by the move: lmgrd's counts then live on in the moved listener's.
    const waiting = connect(p.port, '127.0.0.1');
    waiting.on('error', () => {});
    const named = async (frontend: string): Promise<string[]> => parseSamples((await p.get('/metrics')).body).filter((x) => x.labels.frontend === frontend).map((x) => x.name);
    await waitFor(async () => sample((await p.get('/metrics')).body, 'licgate_frontend_waiting_connections', { frontend: 'lmgrd' }) === 1, { timeoutMs: 5000, what: 'a client waiting on lmgrd' });
    const port = await freePort();
    write(fe('lmgrd', port));
    expect((await reloadApi(p)).json.ok).toBe(true);
    await held.close();
    waiting.destroy();
    await waitFor(async () => sample((await p.get('/metrics')).body, 'licgate_frontend_active_connections', { frontend: 'lmgrd' }) === 0, { timeoutMs: 5000, what: "the old listener's last session to end" });
    expect(await named('lmgrd')).toContain('licgate_connections_total');

    write(fe('flexlm', port));
    expect((await reloadApi(p)).json.ok).toBe(true);
    expect(await named('lmgrd')).toEqual([]);
    expect(await named('flexlm')).toContain('licgate_frontend_rejected_total');
  });

  it('a frontend renamed at its address keeps counting the sessions opened under its old name when a frontend of that name goes', async () => {
    const s1 = await startSimulator('s1');
    const servers = backendYaml([{ name: 's1', port: s1.port }]);
    const [p1, p2] = [await freePort(), await freePort()];
    const fe = (...l: [string, number][]): string => `frontends:\n${l.map(([name, port]) => `  - { name: ${name}, listen: "127.0.0.1:${port}", backend: licenses }\n`).join('')}` + servers;
    const { p, write } = await start(fe(['lmgrd', p1]));
    const held = await LicenseClient.connect(p1);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    const active = async (frontend: string): Promise<number | undefined> => sample((await p.get('/metrics')).body, 'licgate_connections_active', { frontend, backend: 'licenses', server: 's1' });
    // Renamed where it listens; a new frontend takes the old name, then goes while the held session (counted under lmgrd) is open.
    write(fe(['flexlm', p1], ['lmgrd', p2]));
    expect((await reloadApi(p)).json.ok).toBe(true);
    write(fe(['flexlm', p1]));
    expect((await reloadApi(p)).json.ok).toBe(true);
    expect(await active('lmgrd')).toBe(1);
    await held.close();
    await waitFor(async () => sample((await p.get('/metrics')).body, 'licgate_frontend_active_connections', { frontend: 'flexlm' }) === 0, { timeoutMs: 5000, what: 'the held session to end' });
    // Counted down to 0, never below, and the old name's series go with that last session.
    expect(await active('lmgrd')).toBeUndefined();
  });

  it('a frontend renamed at its address with a session open: every series of its old name goes with that session, sessions ended and retries too', async () => {
    const s1 = await startSimulator('s1');
    const port = await freePort();
    const fe = (name: string): string => `frontends:\n  - { name: ${name}, listen: "127.0.0.1:${port}", backend: licenses }\n` + backendYaml([{ name: 's1', port: s1.port }]);
    const { p, write } = await start(fe('lmgrd'));
    const held = await LicenseClient.connect(port);
    clients.push(held);
    expect(await held.hello()).toBe('s1');
    const named = async (frontend: string): Promise<string[]> => parseSamples((await p.get('/metrics')).body).filter((x) => x.labels.frontend === frontend).map((x) => `${x.name}${JSON.stringify(x.labels)}`);
    write(fe('flexlm'));
    expect((await reloadApi(p)).json.ok).toBe(true);
    expect(sample((await p.get('/metrics')).body, 'licgate_connections_active', { frontend: 'lmgrd' })).toBe(1);
    await held.close();
    await waitFor(async () => sample((await p.get('/metrics')).body, 'licgate_frontend_active_connections', { frontend: 'flexlm' }) === 0, { timeoutMs: 5000, what: 'the held session to end' });
    expect(await named('lmgrd')).toEqual([]);
  });

  it("a reload that adds a server exports its frontend × server series from 0 at once, before its first session", async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    const s2Labels = { frontend: 'lmgrd', backend: 'licenses', server: 's2' };
    expect(sample((await p.get('/metrics')).body, 'licgate_connections_total', s2Labels)).toBeUndefined();

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]));
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: [`backend licenses: server s2 added (127.0.0.1:${s2.port}, tier 0, weight 1)`] });
    const text = (await p.get('/metrics')).body;
    expect(sample(text, 'licgate_connections_total', s2Labels)).toBe(0);
    expect(sample(text, 'licgate_connect_errors_total', { ...s2Labels, reason: 'refused' })).toBe(0);
    expect(sample(text, 'licgate_bytes_out_total', s2Labels)).toBe(0);
  });

  it("a removed server's frontend × server series stay while it has a session, and go with its last session", async () => {
    const s1 = await startSimulator('s1');
    const s2 = await startSimulator('s2');
    const { p, write } = await start(FRONTEND + backendYaml([{ name: 's1', port: s1.port }, { name: 's2', port: s2.port }]));
    // Round robin: a session on s1 ended, then one held on s2.
    let held: LicenseClient | null = null;
    let ended = 0;
    while (!held) {
      const c = await LicenseClient.connect(p.port);
      clients.push(c);
      if ((await c.hello()) === 's2' && ended) held = c;
      else await c.close().then(() => ended++);
    }
    const s2Series = async (): Promise<string[]> => parseSamples((await p.get('/metrics')).body).filter((x) => x.labels.server === 's2' && x.labels.frontend === 'lmgrd').map((x) => `${x.name}${JSON.stringify(x.labels)}`).sort();
    const before = await s2Series();
    expect(before.length).toBeGreaterThan(0);

    write(FRONTEND + backendYaml([{ name: 's1', port: s1.port }]));
    expect((await reloadApi(p)).json).toEqual({ ok: true, errors: [], changes: ['backend licenses: server s2 removed'] });
    expect(await s2Series()).toEqual(before);
    expect(sample((await p.get('/metrics')).body, 'licgate_connections_active', { server: 's2' })).toBe(1);
    await held.close();
    await waitFor(async () => (await s2Series()).length === 0, { timeoutMs: 5000, intervalMs: 50, what: "s2's series to go once its last session ended" });
  });
});

/** Runs test/helpers/reload-survivors.mjs: what replaced configs a session keeps alive, after a forced GC. */
async function survivors(reloads: number, mode = ''): Promise<{ echoed: string; held: unknown; ended: unknown }> {
  const script = fileURLToPath(new URL('../helpers/reload-survivors.mjs', import.meta.url));
  const dist = fileURLToPath(new URL('../../dist', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', script, dist, String(reloads), mode], { timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { echoed: string; held: unknown; ended: unknown };
}

describe('what reloads replace is freed (a child process with --expose-gc)', () => {
  it('a session held across 40 reloads keeps only its own backend and servers alive, not those of every config in between', async () => {
    const out = await survivors(40);
    expect(out.echoed).toBe('after\n');
    // 39 configs came and went while the session was open: none of their 39 backends and 78 servers
    // is the session's, nor the running config's.
    expect(out.held).toEqual({ backends: 0, servers: 0 });
    expect(out.ended).toEqual({ backends: 0, servers: 0 });
  }, 40_000);

  it('servers removed with sessions open and added back, in turn, over 40 reloads: no backend or server of a config in between stays alive', async () => {
    const out = await survivors(40, 'alternate');
    expect(out.echoed).toBe('after\n');
    // The one left: the server the last reload removed with its session open, which the running
    // backend keeps (Backend.retired) for a reload that adds it back, and through it that config's
    // backend. One, whatever the number of reloads: 38 of each before.
    expect(out.held).toEqual({ backends: 1, servers: 1 });
    expect(out.ended).toEqual({ backends: 1, servers: 1 });
  }, 40_000);
});
