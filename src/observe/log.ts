import { Writable } from 'node:stream';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { Config } from '../config/schema.js';
import { LineBatch } from './line-batch.js';

export type { Logger };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * JSON lines by default, written asynchronously so a slow terminal, disk or reader never stalls the relay;
 * `pretty` is a compact human format for a terminal (it parses each line, so it is not for production).
 */
export function createLogger(cfg: Config['log'], dest: NodeJS.WritableStream = process.stdout): Logger {
  const base = { level: cfg.level, base: { name: 'licgate' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (cfg.format === 'pretty') return pino(base, prettyStream(dest));
  if (dest === process.stdout) return stdoutLogger(base);
  return pino(base, dest);
}

/** Most log output held for a reader that has stopped reading (a stalled journald or pipe); beyond it lines are dropped and counted. */
export const LOG_HOLD_LIMIT = 4 * 1024 * 1024;
/** At exit, how long held lines are still offered to a reader that is not reading. */
export const EXIT_FLUSH_MS = 1000;
/** Log handed to the writer in batches of about this many characters (or each second, or at exit). */
export const LOG_BATCH_CHARS = 32 * 1024;

/**
 * One write(2) per LOG_BATCH_CHARS of log instead of one per session line: at thousands of sessions
 * a second the per-line syscalls were a tenth of the proxy's CPU (see LineBatch for the batch size).
 * A timer bounds how long a line can wait (a state change on a quiet daemon must still show up
 * promptly), and exit flushes.
 *
 * stdout as a pipe or socket is non-blocking here (Node sets it so once process.stdout exists), so a
 * reader that stops reading (journald stuck, a log shipper gone) shows as EAGAIN; sonic-boom retries
 * every 100 ms and holds new lines meanwhile. Unbounded, that held every session line in memory for
 * as long as the reader stalled (RSS 67 → 141 MB in 20 s of connection churn), and at exit its
 * synchronous flush retried forever, so SIGTERM never stopped the daemon. Now at most LOG_HOLD_LIMIT
 * is held, what is dropped beyond it is counted and reported once the reader catches up, and the
 * exit flush gives up after EXIT_FLUSH_MS.
 */
function stdoutLogger(base: LoggerOptions): Logger {
  let exitDeadline = 0;
  // minLength 0: LineBatch does the batching, sonic-boom writes each batch as it comes.
  const out = pino.destination({
    dest: 1,
    sync: false,
    minLength: 0,
    maxLength: LOG_HOLD_LIMIT,
    retryEAGAIN: () => exitDeadline === 0 || Date.now() < exitDeadline,
  });
  const batch = new LineBatch(out, LOG_BATCH_CHARS);
  const log = pino(base, batch);
  let dropped = 0;
  let droppedSince = 0;
  // sonic-boom drops a whole write, here a batch of whole lines.
  out.on('drop', (data: string) => {
    if (dropped === 0) droppedSince = Date.now();
    dropped += countLines(data);
  });
  // 'drain': the backlog is written (sonic-boom emits it whenever a write leaves nothing held).
  out.on('drain', () => {
    if (dropped === 0) return;
    const lines = dropped;
    dropped = 0;
    log.warn({ dropped_lines: lines, since: new Date(droppedSince).toISOString() }, 'log output was not being read: lines dropped');
  });
  setInterval(() => batch.flush(), 1000).unref();
  // Ahead of pino's own exit hook, which flushes with no deadline: it finds the stream destroyed.
  process.prependListener('exit', () => {
    exitDeadline = Date.now() + EXIT_FLUSH_MS;
    try {
      batch.flushSync();
    } catch {
      // stdout closed, or its reader still not reading at the deadline: the rest is lost.
    }
    out.destroy();
  });
  return log;
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        const { level, time, msg, name: _n, ...rest } = JSON.parse(chunk.toString()) as Record<string, unknown>;
        const extras = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
          .join(' ');
        out.write(`${String(time).slice(11, 23)} ${(LEVELS[level as number] ?? level) as string} ${msg as string}${extras ? '  ' + extras : ''}\n`);
      } catch {
        out.write(chunk);
      }
      cb();
    },
  });
}
