import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';

export type { Logger };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * JSON lines by default, written asynchronously so a slow terminal or disk never stalls the relay;
 * `pretty` is a compact human format for a terminal (it parses each line, so it is not for production).
 */
export function createLogger(cfg: Config['log'], dest: NodeJS.WritableStream = process.stdout): Logger {
  const base = { level: cfg.level, base: { name: 'licgate' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (cfg.format === 'pretty') return pino(base, prettyStream(dest));
  if (dest === process.stdout) {
    // One write(2) per 4 KiB of log instead of one per session line: at thousands of sessions a
    // second the per-line syscalls were a tenth of the proxy's CPU. A timer bounds how long a line
    // can wait (a state change on a quiet daemon must still show up promptly), and exit flushes.
    const out = pino.destination({ dest: 1, sync: false, minLength: 4096 });
    setInterval(() => out.flush(), 1000).unref();
    process.once('exit', () => {
      try {
        out.flushSync();
      } catch {
        // stdout already closed: nothing left to save.
      }
    });
    return pino(base, out);
  }
  return pino(base, dest);
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
