import { loadConfigFile } from '../config/load.js';
import { Daemon } from '../daemon.js';
import { ConfigError, ListenError } from '../errors.js';
import { createLogger } from '../observe/log.js';
import { help, parse, required, type Command } from './command.js';

export const run: Command = {
  name: 'run',
  summary: 'run the daemon in the foreground (SIGHUP: reload the config; SIGTERM/SIGINT: graceful stop; a second signal: stop now)',
  usage: 'licgate run --config FILE',
  async run(args) {
    const { values } = parse(args, { config: { type: 'string', short: 'c' } });
    if (values.help) return help(this);
    const file = required(values.config, '--config FILE');
    let cfg;
    try {
      cfg = loadConfigFile(file);
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(e.issues.map(String).join('\n') + '\n');
        return 2;
      }
      throw e;
    }
    const log = createLogger(cfg.log);
    const daemon = new Daemon(cfg, log);
    const starting = daemon.start();
    const stopped = runUntilSignal(daemon, cfg.shutdown_grace, undefined, starting);
    try {
      await starting;
    } catch (e) {
      if (e instanceof ListenError) {
        process.stderr.write(`licgate: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
    return stopped;
  },
};

/**
 * Resolves with the exit code once a signal has stopped the daemon. The handlers go in before
 * `starting` settles: start-up binds the admin listener (so /health answers) and then waits on DNS,
 * and a SIGHUP without a handler kills the process, a `systemctl reload` just after a start that
 * Restart=on-failure does not undo. A signal that arrives meanwhile takes effect once start-up is done.
 */
export function runUntilSignal(daemon: Daemon, graceMs: number, onStop?: () => Promise<void>, starting: Promise<unknown> = Promise.resolve()): Promise<number> {
  return new Promise((resolve) => {
    let started = false;
    let stopping: string | null = null;
    let reloadWanted = false;
    const stop = (signal: string): void => {
      if (stopping !== null) {
        daemon.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = signal;
      daemon.log.info({ signal }, started ? 'signal received' : 'signal received during start-up');
      if (started) shutDown();
    };
    const shutDown = (): void => {
      void daemon
        .shutdown(graceMs)
        .then(() => onStop?.())
        .then(() => {
          daemon.log.info('stopped');
          daemon.log.flush();
          resolve(0);
        });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // Reload: the daemon logs the outcome (one line) and keeps the old config when the new one is bad.
    process.on('SIGHUP', () => {
      if (started) return void daemon.reload('SIGHUP');
      reloadWanted = true;
      daemon.log.info({ signal: 'SIGHUP' }, 'signal received during start-up');
    });
    starting.then(
      () => {
        started = true;
        if (stopping !== null) shutDown();
        else if (reloadWanted) void daemon.reload('SIGHUP');
      },
      () => {
        // The caller reports a failed start-up and exits.
      },
    );
  });
}
