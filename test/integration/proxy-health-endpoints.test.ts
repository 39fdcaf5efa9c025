import { type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { oneServerYaml, runCli, startInProcessSimulator, startProxy, startTcpServer, stopAll } from '../helpers/proxy-harness.js';
import { sample } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait-for.js';
import { wallClockStep } from '../helpers/wall-clock-step.js';

const cleanup: (() => void)[] = [];
afterEach(async () => {
  await stopAll();
  for (const f of cleanup.splice(0)) f();
});

describe('/ready and /health on the admin listener', () => {
  it('/ready is 503 until every server was checked once, then 200', async () => {
    // A license server that holds every check until the test lets it answer.
    const held: Socket[] = [];
    let answering = false;
    const reply = (s: Socket): void => void s.end('Server Status: Running\r\n');
    const slow = await startTcpServer((s) => {
      s.once('data', () => (answering ? reply(s) : held.push(s)));
    });
    const fast = await startInProcessSimulator('fast');
    const proxy = await startProxy(
      `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 200ms, timeout: 30s }
    servers:
      - { name: fast, address: "127.0.0.1:${fast.port}" }
      - { name: slow, address: "127.0.0.1:${slow.port}" }
`,
      { waitReady: false },
    );
    // The fast server's first check is done, the slow one's is in flight: not ready.
    await waitFor(async () => (await proxy.server('licenses', 'fast')).last_check !== null, { timeoutMs: 5000, what: 'first check of fast' });
    await waitFor(() => held.length === 1, { timeoutMs: 5000, what: 'the slow check to be in flight' });
    const before = await proxy.get('/ready');
    expect(before.status).toBe(503);
    expect(before.json).toEqual({ ready: false, reason: 'first checks pending in licenses' });
    answering = true;
    for (const s of held) reply(s);
    const after = await waitFor(async () => {
      const r = await proxy.get('/ready');
      return r.status === 200 ? r : null;
    }, { timeoutMs: 5000, what: '/ready 200' });
    expect(after.json).toEqual({ ready: true, reason: 'listening, every server checked once' });
  });

  it('/health is 503 with a JSON reason when no server is up, 200 when one is', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 100ms, fastinter: 50ms, downinter: 100ms, rise: 1, fall: 1, timeout: 300ms }
    servers:
      - { name: primary, address: "127.0.0.1:${sim.port}" }
`);
    const up = await proxy.get('/health');
    expect(up.status).toBe(200);
    expect(up.json).toEqual({ ok: true, reason: 'every backend has a server up', backends: { licenses: { running: true, tier: 'active', servers_up: '1/1' } } });
    await sim.close();
    const down = await waitFor(async () => {
      const r = await proxy.get('/health');
      return r.status === 503 ? r : null;
    }, { timeoutMs: 5000, what: '/health 503' });
    expect(down.json).toEqual({ ok: false, reason: 'no server up in backend licenses', backends: { licenses: { running: false, tier: 'none', servers_up: '0/1' } } });
    // What keepalived's vrrp_script runs against it.
    const check = await runCli(['check', '--url', `${proxy.adminUrl}/health`, '--timeout', '2000']);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/^503 /);
    await startInProcessSimulator('primary', { port: sim.port });
    await waitFor(async () => (await proxy.get('/health')).status === 200, { timeoutMs: 5000, what: '/health 200 again' });
    expect((await runCli(['check', '--url', `${proxy.adminUrl}/health`, '--timeout', '2000'])).code).toBe(0);
  });

  it('/status lists every server with state, tier, weight, connections and the last check', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 100ms, rise: 1, fall: 1, timeout: 300ms }
    servers:
      - { name: primary, address: "127.0.0.1:${sim.port}", weight: 100 }
      - { name: dead, address: "127.0.0.1:1", weight: 50, backup: true }
`);
    await waitFor(async () => (await proxy.server('licenses', 'dead')).state === 'DOWN', { timeoutMs: 5000, what: 'dead server DOWN' });
    const st = await proxy.status();
    expect(st.frontends).toEqual([expect.objectContaining({ name: 'lmgrd', backend: 'licenses', port: proxy.port, active: 0 })]);
    const b = st.backends[0]!;
    expect(b).toMatchObject({ name: 'licenses', running: true, serving_tier: 0, tier: 'active', servers_up: '1/2' });
    expect(b.servers.map((s) => [s.name, s.state, s.tier, s.weight, s.active, s.total])).toEqual([
      ['primary', 'UP', 0, 100, 0, 0],
      ['dead', 'DOWN', 1, 50, 0, 0],
    ]);
    expect(b.servers[0]!.last_check).toMatchObject({ ok: true, reason: 'reply matched "Server Status: Running"' });
    expect(b.servers[0]!.last_check!.duration_ms).toBeGreaterThanOrEqual(0);
    expect(b.servers[1]!.last_check).toMatchObject({ ok: false, reason: 'connection refused' });
  });
});

/** NTP steps and a live-migrated VM's clock sync move the wall clock; what /status says has lasted has not moved with it. */
describe('/status and /metrics after a wall-clock step', () => {
  it('a state entered before the clock stepped forward an hour is dated that long before now, not an hour earlier; uptime and last check likewise', async (ctx) => {
    const clock = wallClockStep(ctx);
    cleanup.push(clock.dispose);
    const sim = await startInProcessSimulator('primary');
    const started = Date.now();
    const proxy = await startProxy(oneServerYaml(sim.port, '{ type: status, inter: 1h }'), { wrapper: clock.wrapper });
    await waitFor(async () => (await proxy.server('licenses', 'primary')).last_check !== null, { timeoutMs: 5000, what: 'the first check' });
    clock.set('+1h');
    // licgate's wall clock now reads the test's plus an hour: what it shows is that far back from it.
    const now = (): number => Date.now() + 3_600_000;
    const status = await proxy.status();
    const s = status.backends[0]!.servers[0]!;
    const metrics = (await proxy.get('/metrics')).body;
    const stateSince = sample(metrics, 'licgate_server_state_since_timestamp_seconds', { backend: 'licenses', server: 'primary' })!;
    const secondsAgo = (ms: number): number => Math.round((now() - ms) / 1000);
    const ages = { since: secondsAgo(Date.parse(s.since)), last_check: secondsAgo(Date.parse(s.last_check!.at)), state_since_metric: secondsAgo(stateSince * 1000), uptime_s: status.uptime_s };
    const elapsed = Math.ceil((Date.now() - started) / 1000);
    for (const [what, age] of Object.entries(ages)) expect(age, `${what} in seconds, running for ${elapsed} s: ${JSON.stringify(ages)}`).toBeLessThanOrEqual(elapsed);
    for (const [what, age] of Object.entries(ages)) expect(age, `${what} in seconds: ${JSON.stringify(ages)}`).toBeGreaterThanOrEqual(0);
  });

  it('a state and a check that have not changed read the same moment at every call (a Prometheus changes() of the metric stays 0)', async () => {
    const sim = await startInProcessSimulator('primary');
    const proxy = await startProxy(oneServerYaml(sim.port, '{ type: status, inter: 1h }'));
    await waitFor(async () => (await proxy.server('licenses', 'primary')).last_check !== null, { timeoutMs: 5000, what: 'the first check' });
    const seen = { since: new Set<string>(), at: new Set<string>(), metric: new Set<number>() };
    for (let i = 0; i < 20; i++) {
      const s = (await proxy.status()).backends[0]!.servers[0]!;
      seen.since.add(s.since);
      seen.at.add(s.last_check!.at);
      seen.metric.add(sample((await proxy.get('/metrics')).body, 'licgate_server_state_since_timestamp_seconds', { backend: 'licenses', server: 'primary' })!);
    }
    expect({ since: [...seen.since], at: [...seen.at], metric: [...seen.metric] }).toEqual({ since: [expect.any(String)], at: [expect.any(String)], metric: [expect.any(Number)] });
  });
});
