import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { configDiagnostics, ConfigError } from '../errors.js';
import { help, parse, required, type Command } from './command.js';

export const validate: Command = {
  name: 'validate',
  summary: 'check a config file; exit 0 if valid (FILE:LINE:COL: warning: message per warning), else 2 with FILE:LINE:COL: message per error, warnings too, in file order',
  usage: 'licgate validate --config FILE',
  async run(args) {
    const { values } = parse(args, { config: { type: 'string', short: 'c' } });
    if (values.help) return help(this);
    const file = required(values.config, '--config FILE');
    const cfg = loadReporting(file);
    if (cfg === null) return 2;
    const roles = [cfg.frontends.length ? `proxy (${count(cfg.frontends.length, 'frontend')})` : '', cfg.status || cfg.agent ? 'sidecar responders' : ''].filter(Boolean).join(' + ');
    const servers = cfg.backends.reduce((n, b) => n + b.servers.length, 0);
    const warned = cfg.warnings.length ? ` (${count(cfg.warnings.length, 'warning')})` : '';
    process.stdout.write(`${file}: valid — ${roles || 'admin only'}, ${count(cfg.backends.length, 'backend')}, ${count(servers, 'server')}${warned}\n`);
    return 0;
  },
};

/**
 * The config in `file`, its warnings written to stderr; null once its errors (warnings among them,
 * in file order) are written there: `validate` and `reload` exit 2 then.
 */
export function loadReporting(file: string): Config | null {
  try {
    const cfg = loadConfigFile(file);
    // The gcc convention, so editors and CI annotate the line; they do not change the exit code.
    for (const line of configDiagnostics([], cfg.warnings)) process.stderr.write(line + '\n');
    return cfg;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(configDiagnostics(e.issues, e.warnings).join('\n') + '\n');
      return null;
    }
    throw e;
  }
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
