import { pino, type Logger } from 'pino';
import type { SessionRecord } from '../proxy/session.js';

const { streamSym, chindingsSym, timeSym } = pino.symbols;

const INFO = 30;

/**
 * The one "session closed" line per session. pino's generic object serializer cost ~27 µs of CPU
 * per proxied connection under connection churn (11 %, wrk Connection: close; `npm run bench`), so
 * this renders the known record directly and hands the line to the logger's own destination: the
 * same bytes `log.info(rec, 'session closed')` writes (a test compares them), batching and flushing
 * unchanged. A logger without those internals (a test's silent logger) gets plain log.info.
 */
export function sessionLogger(log: Logger): (rec: SessionRecord) => void {
  const p = log as unknown as Record<symbol, unknown>;
  const stream = p[streamSym] as { write?: (line: string) => unknown } | undefined;
  const time = p[timeSym] as (() => string) | undefined;
  const bindings = typeof p[chindingsSym] === 'string' ? (p[chindingsSym] as string) : '';
  if (typeof stream?.write !== 'function' || typeof time !== 'function') return (rec) => log.info(rec, 'session closed');
  return (rec) => {
    if (!log.isLevelEnabled('info')) return;
    stream.write!(
      `{"level":${INFO}${time()}${bindings},"client":${JSON.stringify(rec.client)},"frontend":${JSON.stringify(rec.frontend)},"backend":${JSON.stringify(rec.backend)}` +
        `,"server":${rec.server === null ? 'null' : JSON.stringify(rec.server)},"bytes_in":${rec.bytes_in},"bytes_out":${rec.bytes_out},"duration_ms":${rec.duration_ms}` +
        `,"end":"${rec.end}","retries":${rec.retries}${rec.error !== undefined ? `,"error":${JSON.stringify(rec.error)}` : ''},"msg":"session closed"}\n`,
    );
  };
}
