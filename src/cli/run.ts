import { constants } from 'node:os';
import { loadConfigFile } from '../config/load.js';
import { Daemon } from '../daemon.js';
import { configDiagnostics, ConfigError, ListenError, StopBeganError } from '../errors.js';
import { createLogger } from '../observe/log.js';
import { SystemdNotify } from '../observe/systemd-notify.js';
import type { ReloadOutcome } from '../reload.js';
import { formatBound } from '../config/address.js';
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
        process.stderr.write(configDiagnostics(e.issues, e.warnings).join('\n') + '\n');
        return 2;
      }
      throw e;
    }
    const log = createLogger(cfg.log);
    // Before the daemon: it takes NOTIFY_SOCKET out of the environment exec checks inherit.
    const notify = new SystemdNotify(log);
    const daemon = new Daemon(cfg, log);
    daemon.reloadWatcher = { reloading: () => notify.reloading(), settled: (outcome) => notify.ready(systemdStatus(daemon, outcome)) };
    // Handlers before start-up: it binds the admin listener (/health answers) and then waits on DNS,
    // and a SIGHUP without a handler kills the process, a `systemctl reload` just after a start that
    // Restart=on-failure does not undo. A reload or shutdown asked for meanwhile waits for start-up
    // (Daemon runs them in turn).
    const stopped = runUntilSignal(daemon, undefined, notify);
    try {
      await daemon.start();
      // Ready once every listener is bound and server names have their first address, not after the
      // first health checks: those take up to a check's timeout, and /health and /ready (what
      // keepalived and HAProxy follow) say when the servers are up. A stop begun meanwhile has
      // sent STOPPING=1 already.
      if (!daemon.shuttingDown) notify.ready(systemdStatus(daemon));
    } catch (e) {
      // A signal stopped it while start-up waited on a listen host: the stop's exit, not start-up's.
      if (e instanceof StopBeganError) {
        daemon.log.info({ reason: e.message }, 'start-up cut short by the stop');
        return stopped;
      }
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
 * `systemctl status`'s line: where licgate listens, and what the last reload refused (the file on
 * disk is then not the config in force). One line: a newline in a YAML error's excerpt would start
 * another VAR=value field of the message.
 */
function systemdStatus(daemon: Daemon, reload?: ReloadOutcome): string {
  const listening = daemon.frontends.map((f) => `${f.name} ${formatBound(f.address())}`);
  if (daemon.statusResponder) listening.push(`status ${formatBound(daemon.statusResponder.address())}`);
  if (daemon.agentResponder) listening.push(`agent ${formatBound(daemon.agentResponder.address())}`);
  if (daemon.admin) listening.push(`admin ${formatBound(daemon.admin.address())}`);
  const refused = reload && !reload.ok ? `; last reload refused, running the previous config: ${reload.errors[0] ?? ''}` : '';
  return `listening: ${listening.join(', ')}${refused}`.replace(/\s+/g, ' ').slice(0, 400);
}

/** Resolves with the exit code once a signal has stopped the daemon. */
export function runUntilSignal(daemon: Daemon, onStop?: () => Promise<void>, notify?: SystemdNotify): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        daemon.log.warn({ signal }, 'second signal: exiting now');
        // 128 + the signal's number, as a shell reports a process the signal ended (143 for SIGTERM):
        // the stop was asked for, not a failure (the unit's SuccessExitStatus lists these, so
        // Restart=on-failure leaves it stopped), and exit() still runs the hook that flushes the log.
        process.exit(128 + constants.signals[signal as NodeJS.Signals]);
      }
      stopping = true;
      daemon.log.info({ signal }, 'signal received');
      notify?.stopping();
      void daemon
        .shutdown()
        .then(() => onStop?.())
        .then(() => notify?.sent())
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
      daemon.log.info({ signal: 'SIGHUP' }, 'signal received');
      void daemon.reload('SIGHUP');
    });
    // Unhandled, SIGUSR1 makes Node open its inspector on 127.0.0.1:9229, where any local user could
    // run code as licgate, and SIGUSR2 kills the daemon; both are sent by habit (reopen logs, dump
    // stats). A listener turns off both defaults.
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
      process.on(signal, () => daemon.log.warn({ signal }, 'signal ignored: licgate uses SIGHUP (reload) and SIGTERM/SIGINT (stop) only'));
    }
  });
}
