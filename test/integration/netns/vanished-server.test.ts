/**
 * A license server host that vanishes (black-holed: no FIN, no RST) while a session through
 * licgate holds a license and its heartbeat is on the way to the server. TCP keepalive cannot help
 * then (Linux sends no probe while data is unacknowledged): the retransmission timeout ends the
 * connection, after net.ipv4.tcp_retries2 retransmissions (15 by default, about 15 minutes; 3 here,
 * about 3 s, set in the load-balancer's namespace so that the test is short). What a user
 * must see: the client gets a clean close (FIN) so FlexLM reconnects, the slot is released, and the
 * session's log line says why it ended.
 *
 * Linux, root, iproute2, iptables (lab.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLab, type Lab, type LabProcess } from './lab.js';
import { ADMIN_PORT, assertBuilt, LICENSE_PORT, proxyConfig, startProxy } from './licgate-hosts.js';
import { missingTools, requireTools } from '../../helpers/require-tools.js';
import { waitFor } from '../../helpers/wait-for.js';

const TOOLS = ['ip', 'iptables', 'sysctl', 'curl', 'node'];

// The log's first line is the argv, so each line a test waits for is split in the source.

/** The license server: answers each line with "ACK <line>". */
const ECHO_SERVER_JS = `
require('node:net').createServer((s) => { s.on('data', (d) => s.write('ACK ' + d)); s.on('error', () => {}); })
  .listen(${LICENSE_PORT}, '0.0.0.0', () => console.log('server' + ' ready'));
`;

/** The license client: checks out, then sends a heartbeat on SIGUSR2; says how its connection ended. */
const CLIENT_JS = `
const s = require('node:net').connect(${LICENSE_PORT}, '127.0.0.1');
let err = 'none', ready = false;
s.on('connect', () => s.write('CHECKOUT f1\\n'));
s.on('data', () => { if (!ready) { ready = true; console.log('client' + ' ready'); } });
s.on('error', (e) => { err = e.code; });
s.on('close', () => { console.log('client' + ' closed, error=' + err); process.exit(0); });
process.on('SIGUSR2', () => { s.write('HEARTBEAT\\n'); console.log('heartbeat' + ' sent'); });
`;

let lab: Lab;
let proxy: LabProcess;

beforeEach((ctx) => requireTools(TOOLS, ctx));

beforeAll(async () => {
  if (missingTools(TOOLS).length > 0) return; // each test then fails (CI) or skips (local)
  assertBuilt();
  lab = await createLab({ hosts: ['lb', 'srv'] });
  const sysctl = await lab.exec('lb', ['sysctl', '-w', 'net.ipv4.tcp_retries2=3']);
  expect(sysctl.code, sysctl.stderr).toBe(0);
  const server = lab.spawn('srv', ['node', '-e', ECHO_SERVER_JS], { label: 'echo' });
  await waitFor(() => server.countInLog('server ready') > 0, { timeoutMs: 10_000, what: 'the license server listens' });
  const config = join(lab.dir, 'proxy.yaml');
  const servers = [{ name: 's1', address: `${lab.addr('srv')}:${LICENSE_PORT}`, tier: 0 }];
  writeFileSync(config, proxyConfig({ failback: 'auto', servers, shutdownGrace: '1s', connectTimeout: '1s', retries: 0, check: '{ type: none }' }));
  proxy = startProxy(lab, 'lb', config);
  await waitFor(async () => (await lab.exec('lb', ['curl', '-fsS', '--max-time', '1', `http://127.0.0.1:${ADMIN_PORT}/health`])).code === 0, {
    timeoutMs: 10_000,
    what: 'licgate answers /health',
  });
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
});

async function activeSessions(): Promise<number> {
  const r = await lab.exec('lb', ['curl', '-fsS', '--max-time', '1', `http://127.0.0.1:${ADMIN_PORT}/metrics`]);
  const m = /^licgate_server_active_connections\{[^}]*server="s1"\} (\d+)$/m.exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

describe('a license server host vanishes while a heartbeat is on its way to it', () => {
  it('the client gets a clean close, the slot is released, and the session is logged as server-error ETIMEDOUT', async () => {
    const client = lab.spawn('lb', ['node', '-e', CLIENT_JS], { label: 'client' });
    await waitFor(() => client.countInLog('client ready') > 0, { timeoutMs: 10_000, what: 'the checkout is answered' });
    await waitFor(async () => (await activeSessions()) === 1, { timeoutMs: 5000, what: 'the session holds a slot on s1' });

    await lab.blackhole('srv');
    client.signal('SIGUSR2');
    await waitFor(() => client.countInLog('heartbeat sent') > 0, { timeoutMs: 5000, what: 'the heartbeat goes out' });

    // tcp_retries2=3: about 3 s of retransmissions; the bound leaves room for a loaded machine.
    await waitFor(() => client.countInLog('client closed') > 0, { timeoutMs: 30_000, what: 'the client connection ends' });
    expect(client.readLog(), proxy.readLog()).toContain('client closed, error=none');
    await waitFor(async () => (await activeSessions()) === 0, { timeoutMs: 5000, what: 'the server slot is released' });

    const line = await waitFor(() => proxy.readLog().split('\n').find((l) => l.includes('"msg":"session closed"')), {
      timeoutMs: 5000,
      what: 'the session log line (JSON lines are flushed every second)',
    });
    const rec = JSON.parse(line) as { end: string; error?: string; server: string };
    expect({ end: rec.end, server: rec.server, error: rec.error }).toEqual({ end: 'server-error', server: 's1', error: 'ETIMEDOUT' });
  });
});
