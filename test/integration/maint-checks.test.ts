import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { sample } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'maint-test-token-0123456789abcdef';
let dir: string;
let tokenFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'licgate-maint-'));
  tokenFile = join(dir, 'admin.token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await stopAll();
});

async function ctlSet(p: ProxyProcess, server: string, state: string): Promise<void> {
  const r = await runCli(['ctl', '--url', p.adminUrl, '--token-file', tokenFile, 'set', server, 'state', state]);
  expect(r, r.stderr).toMatchObject({ code: 0 });
}

/** Every active check of backend/server so far, whatever its result. */
async function checks(p: ProxyProcess, backend: string, server: string): Promise<number> {
  const text = (await p.get('/metrics')).body;
  return ['ok', 'failed'].reduce((n, result) => n + (sample(text, 'licgate_checks_total', { backend, server, result }) ?? 0), 0);
}

describe('a server an admin put in MAINT', { timeout: 60_000 }, () => {
  it('is not checked while in maintenance (no DOWN, no failed checks while its license server is stopped), and on ready comes back UP 1/fall and is checked at once', async () => {
    const sim = await startSimulator('alpha');
    const ref = await startSimulator('ref');
    // lic/a is checked every 2 s; ref/r every 100 ms is the clock that shows time passing.
    const p = await startProxy(`
admin: { listen: 127.0.0.1:0, token_file: ${tokenFile} }
backends:
  - name: lic
    check: { type: status, inter: 2s, fastinter: 1500ms, downinter: 2s, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: a, address: 127.0.0.1:${sim.port} }
  - name: ref
    check: { type: tcp, inter: 100ms, rise: 1, fall: 1, timeout: 500ms }
    servers:
      - { name: r, address: 127.0.0.1:${ref.port} }
`);
    await ctlSet(p, 'lic/a', 'maint');
    expect((await p.server('lic', 'a')).state).toBe('MAINT');
    const before = await checks(p, 'lic', 'a');
    await sim.stop(); // the planned maintenance: the license server is down for its upgrade

    // Two whole check intervals of lic/a (4 s) pass: ref/r is checked 40 times meanwhile.
    const refBefore = await checks(p, 'ref', 'r');
    await waitFor(async () => (await checks(p, 'ref', 'r')) >= refBefore + 40, { timeoutMs: 20_000, what: '40 checks of ref/r' });
    expect(await checks(p, 'lic', 'a')).toBe(before);
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_checks_total', { backend: 'lic', server: 'a', result: 'failed' }) ?? 0).toBe(0);
    expect((await p.server('lic', 'a')).state).toBe('MAINT');

    // Maintenance over: the license server is back, the admin sets ready.
    const back = await startSimulator('alpha', { port: sim.port });
    expect(back.port).toBe(sim.port);
    const readyAt = Date.now();
    await ctlSet(p, 'lic/a', 'ready');
    // HAProxy: "start OK but check immediately": UP with one failure of margin, checked at once.
    expect((await p.server('lic', 'a')).state).toMatch(/^UP/);
    const checked = await waitFor(
      async () => {
        const s = await p.server('lic', 'a');
        return s.last_check !== null && Date.parse(s.last_check.at) >= readyAt - 50 && s.state === 'UP' ? s : null;
      },
      { timeoutMs: 10_000, what: 'a check of lic/a after ready, and lic/a UP' },
    );
    expect(Date.parse(checked.last_check!.at) - readyAt).toBeLessThan(1500); // not inter (2 s) or fastinter later
    // Nothing during the maintenance said the server went DOWN: no log line, no transition to DOWN.
    // (JSON log lines are flushed once a second; the start-up's first check logged 'UP 1/2 -> UP'.)
    const changes = (): string[] => p.logs.filter((l) => l.server === 'a' && l.backend === 'lic' && typeof l.to === 'string').map((l) => `${String(l.from)} -> ${String(l.to)}`);
    await waitFor(() => changes().length >= 4, { timeoutMs: 5000, what: 'the state changes of lic/a in the log' });
    expect(changes()).toEqual(['UP 1/2 -> UP', 'UP -> MAINT', 'MAINT -> UP 1/2', 'UP 1/2 -> UP']);
    const after = (await p.get('/metrics')).body;
    expect(sample(after, 'licgate_server_transitions_total', { backend: 'lic', server: 'a', to: 'DOWN' }) ?? 0).toBe(0);
  });
});

describe('a server its agent put in MAINT, with the agent as its check (type agent)', { timeout: 60_000 }, () => {
  it('counts no failed check while the agent says "down maint" all through the maintenance, and on "up ready" is UP 1/fall and UP with that reply', async () => {
    // What a licgate sidecar answers for a server in MAINT; the test changes it.
    let reply = 'up ready 100%\n';
    const ag = await startTcpServer((sock) => sock.end(reply));
    const lic = await startTcpServer(() => {});
    // fastinter 2 s: a server that came back DOWN would need it for its second rise check.
    const p = await startProxy(`
backends:
  - name: lic
    check: { type: agent, port: ${ag.port}, inter: 200ms, fastinter: 2s, downinter: 200ms, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: a, address: 127.0.0.1:${lic.port} }
`);
    await waitFor(async () => (await p.server('lic', 'a')).state === 'UP', { timeoutMs: 10_000, what: 'lic/a UP' });
    reply = 'down maint 0% #maintenance\n';
    await waitFor(async () => (await p.server('lic', 'a')).state === 'MAINT (agent)', { timeoutMs: 5000, what: 'lic/a MAINT (agent)' });
    // Ten check intervals of the maintenance: the agent is read (it is how the MAINT ends).
    const answered = ag.accepted.length;
    await waitFor(() => ag.accepted.length >= answered + 10, { timeoutMs: 10_000, what: '10 agent reads during the MAINT' });
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_checks_total', { backend: 'lic', server: 'a', result: 'failed' }) ?? 0).toBe(0);
    expect((await p.server('lic', 'a')).state).toBe('MAINT (agent)');

    const readyAt = Date.now();
    reply = 'up ready 100%\n';
    await waitFor(async () => (await p.server('lic', 'a')).state === 'UP', { timeoutMs: 10_000, what: 'lic/a UP after up ready' });
    // One check interval, not that plus fastinter for a second rise check.
    expect(Date.now() - readyAt).toBeLessThan(1500);
    const changes = (): string[] => p.logs.filter((l) => l.server === 'a' && l.backend === 'lic' && typeof l.to === 'string').map((l) => `${String(l.from)} -> ${String(l.to)}`);
    await waitFor(() => changes().length >= 4, { timeoutMs: 5000, what: 'the state changes of lic/a in the log' });
    expect(changes()).toEqual(['UP 1/2 -> UP', 'UP -> MAINT (agent)', 'MAINT (agent) -> UP 1/2', 'UP 1/2 -> UP']);
    const after = (await p.get('/metrics')).body;
    expect(sample(after, 'licgate_checks_total', { backend: 'lic', server: 'a', result: 'failed' }) ?? 0).toBe(0);
    expect(sample(after, 'licgate_server_transitions_total', { backend: 'lic', server: 'a', to: 'DOWN' }) ?? 0).toBe(0);
  });
});
