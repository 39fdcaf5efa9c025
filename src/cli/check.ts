import { UsageError } from '../errors.js';
import { parse, type Command } from './command.js';
import { help } from './validate.js';

export const check: Command = {
  name: 'check',
  summary: 'GET a health URL; exit 0 on HTTP 200, 1 otherwise (keepalived vrrp_script)',
  usage: 'licgate check [--url http://127.0.0.1:8404/health] [--timeout 1000]',
  async run(args) {
    const { values } = parse(args, { url: { type: 'string' }, timeout: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } });
    if (values.help) return help(this);
    const url = values.url ?? 'http://127.0.0.1:8404/health';
    const timeout = Number(values.timeout ?? 1000);
    if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout: expected milliseconds, found "${values.timeout}"`);
    try {
      // Global fetch (undici inside Node) keeps this command free of imports that slow its start-up.
      const res = await fetch(url, { signal: AbortSignal.timeout(timeout) });
      const body = await res.text();
      if (!values.quiet) process.stdout.write(`${res.status} ${body.length < 300 ? body.trim() : ''}\n`);
      return res.status === 200 ? 0 : 1;
    } catch (e) {
      if (!values.quiet) process.stderr.write(`licgate check: ${url}: ${(e as Error).name === 'TimeoutError' ? `no answer within ${timeout}ms` : ((e as Error & { cause?: Error }).cause?.message ?? (e as Error).message)}\n`);
      return 1;
    }
  },
};
