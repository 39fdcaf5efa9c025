import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce, LicenseClient } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startSimulator, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

/** Checks run once at start (inter 1h), so every later state change comes from live traffic: exact counts. */
function config(primary: number, backup: number, rise = 2, fall = 2, timeout = '1s'): string {
  return `frontends:
  - name: lmgrd
    listen: 127.0.0.1:0
    backend: licenses
    inband_status: false
backends:
  - name: licenses
    retries: 2
    observe_errors: 1
    check: { type: status, inter: 1h, rise: ${rise}, fall: ${fall}, timeout: ${timeout} }
    servers:
      - { name: primary, address: 127.0.0.1:${primary}, weight: 100 }
      - { name: backup, address: 127.0.0.1:${backup}, weight: 50, backup: true }
`;
}

async function metrics(p: ProxyProcess): Promise<string> {
  const r = await p.get('/metrics');
  expect(r.status).toBe(200);
  return r.body;
}

function promtool(text: string): { code: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('GET /metrics on a real licgate run', () => {
  it('counts sessions, bytes, failover and checks exactly, and passes promtool check metrics', async (ctx) => {
    requireTools(['promtool'], ctx);
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port));
    const labels = { frontend: 'lmgrd', backend: 'licenses' };

    for (let i = 0; i < 5; i++) expect(await helloOnce(p.port)).toBe('primary');
    const held = await LicenseClient.connect(p.port);
    expect(await held.hello()).toBe('primary');
    let text = await waitFor(async () => {
      const t = await metrics(p);
      return sample(t, 'licgate_sessions_ended_total', { ...labels, end: 'closed' }) === 5 && t;
    }, { timeoutMs: 5000, what: '5 closed sessions in /metrics' });
    expect(sample(text, 'licgate_connections_total', { ...labels, server: 'primary' })).toBe(6);
    expect(sample(text, 'licgate_connections_active', { ...labels, server: 'primary' })).toBe(1);
    expect(sample(text, 'licgate_server_active_connections', { backend: 'licenses', server: 'primary' })).toBe(1);
    expect(sample(text, 'licgate_frontend_active_connections', { frontend: 'lmgrd' })).toBe(1);
    // "HELLO\n" is 6 bytes in, "HELLO primary\n" 14 bytes out, per session: the 5 ended and the one
    // still open (a license session of hours shows its traffic while it lasts, as in HAProxy).
    expect(sample(text, 'licgate_bytes_in_total', { ...labels, server: 'primary' })).toBe(36);
    expect(sample(text, 'licgate_bytes_out_total', { ...labels, server: 'primary' })).toBe(84);
    expect(sample(text, 'licgate_checks_total', { backend: 'licenses', server: 'primary', result: 'ok' })).toBe(1);
    expect(sample(text, 'licgate_check_duration_seconds_count', { backend: 'licenses', server: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_server_up', { backend: 'licenses', server: 'primary' })).toBe(1);
    expect(sample(text, 'licgate_server_state', { backend: 'licenses', server: 'primary', state: 'UP' })).toBe(1);
    expect(sample(text, 'licgate_server_weight', { backend: 'licenses', server: 'backup' })).toBe(50);
    expect(sample(text, 'licgate_server_tier', { backend: 'licenses', server: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_backend_serving_tier', { backend: 'licenses' })).toBe(0);
    expect(sample(text, 'licgate_connect_retries_total', labels)).toBe(0);

    // The primary crashes; the next session is refused there, retried on the backup, and the
    // passive check (observe_errors: 1) marks the primary DOWN at once: a failover to the backup.
    await primary.kill('SIGKILL');
    expect(await helloOnce(p.port)).toBe('backup');
    // The crash also ends the session held on the primary: its FIN reaches the client, which closes.
    text = await waitFor(async () => {
      const t = await metrics(p);
      return sample(t, 'licgate_sessions_ended_total', { ...labels, end: 'closed' }) === 7 && t;
    }, { timeoutMs: 5000, what: 'the held and the failed-over session closed' });
    expect(sample(text, 'licgate_connections_active', { ...labels, server: 'primary' })).toBe(0);
    // The held session's end counts what the scrape above already showed: the counters only grow.
    expect(sample(text, 'licgate_bytes_in_total', { ...labels, server: 'primary' })).toBe(36);
    expect(sample(text, 'licgate_bytes_out_total', { ...labels, server: 'primary' })).toBe(84);
    expect(sample(text, 'licgate_bytes_out_total', { ...labels, server: 'backup' })).toBe(13);
    expect(sample(text, 'licgate_connect_errors_total', { ...labels, server: 'primary', reason: 'refused' })).toBe(1);
    expect(sample(text, 'licgate_connect_errors_total', { ...labels, server: 'primary', reason: 'timeout' })).toBe(0);
    expect(sample(text, 'licgate_connect_retries_total', labels)).toBe(1);
    expect(sample(text, 'licgate_connections_total', { ...labels, server: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_server_up', { backend: 'licenses', server: 'primary' })).toBe(0);
    expect(sample(text, 'licgate_server_state', { backend: 'licenses', server: 'primary', state: 'DOWN' })).toBe(1);
    expect(sample(text, 'licgate_server_state', { backend: 'licenses', server: 'primary', state: 'UP' })).toBe(0);
    expect(sample(text, 'licgate_server_transitions_total', { backend: 'licenses', server: 'primary', to: 'DOWN' })).toBe(1);
    expect(sample(text, 'licgate_backend_serving_tier', { backend: 'licenses' })).toBe(1);
    expect(sample(text, 'licgate_backend_failovers_total', { backend: 'licenses', from: 'active', to: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_backend_usable_servers', { backend: 'licenses' })).toBe(1);
    held.destroy();

    expect(sample(text, 'licgate_build_info')).toBe(1);
    expect(sample(text, 'licgate_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'licgate_config_last_reload_successful')).toBe(1);
    const lint = promtool(text);
    expect(lint.out).toBe('');
    expect(lint.code).toBe(0);
  });

  it("a server's fall to DOWN is counted from 0: the series exists before the first one, so increase() sees it (LicgateServerFlapping)", async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port));
    const primaryDown = { backend: 'licenses', server: 'primary', to: 'DOWN' };
    let text = await metrics(p);
    for (const to of ['UP', 'DOWN', 'DRAIN', 'MAINT']) expect(sample(text, 'licgate_server_transitions_total', { ...primaryDown, to }), `to="${to}"`).toBe(0);
    expect(sample(text, 'licgate_server_transitions_total', { backend: 'licenses', server: 'backup', to: 'DOWN' })).toBe(0);

    // observe_errors: 1 marks the primary DOWN at the first refused connect.
    await primary.kill('SIGKILL');
    expect(await helloOnce(p.port)).toBe('backup');
    text = await waitFor(async () => {
      const t = await metrics(p);
      return sample(t, 'licgate_server_transitions_total', primaryDown) === 1 && t;
    }, { timeoutMs: 5000, what: 'the primary counted DOWN once' });
    expect(sample(text, 'licgate_server_transitions_total', { backend: 'licenses', server: 'backup', to: 'DOWN' })).toBe(0);
  });

  it("a server's first check and a backend's first failover are counted from 0: their series exist before them, so increase() sees them", async () => {
    // The primary accepts and never answers: its first check is under way for 3 s, then fails, and
    // with fall 1 the primary is DOWN and the backup serves.
    const primary = await startTcpServer(() => {});
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port, 1, 1, '3s'), { waitReady: false });
    const failed = { backend: 'licenses', server: 'primary', result: 'failed' };
    const failover = { backend: 'licenses', from: 'active', to: 'backup' };
    let text = await metrics(p);
    expect(sample(text, 'licgate_checks_total', failed), 'checks of the primary, failed, while the first is under way').toBe(0);
    expect(sample(text, 'licgate_checks_total', { ...failed, result: 'ok' })).toBe(0);
    expect(sample(text, 'licgate_backend_failovers_total', failover), 'failovers active to backup before the first').toBe(0);
    expect(sample(text, 'licgate_backend_serving_tier', { backend: 'licenses' })).toBe(0);

    text = await waitFor(async () => {
      const t = await metrics(p);
      return sample(t, 'licgate_backend_failovers_total', failover) === 1 && t;
    }, { timeoutMs: 10_000, what: 'the failover to the backup counted once' });
    expect(sample(text, 'licgate_checks_total', failed)).toBe(1);
    expect(sample(text, 'licgate_backend_failovers_total', { ...failover, from: 'backup', to: 'active' })).toBe(0);
  });

  it('a client refused for want of a server is counted from 0: the no-server series exists before the first one (LicgateClientsRefused)', async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port));
    const noServer = { frontend: 'lmgrd', backend: 'licenses', end: 'no-server' };
    expect(sample(await metrics(p), 'licgate_sessions_ended_total', noServer)).toBe(0);

    // Both servers gone: the client is closed without a reply.
    await primary.kill('SIGKILL');
    await backup.kill('SIGKILL');
    await expect(helloOnce(p.port)).rejects.toThrow();
    const text = await waitFor(async () => {
      const t = await metrics(p);
      return sample(t, 'licgate_sessions_ended_total', noServer) === 1 && t;
    }, { timeoutMs: 5000, what: 'one no-server session in /metrics' });
    expect(sample(text, 'licgate_sessions_ended_total', { ...noServer, end: 'closed' })).toBe(0);
  });

  it("each frontend × server pair's sessions, bytes, connect errors and races are counted from 0: their series exist before the pair's first session", async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port));
    const labels = { frontend: 'lmgrd', backend: 'licenses' };
    let text = await metrics(p);
    for (const server of ['primary', 'backup']) {
      for (const name of ['licgate_connections_total', 'licgate_connections_active', 'licgate_bytes_in_total', 'licgate_bytes_out_total', 'licgate_connect_races_total']) {
        expect(sample(text, name, { ...labels, server }), `${name}{server="${server}"}`).toBe(0);
      }
      for (const reason of ['refused', 'reset', 'timeout', 'other']) expect(sample(text, 'licgate_connect_errors_total', { ...labels, server, reason }), `${server} ${reason}`).toBe(0);
    }

    // The primary crashes: the first connect to it is refused, and the session goes to the backup.
    // Both are counted before the backup's reply is relayed.
    await primary.kill('SIGKILL');
    expect(await helloOnce(p.port)).toBe('backup');
    text = await metrics(p);
    expect(sample(text, 'licgate_connections_total', { ...labels, server: 'backup' })).toBe(1);
    expect(sample(text, 'licgate_connect_errors_total', { ...labels, server: 'primary', reason: 'refused' })).toBe(1);
    expect(sample(text, 'licgate_connections_total', { ...labels, server: 'primary' })).toBe(0);
  });

  it('promtool rejects what it should (the check is real)', (ctx) => {
    requireTools(['promtool'], ctx);
    const bad = '# HELP licgate_x_total a gauge named like a counter\n# TYPE licgate_x_total gauge\nlicgate_x_total 1\n';
    const lint = promtool(bad);
    expect(lint.code).not.toBe(0);
    expect(lint.out).toContain('licgate_x_total');
  });

  it('an idle licgate sleeps: event-loop lag is sampled every 100 ms, not every 10 (prom-client default)', async () => {
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const p = await startProxy(config(primary.port, backup.port));
    expect(sample(await metrics(p), 'licgate_nodejs_eventloop_lag_max_seconds', {})).toBeGreaterThan(0);
    // Times the main thread blocked in epoll and was woken: every timer that fires counts once.
    const wakeups = () => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]);
    const c0 = wakeups();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 2000)); // the measurement window, not a wait for a condition
    const perSecond = (wakeups() - c0) / ((performance.now() - t0) / 1000);
    // 10 lag samples a second plus the per-second sweeps, the admin listener's timeout check and the
    // log flush measure 12-14 here; the 10 ms default measured 100.
    expect(perSecond).toBeLessThan(40);
  });
});
