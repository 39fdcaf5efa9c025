import { execFile } from 'node:child_process';
import type { Logger } from './log.js';

/** systemd-notify gives up waiting for systemd after 5 s itself; this bounds one that hangs anyway. */
const SEND_TIMEOUT_MS = 10_000;
/** How long a stop waits for the messages still on their way, as the log's flush at exit does. */
const EXIT_WAIT_MS = 1_000;

/**
 * Tells systemd (a `Type=notify` unit) what licgate is doing: READY=1 with a STATUS= line for
 * `systemctl status`, RELOADING=1 and STOPPING=1. Node cannot send AF_UNIX datagrams, so each
 * message is one run of the systemd-notify binary. Without --no-block it waits until systemd has
 * taken the message; a sender that exits first cannot be matched to the unit (its message is
 * dropped). licgate never waits for it: the runs go one at a time in order, so a READY=1 does not
 * overtake the RELOADING=1 before it, and a failing or missing systemd-notify is logged once.
 * Without NOTIFY_SOCKET (not started by systemd as Type=notify) nothing is run.
 */
export class SystemdNotify {
  /** systemd-notify's environment, or null when there is no NOTIFY_SOCKET. */
  private readonly env: NodeJS.ProcessEnv | null;
  private queue: Promise<void> = Promise.resolve();
  private failed = false;

  constructor(private readonly log: Logger, env: NodeJS.ProcessEnv = process.env) {
    const socket = env.NOTIFY_SOCKET;
    // Out of licgate's own environment, as sd_notify(unset_environment) does: exec checks inherit
    // it, and under NotifyAccess=all a check command's notification would pass for licgate's.
    delete env.NOTIFY_SOCKET;
    // systemd-notify needs nothing else of it: not the admin token a shell may have exported.
    this.env = socket ? { ...(env.PATH !== undefined ? { PATH: env.PATH } : {}), NOTIFY_SOCKET: socket } : null;
  }

  ready(status: string): void {
    this.send(['--ready', `--status=${status}`]);
  }

  reloading(): void {
    this.send(['RELOADING=1']);
  }

  stopping(): void {
    this.send(['STOPPING=1']);
  }

  /**
   * Resolves once every message sent so far has been taken, or after EXIT_WAIT_MS. A stop waits
   * for it: once the main process exits, systemd SIGKILLs what is left in the unit (KillMode=mixed),
   * a systemd-notify still waiting to hand over STOPPING=1 too, and journals the kill.
   */
  sent(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, EXIT_WAIT_MS)));
    return Promise.race([this.queue, late]).finally(() => clearTimeout(timer));
  }

  private send(args: string[]): void {
    const env = this.env;
    if (env === null) return;
    this.queue = this.queue.then(() => new Promise<void>((resolve) => {
      execFile('systemd-notify', args, { env, timeout: SEND_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
        if (err && !this.failed) {
          this.failed = true;
          const found = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no systemd-notify on PATH (Debian package systemd)' : stderr.trim() || err.message;
          this.log.error({ notify_socket: env.NOTIFY_SOCKET, args, reason: found }, `could not tell systemd ${args.join(' ')} with systemd-notify: ${found}; a Type=notify unit waits for READY=1 until TimeoutStartSec (logged once)`);
        }
        resolve();
      });
    }));
  }
}
