import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startProxy, startSimulator, stopAll, type ProxyProcess, type SimulatorProcess } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';
import { askLine, freePort, readShipped, renderConfig, startHaproxy, type HaproxyProcess, type StatRow } from './haproxy-lab.js';

/**
 * haproxy/sidecar-checks.cfg with real parts: two "license servers" (licgate simulate) on the
 * loopback aliases 127.0.0.2 (primary) and 127.0.0.3 (backup), a licgate sidecar on each host
 * (status + agent + admin with a token), and HAProxy running the shipped config with only
 * addresses, ports and check intervals changed. Each host's sidecar uses the same status and agent
 * ports, as the shipped config's `tcp-check connect port` / `agent-port` require.
 */
const PRIMARY = '127.0.0.2';
const BACKUP = '127.0.0.3';
const TOKEN = 'sidecar-test-token-0123456789';
const STEP_MS = 15_000;

let dir: string;
let haproxy: HaproxyProcess | null = null;

beforeEach((ctx) => {
  requireTools(['haproxy'], ctx);
  dir = mkdtempSync(join(tmpdir(), 'licgate-haproxy-sidecar-'));
});

afterEach(async () => {
  await haproxy?.stop();
  haproxy = null;
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

function sidecarYaml(host: string, simPort: number, statusPort: number, agentPort: number, tokenFile: string): string {
  return `
admin: { listen: 127.0.0.1:0, token_file: ${tokenFile} }
status: { listen: ${host}:${statusPort} }
agent: { listen: ${host}:${agentPort}, backend: licenses }
log: { level: info, format: json }
shutdown_grace: 500ms
shutdown_delay: 0s
backends:
  - name: licenses
    check: { type: status, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 1, fall: 1, timeout: 500ms }
    servers:
      - { name: local, address: ${host}:${simPort}, weight: 100 }
`;
}

/** One STATUS exchange with a sidecar. */
function status(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port }, () => sock.write('STATUS\r\n'));
    let out = '';
    sock.setEncoding('latin1').on('data', (d: string) => (out += d));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
    sock.setTimeout(3000, () => sock.destroy(new Error('no STATUS reply')));
  });
}

async function adminPost(sidecar: ProxyProcess, body: unknown): Promise<number> {
  const res = await fetch(`${sidecar.adminUrl}/admin/backends/licenses/servers/local`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  await res.text();
  return res.status;
}

describe('HAProxy in front of license servers, checking each through its licgate sidecar', () => {
  it('follows the sidecar: UP, agent weight, DRAIN, ready, license service down and back; traffic follows', async () => {
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, `${TOKEN}\n`);

    let primary: SimulatorProcess = await startSimulator('primary', { host: PRIMARY });
    const backup = await startSimulator('backup', { host: BACKUP });
    const statusPort = await freePort([PRIMARY, BACKUP]);
    const agentPort = await freePort([PRIMARY, BACKUP]);
    const sidecar1 = await startProxy(sidecarYaml(PRIMARY, primary.port, statusPort, agentPort, tokenFile));
    await startProxy(sidecarYaml(BACKUP, backup.port, statusPort, agentPort, tokenFile));

    const fe = await freePort();
    const feVendor = await freePort();
    const cfg = renderConfig(readShipped('sidecar-checks.cfg'), dir, [
      [/bind :27000$/m, `bind 127.0.0.1:${fe}`, 1],
      [/bind :27001$/m, `bind 127.0.0.1:${feVendor}`, 1],
      [/10\.0\.0\.11:2700[01]/, `${PRIMARY}:${primary.port}`, 2],
      [/10\.0\.0\.12:2700[01]/, `${BACKUP}:${backup.port}`, 2],
      [/tcp-check connect port 27100/, `tcp-check connect port ${statusPort}`, 2],
      [/agent-port 27200 agent-inter 2s/, `agent-port ${agentPort} agent-inter 200ms`, 2],
      [/inter 2s fastinter 500ms downinter 5s rise 2 fall 3/, 'inter 200ms fastinter 100ms downinter 200ms rise 1 fall 2', 2],
    ]);
    haproxy = await startHaproxy(cfg, dir);
    const hap = haproxy;

    /** Waits until `pred` holds for licenses/lic1 (and, the same checks, licenses_vendor/lic1). */
    const lic1 = async (what: string, pred: (r: StatRow) => boolean): Promise<StatRow> => {
      let last: StatRow[] = [];
      try {
        return await waitFor(
          async () => {
            last = [await hap.server('licenses', 'lic1'), await hap.server('licenses_vendor', 'lic1')];
            return last.every(pred) && last[0]!;
          },
          { timeoutMs: STEP_MS, intervalMs: 100, what: `HAProxy lic1: ${what}` },
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}\nlast rows: ${JSON.stringify(last.map((r) => ({ px: r.pxname, status: r.status, weight: r.weight, check: r.check_status, agent: r.agent_status, desc: r.agent_desc })))}\nhaproxy:\n${hap.output().slice(-3000)}`);
      }
    };
    const hello = (from: string): Promise<string> => askLine(fe, 'HELLO\n', from);

    // 1. HAProxy sees both sidecars UP, with the agent's weight (100% of 100).
    await lic1('UP, weight 100', (r) => r.status === 'UP' && r.weight === '100' && r.check_status === 'L7OK' && r.agent_status === 'L7OK');
    await waitFor(async () => (await hap.server('licenses', 'lic2')).status === 'UP', { timeoutMs: STEP_MS, what: 'HAProxy lic2 (backup) UP' });
    expect(await hello('127.0.0.10')).toBe('HELLO primary');

    // 2. Admin weight 50 on the sidecar → the agent says 50% → HAProxy's weight follows.
    expect(await adminPost(sidecar1, { weight: 50 })).toBe(200);
    await lic1('weight 50 from the agent', (r) => r.status === 'UP' && r.weight === '50');

    // 3. Drain → DRAIN in HAProxy. New clients go to the backup; a client stuck to lic1 stays
    //    (HAProxy's drain keeps persistent clients — what FlexLM needs).
    expect(await adminPost(sidecar1, { state: 'drain' })).toBe(200);
    // HAProxy 2.6 shows an agent-set drain as "DRAIN (agent)".
    await lic1('DRAIN', (r) => /^DRAIN\b/.test(r.status!));
    expect(await hello('127.0.0.11')).toBe('HELLO backup');
    expect(await hello('127.0.0.10')).toBe('HELLO primary');

    // 4. Ready (and the weight back to 100) → UP; new clients go to the primary again.
    expect(await adminPost(sidecar1, { state: 'ready', weight: 100 })).toBe(200);
    await lic1('UP again, weight 100', (r) => r.status === 'UP' && r.weight === '100');
    expect(await hello('127.0.0.12')).toBe('HELLO primary');

    // 5. The license service dies → the sidecar's STATUS says Down → HAProxy marks lic1 DOWN;
    //    new clients and the client stuck to lic1 (redispatch) go to the backup.
    await primary.kill('SIGKILL');
    await waitFor(async () => (await status(PRIMARY, statusPort)).startsWith('Server Status: Down\r\n'), { timeoutMs: STEP_MS, what: 'sidecar STATUS: Down' });
    // Both paths see it: the agent says "down" (status "DOWN (agent)") and the tcp-check's expect
    // fails on "Server Status: Down" (L7RSP) — either alone would mark lic1 DOWN.
    await lic1('DOWN, by the agent and by the STATUS tcp-check', (r) => /^DOWN\b/.test(r.status!) && r.check_status === 'L7RSP' && r.agent_status === 'L7STS');
    expect(await hello('127.0.0.13')).toBe('HELLO backup');
    expect(await hello('127.0.0.10')).toBe('HELLO backup');

    // 6. It returns on the same address → Running → UP; a new client goes to the primary.
    primary = await startSimulator('primary', { host: PRIMARY, port: primary.port });
    await waitFor(async () => (await status(PRIMARY, statusPort)).startsWith('Server Status: Running\r\n'), { timeoutMs: STEP_MS, what: 'sidecar STATUS: Running' });
    await lic1('UP after the license service returned', (r) => r.status === 'UP' && r.weight === '100');
    expect(await hello('127.0.0.14')).toBe('HELLO primary');
  }, 120_000);
});
