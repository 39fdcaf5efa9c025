import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_FLUSH_MS, LOG_HOLD_LIMIT } from '../../src/observe/log.js';
import { startProxy, startTcpServer, stopAll, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

// Names of the longest kind make each session line ~430 bytes, so fewer sessions fill the hold limit.
const FE = `fe-${'f'.repeat(61)}`;
const BE = `be-${'b'.repeat(61)}`;
const SV = `sv-${'s'.repeat(61)}`;
const DROPPED = 'log output was not being read: lines dropped';

/** A backend that ends every connection at once: each session is one line in the log, and quick. */
async function closingBackend(): Promise<number> {
  return (await startTcpServer((s) => s.end())).port;
}

async function licgate(backendPort: number): Promise<ProxyProcess> {
  return startProxy(
    `shutdown_delay: 0s\nfrontends:\n  - { name: ${FE}, listen: 127.0.0.1:0, backend: ${BE}, inband_status: false }\n` +
      `backends:\n  - name: ${BE}\n    check: { type: none }\n    servers: [ { name: ${SV}, address: 127.0.0.1:${backendPort} } ]\n`,
  );
}

/** `count` sessions through `port`, `parallel` at a time; each waits for the backend's FIN and answers it. */
async function churn(port: number, count: number, parallel = 64): Promise<void> {
  let started = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', reject);
      s.on('end', () => s.end());
      s.on('close', () => resolve());
      s.resume();
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (started < count) {
        started++;
        await one();
      }
    }),
  );
}

const sessionLines = (p: ProxyProcess) => p.logs.filter((l) => l.msg === 'session closed');

describe('log output whose reader stops reading', () => {
  it('holds at most LOG_HOLD_LIMIT, drops whole lines beyond it and reports how many once the reader reads again', async () => {
    const p = await licgate(await closingBackend());
    p.child.stdout!.pause();
    const sessions = 16_000;
    await churn(p.port, sessions);
    // The relay is unaffected: every session above completed while stdout was not read.
    expect(sessionLines(p)).toHaveLength(0);
    p.child.stdout!.resume();

    const report = await waitFor(() => p.logs.find((l) => l.msg === DROPPED), { timeoutMs: 20_000, what: `"${DROPPED}"` });
    const received = sessionLines(p);
    const dropped = report.dropped_lines as number;
    // Every session line either arrived whole or was counted: nothing lost silently, nothing torn.
    expect(p.logs.filter((l) => l.level === undefined)).toEqual([]);
    expect(dropped).toBeGreaterThan(0);
    expect(received.length + dropped).toBe(sessions);
    // What arrived is what licgate held, plus what the pipe and the reader's buffer took before it stalled.
    const receivedBytes = received.reduce((n, l) => n + JSON.stringify(l).length + 1, 0);
    expect(receivedBytes).toBeGreaterThan(LOG_HOLD_LIMIT * 0.9);
    expect(receivedBytes).toBeLessThan(LOG_HOLD_LIMIT + 1024 * 1024);
    expect(Date.parse(report.since as string)).toBeLessThanOrEqual(Date.now());
  }, 90_000);

  it('SIGTERM still stops licgate: the exit flush gives up on a reader that is not reading after EXIT_FLUSH_MS', async () => {
    const p = await licgate(await closingBackend());
    p.child.stdout!.pause();
    // ~1.3 MB of session lines: more than the pipe and the reader's buffer take, so licgate holds some.
    await churn(p.port, 3_000);
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    await waitFor(() => p.child.exitCode !== null || p.child.signalCode !== null, { timeoutMs: EXIT_FLUSH_MS + 10_000, what: 'licgate to exit after SIGTERM' });
    const ms = Date.now() - t0;
    expect([p.child.exitCode, p.child.signalCode]).toEqual([0, null]);
    // shutdown_delay 0 and no open sessions: the exit flush's deadline is most of the wait.
    expect(ms).toBeGreaterThanOrEqual(EXIT_FLUSH_MS);
  }, 60_000);
});
