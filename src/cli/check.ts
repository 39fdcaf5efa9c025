import { get } from 'node:http';
import { UsageError } from '../errors.js';
import { help, notHttpAnswer, parse, type Command } from './command.js';

export const check: Command = {
  name: 'check',
  summary: 'GET a health URL (one without a path, http://HOST:PORT, means its /health); exit 0 on HTTP 200, 1 otherwise (keepalived vrrp_script)',
  usage: 'licgate check [--url http://127.0.0.1:8404/health] [--timeout 1000] [--quiet]',
  async run(args) {
    const { values } = parse(args, { url: { type: 'string' }, timeout: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } });
    if (values.help) return help(this);
    // A URL without a path names the admin listener: its /health is meant. Taken as written, its
    // "/" is the stats page, which answers 200 whatever the health, so the check could never fail.
    const url = values.url === undefined ? 'http://127.0.0.1:8404/health' : /^http:\/\/[^/?#]+$/.test(values.url) ? `${values.url}/health` : values.url;
    // node:http throws on a URL it cannot parse (a port over 65535, no host): that is a typo in keepalived's config, not a crash.
    if (!/^http:\/\//.test(url) || !URL.canParse(url)) throw new UsageError(`--url: expected an http:// URL, found "${values.url}"`);
    const timeout = Number(values.timeout ?? 1000);
    if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError(`--timeout: expected milliseconds, found "${values.timeout}"`);
    const say = (out: NodeJS.WriteStream, text: string): void => {
      if (!values.quiet) out.write(text);
    };
    // node:http rather than fetch: keepalived runs this every second, and booting fetch's undici
    // cost ~150 ms of CPU per call (node:http: ~15 ms over Node's own start-up).
    return new Promise((resolve) => {
      const req = get(url, { timeout, headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 300) body += d;
        });
        res.on('end', () => {
          say(process.stdout, `${res.statusCode} ${body.length < 300 ? body.trim() : ''}\n`);
          resolve(res.statusCode === 200 ? 0 : 1);
        });
        res.on('error', () => resolve(1));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout}ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        say(process.stderr, `licgate check: ${url}: ${e.code === 'ECONNREFUSED' ? 'connection refused' : (notHttpAnswer(e) ?? e.message)}\n`);
        resolve(1);
      });
    });
  },
};
