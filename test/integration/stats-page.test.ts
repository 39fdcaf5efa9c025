import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { LicenseClient } from '../helpers/license-client.js';
import { peersOf, startPeersPair } from '../helpers/peers-pair.js';
import { oneServerYaml, startProxy, startSimulator, startTcpServer, stopAll } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { startSilentListener, type SilentListener } from '../helpers/silent-listener.js';
import { waitFor } from '../helpers/wait-for.js';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** What a hostile license server answers to the STATUS probe; the page must show it as text. */
const HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold</b>';

let browser: BrowserContext | null = null;
let profile: string | null = null;
const clients: LicenseClient[] = [];
let silent: SilentListener | null = null;
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await silent?.stop();
  silent = null;
  await browser?.close();
  browser = null;
  if (profile) rmSync(profile, { recursive: true, force: true });
  profile = null;
  await stopAll();
  for (const c of cleanups.splice(0)) c();
});

/** The text of one cell of a server's row (columns as the page lays them out). */
function cell(page: Page, backend: string, server: string, col: number): Promise<string> {
  return page.locator(`section[data-backend="${backend}"] tr[data-server="${server}"] td`).nth(col).innerText();
}

describe('stats page (GET /) in a real browser', () => {
  it('shows servers per backend, follows a crash and an admin drain without reloading, escapes what it shows', async (ctx) => {
    requireTools(['chromium'], ctx);
    const sims = {
      primary: await startSimulator('primary'),
      secondary: await startSimulator('secondary'),
      backup: await startSimulator('backup'),
      dr: await startSimulator('dr-site'),
    };
    const hostile = await startTcpServer((s) => s.end(`${HOSTILE}\r\n`));
    // A black-holed server (SYNs dropped), so the page has an overdue connect to flag.
    silent = await startSilentListener();
    const dir = mkdtempSync(join(tmpdir(), 'licgate-stats-'));
    const tokenFile = join(dir, 'admin.token');
    const token = 'stats-page-test-token-0123456789';
    writeFileSync(tokenFile, `${token}\n`);
    const vrrpFile = join(dir, 'vrrp-state');
    const p = await startProxy(`admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }
vrrp: { state_file: "${vrrpFile}" }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
  - { name: rlm, listen: 127.0.0.1:0, backend: rlm }
  - { name: remote, listen: 127.0.0.1:0, backend: remote }
backends:
  - name: licenses
    stick: source
    check: { type: status, inter: 300ms, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: primary, address: 127.0.0.1:${sims.primary.port}, weight: 100 }
      - { name: secondary, address: 127.0.0.1:${sims.secondary.port}, weight: 100 }
      - { name: backup, address: 127.0.0.1:${sims.backup.port}, weight: 50, backup: true }
      - { name: dr, address: 127.0.0.1:${sims.dr.port}, weight: 10, tier: 2, maxconn: 5 }
  - name: rlm
    check: { type: status, inter: 300ms, rise: 1, fall: 1, timeout: 500ms }
    servers:
      - { name: rlm-main, address: 127.0.0.1:${hostile.port} }
  - name: remote
    check: { type: none }
    connect_timeout: 30s
    servers:
      - { name: far, address: 127.0.0.1:${silent.port} }
      - { name: near, address: 127.0.0.1:${sims.dr.port}, backup: true }
`, { waitReady: false });
    // Two license sessions held open, so the page has connections to count.
    for (let i = 0; i < 2; i++) {
      const c = await LicenseClient.connect(p.ports.lmgrd!);
      clients.push(c);
      await c.hello();
    }

    profile = mkdtempSync(join(tmpdir(), 'licgate-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 } });
    const page = await browser.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      // Chromium logs every non-2xx fetch (the 503 of /health while rlm is down, the 401 below) as a console error.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    const res = await page.goto(`${p.adminUrl}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));

    const row = (b: string, s: string) => page.locator(`section[data-backend="${b}"] tr[data-server="${s}"]`);
    await row('licenses', 'primary').locator('.state', { hasText: /^UP$/ }).waitFor({ timeout: 10_000 });
    await row('rlm', 'rlm-main').locator('.state', { hasText: /^DOWN$/ }).waitFor({ timeout: 10_000 });
    expect(await page.title()).toBe('licgate statistics');
    expect(await cell(page, 'licenses', 'primary', 0)).toBe('primary');
    expect(await cell(page, 'licenses', 'primary', 1)).toBe(`127.0.0.1:${sims.primary.port}`);
    expect(await cell(page, 'licenses', 'primary', 2)).toBe('active');
    expect(await cell(page, 'licenses', 'backup', 2)).toBe('backup');
    expect(await cell(page, 'licenses', 'dr', 2)).toBe('dr (2)');
    expect(await cell(page, 'licenses', 'backup', 4)).toBe('50');
    const active = await Promise.all(['primary', 'secondary'].map(async (s) => Number(await cell(page, 'licenses', s, 5))));
    expect(active[0]! + active[1]!).toBe(2);
    expect(await cell(page, 'licenses', 'dr', 5)).toBe('0 / 5');
    // The smoothed connect time of a server that took a session; none yet for the DR server.
    for (const [i, s] of ['primary', 'secondary'].entries()) if (active[i]! > 0) expect(await cell(page, 'licenses', s, 8)).toMatch(/^[\d.]+ ms$/);
    expect(await cell(page, 'licenses', 'dr', 8)).toBe('—');
    expect(await cell(page, 'licenses', 'primary', 9)).toMatch(/^✓ [\d.]+ ms · \d+s ago\nreply matched "Server Status: Running"$/);
    expect(await cell(page, 'licenses', 'primary', 10)).toMatch(/^\d+s$/);
    expect(await page.locator('section[data-backend="licenses"] .serving').innerText()).toBe('serving: active');
    expect(await page.locator('section[data-backend="rlm"] .serving').innerText()).toBe('serving: none');
    expect(await page.locator('#frontends tr').count()).toBe(3);
    // keepalived's role: unknown until its notify hook wrote one, then followed without reloading.
    expect(await page.locator('#vrrp').innerText()).toBe('VRRP ?');
    expect(await page.locator('#vrrp').getAttribute('title')).toContain('keepalived has not reported a role');
    writeFileSync(vrrpFile, 'INSTANCE VI_LICGATE BACKUP 100 2026-12-04T23:00:00Z\n');
    await page.locator('#vrrp', { hasText: /^VRRP BACKUP$/ }).waitFor({ timeout: 5000 });
    writeFileSync(vrrpFile, 'INSTANCE VI_LICGATE MASTER 100 2026-12-04T23:00:05Z\n');
    await page.locator('#vrrp.ok', { hasText: /^VRRP MASTER$/ }).waitFor({ timeout: 5000 });
    expect(await page.locator('#vrrp').getAttribute('title')).toMatch(/^VI_LICGATE, priority 100, since .+ \(.+vrrp-state\)$/);
    // Controls are hidden until a token is given.
    expect(await row('licenses', 'backup').locator('button', { hasText: 'drain' }).isVisible()).toBe(false);

    // The hostile reply is shown as text: no element was created from it and no script ran.
    await waitFor(async () => (await cell(page, 'rlm', 'rlm-main', 9)).includes('<img src=x'), { timeoutMs: 5000, what: 'the hostile reply shown as text' });
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('section[data-backend="rlm"] b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // A session to the black-holed server is raced to the backup after 250 ms; its first attempt
    // goes on (connect_timeout 30 s) and the page flags it.
    const remote = await LicenseClient.connect(p.ports.remote!);
    clients.push(remote);
    expect(await remote.hello()).toBe('dr-site');
    await waitFor(async () => (await cell(page, 'remote', 'far', 8)) === '—\n1 overdue', { timeoutMs: 5000, what: 'the overdue connect to far on the page' });
    expect(await cell(page, 'remote', 'near', 8)).toMatch(/^[\d.]+ ms$/);

    // A license server crashes: the page shows it DOWN on its next refresh.
    await sims.primary.kill('SIGKILL');
    await row('licenses', 'primary').locator('.state', { hasText: /^DOWN/ }).waitFor({ timeout: 10_000 });

    // With the token, drain a server from the page.
    await page.fill('#token', token);
    await page.click('#token-form button[type=submit]');
    const drain = row('licenses', 'secondary').locator('button', { hasText: 'drain' });
    await drain.waitFor({ state: 'visible', timeout: 5000 });
    await drain.click();
    await row('licenses', 'secondary').locator('.state', { hasText: /^DRAIN$/ }).waitFor({ timeout: 5000 });
    expect(await page.locator('#toast').innerText()).toContain('licenses/secondary drain: done');
    expect((await p.server('licenses', 'secondary')).state).toBe('DRAIN');
    await page.locator('section[data-backend="licenses"] .serving', { hasText: 'serving: backup' }).waitFor({ timeout: 5000 });
    expect(await page.evaluate(() => sessionStorage.getItem('licgate.admin.token'))).toBe(token);

    // A wrong token is refused with the API's message.
    await page.click('#forget');
    await page.fill('#token', 'not-the-token-at-all');
    await page.click('#token-form button[type=submit]');
    await row('licenses', 'secondary').locator('button', { hasText: 'ready' }).click();
    await page.locator('#toast', { hasText: 'refused (401)' }).waitFor({ timeout: 5000 });
    expect((await p.server('licenses', 'secondary')).state).toBe('DRAIN');

    // Put the right token back for the screenshot, with controls on.
    await page.click('#forget');
    await page.fill('#token', token);
    await page.click('#token-form button[type=submit]');
    await row('licenses', 'backup').locator('input').fill('25');
    await row('licenses', 'backup').locator('button', { hasText: /^set$/ }).click();
    await waitFor(async () => (await cell(page, 'licenses', 'backup', 4)) === '25 / 50', { timeoutMs: 5000, what: 'backup weight 25 / 50 on the page' });

    // Sessions opened now go to the backup tier; the page counts them.
    for (let i = 0; i < 3; i++) {
      const c = await LicenseClient.connect(p.ports.lmgrd!);
      clients.push(c);
      expect(await c.hello()).toBe('backup');
    }
    await waitFor(async () => (await cell(page, 'licenses', 'backup', 5)) === '3', { timeoutMs: 5000, what: '3 active sessions on the backup on the page' });
    expect(await page.locator('#frontends tr', { hasText: 'lmgrd' }).locator('td').nth(3).innerText()).toBe('3');

    expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true);
    expect(consoleErrors).toEqual([]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.evaluate(() => document.querySelectorAll('.scroll').forEach((e) => (e.scrollLeft = 0)));
    await page.screenshot({ path: join(ARTIFACTS, 'stats-page.png'), fullPage: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('tells DR sites at tiers 2 and 3 apart in the serving pill (both "dr" in /status)', async (ctx) => {
    requireTools(['chromium'], ctx);
    // site2 at weight 0 takes nothing, so the tier 3 site serves.
    const p = await startProxy(`admin: { listen: "127.0.0.1:0" }
backends:
  - name: three
    check: { type: none }
    servers: [{ name: site2, address: 127.0.0.1:1, tier: 2, weight: 0 }, { name: site3, address: 127.0.0.1:2, tier: 3 }]
  - name: two
    check: { type: none }
    servers: [{ name: site2, address: 127.0.0.1:3, tier: 2 }, { name: site3, address: 127.0.0.1:4, tier: 3 }]
`);
    expect((await p.get('/status')).json).toMatchObject({ backends: [{ serving_tier: 3, tier: 'dr' }, { serving_tier: 2, tier: 'dr' }] });
    profile = mkdtempSync(join(tmpdir(), 'licgate-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 } });
    const page = await browser.newPage();
    await page.goto(`${p.adminUrl}/`);
    const pill = (b: string) => page.locator(`section[data-backend="${b}"] .serving`);
    await pill('two').filter({ hasText: /^serving: / }).waitFor({ timeout: 10_000 });
    expect(await pill('three').innerText()).toBe('serving: dr tier 3');
    expect(await pill('two').innerText()).toBe('serving: dr');
  });

  it('tells an agent-set drain or maint from an admin one, and a drained server going down from a healthy one', async (ctx) => {
    requireTools(['chromium'], ctx);
    const sim = await startSimulator('lic1');
    // The server's sidecar agent (backend agent_port); what it says is changed as the test goes.
    let agentSays = 'up ready 100%';
    const agent = await startTcpServer((s) => s.end(`${agentSays}\n`));
    // A server whose check passes until `failing`, so an admin drain can meet a failing check.
    let failing = false;
    const flaky = await startTcpServer((s) => s.end(failing ? 'Server Status: Down\r\n' : 'Server Status: Running\r\n'));
    const dir = mkdtempSync(join(tmpdir(), 'licgate-stats-'));
    const tokenFile = join(dir, 'admin.token');
    const token = 'stats-page-test-token-0123456789';
    writeFileSync(tokenFile, `${token}\n`);
    const p = await startProxy(`admin: { listen: "127.0.0.1:0", token_file: "${tokenFile}" }
backends:
  - name: pool
    check: { type: tcp, inter: 300ms, rise: 1, fall: 2, timeout: 500ms }
    agent_port: ${agent.port}
    agent_inter: 200ms
    servers:
      - { name: lic1, address: 127.0.0.1:${sim.port} }
  - name: other
    check: { type: status, inter: 200ms, fastinter: 5s, rise: 1, fall: 3, timeout: 500ms }
    servers:
      - { name: lic2, address: 127.0.0.1:${flaky.port} }
`);
    profile = mkdtempSync(join(tmpdir(), 'licgate-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 } });
    const page = await browser.newPage();
    await page.goto(`${p.adminUrl}/`);
    const badge = (b: string, s: string) => page.locator(`section[data-backend="${b}"] tr[data-server="${s}"] .state`);
    await badge('pool', 'lic1').filter({ hasText: /^UP$/ }).waitFor({ timeout: 10_000 });

    // The agent drains the server: the admin state is still ready, so the page must say who drained it.
    agentSays = 'up drain 100%';
    await waitFor(async () => (await p.server('pool', 'lic1')).usable === false, { timeoutMs: 5000, what: 'lic1 drained by its agent' });
    await waitFor(async () => (await badge('pool', 'lic1').innerText()) !== 'UP', { timeoutMs: 5000, what: 'the page following the drain' });
    expect(await badge('pool', 'lic1').innerText()).toBe('DRAIN (agent)');
    expect(await badge('pool', 'lic1').getAttribute('class')).toBe('state s-drain');
    expect((await p.server('pool', 'lic1')).state).toBe('DRAIN (agent)');
    expect(await badge('pool', 'lic1').getAttribute('title')).toBe('agent says "up drain 100%"');

    // The agent puts it in maintenance.
    agentSays = 'maint';
    await badge('pool', 'lic1').filter({ hasText: /^MAINT/ }).waitFor({ timeout: 5000 });
    expect(await badge('pool', 'lic1').innerText()).toBe('MAINT (agent)');
    expect(await badge('pool', 'lic1').getAttribute('class')).toBe('state s-maint');

    // The agent lets go and the admin drains: plain DRAIN, as before.
    agentSays = 'up ready 100%';
    await badge('pool', 'lic1').filter({ hasText: /^UP$/ }).waitFor({ timeout: 5000 });
    const res = await fetch(`${p.adminUrl}/admin/backends/pool/servers/lic1`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"state":"drain"}' });
    expect(res.status).toBe(200);
    await badge('pool', 'lic1').filter({ hasText: /^DRAIN$/ }).waitFor({ timeout: 5000 });
    // The state cell, badge and what is under it.
    const stateCell = (b: string, s: string) => page.locator(`section[data-backend="${b}"] tr[data-server="${s}"] td:has(> .state)`);
    expect(await stateCell('pool', 'lic1').innerText()).toBe('DRAIN');

    // The agent says down over the admin's drain: DOWN (agent) as HAProxy says, and the drain,
    // which still holds when the agent says up, apart from it.
    agentSays = 'down';
    await badge('pool', 'lic1').filter({ hasText: /^DOWN \(agent\)$/ }).waitFor({ timeout: 5000 });
    expect(await stateCell('pool', 'lic1').innerText()).toBe('DOWN (agent)\nadmin: drain');
    agentSays = 'up ready 100%';
    await badge('pool', 'lic1').filter({ hasText: /^DRAIN$/ }).waitFor({ timeout: 5000 });
    expect(await stateCell('pool', 'lic1').innerText()).toBe('DRAIN');

    // A drained server whose check starts failing: HAProxy's "DRAIN 1/3", not a steady DRAIN.
    await fetch(`${p.adminUrl}/admin/backends/other/servers/lic2`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"state":"drain"}' });
    await badge('other', 'lic2').filter({ hasText: /^DRAIN$/ }).waitFor({ timeout: 5000 });
    failing = true;
    await waitFor(async () => (await p.server('other', 'lic2')).last_check?.ok === false, { timeoutMs: 5000, what: 'a failed check on lic2' });
    await waitFor(async () => (await badge('other', 'lic2').innerText()) !== 'DRAIN', { timeoutMs: 5000, what: 'the page following the failed check' });
    expect(await badge('other', 'lic2').innerText()).toBe('DRAIN 2/3');
    expect(await badge('other', 'lic2').getAttribute('class')).toBe('state s-drain');
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows each peers remote: connected, or not connected with its last error as text; nothing without peers', async (ctx) => {
    requireTools(['chromium'], ctx);
    const closed = await freePort();
    // A remote whose greeting is markup: the pusher's last_error quotes it.
    const hostile = await startTcpServer((s) => s.write(`${HOSTILE}\n`));
    const pair = await startPeersPair([closed, hostile.port]);
    cleanups.push(pair.cleanup);
    profile = mkdtempSync(join(tmpdir(), 'licgate-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 900 } });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${pair.a.adminUrl}/`);
    const pill = (port: number) => page.locator(`#peers .pill[data-remote="127.0.0.1:${port}"]`);
    await pill(pair.peerPorts.b).filter({ hasText: /connected$/ }).waitFor({ timeout: 10_000 });
    expect(await pill(pair.peerPorts.b).innerText()).toBe(`peers: 127.0.0.1:${pair.peerPorts.b} connected`);
    expect(await pill(pair.peerPorts.b).getAttribute('class')).toBe('pill peer ok');
    expect(await pill(pair.peerPorts.b).getAttribute('title')).toMatch(/^connected since .+, \d+ entries sent \(peers\.listen 127\.0\.0\.1:\d+\)$/);
    await pill(closed).filter({ hasText: /ECONNREFUSED$/ }).waitFor({ timeout: 10_000 });
    expect(await pill(closed).innerText()).toBe(`peers: 127.0.0.1:${closed} not connected: ECONNREFUSED`);
    expect(await pill(closed).getAttribute('class')).toBe('pill peer bad');
    await pill(hostile.port).filter({ hasText: 'not connected' }).waitFor({ timeout: 10_000 });
    expect(await pill(hostile.port).innerText()).toBe(`peers: 127.0.0.1:${hostile.port} not connected: ${(await peersOf(pair.a)).remotes[2]!.last_error}`);
    expect(await pill(hostile.port).innerText()).toContain(HOSTILE);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('#peers b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('#peers .pill').count()).toBe(3);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'stats-page-peers.png') });

    // B, which pushes to A only, shows its one remote; a licgate without peers shows none.
    await page.goto(`${pair.b.adminUrl}/`);
    await pill(pair.peerPorts.a).filter({ hasText: /connected$/ }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#peers .pill').count()).toBe(1);
    const plain = await startProxy(oneServerYaml(1, '{ type: none }'));
    await page.goto(`${plain.adminUrl}/`);
    await page.locator('#updated', { hasText: /^updated / }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#peers').innerHTML()).toBe('');
    expect(pageErrors).toEqual([]);
  });
});
