import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { peersOf, startPeersPair, type PeersStatus } from '../helpers/peers-pair.js';
import { runCli, startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';
import { freePort } from './haproxy-lab.js';

const TOKEN = 'ctl-test-token-0123456789abcdef';
let dir: string;
let tokenFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-ctl-'));
  tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await stopAll();
});

async function daemon(withToken = true, adminPort = 0): Promise<ProxyProcess> {
  const a = await startSimulator('alpha');
  const b = await startSimulator('bravo');
  return startProxy(`
admin: { listen: 127.0.0.1:${adminPort}${withToken ? `, token_file: ${tokenFile}` : ''} }
backends:
  - name: lic
    failback: manual
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers:
      - { name: a, address: 127.0.0.1:${a.port}, weight: 100 }
      - { name: b, address: 127.0.0.1:${b.port}, weight: 20, backup: true }
`);
}

/**
 * A free port from the Fetch standard's "bad ports" (browsers and fetch() refuse them), which
 * licgate accepts for admin.listen like any other. The high ones first, which fewer services use.
 */
async function freeFetchBlockedPort(): Promise<number> {
  for (const port of [10080, 6669, 6668, 6667, 6666, 6665, 6697, 6566, 6000, 5061, 5060, 4190]) {
    const s = createServer();
    const bound = await new Promise<boolean>((resolve) => s.once('error', () => resolve(false)).listen(port, '127.0.0.1', () => resolve(true)));
    if (bound) {
      await new Promise<void>((resolve) => s.close(() => resolve()));
      return port;
    }
  }
  throw new Error('none of the fetch-blocked ports tried is free on 127.0.0.1');
}

/** `licgate ctl --url URL ...args`, with LICGATE_TOKEN set only when `envToken` is given. */
async function ctl(p: ProxyProcess | string, args: string[], envToken?: string) {
  const url = typeof p === 'string' ? p : p.adminUrl;
  const saved = process.env.LICGATE_TOKEN;
  if (envToken === undefined) delete process.env.LICGATE_TOKEN;
  else process.env.LICGATE_TOKEN = envToken;
  try {
    return await runCli(['ctl', '--url', url, ...args]);
  } finally {
    if (saved === undefined) delete process.env.LICGATE_TOKEN;
    else process.env.LICGATE_TOKEN = saved;
  }
}

describe('licgate ctl', { timeout: 60_000 }, () => {
  it('servers: a table a person can read, no token needed', async () => {
    const p = await daemon();
    const r = await ctl(p, ['servers']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^BACKEND\s+SERVER\s+STATE\s+TIER\s+WEIGHT\s+ACTIVE\s+TOTAL\s+LAST CHECK$/);
    expect(lines[1]).toMatch(/^lic\s+a\s+UP\s+active\*\s+100\/100\s+0\s+0\s+ok \d+ms \d+s ago: reply matched "Server Status: Running"$/);
    expect(lines[2]).toMatch(/^lic\s+b\s+UP\s+backup\s+20\/20\s+0\s+0\s+ok /);
    expect(lines[3]).toBe('(* the tier new connections go to)');
    // Columns line up: every row starts its STATE column at the same offset.
    expect(new Set(lines.slice(0, 3).map((l) => l.search(/UP|STATE/))).size).toBe(1);
    const json = await ctl(p, ['servers', '--json']);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { backends: { name: string }[] }).backends[0]!.name).toBe('lic');
  });

  it('servers: marks only the disaster-recovery tier that serves, not a further one (both read "dr")', async () => {
    const p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
backends:
  - name: lic
    check: { type: none }
    servers: [{ name: site2, address: 127.0.0.1:1, tier: 2 }, { name: site3, address: 127.0.0.1:2, tier: 3 }]
`);
    expect((await p.get('/status')).json).toMatchObject({ backends: [{ serving_tier: 2 }] });
    const r = await ctl(p, ['servers']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[1]).toMatch(/^lic\s+site2\s+no check\s+dr\*\s/);
    expect(lines[2]).toMatch(/^lic\s+site3\s+no check\s+dr\s/);
  });

  it('set and failback between DR sites at tiers 2 and 3 say the move, naming the further tier by its number (both read "dr")', async () => {
    const p = await startProxy(`
admin: { listen: 127.0.0.1:0, token_file: ${tokenFile} }
backends:
  - name: lic
    failback: manual
    check: { type: none }
    servers: [{ name: site2, address: 127.0.0.1:1, tier: 2 }, { name: site3, address: 127.0.0.1:2, tier: 3 }]
`);
    const over = await ctl(p, ['set', 'lic/site2', 'state', 'drain'], TOKEN);
    expect(over).toMatchObject({ code: 0, stderr: '' });
    expect(over.stdout.split('\n')[1]).toBe('lic: now serving from dr tier 3 (was dr); failback: manual keeps it there until: licgate ctl failback lic');
    expect((await ctl(p, ['set', 'lic/site2', 'state', 'ready'], TOKEN)).stdout).toBe('lic/site2: no check, weight 1/1 (was DRAIN, weight 1)\n');
    expect((await p.get('/status')).json).toMatchObject({ backends: [{ serving_tier: 3 }] });
    expect(await ctl(p, ['failback', 'lic'], TOKEN)).toMatchObject({ code: 0, stdout: 'lic: now serving from dr (was dr tier 3)\n' });
    expect((await ctl(p, ['failback', 'lic'], TOKEN)).stdout).toBe('lic: already serving from dr\n');
  });

  it("servers: a check reason quoting a server's reply prints its control characters escaped, not raw to the terminal", async () => {
    const rogue = await startTcpServer((sock) => sock.end('\x1b[2J\x1b[H owned\n'));
    const p = await startProxy(`
admin: { listen: 127.0.0.1:0 }
backends:
  - name: lic
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers:
      - { name: rogue, address: 127.0.0.1:${rogue.port} }
`);
    await waitFor(async () => (await ctl(p, ['servers'])).stdout.includes('FAIL'), { timeoutMs: 10_000, what: "the rogue server's failed check" });
    const r = await ctl(p, ['servers']);
    expect(r.stdout).not.toContain('\x1b');
    expect(r.stdout).toContain('got "\\x1b[2J\\x1b[H o');
  });

  it('works against an admin listener on [::1], whose /status and stats page write IPv6 addresses in brackets', async () => {
    const a = await startSimulator('alpha', { host: '[::1]' });
    const p = await startProxy(`
admin: { listen: "[::1]:0", token_file: ${tokenFile} }
frontends:
  - { name: fe, listen: "[::]:0", backend: lic }
backends:
  - name: lic
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers:
      - { name: a, address: "[::1]:${a.port}", weight: 100 }
`);
    expect(p.adminUrl).toMatch(/^http:\/\/\[::1\]:\d+$/);
    await waitFor(async () => (await p.server('lic', 'a')).state === 'UP', { timeoutMs: 5000, what: 'a UP over IPv6' });
    const r = await ctl(p, ['servers']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[1]).toMatch(/^lic\s+a\s+UP\s+active\*\s+100\/100\s/);
    expect(await ctl(p, ['set', 'lic/a', 'weight', '50'], TOKEN)).toMatchObject({ code: 0, stdout: 'lic/a: UP, weight 50/100 (was UP, weight 100)\n' });
    const st = (await p.get('/status')).json as { frontends: { listen: string; port: number }[]; backends: { servers: { address: string }[] }[] };
    expect([st.frontends[0]!.listen, st.backends[0]!.servers[0]!.address]).toEqual(['[::]:0', `[::1]:${a.port}`]);
    expect(st.frontends[0]!.port).toBe(p.port);
    expect((await p.get('/')).status).toBe(200);
  });

  it('servers: says first that licgate is stopping, while a stop waits out shutdown_delay', async () => {
    const a = await startSimulator('alpha');
    const p = await startProxy(`
shutdown_delay: 20s
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: lic }
backends:
  - name: lic
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers:
      - { name: a, address: 127.0.0.1:${a.port} }
`);
    p.child.kill('SIGTERM');
    await waitFor(async () => ((await p.get('/status')).json as { shutting_down: boolean }).shutting_down, { timeoutMs: 5000, what: '/status saying shutting_down' });
    const r = await ctl(p, ['servers']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`STOPPING: licgate (pid ${p.child.pid}) is shutting down; what is set now ends with it`);
    expect(lines[1]).toMatch(/^BACKEND\s+SERVER\s+STATE/);
    expect(lines[2]).toMatch(/^lic\s+a\s+UP\s/);
  });

  it('set weight and state with --token-file or LICGATE_TOKEN; the daemon applies them at once', async () => {
    const p = await daemon();
    const w = await ctl(p, ['--token-file', tokenFile, 'set', 'lic/a', 'weight', '50']);
    expect(w).toMatchObject({ code: 0, stderr: '' });
    expect(w.stdout).toBe('lic/a: UP, weight 50/100 (was UP, weight 100)\n');
    expect((await p.server('lic', 'a')).weight).toBe(50);

    const pct = await ctl(p, ['set', 'lic/b', 'weight', '50%'], TOKEN);
    expect(pct.stdout).toBe('lic/b: UP, weight 10/20 (was UP, weight 20)\n');

    const drain = await ctl(p, ['set', 'lic/a', 'state', 'drain'], TOKEN);
    expect(drain.stdout).toBe('lic/a: DRAIN, weight 50/100 (was UP, weight 50)\nlic: now serving from backup (was active); failback: manual keeps it there until: licgate ctl failback lic\n');
    expect((await p.server('lic', 'a')).state).toBe('DRAIN');
    expect((await p.backend('lic')).tier).toBe('backup');

    // failback: manual keeps the backup tier after a is ready again, until `ctl failback`.
    expect((await ctl(p, ['set', 'lic/a', 'state', 'ready'], TOKEN)).code).toBe(0);
    expect((await p.backend('lic')).tier).toBe('backup');
    const fb = await ctl(p, ['failback', 'lic'], TOKEN);
    expect(fb).toMatchObject({ code: 0, stdout: 'lic: now serving from active (was backup)\n' });
    expect((await ctl(p, ['failback', 'lic'], TOKEN)).stdout).toBe('lic: already serving from active\n');

    // Weight 0 on the only active server fails the backend over as a drain does; ctl says so.
    const zero = await ctl(p, ['set', 'lic/a', 'weight', '0'], TOKEN);
    expect(zero).toMatchObject({ code: 0, stdout: 'lic/a: UP, weight 0/100 (was UP, weight 50)\nlic: now serving from backup (was active); failback: manual keeps it there until: licgate ctl failback lic\n' });
    expect((await p.backend('lic')).tier).toBe('backup');
    // Back to a weight: the tier stays (failback: manual), so no tier line.
    expect((await ctl(p, ['set', 'lic/a', 'weight', '100'], TOKEN)).stdout).toBe('lic/a: UP, weight 100/100 (was UP, weight 0)\n');
  });

  it('servers and set show an admin drain that DOWN (agent) hides, as HAProxy keeps the admin state apart', async () => {
    const a = await startSimulator('alpha');
    let agentSays = 'down';
    const agent = await startTcpServer((s) => s.end(`${agentSays}\n`));
    try {
      const p = await startProxy(`
admin: { listen: 127.0.0.1:0, token_file: ${tokenFile} }
backends:
  - name: lic
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    agent_port: ${agent.port}
    agent_inter: 200ms
    servers:
      - { name: a, address: 127.0.0.1:${a.port}, weight: 100 }
`);
      await waitFor(async () => (await p.server('lic', 'a')).state === 'DOWN (agent)', { timeoutMs: 5000, what: 'a DOWN by its agent' });
      const set = await ctl(p, ['set', 'lic/a', 'state', 'drain'], TOKEN);
      expect(set).toMatchObject({ code: 0, stdout: 'lic/a: DOWN (agent), admin drain, weight 100/100 (was DOWN (agent), weight 100)\n' });
      expect((await ctl(p, ['servers'])).stdout).toMatch(/^lic\s+a\s+DOWN \(agent\), admin drain\s+active\s+100\/100\s/m);
      // The agent lets go: the drain it hid is what holds the server now.
      agentSays = 'up ready 100%';
      await waitFor(async () => (await p.server('lic', 'a')).state === 'DRAIN', { timeoutMs: 5000, what: 'a back up, still drained' });
      expect((await ctl(p, ['servers'])).stdout).toMatch(/^lic\s+a\s+DRAIN\s+active\s+100\/100\s/m);
    } finally {
      await agent.close();
    }
  });

  it('exit 1 when refused (no token, wrong token, unknown server, bad value, read-only daemon)', async () => {
    const p = await daemon();
    const none = await ctl(p, ['set', 'lic/a', 'weight', '5']);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('licgate ctl: refused (HTTP 401): expected an "Authorization: Bearer <token>" header, found none or a malformed one (pass --token-file FILE or set LICGATE_TOKEN)\n');
    const wrong = await ctl(p, ['set', 'lic/a', 'weight', '5'], 'not-the-token-at-all');
    expect(wrong.code).toBe(1);
    // A token was sent: "pass --token-file" would send the admin looking for a flag already given.
    const rotated = 'a token rotated into admin.token_file, reload licgate first: systemctl reload licgate, or SIGHUP)\n';
    expect(wrong.stderr).toBe(`licgate ctl: refused (HTTP 401): the bearer token does not match the one licgate read from admin.token_file (at start or at the last reload: a token written there since takes effect at the next reload) (sent the token from $LICGATE_TOKEN; to use ${rotated}`);
    const wrongFile = join(dir, 'old.token');
    writeFileSync(wrongFile, 'the-token-before-rotation\n');
    const stale = await ctl(p, ['--token-file', wrongFile, 'failback', 'lic']);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^licgate ctl: refused \(HTTP 401\): the bearer token does not match /);
    expect(stale.stderr).toContain(`) (sent the token from --token-file ${wrongFile}; to use ${rotated}`);
    const unknown = await ctl(p, ['set', 'lic/zz', 'state', 'drain'], TOKEN);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('licgate ctl: refused (HTTP 404): backend "lic" has no server "zz" (servers: a, b)\n');
    const big = await ctl(p, ['set', 'lic/a', 'weight', '999'], TOKEN);
    expect(big.code).toBe(1);
    expect(big.stderr).toContain('refused (HTTP 400): "weight": expected a whole number 0-256');
    expect((await p.server('lic', 'a')).weight).toBe(100);
    await stopAll();

    const ro = await daemon(false);
    const r = await ctl(ro, ['set', 'lic/a', 'state', 'drain'], TOKEN);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('licgate ctl: refused (HTTP 403): the admin API is read-only: set admin.token_file to allow changes\n');
  });

  it('reload (token): prints the changes and exits 0, or every error and exits 1 while the previous config runs on', async () => {
    const p = await daemon();
    const taken = await freePort();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(taken, '127.0.0.1', resolve));
    const before = readFileSync(p.configFile, 'utf8');
    writeFileSync(p.configFile, `${before}frontends:\n  - { name: flexnet, listen: "127.0.0.1:${taken}", backend: lic }\n`);
    const none = await ctl(p, ['reload']);
    expect([none.code, none.stderr]).toEqual([1, 'licgate ctl: refused (HTTP 401): expected an "Authorization: Bearer <token>" header, found none or a malformed one (pass --token-file FILE or set LICGATE_TOKEN)\n']);
    const refused = await ctl(p, ['reload'], TOKEN);
    expect([refused.code, refused.stdout]).toEqual([1, '']);
    expect(refused.stderr).toBe(`licgate ctl: reload refused, still running the previous config:\n  cannot listen for frontend "flexnet" on 127.0.0.1:${taken}: address already in use (EADDRINUSE)\n`);
    expect((await p.status()).frontends).toEqual([]);
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    const applied = await ctl(p, ['reload'], TOKEN);
    expect([applied.code, applied.stderr]).toEqual([0, '']);
    expect(applied.stdout).toBe(`licgate ctl: config reloaded, 1 change:\n  frontend flexnet added on 127.0.0.1:${taken}\n`);
    expect((await p.status()).frontends.map((f) => f.port)).toEqual([taken]);
  });

  it('sessions: a table or --json of the open sessions; shutdown-sessions ends those of one server (token)', async () => {
    const up = await startTcpServer((s) => s.on('data', (d: Buffer) => s.write(d)));
    const p = await startProxy(`
admin: { listen: 127.0.0.1:0, token_file: ${tokenFile} }
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: lic }
backends:
  - name: lic
    check: { type: none }
    servers:
      - { name: a, address: 127.0.0.1:${up.port} }
`);
    expect(await ctl(p, ['sessions'])).toMatchObject({ code: 0, stdout: 'no open session\n', stderr: '' });
    const sock = connect(p.port, '127.0.0.1');
    let echoed = '';
    const events: string[] = [];
    sock.setEncoding('utf8').on('data', (d: string) => (echoed += d));
    sock.on('end', () => events.push('end')).on('close', () => events.push('close'));
    sock.write('hello\n');
    await waitFor(() => echoed === 'hello\n', { timeoutMs: 5000, what: 'the echo through licgate' });

    const table = await ctl(p, ['sessions', 'lic/a']);
    expect(table).toMatchObject({ code: 0, stderr: '' });
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^CLIENT\s+FRONTEND\s+SERVER\s+AGE\s+BYTES IN\s+BYTES OUT$/);
    expect(lines[1]).toMatch(new RegExp(`^127\\.0\\.0\\.1:${sock.localPort}\\s+fe\\s+lic/a\\s+\\d+s\\s+6\\s+6$`));
    expect(lines).toHaveLength(2);
    const json = await ctl(p, ['sessions', '--json']);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as { sessions: unknown[] }).sessions).toEqual([expect.objectContaining({ client: `127.0.0.1:${sock.localPort}`, frontend: 'fe', backend: 'lic', server: 'a', bytes_in: 6, bytes_out: 6 })]);
    expect(await ctl(p, ['sessions', 'lic/zz'])).toMatchObject({ code: 1, stderr: 'licgate ctl: refused (HTTP 404): backend "lic" has no server "zz" (servers: a)\n' });

    const none = await ctl(p, ['shutdown-sessions', 'lic/a']);
    expect(none).toMatchObject({ code: 1, stderr: 'licgate ctl: refused (HTTP 401): expected an "Authorization: Bearer <token>" header, found none or a malformed one (pass --token-file FILE or set LICGATE_TOKEN)\n' });
    expect(events).toEqual([]);
    expect(await ctl(p, ['--token-file', tokenFile, 'shutdown-sessions', 'lic/a'])).toMatchObject({ code: 0, stdout: 'lic/a: closed 1 session\n', stderr: '' });
    await waitFor(() => events.includes('close'), { timeoutMs: 5000, what: 'the client closed by shutdown-sessions' });
    expect(await ctl(p, ['sessions', 'lic'])).toMatchObject({ code: 0, stdout: 'no open session to lic\n' });
    expect(await ctl(p, ['shutdown-sessions', 'lic/a'], TOKEN)).toMatchObject({ code: 0, stdout: 'lic/a: closed 0 sessions\n' });
  });

  it('exit 1 when the daemon is unreachable', async () => {
    const port = await freePort();
    const r = await ctl(`http://127.0.0.1:${port}`, ['servers']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`licgate ctl: http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  });

  it('reaches an admin listener on any port licgate accepts, also one that fetch() refuses as a "bad port"', async () => {
    const p = await daemon(true, await freeFetchBlockedPort());
    const list = await ctl(p, ['servers']);
    expect({ code: list.code, stderr: list.stderr }).toEqual({ code: 0, stderr: '' });
    expect(list.stdout).toMatch(/^lic\s+a\s+/m);
    const set = await ctl(p, ['set', 'lic/a', 'weight', '50%'], TOKEN);
    expect({ code: set.code, stderr: set.stderr }).toEqual({ code: 0, stderr: '' });
    expect(set.stdout).toMatch(/^lic\/a: .*, weight 50\/100 \(was .*, weight 100\)\n$/);
  });

  it('exit 1 with a message, not a crash, when --url answers 200 but is not licgate (another service on the port)', async () => {
    const other = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>HAProxy statistics</html>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      for (const [args, request] of [
        [['servers'], 'GET /status'],
        [['set', 'lic/a', 'state', 'drain'], 'POST /admin/backends/lic/servers/a'],
        [['failback', 'lic'], 'POST /admin/backends/lic/failback'],
        [['sessions', 'lic'], 'GET /sessions?backend=lic'],
        [['shutdown-sessions', 'lic/a'], 'POST /admin/backends/lic/servers/a/shutdown-sessions'],
      ] as const) {
        const r = await ctl(url, [...args], TOKEN);
        expect(r.stderr, args.join(' ')).toBe(`licgate ctl: ${url}: ${request} answered 200 but not as licgate's admin API does (found "<html>HAProxy statistics</html>"); is --url licgate's admin listener?\n`);
        expect(r.code, args.join(' ')).toBe(1);
      }
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it('stick and unstick: exit 1 for an unknown backend, one without a stick table, or no token', async () => {
    const p = await daemon();
    const cases: [string[], string | undefined, string][] = [
      [['stick', 'licenses'], undefined, 'refused (HTTP 404): no backend "licenses" (backends: lic)'],
      [['stick', 'lic'], undefined, 'refused (HTTP 404): backend "lic" has no stick table: expected "stick: source" in its config, found no "stick"'],
      [['unstick', 'lic', '--all'], TOKEN, 'refused (HTTP 404): backend "lic" has no stick table'],
      [['unstick', 'lic', '--all'], undefined, 'refused (HTTP 401): expected an "Authorization: Bearer <token>" header, found none or a malformed one (pass --token-file FILE or set LICGATE_TOKEN)'],
    ];
    for (const [args, token, message] of cases) {
      const r = await ctl(p, args, token);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`licgate ctl: ${message}`);
    }
    const balanced = await startProxy(`
backends:
  - name: hashed
    balance: source
    check: { type: none }
    servers: [{ name: a, address: "127.0.0.1:1" }]
`);
    const hashed = await ctl(balanced, ['stick', 'hashed']);
    expect([hashed.code, hashed.stderr]).toEqual([1, 'licgate ctl: refused (HTTP 404): backend "hashed" has no stick table: expected "stick: source" in its config, found "balance: source", which places each client by a hash of its address and keeps no table\n']);
  });

  it('peers: each remote and incoming peer; exit 0 all connected, 1 one not, 2 without a peers section', async () => {
    const closed = await freePort();
    // A remote whose greeting moves the cursor and clears the screen: ctl must not pass that on.
    const rogue = await startTcpServer((s) => s.write('\x1b[2J\x1b[H owned\n'));
    const pair = await startPeersPair([closed, rogue.port]);
    try {
      await waitFor(async () => (await peersOf(pair.b)).remotes[0]!.connected && (await peersOf(pair.a)).remotes.every((r, i) => (i === 0 ? r.connected : r.last_error !== null)), { timeoutMs: 10_000, what: 'A and B connected to each other, and A\'s other remotes failed' });
      const b = await ctl(pair.b, ['peers']);
      expect([b.code, b.stderr]).toEqual([0, '']);
      const lines = b.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`listen 127.0.0.1:${pair.peerPorts.b}`);
      expect(lines[1]).toMatch(/^REMOTE\s+STATE\s+FOR\s+ENTRIES SENT\s+LAST ERROR$/);
      expect(lines[2]).toMatch(new RegExp(`^127\\.0\\.0\\.1:${pair.peerPorts.a}\\s+connected\\s+\\d+s\\s+0\\s+-$`));
      expect(lines[3]).toBe('');
      expect(lines[4]).toMatch(/^INCOMING\s+CONNECTED\s+FOR\s+RECEIVED\s+APPLIED\s+KEPT\s+UNSTUCK\s+SKIPPED\s+CUT OFF$/);
      expect(lines[5]).toMatch(/^127\.0\.0\.1\s+yes\s+\d+s\s+0\s+0\s+0\s+0\s+0\s+0$/);
      expect(lines).toHaveLength(6);

      const a = await ctl(pair.a, ['peers']);
      expect(a.code).toBe(1);
      expect(a.stderr).toBe(`licgate ctl: not connected to 2 of 3 remotes: 127.0.0.1:${closed}, 127.0.0.1:${rogue.port}\n`);
      const row = (port: number) => a.stdout.split('\n').find((l) => l.startsWith(`127.0.0.1:${port} `));
      expect(row(pair.peerPorts.b)).toMatch(/\s+connected\s+\d+s\s+0\s+-$/);
      expect(row(closed)).toMatch(/\s+down\s+\d+s\s+0\s+ECONNREFUSED$/);
      expect(row(rogue.port)).toContain('found "\\x1b[2J\\x1b[H owned"');
      expect(a.stdout).not.toContain('\x1b');
      // Checked against the JSON, which keeps the text as the remote sent it.
      const json = await ctl(pair.a, ['peers', '--json']);
      expect(json.code).toBe(1);
      const parsed = JSON.parse(json.stdout) as PeersStatus;
      expect(parsed.remotes.map((r) => [r.remote, r.connected])).toEqual([[`127.0.0.1:${pair.peerPorts.b}`, true], [`127.0.0.1:${closed}`, false], [`127.0.0.1:${rogue.port}`, false]]);
      expect(parsed.remotes[2]!.last_error).toContain('\x1b[2J');
      expect(parsed.incoming).toMatchObject([{ peer: '127.0.0.1', connected: true }]);

      const none = await ctl(await daemon(), ['peers']);
      expect([none.code, none.stdout]).toEqual([2, '']);
      expect(none.stderr).toMatch(/^licgate ctl: this licgate has no peers section: expected "peers" in http:\/\/127\.0\.0\.1:\d+\/status, found none \(its stick tables are not shared\)\n$/);
    } finally {
      pair.cleanup();
    }
  });

  it('exit 1 naming what answered when --url is a license server\'s port (no HTTP) or a web server\'s error page, not "Parse Error" or "refused"', async () => {
    const sim = await startSimulator('lmgrd');
    const web = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<html>404 Not Found</html>'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    try {
      const line = await ctl(`http://127.0.0.1:${sim.port}`, ['servers']);
      expect(line.stderr).toBe(`licgate ctl: http://127.0.0.1:${sim.port}: GET /status answered, but not in HTTP (found "ERROR unknown command"); is --url licgate's admin listener?\n`);
      expect(line.code).toBe(1);
      const page = await ctl(webUrl, ['set', 'lic/a', 'state', 'drain'], TOKEN);
      expect(page.stderr).toBe(`licgate ctl: ${webUrl}: POST /admin/backends/lic/servers/a answered 404 but not as licgate's admin API does (found "<html>404 Not Found</html>"); is --url licgate's admin listener?\n`);
      expect(page.code).toBe(1);
    } finally {
      await new Promise<void>((resolve) => web.close(() => resolve()));
    }
  });

  it('exit 2 on usage errors, with the usage text', async () => {
    const url = 'http://127.0.0.1:1';
    const headerFile = join(dir, 'header.token');
    writeFileSync(headerFile, `Bearer ${TOKEN}\n`);
    const cases: [string[], string][] = [
      [[], 'expected a command: servers, set, failback, sessions, shutdown-sessions, stick, unstick, peers or reload'],
      [['frobnicate'], 'unknown ctl command "frobnicate"; expected servers, set, failback, sessions, shutdown-sessions, stick, unstick, peers or reload'],
      [['sessions', 'lic/a/b'], 'sessions: expected BACKEND or BACKEND/SERVER, found "lic/a/b"'],
      [['sessions', 'lic', 'a'], 'expected: ctl sessions [BACKEND[/SERVER]]; found "lic a" after the command'],
      [['shutdown-sessions', 'lic'], 'shutdown-sessions: expected BACKEND/SERVER, found "lic"'],
      [['shutdown-sessions'], 'expected: ctl shutdown-sessions BACKEND/SERVER; found nothing after the command'],
      [['stick'], 'expected: ctl stick BACKEND [CLIENT]; found nothing after the command'],
      [['stick', 'lic', '10.1.2.3', 'x'], 'expected: ctl stick BACKEND [CLIENT]; found "lic 10.1.2.3 x" after the command'],
      [['unstick'], 'expected: ctl unstick BACKEND CLIENT | --server NAME | --all; found nothing after the command'],
      // A typo must not clear a whole table: that takes --all.
      [['unstick', 'lic'], 'unstick lic: expected one of CLIENT, --server NAME or --all, found none (clearing the whole table takes --all)'],
      [['unstick', 'lic', '10.1.2.3', '--all'], 'unstick lic: expected one of CLIENT, --server NAME or --all, found "10.1.2.3 --all"'],
      [['unstick', 'lic', '--server', 'a', '--all'], 'unstick lic: expected one of CLIENT, --server NAME or --all, found "--server a --all"'],
      [['set', 'lic/a', 'weight'], 'expected: ctl set BACKEND/SERVER weight N|N% | set BACKEND/SERVER state ready|drain|maint; found "lic/a weight" after the command'],
      [['set', 'lic-a', 'weight', '5'], 'set: expected BACKEND/SERVER, found "lic-a"'],
      [['set', 'lic/a', 'weight', 'half'], 'set weight: expected a whole number 0-256 or a percentage like 50%, found "half"'],
      [['set', 'lic/a', 'state', 'down'], 'set state: expected one of ready | drain | maint, found "down"'],
      [['set', 'lic/a', 'colour', 'red'], 'set: expected "weight" or "state", found "colour"'],
      [['failback'], 'expected: ctl failback BACKEND; found nothing after the command'],
      [['reload', 'now'], 'expected: ctl reload; found "now" after the command'],
      [['peers', 'a'], 'expected: ctl peers; found "a" after the command'],
      [['set', 'lic/a', 'state', 'drain', '--token-file', join(dir, 'missing')], `--token-file: cannot read ${join(dir, 'missing')}: ENOENT`],
      // The header pasted into the file: a token with a space can never match (licgate refuses one in admin.token_file).
      [['set', 'lic/a', 'state', 'drain', '--token-file', headerFile], `--token-file: expected the token alone in ${headerFile}, found a space at character 7 (write the token itself, not "Bearer <token>")`],
      [['servers', '--bogus'], "Unknown option '--bogus'"],
      // An option of another command is not dropped without a word.
      [['set', 'lic/a', 'state', 'drain', '--all'], '--all: expected with unstick, found with set'],
      [['failback', 'lic', '--json'], '--json: expected with servers, sessions, stick or peers, found with failback'],
      [['sessions', '--server', 'a'], '--server: expected with unstick, found with sessions'],
    ];
    for (const [args, message] of cases) {
      const r = await ctl(url, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(`licgate ctl: ${message}`);
      expect(r.stderr).toContain('usage: licgate ctl');
    }
    const envHeader = await ctl(url, ['failback', 'lic'], `Bearer ${TOKEN}`);
    expect(envHeader.stderr).toContain('licgate ctl: $LICGATE_TOKEN: expected the token alone, found a space at character 7 (write the token itself, not "Bearer <token>")');
    expect(envHeader.code).toBe(2);
    const badUrl = await runCli(['ctl', '--url', 'ftp://x', 'servers']);
    expect(badUrl.code).toBe(2);
    // A port typo: the shape is right, but no URL can have it.
    const badPort = await runCli(['ctl', '--url', 'http://127.0.0.1:84040', 'servers']);
    expect(badPort.stderr).toContain('licgate ctl: --url: expected the admin listener like http://127.0.0.1:8404, found "http://127.0.0.1:84040"');
    expect(badPort.code).toBe(2);
  });
});
