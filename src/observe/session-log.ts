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
  const stamp = time === pino.stdTimeFunctions.isoTime ? isoTimeByMillisecond() : time;
  // Frontend, backend and server names come from the config, a handful per daemon: each is
  // JSON-quoted once, not on every line (the cache is dropped if reloads ever grow it past reason).
  const quoted = new Map<string, string>();
  const quote = (name: string): string => {
    let q = quoted.get(name);
    if (q === undefined) {
      if (quoted.size >= 1024) quoted.clear();
      quoted.set(name, (q = JSON.stringify(name)));
    }
    return q;
  };
  return (rec) => {
    if (!log.isLevelEnabled('info')) return;
    // rec.client is getpeername's address and port or '-': hex digits, '.', ':' and '[]', nothing
    // to escape, except a link-local address's zone, the interface name, where Linux allows '"' and '\'.
    const client = rec.client.includes('%') ? JSON.stringify(rec.client) : `"${rec.client}"`;
    stream.write!(
      `{"level":${INFO}${stamp()}${bindings},"client":${client},"frontend":${quote(rec.frontend)},"backend":${quote(rec.backend)}` +
        `,"server":${rec.server === null ? 'null' : quote(rec.server)},"bytes_in":${rec.bytes_in},"bytes_out":${rec.bytes_out},"duration_ms":${rec.duration_ms}` +
        `,"end":"${rec.end}","retries":${rec.retries}${rec.error !== undefined ? `,"error":${JSON.stringify(rec.error)}` : ''},"msg":"session closed"}\n`,
    );
  };
}

/** pino's isoTime, formatted once per millisecond: thousands of sessions a second share a few hundred stamps. */
function isoTimeByMillisecond(): () => string {
  let ms = -1;
  let text = '';
  return () => {
    const now = Date.now();
    if (now !== ms) {
      ms = now;
      text = `,"time":"${new Date(now).toISOString()}"`;
    }
    return text;
  };
}
