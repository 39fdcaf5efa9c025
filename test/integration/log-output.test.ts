import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_FLUSH_MS, LOG_HOLD_LIMIT } from '../../src/observe/log.js';
import { startProxy, startTcpServer, stopAll, type LogLine, type ProxyProcess, type StartProxyOptions } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

// Names of the longest kind make each session line ~430 bytes, so fewer sessions fill the hold limit.
const FE = `fe-${'f'.repeat(61)}`;
const BE = `be-${'b'.repeat(61)}`;
const SV = `sv-${'s'.repeat(61)}`;
const DROPPED = 'log output was not being read: lines dropped';
/** Runs licgate on a pseudo-terminal: script(1) copies the terminal to our pipe, so pausing the pipe stops script, which stops reading the terminal. */
const TERMINAL = ['sh', '-c', 'exec script -qfec "exec $*" /dev/null', 'sh'];

/** A backend that ends every connection at once: each session is one line in the log, and quick. */
async function closingBackend(): Promise<number> {
  return (await startTcpServer((s) => s.end())).port;
}

async function licgate(backendPort: number, format: 'json' | 'pretty' = 'json', opts: StartProxyOptions = {}): Promise<ProxyProcess> {
  return startProxy(
    `log: { level: info, format: ${format} }\nshutdown_delay: 0s\nfrontends:\n  - { name: ${FE}, listen: 127.0.0.1:0, backend: ${BE}, inband_status: false }\n` +
      `backends:\n  - name: ${BE}\n    check: { type: none }\n    servers: [ { name: ${SV}, address: 127.0.0.1:${backendPort} } ]\n`,
    opts,
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
  // pretty renders each line before it joins the batch, so it shares the hold limit, the drop count and the report.
  it.each(['json', 'pretty'] as const)(
    'log format %s: holds at most LOG_HOLD_LIMIT, drops whole lines beyond it and reports how many once the reader reads again',
    async (format) => {
      const p = await licgate(await closingBackend(), format);
      let receivedBytes = 0;
      // The harness reads stdout as UTF-8; these lines are ASCII, so characters are bytes.
      p.child.stdout!.on('data', (d: string) => (receivedBytes += d.length));
      p.child.stdout!.pause();
      const before = p.logs.length;
      const sessions = 16_000;
      await churn(p.port, sessions);
      // The relay is unaffected: every session above completed while stdout was not read.
      expect(sessionLines(p)).toHaveLength(0);
      p.child.stdout!.resume();

      const report = await waitFor(() => p.logs.find((l) => l.msg === DROPPED), { timeoutMs: 20_000, what: `"${DROPPED}"` });
      const received = sessionLines(p);
      const dropped = report.dropped_lines as number;
      // Every line either arrived whole or was counted: nothing lost silently, nothing torn.
      const whole = (l: LogLine): boolean => (format === 'json' ? l.level !== undefined : l.pretty !== undefined);
      expect(p.logs.slice(before).filter((l) => !whole(l))).toEqual([]);
      expect(dropped).toBeGreaterThan(0);
      expect(received.length + dropped).toBe(sessions);
      // What arrived is what licgate held, plus what the pipe and the reader's buffer took before it stalled.
      expect(receivedBytes).toBeGreaterThan(LOG_HOLD_LIMIT * 0.9);
      expect(receivedBytes).toBeLessThan(LOG_HOLD_LIMIT + 1024 * 1024);
      expect(Date.parse(report.since as string)).toBeLessThanOrEqual(Date.now());
    },
    90_000,
  );

  // A terminal's descriptor is blocking (Node makes it so for a TTY). Before pretty lines went through
  // the bounded writer, they were written to process.stdout, synchronously: a terminal nobody read
  // (Ctrl-S, a stuck SSH session, screen in copy mode) stopped the relay once its buffer was full.
  it('log format pretty on a terminal that is not read: the relay keeps serving, and every line arrives once it is read', async (ctx) => {
    requireTools(['script'], ctx);
    const p = await licgate(await closingBackend(), 'pretty', { wrapper: TERMINAL });
    p.child.stdout!.pause();
    try {
      // ~330 bytes a line: 4,000 lines (1.3 MB) are far more than the pipe and the terminal hold.
      const sessions = 4_000;
      let stalled: NodeJS.Timeout | undefined;
      await Promise.race([
        churn(p.port, sessions),
        new Promise((_, reject) => (stalled = setTimeout(() => reject(new Error(`${sessions} sessions did not complete in 20 s: the relay stalled on its terminal`)), 20_000))),
      ]).finally(() => clearTimeout(stalled));
      expect(sessionLines(p)).toHaveLength(0);
      p.child.stdout!.resume();
      // Under the hold limit nothing is dropped: every line arrives once the terminal is read again.
      await waitFor(() => sessionLines(p).length === sessions || undefined, { timeoutMs: 20_000, what: `${sessions} session lines` });
      expect(p.logs.find((l) => l.msg === DROPPED)).toBeUndefined();
    } finally {
      // So that script(1) can pass our SIGTERM on to licgate when the test ends.
      p.child.stdout!.resume();
    }
  }, 60_000);

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

  // On a blocking terminal, a write in flight in the thread pool used to hold Node's exit (it joins
  // that thread) until someone read the terminal again.
  it('SIGTERM stops licgate on a terminal that is not read, after EXIT_FLUSH_MS, with exit code 0', async (ctx) => {
    requireTools(['script'], ctx);
    const p = await licgate(await closingBackend(), 'json', { wrapper: TERMINAL });
    p.child.stdout!.pause();
    try {
      await churn(p.port, 3_000);
      // script(1) is stopped on our paused pipe, so it cannot wait for licgate: licgate stays a zombie, whose exit status /proc keeps.
      const pid = Number(readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8').trim());
      const t0 = Date.now();
      process.kill(pid, 'SIGTERM');
      const stat = await waitFor(
        () => {
          const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return /^\d+ \(.*\) Z /.test(st) ? st : undefined;
        },
        { timeoutMs: EXIT_FLUSH_MS + 10_000, intervalMs: 20, what: `licgate (pid ${pid}) to exit after SIGTERM` },
      );
      const ms = Date.now() - t0;
      // The last field of /proc/PID/stat is the wait status: exit code 0, no signal.
      expect(Number(stat.trim().split(' ').pop())).toBe(0);
      expect(ms).toBeGreaterThanOrEqual(EXIT_FLUSH_MS);
    } finally {
      p.child.stdout!.resume();
    }
  }, 60_000);
});
