import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startProxy, startSimulator, stopAll, type SimulatorProcess } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';
import { askLine, freePort, readShipped, renderConfig, startHaproxy, type HaproxyProcess, type StatRow } from './haproxy-lab.js';

/**
 * haproxy/licgate-proxies.cfg with real parts: HAProxy checks two licgate proxies with in-band
 * STATUS on their client port. Each proxy forwards to its own simulated license server, so a
 * HELLO reply tells which proxy a client went through.
 */
let dir: string;
let haproxy: HaproxyProcess | null = null;

beforeEach((ctx) => {
  requireTools(['haproxy'], ctx);
  dir = mkdtempSync(join(tmpdir(), 'licgate-haproxy-proxies-'));
});

afterEach(async () => {
  await haproxy?.stop();
  haproxy = null;
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** `host` as licgate writes it in an address: 127.0.0.1, or [::1]. */
function proxyYaml(lmgrdPort: number, vendorPort: number, simPort: number, host = '127.0.0.1'): string {
  return `
frontends:
  - { name: lmgrd, listen: "${host}:${lmgrdPort}", backend: licenses }
  - { name: vendor, listen: "${host}:${vendorPort}", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 1, fall: 1, timeout: 500ms }
    servers:
      - { name: lic, address: "${host}:${simPort}", weight: 100 }
`;
}

describe('HAProxy in front of licgate proxies (in-band STATUS checks)', () => {
  it('marks a proxy DOWN when its backend has no license server, and sends clients to the other', async () => {
    let simA: SimulatorProcess = await startSimulator('alpha');
    const simB = await startSimulator('bravo');
    const [p1, p1v, p2, p2v, fe, feVendor] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    await startProxy(proxyYaml(p1, p1v, simA.port));
    await startProxy(proxyYaml(p2, p2v, simB.port));
    const cfg = renderConfig(readShipped('licgate-proxies.cfg'), dir, [
      [/bind :27000$/m, `bind 127.0.0.1:${fe}`, 1],
      [/bind :27001$/m, `bind 127.0.0.1:${feVendor}`, 1],
      [/10\.0\.1\.21:27000/, `127.0.0.1:${p1}`, 1],
      [/10\.0\.1\.21:27001/, `127.0.0.1:${p1v}`, 1],
      [/10\.0\.1\.22:27000/, `127.0.0.1:${p2}`, 1],
      [/10\.0\.1\.22:27001/, `127.0.0.1:${p2v}`, 1],
      [/inter 2s fastinter 500ms downinter 5s rise 2 fall 3/, 'inter 200ms fastinter 100ms downinter 200ms rise 1 fall 2', 2],
    ]);
    haproxy = await startHaproxy(cfg, dir);
    const hap = haproxy;
    const lg = (server: string, what: string, pred: (r: StatRow) => boolean): Promise<unknown> =>
      waitFor(async () => pred(await hap.server('licgate_proxies', server)) && pred(await hap.server('licgate_proxies_vendor', server)), { timeoutMs: 15_000, intervalMs: 100, what: `HAProxy ${server}: ${what}` });

    await lg('lg1', 'UP by in-band STATUS', (r) => r.status === 'UP' && r.check_status === 'L7OK');
    await lg('lg2', 'UP by in-band STATUS', (r) => r.status === 'UP' && r.check_status === 'L7OK');
    // Round robin over the two proxies, one new client address at a time.
    const seen = new Set<string>();
    for (let i = 20; i < 24; i++) seen.add(await askLine(fe, 'HELLO\n', `127.0.0.${i}`));
    expect([...seen].sort()).toEqual(['HELLO alpha', 'HELLO bravo']);
    // The vendor port follows the lmgrd port (shared stick table): each client lands on the same proxy.
    for (let i = 20; i < 24; i++) expect(await askLine(feVendor, 'HELLO\n', `127.0.0.${i}`)).toBe(await askLine(fe, 'HELLO\n', `127.0.0.${i}`));

    // lg1's only license server dies: lg1 still accepts, but its STATUS says Down → HAProxy DOWN.
    await simA.kill('SIGKILL');
    await lg('lg1', 'DOWN (STATUS says Down)', (r) => r.status === 'DOWN' && r.check_status === 'L7RSP');
    for (let i = 20; i < 26; i++) expect(await askLine(fe, 'HELLO\n', `127.0.0.${i}`)).toBe('HELLO bravo');

    simA = await startSimulator('alpha', { port: simA.port });
    await lg('lg1', 'UP again', (r) => r.status === 'UP');
    expect(await askLine(fe, 'HELLO\n', '127.0.0.30')).toMatch(/^HELLO (alpha|bravo)$/);
  }, 120_000);

  it('over IPv6 (HAProxy, proxies and license servers on ::1) keeps a client on one proxy for lmgrd and vendor ports alike', async () => {
    const simA = await startSimulator('alpha', { host: '[::1]' });
    const simB = await startSimulator('bravo', { host: '[::1]' });
    const v6 = ['::1'];
    const [p1, p1v, p2, p2v, fe, feVendor] = [await freePort(v6), await freePort(v6), await freePort(v6), await freePort(v6), await freePort(v6), await freePort(v6)];
    await startProxy(proxyYaml(p1, p1v, simA.port, '[::1]'));
    await startProxy(proxyYaml(p2, p2v, simB.port, '[::1]'));
    const cfg = renderConfig(readShipped('licgate-proxies.cfg'), dir, [
      [/bind :27000$/m, `bind [::1]:${fe}`, 1],
      [/bind :27001$/m, `bind [::1]:${feVendor}`, 1],
      [/10\.0\.1\.21:27000/, `[::1]:${p1}`, 1],
      [/10\.0\.1\.21:27001/, `[::1]:${p1v}`, 1],
      [/10\.0\.1\.22:27000/, `[::1]:${p2}`, 1],
      [/10\.0\.1\.22:27001/, `[::1]:${p2v}`, 1],
      [/inter 2s fastinter 500ms downinter 5s rise 2 fall 3/, 'inter 200ms fastinter 100ms downinter 200ms rise 1 fall 2', 2],
    ]);
    haproxy = await startHaproxy(cfg, dir);
    const hap = haproxy;
    for (const b of ['licgate_proxies', 'licgate_proxies_vendor']) {
      for (const s of ['lg1', 'lg2']) {
        await waitFor(async () => (await hap.server(b, s)).status === 'UP', { timeoutMs: 15_000, intervalMs: 100, what: `HAProxy ${b}/${s} UP by in-band STATUS over IPv6` });
      }
    }
    // One client host (::1), its lmgrd and vendor connections in turn, as FlexLM makes them: round
    // robin alone would alternate proxies; the shared stick table keeps every one on the first.
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      answers.push(await askLine(fe, 'HELLO\n', '::1', '::1'));
      answers.push(await askLine(feVendor, 'HELLO\n', '::1', '::1'));
    }
    expect(answers).toEqual(Array(6).fill(answers[0]));
    expect(answers[0]).toMatch(/^HELLO (alpha|bravo)$/);
  }, 120_000);
});
