import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce } from '../helpers/license-client.js';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

interface RunResult {
  downMs: number;
  /** From the daemon's own log line (its clock, ms resolution): no /status polling delay. */
  downLogMs: number;
  backupMs: number;
  sessions: number;
  failures: string[];
}

const WORKERS = 4;

/**
 * One run: two `licgate simulate` processes (primary, backup) behind `licgate run`; WORKERS loops of
 * HELLO sessions; the primary is SIGKILLed; we time the kill → primary DOWN in /status and the kill →
 * first session answered by the backup, and count every session that failed.
 *
 * The kill lands between sessions: the loops pause, the kill is sent and the process has exited,
 * then the loops go on at once. A session already forwarded to a server that then dies cannot be
 * saved by any proxy (that case — the client is closed promptly — is proxy-server-death.test.ts);
 * what this measures is that no NEW session fails while licgate learns the primary is gone.
 */
async function run(check: string, observeErrors: number | null): Promise<RunResult> {
  const primary = await startSimulator('primary');
  const backup = await startSimulator('backup');
  const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: ${check}${observeErrors === null ? '' : `\n    observe_errors: ${observeErrors}`}
    servers:
      - { name: primary, address: "127.0.0.1:${primary.port}", weight: 100 }
      - { name: backup, address: "127.0.0.1:${backup.port}", weight: 100, backup: true }
`);
  const served: { at: number; by: string }[] = [];
  const failures: string[] = [];
  let gate: Promise<void> | null = null;
  let inflight = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      if (gate) await gate;
      inflight++;
      try {
        const by = await helloOnce(proxy.port, { timeoutMs: 10_000 });
        served.push({ at: performance.now(), by });
      } catch (e) {
        failures.push((e as Error).message);
      } finally {
        inflight--;
      }
    }
  };
  const workers = Array.from({ length: WORKERS }, worker);
  try {
    await waitFor(() => served.filter((s) => s.by === 'primary').length >= 50, { timeoutMs: 10_000, what: '50 sessions on the primary' });
    expect(served.every((s) => s.by === 'primary')).toBe(true);
    let release!: () => void;
    gate = new Promise((r) => (release = r));
    await waitFor(() => inflight === 0, { timeoutMs: 10_000, intervalMs: 1, what: 'the loops to pause between sessions' });
    const t0 = performance.now();
    const t0Wall = Date.now();
    await primary.kill('SIGKILL');
    gate = null;
    release();
    const downAt = await waitFor(
      async () => ((await proxy.server('licenses', 'primary')).state.startsWith('DOWN') ? performance.now() : null),
      { timeoutMs: 20_000, intervalMs: 5, what: 'primary DOWN in /status' },
    );
    const firstBackup = await waitFor(() => served.find((s) => s.at > t0 && s.by === 'backup'), { timeoutMs: 20_000, intervalMs: 5, what: 'a session served by the backup' });
    const n = served.length;
    await waitFor(() => served.length >= n + 50, { timeoutMs: 10_000, what: '50 more sessions after the failover' });
    const downLine = await waitFor(() => proxy.logs.find((l) => l.server === 'primary' && typeof l.to === 'string' && l.to.startsWith('DOWN')), { timeoutMs: 5000, what: 'the DOWN log line' });
    const downLogMs = Date.parse(String(downLine.time)) - t0Wall;
    return { downMs: downAt - t0, downLogMs, backupMs: firstBackup.at - t0, sessions: served.length, failures };
  } finally {
    stop = true;
    await Promise.all(workers);
    await stopAll();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(label: string, check: string, observeErrors: number | null): Promise<RunResult[]> {
  const runs: RunResult[] = [];
  for (let i = 0; i < 3; i++) runs.push(await run(check, observeErrors));
  const fmt = (x: number): string => `${x.toFixed(1)} ms`;
  console.log(
    [
      `primary SIGKILL under ${WORKERS} session loops — ${label}`,
      ...runs.map((r, i) => `  run ${i + 1}: kill → DOWN seen in /status ${fmt(r.downMs)} (daemon log: ${r.downLogMs} ms), kill → first backup session ${fmt(r.backupMs)}, ${r.sessions} sessions, ${r.failures.length} failed`),
      `  median: kill → DOWN in /status ${fmt(median(runs.map((r) => r.downMs)))} (daemon log ${median(runs.map((r) => r.downLogMs))} ms), kill → first backup session ${fmt(median(runs.map((r) => r.backupMs)))}`,
    ].join('\n'),
  );
  return runs;
}

describe('primary killed under a steady connection loop', () => {
  const FAST = '{ type: status, inter: 500ms, fastinter: 200ms, fall: 2, rise: 2, timeout: 300ms }';
  const DEFAULTS = '{ type: status }';

  it('fast checks (inter 500ms, fastinter 200ms, fall 2, rise 2, timeout 300ms): no client sees a failure', async () => {
    const runs = await measure(`check ${FAST}, observe_errors 1 (default)`, FAST, null);
    for (const r of runs) expect(r.failures).toEqual([]);
  });

  it('default check timings (inter 2s, fall 3, rise 2, timeout 1s): no client sees a failure', async () => {
    const runs = await measure(`check ${DEFAULTS} (defaults), observe_errors 1 (default)`, DEFAULTS, null);
    for (const r of runs) expect(r.failures).toEqual([]);
  });

  it('active checks alone (observe_errors: 0), fast checks: retries still hide the dead primary', async () => {
    const runs = await measure(`check ${FAST}, observe_errors 0 (active checks only)`, FAST, 0);
    for (const r of runs) expect(r.failures).toEqual([]);
  });

  it('active checks alone (observe_errors: 0), default timings', async () => {
    const runs = await measure(`check ${DEFAULTS} (defaults), observe_errors 0 (active checks only)`, DEFAULTS, 0);
    for (const r of runs) expect(r.failures).toEqual([]);
  });
});
