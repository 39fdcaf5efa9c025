import type { LineSink } from './line-batch.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * The `pretty` log format: each pino JSON line rendered as `HH:MM:SS.mmm LEVEL msg  key=value ...`
 * and handed on to the same sink as JSON lines, so a terminal or pipe that stops reading costs no
 * more memory in this format than in the other. It parses every line: for a terminal, not for
 * production.
 */
export class PrettyLines implements LineSink {
  constructor(private readonly next: LineSink) {}

  write(line: string): boolean {
    return this.next.write(renderPretty(line));
  }

  flush(cb?: (err?: Error) => void): void {
    this.next.flush(cb);
  }

  flushSync(): void {
    this.next.flushSync();
  }
}

export function renderPretty(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, name: _name, ...rest } = record;
  let extras = '';
  for (const [k, v] of Object.entries(rest)) extras += ` ${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`;
  const text = `${String(time).slice(11, 23)} ${LEVELS[level as number] ?? String(level)} ${String(msg)}${extras ? ' ' + extras : ''}`;
  return `${text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}\n`;
}

/**
 * Reasons come from the network (an agent's line, a STATUS reply, a server's error text): shown raw,
 * an escape sequence would drive the terminal and a line end would forge a log line. JSON escapes them.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
