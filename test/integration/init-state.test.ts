/**
 * `init_state` behind a real `licgate run`: a server that starts DOWN takes no client until its
 * first check passes, then takes them at once, and its start is no DOWN transition (no warning line,
 * no webhook). The exec check is a script that passes for a port once the test creates the file
 * `open-PORT`, and waits for it until then: the test decides when each server's first check ends.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startTcpServer, stopAll, type ProxyProcess, type TestServer } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const scratch = mkdtempSync(join(tmpdir(), 'licgate-init-state-'));
const receivers: Server[] = [];
afterEach(async () => {
  await stopAll();
  for (const s of receivers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The check script: `check PORT` passes once `open-PORT` exists in `dir`, and waits until it does. */
function checkScript(dir: string): string {
  const file = join(dir, 'check');
  writeFileSync(file, `#!/bin/sh\nwhile [ ! -e '${dir}/open-'"$1" ]; do sleep 0.05; done\n`, { mode: 0o755 });
  return file;
}

const open = (dir: string, s: TestServer): void => writeFileSync(join(dir, `open-${s.port}`), '');

/** A server that answers its name and closes. */
const named = (name: string): Promise<TestServer> => startTcpServer((s) => s.end(name));

/** What a client of `port` reads before the end: a server's name, or '' when licgate had none for it. */
function fetchName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const c = connect(port, '127.0.0.1');
    c.setEncoding('utf8').on('data', (d: string) => (got += d));
    c.on('end', () => resolve(got)).on('close', () => resolve(got)).on('error', reject);
    c.setTimeout(5000, () => c.destroy(new Error(`no end from 127.0.0.1:${port} within 5 s (read ${JSON.stringify(got)})`)));
  });
}

async function webhookReceiver(): Promise<{ url: string; got: Record<string, unknown>[] }> {
  const got: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      got.push(JSON.parse(text) as Record<string, unknown>);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  receivers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

/**
 * A config whose backend `licenses` (frontend lmgrd on a free port) has `servers` (YAML list lines)
 * checked by `script`; `top`: lines before frontends; `timing`: the check's other keys.
 */
function config(script: string, servers: string, opts: { top?: string; timing?: string; backend?: string } = {}): string {
  return `${opts.top ?? ''}
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
${opts.backend ?? ''}    check: { type: exec, argv: [${JSON.stringify(script)}, "{port}"], ${opts.timing ?? 'inter: 200ms, rise: 2, fall: 3, timeout: 30s'} }
    servers:
${servers}
`;
}

/**
 * Once server a's UP webhook came: no tier change to active was logged, notified (a's UP is, as
 * any UP) or counted from `from`.
 */
async function expectNoFailover(proxy: ProxyProcess, hook: { got: Record<string, unknown>[] }, from: string): Promise<void> {
  await waitFor(() => hook.got.find((n) => n.server === 'a'), { timeoutMs: 5000, what: "a's webhook" });
  const metrics = (await proxy.get('/metrics')).body;
  expect(sample(metrics, 'licgate_backend_failovers_total', { backend: 'licenses', from, to: 'active' })).toBe(0);
  expect(hook.got.filter((n) => n.event !== 'server-state')).toEqual([]);
  expect(proxy.logs.filter((l) => l.to !== undefined && l.server === undefined)).toEqual([]);
}

describe('init_state behind licgate run', () => {
  it('down: no client reaches the server before its first check passes, the next one does; no DOWN is logged or notified at start', async () => {
    const dir = mkdtempSync(join(scratch, 'down-'));
    const script = checkScript(dir);
    const [a, b] = [await named('a'), await named('b')];
    open(dir, a);
    const hook = await webhookReceiver();
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}" }
      - { name: b, address: "127.0.0.1:${b.port}", init_state: down }`, { top: `notify:
  webhooks: [{ url: ${hook.url} }]` }), { waitReady: false });
    await waitFor(async () => (await proxy.server('licenses', 'a')).state === 'UP', { timeoutMs: 10_000, what: 'a UP' });
    // b's first check is still waiting for its file: DOWN, one success short of rise.
    expect((await proxy.server('licenses', 'b')).state).toBe('DOWN 1/2');
    for (let i = 0; i < 6; i++) expect(await fetchName(proxy.port)).toBe('a');
    expect(b.accepted).toHaveLength(0);

    open(dir, b);
    await waitFor(async () => (await proxy.server('licenses', 'b')).state === 'UP', { timeoutMs: 10_000, what: 'b UP after its first check' });
    // Round robin: of two clients now, one is b's.
    expect([await fetchName(proxy.port), await fetchName(proxy.port)].sort()).toEqual(['a', 'b']);

    const hooked = await waitFor(() => hook.got.find((n) => n.server === 'b'), { timeoutMs: 5000, what: "b's webhook" });
    expect(hooked).toMatchObject({ event: 'server-state', from: 'DOWN 1/2', to: 'UP' });
    await waitFor(() => proxy.logs.some((l) => l.server === 'b' && l.to === 'UP'), { timeoutMs: 5000, what: "b's UP log line" });
    expect(proxy.logs.filter((l) => l.server === 'b' && l.from !== undefined).map((l) => [l.msg, l.from, l.level])).toEqual([['server licenses/b is UP', 'DOWN 1/2', 40]]);
    expect(proxy.logs.filter((l) => typeof l.to === 'string' && l.to.startsWith('DOWN'))).toEqual([]);
    expect(hook.got.filter((n) => n.event === 'server-state')).toEqual([hooked]);
  });

  it('down: with every server down at start, a client is closed without a server, not sent to an unchecked one', async () => {
    const dir = mkdtempSync(join(scratch, 'all-down-'));
    const script = checkScript(dir);
    const [a, b] = [await named('a'), await named('b')];
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }
      - { name: b, address: "127.0.0.1:${b.port}", init_state: fully-down, backup: true }`), { waitReady: false });
    await waitFor(async () => (await proxy.status()).backends[0]!.servers.map((s) => s.state).join() === 'DOWN 1/2,DOWN', { timeoutMs: 5000, what: 'a DOWN 1/2, b DOWN' });
    for (let i = 0; i < 3; i++) expect(await fetchName(proxy.port)).toBe('');
    expect(a.accepted.length + b.accepted.length).toBe(0);
    const closed = await waitFor(() => proxy.logs.filter((l) => l.end === 'no-server').length >= 3, { timeoutMs: 5000, what: 'three no-server session lines' });
    expect(closed).toBe(true);
    open(dir, a);
    await waitFor(async () => (await fetchName(proxy.port)) === 'a', { timeoutMs: 10_000, what: 'a client served by a' });
  });

  it('failback manual: a primary that starts down serves once its first check passes, not the backup for good; the start is no failover', async () => {
    const dir = mkdtempSync(join(scratch, 'manual-'));
    const script = checkScript(dir);
    const [a, b] = [await named('a'), await named('b')];
    open(dir, b);
    const hook = await webhookReceiver();
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }
      - { name: b, address: "127.0.0.1:${b.port}", backup: true }`, { top: `notify:
  webhooks: [{ url: ${hook.url} }]`, backend: '    failback: manual\n' }), { waitReady: false });
    await waitFor(async () => (await proxy.status()).backends[0]!.servers.map((s) => s.state).join() === 'DOWN 1/2,UP', { timeoutMs: 10_000, what: 'a DOWN 1/2, b UP' });
    // Until a's first check, the backup takes the clients, as HAProxy's backup server does.
    expect(await fetchName(proxy.port)).toBe('b');

    open(dir, a);
    await waitFor(async () => (await proxy.server('licenses', 'a')).state === 'UP', { timeoutMs: 10_000, what: 'a UP after its first check' });
    for (let i = 0; i < 3; i++) expect(await fetchName(proxy.port)).toBe('a');
    expect((await proxy.backend('licenses')).tier).toBe('active');
    // a's UP is notified as any UP; no tier change: a start with a's check passing at once is none.
    await expectNoFailover(proxy, hook, 'backup');
  });

  it('every server down at start: the first to pass is no "none -> active" failover (log line, webhook, metric)', async () => {
    const dir = mkdtempSync(join(scratch, 'none-'));
    const script = checkScript(dir);
    const [a, b] = [await named('a'), await named('b')];
    const hook = await webhookReceiver();
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }
      - { name: b, address: "127.0.0.1:${b.port}", init_state: down }`, { top: `notify:
  webhooks: [{ url: ${hook.url} }]` }), { waitReady: false });
    await waitFor(async () => (await proxy.status()).backends[0]!.servers.map((s) => s.state).join() === 'DOWN 1/2,DOWN 1/2', { timeoutMs: 10_000, what: 'a and b DOWN 1/2' });
    // No server can take a client yet: the tier says so.
    expect((await proxy.backend('licenses')).tier).toBe('none');
    open(dir, a);
    await waitFor(async () => (await fetchName(proxy.port)) === 'a', { timeoutMs: 10_000, what: 'a client served by a' });
    expect((await proxy.backend('licenses')).tier).toBe('active');
    await expectNoFailover(proxy, hook, 'none');
  });

  it('admin.state_file is applied over init_state at a start: a saved maint holds, a saved drain holds', async () => {
    const dir = mkdtempSync(join(scratch, 'state-file-'));
    const script = checkScript(dir);
    const [a, b, c] = [await named('a'), await named('b'), await named('c')];
    for (const s of [a, b, c]) open(dir, s);
    const stateFile = join(dir, 'server-state');
    const saved = (s: string, t: TestServer, admin: string): object => ({ backend: 'licenses', server: s, address: `127.0.0.1:${t.port}`, admin });
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [saved('b', b, 'maint'), saved('c', c, 'drain')] }));
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }
      - { name: b, address: "127.0.0.1:${b.port}", init_state: down }
      - { name: c, address: "127.0.0.1:${c.port}", init_state: fully-down }`, { top: `admin: { listen: "127.0.0.1:0", state_file: ${JSON.stringify(stateFile)} }` }), { waitReady: false });
    const states = async (): Promise<string> => (await proxy.status()).backends[0]!.servers.map((s) => s.state).join();
    // c's drain shows once it is UP (DRAIN): rise 2 checks from fully-down, at fastinter.
    await waitFor(async () => (await states()) === 'UP,MAINT,DRAIN', { timeoutMs: 10_000, what: 'a UP, b MAINT, c DRAIN' });
    for (let i = 0; i < 4; i++) expect(await fetchName(proxy.port)).toBe('a');
    expect(b.accepted.length + c.accepted.length).toBe(0);
  });

  it('failback manual: a backup tier admin.state_file kept, its servers down at start, is still the tier in use after their first checks', async () => {
    const dir = mkdtempSync(join(scratch, 'kept-'));
    const script = checkScript(dir);
    const [a, b] = [await named('a'), await named('b')];
    open(dir, a);
    const stateFile = join(dir, 'server-state');
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [], backends: [{ backend: 'licenses', serving_tier: 1, tier_servers: ['b'] }] }));
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }
      - { name: b, address: "127.0.0.1:${b.port}", init_state: down, backup: true }`, { top: `admin: { listen: "127.0.0.1:0", state_file: ${JSON.stringify(stateFile)} }`, backend: '    failback: manual\n' }), { waitReady: false });
    await waitFor(async () => (await proxy.server('licenses', 'a')).state === 'UP', { timeoutMs: 10_000, what: 'a UP' });
    open(dir, b);
    await waitFor(async () => (await proxy.server('licenses', 'b')).state === 'UP', { timeoutMs: 10_000, what: 'b UP after its first check' });
    expect((await proxy.backend('licenses')).tier).toBe('backup');
    for (let i = 0; i < 3; i++) expect(await fetchName(proxy.port)).toBe('b');
    expect(proxy.logs.filter((l) => l.serving_tier !== undefined && l.level! >= 40).map((l) => l.msg)).toEqual([]);
  });

  it('down: the first client is served right after start, not an inter (15 s) later', async () => {
    const dir = mkdtempSync(join(scratch, 'prompt-'));
    const script = checkScript(dir);
    const a = await named('a');
    open(dir, a);
    const started = performance.now();
    const proxy = await startProxy(config(script, `      - { name: a, address: "127.0.0.1:${a.port}", init_state: down }`, { timing: 'inter: 15s, rise: 2, fall: 3, timeout: 10s' }), { waitReady: false });
    await waitFor(async () => (await fetchName(proxy.port)) === 'a', { timeoutMs: 10_000, intervalMs: 10, what: 'a client served by a' });
    const ms = performance.now() - started;
    expect(ms).toBeLessThan(5000);
  });
});
