import { constants as fsConstants, openSync } from 'node:fs';
import { isatty } from 'node:tty';
import { pino, type Logger, type LoggerOptions } from 'pino';
import type { Config } from '../config/schema.js';
import { LineBatch } from './line-batch.js';
import { PrettyLines, renderPretty } from './pretty-lines.js';

export type { Logger };

/**
 * JSON lines by default, written asynchronously so a slow terminal, disk or reader never stalls the relay;
 * `pretty` is a compact human format for a terminal (it parses each line, so it is not for production).
 */
export function createLogger(cfg: Config['log'], dest: NodeJS.WritableStream = process.stdout): Logger {
  const base = { level: cfg.level, base: { name: 'licgate' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (dest === process.stdout) return stdoutLogger(base, cfg.format);
  if (cfg.format === 'pretty') return pino(base, { write: (line: string) => dest.write(renderPretty(line)) });
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
 * exit flush gives up after EXIT_FLUSH_MS. The `pretty` format goes the same way, rendered line by
 * line (it used to write to process.stdout with no limit: RSS 73 → 225 MB in 20 s behind a stalled pipe).
 */
function stdoutLogger(base: LoggerOptions, format: Config['log']['format']): Logger {
  let exitDeadline = 0;
  // minLength 0: LineBatch does the batching, sonic-boom writes each batch as it comes.
  const out = pino.destination({
    dest: logDescriptor(),
    sync: false,
    minLength: 0,
    maxLength: LOG_HOLD_LIMIT,
    retryEAGAIN: () => exitDeadline === 0 || performance.now() < exitDeadline,
  });
  // pretty is for a person at a terminal (`licgate demo`): each line is handed on at once, not held for a batch.
  const batch = new LineBatch(out, format === 'pretty' ? 0 : LOG_BATCH_CHARS);
  const log = pino(base, format === 'pretty' ? new PrettyLines(batch) : batch);
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
    exitDeadline = performance.now() + EXIT_FLUSH_MS;
    try {
      batch.flushSync();
    } catch {
      // stdout closed, or its reader still not reading at the deadline: the rest is lost.
    }
    out.destroy();
  });
  return log;
}

/**
 * The descriptor the log is written to: stdout, or on a terminal a descriptor of its own, opened
 * non-blocking. A terminal's file description is blocking (Node sets it so for a TTY, and the shell
 * shares it), so on a terminal nobody reads (Ctrl-S, a stuck SSH session, screen in copy mode) a
 * write waits in the kernel: the thread-pool thread that makes it, and at exit Node's join of that
 * thread, forever. Reopened through /proc, the terminal gets a file description of licgate's own
 * whose O_NONBLOCK the shell never sees, and a stalled terminal shows as EAGAIN as a pipe does.
 */
function logDescriptor(): number {
  if (!isatty(1)) return 1;
  try {
    return openSync('/proc/self/fd/1', fsConstants.O_WRONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch {
    return 1; // no /proc (not Linux): the blocking stdout, as before
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
