import { loadConfigFile } from '../config/load.js';
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
    try {
      const cfg = loadConfigFile(file);
      const roles = [cfg.frontends.length ? `proxy (${count(cfg.frontends.length, 'frontend')})` : '', cfg.status || cfg.agent ? 'sidecar responders' : ''].filter(Boolean).join(' + ');
      const servers = cfg.backends.reduce((n, b) => n + b.servers.length, 0);
      // The gcc convention, so editors and CI annotate the line; they do not change the exit code.
      for (const line of configDiagnostics([], cfg.warnings)) process.stderr.write(line + '\n');
      const warned = cfg.warnings.length ? ` (${count(cfg.warnings.length, 'warning')})` : '';
      process.stdout.write(`${file}: valid — ${roles || 'admin only'}, ${count(cfg.backends.length, 'backend')}, ${count(servers, 'server')}${warned}\n`);
      return 0;
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(configDiagnostics(e.issues, e.warnings).join('\n') + '\n');
        return 2;
      }
      throw e;
    }
  },
};

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
