import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientAddresses, flexlmCheckout } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { helloOnce } from '../helpers/license-client.js';
import { runCli, startInProcessSimulator, startProxy, startTcpServer, stopAll, type LogLine, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'state-file-token-0123456789abcdef';
let dir: string;
let tokenFile: string;
let stateFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-state-'));
  tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await stopAll();
  await stopFlexlmSimulators();
  rmSync(stateFile, { force: true });
});

let n = 0;
/** A fresh state file name per test, in the test's directory or `under`. */
function admin(under = dir): string {
  stateFile = join(under, `server-state-${++n}`);
  return `admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}", state_file: "${stateFile}" }\nshutdown_delay: 0s`;
}

async function ctl(p: ProxyProcess, ...args: string[]): Promise<string> {
  const r = await runCli(['ctl', '--url', p.adminUrl, '--token-file', tokenFile, ...args]);
  expect(r, r.stderr).toMatchObject({ code: 0 });
  return r.stdout;
}

function post(p: ProxyProcess, path: string, body: unknown): Promise<Response> {
  return fetch(p.adminUrl + path, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

function saved(): { version: number; servers: { backend: string; server: string; address: string; admin: string; weight?: number; configured_weight?: number }[]; backends?: { backend: string; serving_tier: number; tier_servers?: string[] }[] } {
  return JSON.parse(readFileSync(stateFile, 'utf8'));
}

/** The same config again (the harness removes the first one's directory at its stop). */
async function restart(p: ProxyProcess, how: NodeJS.Signals = 'SIGTERM'): Promise<ProxyProcess> {
  const yaml = readFileSync(p.configFile, 'utf8');
  if (how === 'SIGKILL') p.child.kill('SIGKILL');
  await p.stop();
  return startProxy(yaml);
}

const said = (p: ProxyProcess, re: RegExp): LogLine[] => p.logs.filter((l) => re.test(String(l.msg)));

function twoServers(a: number, b: number, weight = 100): string {
  return `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: lic }
backends:
  - name: lic
    check: { type: tcp, inter: 200ms, rise: 1, fall: 1 }
    servers: [{ name: a, address: "127.0.0.1:${a}", weight: ${weight} }, { name: b, address: "127.0.0.1:${b}", weight: ${weight} }]
`;
}

/** Backend `name` with `failback`: server `${name}-a` active at `a`, `${name}-b` backup at `b`; frontend `name` to it. */
function activeBackup(name: string, a: number, b: number, failback = 'manual'): { frontend: string; backend: string } {
  return {
    frontend: `  - { name: ${name}, listen: "127.0.0.1:0", backend: ${name} }`,
    backend: `  - name: ${name}
    failback: ${failback}
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers: [{ name: ${name}-a, address: "127.0.0.1:${a}" }, { name: ${name}-b, address: "127.0.0.1:${b}", backup: true }]`,
  };
}

function backends(...bs: { frontend: string; backend: string }[]): string {
  return `\nfrontends:\n${bs.map((b) => b.frontend).join('\n')}\nbackends:\n${bs.map((b) => b.backend).join('\n')}\n`;
}

/** Backend lic (failback: manual) serving from its backup once the checks found the primary (alpha, closed) down. */
async function primaryDown(): Promise<{ p: ProxyProcess; alphaPort: number; bravo: { port: number; close(): Promise<void> } }> {
  const bravo = await startInProcessSimulator('bravo');
  const alpha = await startInProcessSimulator('alpha');
  const p = await startProxy(`${admin()}\n${backends(activeBackup('lic', alpha.port, bravo.port))}`);
  await alpha.close();
  await waitFor(async () => (await p.backend('lic')).tier === 'backup', { timeoutMs: 5000, what: 'the backup serving once the primary is down' });
  return { p, alphaPort: alpha.port, bravo };
}

describe('admin.state_file: what an admin set survives a restart', { timeout: 60_000 }, () => {
  it('a maint, a drain and a weight set with ctl are back after SIGTERM and a start on the same config, and FlexLM clients go to the one server left', async () => {
    const lab = await startFlexlmLab(['lic1', 'lic2', 'lic3'], ['check: { type: tcp, inter: 200ms, rise: 1, fall: 1 }'], { lic1: 'weight: 100', lic2: 'weight: 100', lic3: 'weight: 100' }, [admin()]);
    await ctl(lab.proxy, 'set', 'licenses/lic2', 'state', 'maint');
    await ctl(lab.proxy, 'set', 'licenses/lic3', 'state', 'drain');
    await ctl(lab.proxy, 'set', 'licenses/lic1', 'weight', '50');
    // No wait for the file: the stop writes what a coalesced write has not written yet.
    const p = await restart(lab.proxy);

    expect(saved().servers).toEqual([
      { backend: 'licenses', server: 'lic1', address: expect.stringMatching(/^127\.0\.1\.1:\d+$/), admin: 'ready', weight: 50, configured_weight: 100 },
      { backend: 'licenses', server: 'lic2', address: expect.stringMatching(/^127\.0\.1\.2:\d+$/), admin: 'maint' },
      { backend: 'licenses', server: 'lic3', address: expect.stringMatching(/^127\.0\.1\.3:\d+$/), admin: 'drain' },
    ]);
    expect((statSync(stateFile).mode & 0o777).toString(8)).toBe('640');
    expect(said(p, /^admin state of licenses\/lic\d restored from /).map((l) => [l.server, l.admin, l.weight])).toEqual([['lic1', 'ready', 50], ['lic2', 'maint', 100], ['lic3', 'drain', 100]]);
    expect((await p.server('licenses', 'lic2')).state).toBe('MAINT');
    expect((await p.server('licenses', 'lic3')).state).toMatch(/^DRAIN/);
    expect((await p.server('licenses', 'lic1')).weight).toBe(50);
    const table = await ctl(p, 'servers');
    expect(table).toMatch(/^licenses\s+lic2\s+MAINT\s/m);
    expect(table).toMatch(/^licenses\s+lic1\s+UP\s+active\*?\s+50\/100\s/m);

    const got = [];
    for (const client of clientAddresses(6)) got.push(await flexlmCheckout({ host: '127.0.0.1', lmgrdPort: lab.lmgrdPort, localAddress: client }));
    expect(got.map((c) => [c.granted, c.server])).toEqual(Array(6).fill([true, 'lic1']));

    // Undone by the admin: the entry leaves the file.
    await ctl(p, 'set', 'licenses/lic2', 'state', 'ready');
    await waitFor(() => !saved().servers.some((s) => s.server === 'lic2'), { timeoutMs: 5000, what: 'lic2 gone from the state file' });
  });

  it('a reload does not read the file again, and writes what the reloaded config holds', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    await ctl(p, 'set', 'lic/a', 'state', 'maint');
    await ctl(p, 'set', 'lic/b', 'weight', '7');
    await waitFor(() => existsSync(stateFile) && saved().servers.length === 2, { timeoutMs: 5000, what: 'two entries in the state file' });
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [{ backend: 'lic', server: 'b', address: `127.0.0.1:${s2.port}`, admin: 'maint' }] }));
    // The reload changes b's configured weight to 7: its admin weight is no admin's any more.
    p.reload(`${top}\n${twoServers(s1.port, s2.port).replace(/weight: 100 }]\n$/, 'weight: 7 }]\n')}`);
    await waitFor(() => said(p, /^config reloaded/).length, { timeoutMs: 5000, what: 'the reload' });
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'b')).state, (await p.server('lic', 'b')).weight]).toEqual(['MAINT', 'UP', 7]);
    await waitFor(() => JSON.stringify(saved().servers) === JSON.stringify([{ backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'maint' }]), { timeoutMs: 5000, what: 'the state file rewritten after the reload' });
  });

  it('a weight an admin set gives way to a weight the config changed before the restart (HAProxy\'s srv_iweight rule); the maint is still restored', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const p = await startProxy(`${admin()}\n${twoServers(s1.port, s2.port)}`);
    await ctl(p, 'set', 'lic/a', 'weight', '50');
    await ctl(p, 'set', 'lic/b', 'weight', '60');
    await ctl(p, 'set', 'lic/b', 'state', 'maint');
    const yaml = readFileSync(p.configFile, 'utf8');
    await p.stop();
    // a's weight is edited in the config (100 -> 200); b's is not.
    const edited = yaml.replace(`address: "127.0.0.1:${s1.port}", weight: 100`, `address: "127.0.0.1:${s1.port}", weight: 200`);
    expect(edited).not.toBe(yaml);
    const q = await startProxy(edited);
    expect([(await q.server('lic', 'a')).weight, (await q.server('lic', 'b')).weight, (await q.server('lic', 'b')).state]).toEqual([200, 60, 'MAINT']);
    expect(q.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([
      [40, 'admin state of lic/a (ready, weight 50) not restored: weight 50 was set while 100 was configured, and the config says 200 now: the config\'s change wins; state ready restored'],
      [30, `admin state of lic/b restored from ${stateFile}: maint, weight 60/100`],
    ]);
    // The file holds what runs: a's entry is gone, so the next start does not warn again.
    await waitFor(() => saved().servers.length === 1, { timeoutMs: 5000, what: 'the state file rewritten after the start' });
    expect(saved().servers).toEqual([{ backend: 'lic', server: 'b', address: `127.0.0.1:${s2.port}`, admin: 'maint', weight: 60, configured_weight: 100 }]);
  });

  it('a weight an admin set and then wrote into the config is restored without a warning: the config changed to the admin\'s weight', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, saved_at: '2026-01-01T00:00:00.000Z', servers: [{ backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain', weight: 50, configured_weight: 100 }] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port, 50)}`);
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'a')).weight]).toEqual(['DRAIN', 50]);
    expect(said(p, /^admin state of /).map((l) => [l.level, l.msg])).toEqual([[30, `admin state of lic/a restored from ${stateFile}: drain, weight 50/50`]]);
  });

  it('an entry an earlier licgate wrote (a weight, no configured_weight) has its weight restored, and the file is rewritten with the configured weight', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, saved_at: '2026-01-01T00:00:00.000Z', servers: [{ backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain', weight: 50 }] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'a')).weight]).toEqual(['DRAIN', 50]);
    expect(said(p, /^admin state of /).map((l) => [l.level, l.msg])).toEqual([[30, `admin state of lic/a restored from ${stateFile}: drain, weight 50/100`]]);
    await waitFor(() => saved().servers[0]?.configured_weight === 100, { timeoutMs: 5000, what: 'configured_weight added to the entry' });
    expect(saved().servers).toEqual([{ backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain', weight: 50, configured_weight: 100 }]);
  });

  it('a corrupt file is a warning naming it and what is wrong, and licgate starts with every server ready', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, '{"version":1,"servers":[{"backend":"lic","ser');
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    const warned = said(p, /^admin state file .* not used: /);
    expect(warned.map((l) => l.msg)).toEqual([expect.stringContaining(`admin state file ${stateFile} not used: expected JSON, found invalid JSON`)]);
    expect(warned[0]!.level).toBe(40);
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'b')).state]).toEqual(['UP', 'UP']);
    // validate checks the config, not the runtime state: the same file passes, and the state file goes unmentioned.
    const v = await runCli(['validate', '--config', p.configFile]);
    expect([v.code, `${v.stdout}${v.stderr}`.includes(stateFile)]).toEqual([0, false]);
  });

  it('a FIFO at the path is a warning too, not a start-up waiting for a writer', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    execFileSync('mkfifo', [stateFile]);
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /^admin state file .* not used: /).map((l) => l.msg)).toEqual([`admin state file ${stateFile} not used: expected a regular file, found a FIFO; every server starts ready at its configured weight`]);
  });

  it('a state file whose directory does not exist is a warning at start, before an admin change is not kept', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    const missing = join(dir, 'not-made', 'server-state');
    const p = await startProxy(`${top.replace(stateFile, missing)}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /^admin state file .* cannot be written: /).map((l) => [l.level, l.msg])).toEqual([[40, `admin state file ${missing} cannot be written: ${dirname(missing)} does not exist; what an admin sets holds while licgate runs, not across a restart`]]);
  });

  it('a file at the path that is not licgate\'s (its config, given by mistake) is not replaced by an admin change; once removed, the next try writes the state', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    const config = `# /etc/licgate/licgate.yaml\n${top}\n${twoServers(s1.port, s2.port)}`;
    writeFileSync(stateFile, config);
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /^admin state file .* not used: /).map((l) => l.msg)).toEqual([expect.stringContaining(`admin state file ${stateFile} not used: expected JSON, found invalid JSON`)]);
    await ctl(p, 'set', 'lic/a', 'state', 'maint');
    const refused = (): LogLine[] => said(p, /^cannot write admin state file /);
    await waitFor(() => refused().length > 0 || readFileSync(stateFile, 'utf8') !== config, { timeoutMs: 5000, what: 'the write refused, or the file replaced' });
    expect(readFileSync(stateFile, 'utf8')).toBe(config);
    expect(refused().map((l) => [l.level, l.msg])).toEqual([[50, expect.stringMatching(new RegExp(`^cannot write admin state file ${stateFile} \\(the file there is not a licgate state file \\(expected JSON, found invalid JSON \\(.+\\)\\), so it is not replaced: remove it, or set admin.state_file to another path\\): `))]]);
    expect((await p.server('lic', 'a')).state).toBe('MAINT');
    rmSync(stateFile);
    // The retry after a failed write (10 s) finds the path free.
    await waitFor(() => existsSync(stateFile), { timeoutMs: 15_000, what: 'the state file written once the other file is gone' });
    expect(saved().servers).toEqual([{ backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'maint' }]);
  });

  it('an empty file (made with touch for licgate to fill) is no state, not a warning, and the first change writes it', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, '');
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /^admin state file /).map((l) => [l.level, l.msg])).toEqual([[30, `admin state file ${stateFile} is empty: no admin state to restore`]]);
    await ctl(p, 'set', 'lic/b', 'state', 'drain');
    await waitFor(() => readFileSync(stateFile, 'utf8') !== '', { timeoutMs: 5000, what: 'the state file written' });
    expect(saved().servers).toEqual([{ backend: 'lic', server: 'b', address: `127.0.0.1:${s2.port}`, admin: 'drain' }]);
  });

  it('an entry whose server left the config, moved to another address or has a weight no server can have is skipped and logged once; the next write drops it', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [
      { backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain', weight: 999 },
      { backend: 'lic', server: 'b', address: '127.0.0.1:1', admin: 'maint' },
      { backend: 'lic', server: 'gone', address: '127.0.0.1:2', admin: 'maint' },
      { backend: 'old', server: 'x', address: '127.0.0.1:3', admin: 'maint' },
      { backend: 'lic', admin: 'sleeping' },
    ] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(p.logs.filter((l) => l.state_file === stateFile).map((l) => l.msg)).toEqual([
      `admin state file ${stateFile}: entry 1 (lic/a): expected "weight" to be a whole number 0-256, as a server's weight in the config, found 999; skipped`,
      expect.stringMatching(/: entry 5: expected \{backend, server, address, admin: ready\|drain\|maint, weight\?, configured_weight\?, standby\?\}, found \{"backend":"lic","admin":"sleeping"\}; skipped$/),
      `admin state of lic/b (maint) not restored: b is configured at 127.0.0.1:${s2.port} now, not 127.0.0.1:1: another license server`,
      'admin state of lic/gone (maint) not restored: backend lic has no server gone now',
      'admin state of old/x (maint) not restored: the config has no backend old now',
    ]);
    // Not licgate's own entry (HAProxy applies nothing of a line with an invalid weight): a's drain is not restored either.
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'a')).weight, (await p.server('lic', 'b')).state]).toEqual(['UP', 100, 'UP']);
    await ctl(p, 'set', 'lic/b', 'weight', '5');
    await waitFor(() => saved().servers.some((s) => s.server === 'b'), { timeoutMs: 5000, what: 'the state file rewritten' });
    expect(saved().servers.map((s) => s.server)).toEqual(['b']);
  });

  it('an entry with a negative, fractional or too large weight or configured_weight is invalid: warned about, skipped whole, and gone from the file the start writes', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [
      { backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain', weight: -1, configured_weight: 100 },
      { backend: 'lic', server: 'b', address: `127.0.0.1:${s2.port}`, admin: 'maint', weight: 50, configured_weight: 1.5 },
      { backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'maint', weight: 1e9, configured_weight: 100 },
    ] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    const expected = (what: string): string => `expected "${what}" to be a whole number 0-256, as a server's weight in the config`;
    expect(p.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([
      [40, `admin state file ${stateFile}: entry 1 (lic/a): ${expected('weight')}, found -1; skipped`],
      [40, `admin state file ${stateFile}: entry 2 (lic/b): ${expected('configured_weight')}, found 1.5; skipped`],
      [40, `admin state file ${stateFile}: entry 3 (lic/a): ${expected('weight')}, found 1000000000; skipped`],
    ]);
    expect([(await p.server('lic', 'a')).state, (await p.server('lic', 'a')).weight, (await p.server('lic', 'b')).state, (await p.server('lic', 'b')).weight]).toEqual(['UP', 100, 'UP', 100]);
    await waitFor(() => saved().servers.length === 0, { timeoutMs: 5000, what: 'the invalid entries gone from the state file' });
    const q = await restart(p, 'SIGKILL');
    expect(q.logs.filter((l) => l.state_file === stateFile)).toEqual([]);
  });

  it('a start that skipped an entry writes the file again at once, so the next start does not warn about it again', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [
      { backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain' },
      { backend: 'lic', server: 'gone', address: '127.0.0.1:2', admin: 'maint' },
    ] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /^admin state of lic\/gone .* not restored: /)).toHaveLength(1);
    // A crash, not a stop: the write follows the start, not the stop's flush.
    await waitFor(() => saved().servers.length === 1, { timeoutMs: 5000, what: 'the skipped entry gone from the state file' });
    const q = await restart(p, 'SIGKILL');
    expect(q.logs.filter((l) => l.state_file === stateFile).map((l) => l.msg)).toEqual([`admin state of lic/a restored from ${stateFile}: drain, weight 100/100`]);
    expect((await q.server('lic', 'a')).state).toBe('DRAIN');
  });

  it('a start that found an invalid entry writes the file again too: the next start does not warn about it', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [
      { backend: 'lic', server: 'a', address: `127.0.0.1:${s1.port}`, admin: 'drain' },
      { backend: 'lic', server: 'b', admin: 'sleeping' },
    ] }));
    const p = await startProxy(`${top}\n${twoServers(s1.port, s2.port)}`);
    expect(said(p, /: entry 2: expected .*; skipped$/)).toHaveLength(1);
    await waitFor(() => saved().servers.length === 1, { timeoutMs: 5000, what: 'the invalid entry gone from the state file' });
    const q = await restart(p, 'SIGKILL');
    expect(q.logs.filter((l) => l.state_file === stateFile).map((l) => l.msg)).toEqual([`admin state of lic/a restored from ${stateFile}: drain, weight 100/100`]);
  });

  it('a write that fails at the stop is logged, also when a failure was logged less than a minute before', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const sub = join(dir, 'removed-at-stop');
    mkdirSync(sub);
    const p = await startProxy(`${admin(sub)}\n${twoServers(s1.port, s2.port)}`);
    // Root ignores a chmod: a directory that is gone fails the write for root too.
    rmSync(sub, { recursive: true });
    await ctl(p, 'set', 'lic/a', 'state', 'maint');
    const failed = (): LogLine[] => said(p, /^cannot write admin state file /);
    await waitFor(() => failed().length === 1, { timeoutMs: 5000, what: 'the failed write logged' });
    // Before the 10 s retry: the stop's write is the next try.
    await ctl(p, 'set', 'lic/b', 'state', 'drain');
    await p.stop();
    // 'exit' can come before the last lines are read.
    await waitFor(() => said(p, /^stopped$/).length, { timeoutMs: 5000, what: '"stopped" logged' });
    expect(failed()).toHaveLength(2);
    expect(failed()[1]).toMatchObject({ level: 50, failed_writes: 2, not_logged: 0, msg: `cannot write admin state file ${stateFile} at the stop (ENOENT): what an admin set since its last write is lost, the next start does not restore it (2 failed write(s) since the last that succeeded, 0 not logged)` });
  });

  it('a burst of 100 admin calls writes the file a few times, not 100, each time whole and by a rename', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    const p = await startProxy(`${admin()}\n${twoServers(s1.port, s2.port, 200)}`);
    let renames = 0;
    const watcher = watch(dirname(stateFile), (_event, name) => {
      if (name === basename(stateFile)) renames++;
    });
    try {
      // What a reader sees between calls: always a whole file, and each new content a new inode (a rename, not a rewrite in place).
      const seen: { ino: number; text: string }[] = [];
      const look = (): void => {
        if (!existsSync(stateFile)) return;
        // Text and inode of one open file: a rename between a read and a stat by name would pair two files.
        const fd = openSync(stateFile, 'r');
        try {
          const text = readFileSync(fd, 'utf8');
          if (seen.at(-1)?.text !== text) seen.push({ ino: fstatSync(fd).ino, text });
        } finally {
          closeSync(fd);
        }
      };
      const t0 = performance.now();
      for (let i = 1; i <= 100; i++) {
        expect((await post(p, '/admin/backends/lic/servers/a', { weight: i })).status).toBe(200);
        look();
      }
      const ms = performance.now() - t0;
      await waitFor(() => existsSync(stateFile) && saved().servers[0]?.weight === 100 && renames > 0, { timeoutMs: 5000, what: 'weight 100 in the state file' });
      look();
      for (const { text } of seen) expect(() => JSON.parse(text), text).not.toThrow();
      // Consecutive only: a freed inode number is reused by a later temporary file.
      expect(seen.filter((x, i) => i > 0 && x.ino === seen[i - 1]!.ino).map((x) => x.text)).toEqual([]);
      expect(seen.length).toBeGreaterThan(1);
      // One write at once, then at most one each 250 ms while the calls go on.
      expect(renames).toBeGreaterThan(0);
      expect(renames, `${renames} renames for 100 calls in ${Math.round(ms)} ms`).toBeLessThanOrEqual(Math.ceil(ms / 250) + 2);
      expect(renames).toBeLessThan(20);
    } finally {
      watcher.close();
    }
  });

  it('the file is whole after a SIGKILL right after a change, and the next start restores it', async () => {
    const [s1, s2] = [await startTcpServer(() => {}), await startTcpServer(() => {})];
    let p = await startProxy(`${admin()}\n${twoServers(s1.port, s2.port, 200)}`);
    for (let round = 1; round <= 4; round++) {
      // Changes keep coming while the writes go on; the kill lands right after one of them.
      for (let i = 1; i <= 20 * round; i++) expect((await post(p, '/admin/backends/lic/servers/b', { weight: i, state: i % 2 ? 'drain' : 'maint' })).status).toBe(200);
      p = await restart(p, 'SIGKILL');
      expect(said(p, /^admin state file .* not used: /)).toEqual([]);
      if (!existsSync(stateFile)) continue;
      const entry = saved().servers.find((s) => s.server === 'b')!;
      expect(entry).toMatchObject({ backend: 'lic', admin: expect.stringMatching(/^(drain|maint)$/) });
      expect(said(p, /^admin state of lic\/b restored from /).map((l) => [l.admin, l.weight])).toEqual([[entry.admin, entry.weight]]);
    }
  });
  it('failback: manual: the backup an admin kept serving after the primary came back still serves after a restart, until ctl failback', async () => {
    const [alpha, bravo] = [await startInProcessSimulator('alpha'), await startInProcessSimulator('bravo')];
    const p = await startProxy(`${admin()}\n${backends(activeBackup('lic', alpha.port, bravo.port))}`);
    // The primary's maintenance: clients go to the backup and, with failback: manual, stay there after it.
    await ctl(p, 'set', 'lic/lic-a', 'state', 'maint');
    await ctl(p, 'set', 'lic/lic-a', 'state', 'ready');
    expect([(await p.backend('lic')).tier, await helloOnce(p.port)]).toEqual(['backup', 'bravo']);
    // No wait for the file: the stop writes what is pending.
    const q = await restart(p);
    expect((await q.backend('lic')).tier).toBe('backup');
    expect(await helloOnce(q.port)).toBe('bravo');
    expect(saved().backends).toEqual([{ backend: 'lic', serving_tier: 1, tier_servers: ['lic-b'] }]);
    expect(q.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([[30, `serving tier of lic restored from ${stateFile}: backup (tier 1), until an admin fails it back (licgate ctl failback lic)`]]);
    // Not an admin route's write: the tier change itself has the file written, so a crash now does not bring the backup back.
    await ctl(q, 'failback', 'lic');
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the serving tier gone from the state file after the failback' });
    const r = await restart(q, 'SIGKILL');
    expect([(await r.backend('lic')).tier, await helloOnce(r.port)]).toEqual(['active', 'alpha']);
    expect(r.logs.filter((l) => l.state_file === stateFile)).toEqual([]);
  });

  it('a reload keeps the backup an admin kept serving, and its entry; a reload to failback: auto serves from the primary and drops it, as a start would', async () => {
    const [alpha, bravo] = [await startInProcessSimulator('alpha'), await startInProcessSimulator('bravo')];
    const top = admin();
    const p = await startProxy(`${top}\n${backends(activeBackup('lic', alpha.port, bravo.port))}`);
    await ctl(p, 'set', 'lic/lic-a', 'state', 'maint');
    await ctl(p, 'set', 'lic/lic-a', 'state', 'ready');
    await waitFor(() => existsSync(stateFile) && saved().backends !== undefined, { timeoutMs: 5000, what: 'the kept backup in the state file' });
    const reloaded = (n: number) => () => said(p, /^config reloaded/).length === n;
    p.reload(`${top}\n${backends(activeBackup('lic', alpha.port, bravo.port))}`.replace('inter: 200ms', 'inter: 300ms'));
    await waitFor(reloaded(1), { timeoutMs: 5000, what: 'the first reload' });
    expect([(await p.backend('lic')).tier, await helloOnce(p.port)]).toEqual(['backup', 'bravo']);
    expect(saved().backends).toEqual([{ backend: 'lic', serving_tier: 1, tier_servers: ['lic-b'] }]);
    p.reload(`${top}\n${backends(activeBackup('lic', alpha.port, bravo.port, 'auto'))}`);
    await waitFor(reloaded(2), { timeoutMs: 5000, what: 'the reload to failback: auto' });
    expect([(await p.backend('lic')).tier, await helloOnce(p.port)]).toEqual(['active', 'alpha']);
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the serving tier gone from the state file' });
  });

  it('a kept serving tier is skipped, with one warning saying why, when the backend is gone, has failback: auto now, has no such tier or none of its servers an admin lets serve; the start rewrites the file', async () => {
    const [alpha, bravo] = [await startInProcessSimulator('alpha'), await startInProcessSimulator('bravo')];
    const top = admin();
    const lic = activeBackup('lic', alpha.port, bravo.port);
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [{ backend: 'lic', server: 'lic-b', address: `127.0.0.1:${bravo.port}`, admin: 'maint' }], backends: [
      { backend: 'lic', serving_tier: 1 },
      { backend: 'auto', serving_tier: 1 },
      { backend: 'third', serving_tier: 2 },
      { backend: 'old', serving_tier: 1 },
      { backend: 'lic', serving_tier: 'backup' },
    ] }));
    const p = await startProxy(`${top}\n${backends(lic, activeBackup('auto', alpha.port, bravo.port, 'auto'), activeBackup('third', alpha.port, bravo.port))}`);
    expect(p.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([
      [40, `admin state file ${stateFile}: backends entry 5: expected {backend, serving_tier: a whole number 0-9, tier_servers?: [server names]}, found {"backend":"lic","serving_tier":"backup"}; skipped`],
      [30, `admin state of lic/lic-b restored from ${stateFile}: maint, weight 1/1`],
      [40, 'serving tier of lic (backup (tier 1), not failed back) not restored: no server of that tier can serve: lic-b maint'],
      [40, 'serving tier of auto (backup (tier 1), not failed back) not restored: backend auto has failback: auto now, so it serves from its best tier'],
      [40, 'serving tier of third (dr (tier 2), not failed back) not restored: backend third has no server in tier 2 now'],
      [40, 'serving tier of old (backup (tier 1), not failed back) not restored: the config has no backend old now'],
    ]);
    expect([(await p.backend('lic')).tier, (await p.backend('auto')).tier, (await p.backend('third')).tier]).toEqual(['active', 'active', 'active']);
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the skipped entries gone from the state file' });
    expect(saved().servers).toEqual([{ backend: 'lic', server: 'lic-b', address: `127.0.0.1:${bravo.port}`, admin: 'maint' }]);
  });

  it('a kept serving tier is skipped, with a warning, when the config renumbered its tiers since: the tier holds other servers now', async () => {
    const [alpha, bravo, charlie] = [await startInProcessSimulator('alpha'), await startInProcessSimulator('bravo'), await startInProcessSimulator('charlie')];
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [], backends: [{ backend: 'lic', serving_tier: 1, tier_servers: ['lic-b'] }] }));
    // lic-b, the backup the clients were kept on, is tier 2 now; tier 1 is a new server.
    const lic = activeBackup('lic', alpha.port, bravo.port);
    lic.backend = lic.backend.replace(', backup: true }]', `, tier: 2 }, { name: lic-c, address: "127.0.0.1:${charlie.port}", backup: true }]`);
    const p = await startProxy(`${top}\n${backends(lic)}`);
    expect(p.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([
      [40, 'serving tier of lic (backup (tier 1), not failed back) not restored: tier 1 holds lic-c now, not lic-b as when it was kept: the config renumbered its tiers, and clients hold their licenses on those servers'],
    ]);
    expect([(await p.backend('lic')).tier, await helloOnce(p.port)]).toEqual(['active', 'alpha']);
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the skipped entry gone from the state file' });
  });

  it('a backup serving is written when a failed check moves the backend there, with no admin call, kept while the primary comes back; gone again when the backup fails', async () => {
    const { p, alphaPort, bravo } = await primaryDown();
    // Not the tier a start takes (servers start UP): kept, though the checks leave no better one now.
    await waitFor(() => existsSync(stateFile) && saved().backends !== undefined, { timeoutMs: 5000, what: 'the serving backup in the state file' });
    expect(saved()).toMatchObject({ servers: [], backends: [{ backend: 'lic', serving_tier: 1 }] });
    await startInProcessSimulator('alpha', { port: alphaPort });
    await waitFor(async () => (await p.server('lic', 'lic-a')).state === 'UP', { timeoutMs: 5000, what: 'the primary UP again' });
    expect((await p.backend('lic')).tier).toBe('backup');
    expect(saved()).toMatchObject({ servers: [], backends: [{ backend: 'lic', serving_tier: 1 }] });
    await bravo.close();
    await waitFor(async () => (await p.backend('lic')).tier === 'active', { timeoutMs: 5000, what: 'the primary serving once the backup is down' });
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the serving tier gone from the state file' });
  });

  it('failback: manual: a restart while the primary is DOWN keeps the backup serving, also when the primary is back by then, until ctl failback', async () => {
    const { p, alphaPort } = await primaryDown();
    // A restart with the primary still down: the backup serves at once, not a dead primary until its first check fails.
    const q = await restart(p);
    expect(said(q, /^serving tier of lic restored from /)).toHaveLength(1);
    expect([(await q.backend('lic')).tier, await helloOnce(q.port)]).toEqual(['backup', 'bravo']);
    // The primary back while licgate is stopped (a host reboot): no failback came, so the backup still serves.
    const yaml = readFileSync(q.configFile, 'utf8');
    await q.stop();
    await startInProcessSimulator('alpha', { port: alphaPort });
    const r = await startProxy(yaml);
    expect([(await r.backend('lic')).tier, await helloOnce(r.port)]).toEqual(['backup', 'bravo']);
    await waitFor(async () => (await r.server('lic', 'lic-a')).state === 'UP', { timeoutMs: 5000, what: 'the primary UP' });
    await ctl(r, 'failback', 'lic');
    expect([(await r.backend('lic')).tier, await helloOnce(r.port)]).toEqual(['active', 'alpha']);
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the serving tier gone from the state file after the failback' });
  });

  it('a kept backup none of whose servers can serve once names are looked up is given up at start, with a warning, and the file rewritten', async () => {
    const alpha = await startInProcessSimulator('alpha');
    const top = admin();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [], backends: [{ backend: 'lic', serving_tier: 1 }] }));
    // RFC 6761: a .invalid name never resolves, so lic-b has no address.
    const p = await startProxy(`${top}\n${backends(activeBackup('lic', alpha.port, 1)).replace('"127.0.0.1:1"', '"lic-b.invalid:27000"')}`);
    expect(p.logs.filter((l) => l.state_file === stateFile).map((l) => [l.level, l.msg])).toEqual([
      [30, `serving tier of lic restored from ${stateFile}: backup (tier 1), until an admin fails it back (licgate ctl failback lic)`],
      [40, 'backend lic serves from active, not from backup as admin.state_file kept it: no server of that tier can serve now (lic-b DOWN (no address))'],
    ]);
    expect([(await p.backend('lic')).tier, await helloOnce(p.port)]).toEqual(['active', 'alpha']);
    await waitFor(() => saved().backends === undefined, { timeoutMs: 5000, what: 'the given-up tier gone from the state file' });
  });
});

/** Backend lic with `stick: source` (and `extra` keys) over servers s1 at `a` and s2 at `b`. */
function sticky(a: number, b: number, extra = ''): string {
  return `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: lic }
backends:
  - name: lic
    stick: source${extra}
    check: { type: status, inter: 200ms, rise: 1, fall: 1 }
    servers: [{ name: s1, address: "127.0.0.1:${a}" }, { name: s2, address: "127.0.0.1:${b}" }]
`;
}

type StickRow = [string, string, number, number];
const stickOf = (): { backend: string; servers: Record<string, string>; entries: StickRow[] }[] | undefined => (saved() as unknown as { stick?: { backend: string; servers: Record<string, string>; entries: StickRow[] }[] }).stick;

/** Which simulator answers each client address, in that order. */
async function answers(p: ProxyProcess, clients: readonly string[]): Promise<[string, string][]> {
  const got: [string, string][] = [];
  for (const c of clients) got.push([c, await helloOnce(p.port, { localAddress: c })]);
  return got;
}

async function stickTable(p: ProxyProcess): Promise<{ entries: { client: string; server: string; age_s: number; expires_in_s: number | null }[] }> {
  const r = await fetch(`${p.adminUrl}/backends/lic/stick-table`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as { entries: { client: string; server: string; age_s: number; expires_in_s: number | null }[] };
}

/**
 * The clients stuck to `two` first, then the others in reverse: a start with an empty table balances
 * them afresh, and round robin sends every other one to the server it was not on.
 */
function stuckFirst(before: [string, string][]): string[] {
  return [...before.filter(([, s]) => s === 'two'), ...before.filter(([, s]) => s !== 'two').reverse()].map(([c]) => c);
}

describe('admin.state_file: the stick table survives a restart', { timeout: 60_000 }, () => {
  it('clients stuck to s2 go to s2 again after a SIGTERM restart, stuck since before it', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const p = await startProxy(`${admin()}\n${sticky(one.port, two.port)}`);
    const before = await answers(p, clientAddresses(8));
    const stuckAt = performance.now();
    expect(before.filter(([, s]) => s === 'two').length).toBeGreaterThanOrEqual(2);
    // No wait for the periodic write: the stop writes the entries.
    const q = await restart(p);
    const order = stuckFirst(before);
    expect(await answers(q, order)).toEqual(order.map((c) => before.find(([x]) => x === c)));
    expect(said(q, /^stick table of lic restored from /).map((l) => [l.level, l.restored, l.expired, l.dropped])).toEqual([[30, 8, 0, 0]]);
    expect(stickOf()?.map((t) => [t.backend, t.servers, t.entries.length])).toEqual([['lic', { s1: `127.0.0.1:${one.port}`, s2: `127.0.0.1:${two.port}` }, 8]]);
    // Stuck since before the restart, not since the connections just now.
    const age = (performance.now() - stuckAt) / 1000;
    expect((await stickTable(q)).entries.filter((e) => e.age_s < age - 0.2).map((e) => e.client)).toEqual([]);
  });

  it('an entry past its time is not restored, nor one whose server is at another address now; one with more time left than stick_ttl now keeps stick_ttl', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const top = admin();
    const now = Date.now();
    writeFileSync(stateFile, JSON.stringify({ version: 1, servers: [], stick: [{ backend: 'lic', servers: { s1: '127.0.0.1:1', s2: `127.0.0.1:${two.port}` }, entries: [
      ['127.0.0.2', 's2', now - 1000, now - 3_600_000],
      ['127.0.0.3', 's2', now + 3_600_000, now - 60_000],
      ['127.0.0.4', 's1', now + 3_600_000, now - 60_000],
    ] }] }));
    const p = await startProxy(`${top}\n${sticky(one.port, two.port, '\n    stick_ttl: 30s')}`);
    expect(said(p, /^stick table of lic restored from /).map((l) => [l.restored, l.expired, l.dropped])).toEqual([[1, 1, 1]]);
    const [e, ...more] = (await stickTable(p)).entries;
    expect([e?.client, e?.server, more]).toEqual(['127.0.0.3', 's2', []]);
    expect(e!.expires_in_s).toBeLessThanOrEqual(30);
    expect(e!.age_s).toBeGreaterThanOrEqual(60);
  });

  it('known clients connecting again do not rewrite the file within 5 s (their expiries wait for a new client\'s write, or a minute); a new client is written within 5 s', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const p = await startProxy(`${admin()}\n${sticky(one.port, two.port)}`);
    const known = clientAddresses(4);
    await answers(p, known);
    await waitFor(() => existsSync(stateFile) && stickOf()?.[0]?.entries.length === 4, { timeoutMs: 8000, what: 'the 4 stick entries in the state file' });
    const before = readFileSync(stateFile, 'utf8');
    const expiries = (): number[] => known.map((c) => stickOf()![0]!.entries.find((e) => e[0] === c)![2]);
    const written = expiries();
    // Steady traffic of known clients for longer than STICK_WRITE_INTERVAL_MS: only refreshes.
    const end = performance.now() + 6500;
    let rounds = 0;
    for (; performance.now() < end; rounds++) await answers(p, known);
    expect(rounds).toBeGreaterThan(10);
    expect(readFileSync(stateFile, 'utf8')).toBe(before);
    const newcomer = clientAddresses(1, 6)[0]!;
    await answers(p, [newcomer]);
    await waitFor(() => stickOf()?.[0]?.entries.length === 5, { timeoutMs: 6000, what: 'the new client in the state file' });
    // That write took the refreshed expiries too.
    expiries().forEach((e, i) => expect(e).toBeGreaterThan(written[i]!));
  });

  it('a reload that removes stick: source has the table leave the file, also at a stop right after; a start without it writes the file without it, and warns once', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const top = admin();
    const p = await startProxy(`${top}\n${sticky(one.port, two.port)}`);
    await answers(p, clientAddresses(4));
    await waitFor(() => existsSync(stateFile) && stickOf()?.[0]?.entries.length === 4, { timeoutMs: 8000, what: 'the 4 stick entries in the state file' });
    const kept = readFileSync(stateFile, 'utf8');
    const unstuck = sticky(one.port, two.port).replace('    stick: source\n', '');
    p.reload(`${top}\n${unstuck}`);
    await waitFor(() => said(p, /^config reloaded/).length, { timeoutMs: 5000, what: 'the reload' });
    await p.stop();
    expect(stickOf()).toBeUndefined();
    // A file from before the change (or from a licgate before this fix), and a start without stick: source.
    writeFileSync(stateFile, kept);
    const q = await startProxy(`${top}\n${unstuck}`);
    expect(said(q, /^stick table of lic /).map((l) => [l.level, l.msg])).toEqual([[40, 'stick table of lic (4 entries) not restored: backend lic has no "stick: source" now']]);
    await waitFor(() => stickOf() === undefined, { timeoutMs: 5000, what: 'the table gone from the state file' });
    const r = await restart(q);
    expect(said(r, /^stick table of lic /)).toEqual([]);
  });

  it('a temporary file that a write cut short by kill -9 left is removed at the next start; one of a process that still runs is not', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const top = admin();
    // A pid that was a process and is gone, as a licgate killed during its write.
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    const left = join(dir, `.${basename(stateFile)}.${gone.pid}.tmp`);
    const running = join(dir, `.${basename(stateFile)}.${process.pid}.tmp`);
    writeFileSync(left, '{"version":1,"servers":[],"stick":[{"backend":"lic","ser');
    writeFileSync(running, '');
    try {
      const p = await startProxy(`${top}\n${sticky(one.port, two.port)}`);
      expect([existsSync(left), existsSync(running)]).toEqual([false, true]);
      expect(said(p, /^removed /).map((l) => l.msg)).toEqual([`removed ${left}, left by a write of admin state file ${stateFile} that did not finish (its process, ${gone.pid}, is gone)`]);
    } finally {
      rmSync(left, { force: true });
      rmSync(running, { force: true });
    }
  });

  it('a kill -9 restart restores what the last periodic write had', async () => {
    const [one, two] = [await startInProcessSimulator('one'), await startInProcessSimulator('two')];
    const p = await startProxy(`${admin()}\n${sticky(one.port, two.port)}`);
    const before = await answers(p, clientAddresses(8));
    await waitFor(() => existsSync(stateFile) && stickOf()?.[0]?.entries.length === 8, { timeoutMs: 15_000, what: 'the 8 stick entries in the state file' });
    const q = await restart(p, 'SIGKILL');
    expect(said(q, /^stick table of lic restored from /).map((l) => l.restored)).toEqual([8]);
    const order = stuckFirst(before);
    expect(await answers(q, order)).toEqual(order.map((c) => before.find(([x]) => x === c)));
  });
});
