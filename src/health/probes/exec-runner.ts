import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pollFirstTimeout } from '../../io/poll-first-timeout.js';
import { checkEnvironment } from './check-env.js';

export interface ExecOptions {
  timeoutMs: number;
  /** Per stream; default 64 KiB. */
  maxOutputBytes?: number;
  /** Added to what checkEnvironment keeps of licgate's environment. */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Told the command's pid once it has started: a caller may need to name a process that outlives its kill. */
  onSpawn?: (pid: number) => void;
}

export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
  /** Set when the command could not be started at all (e.g. "ENOENT: spawn lmutil"). */
  spawnError?: string;
  /** The errno name behind spawnError, when there is one ("ENOENT", "EMFILE"). */
  spawnErrorCode?: string;
}

const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;
// After the command exits or the group is killed, a process that stayed behind (a background job
// of a wrapper script; one that escaped the group with setsid) may still hold our pipes open:
// waiting for it would hold the verdict until the check timeout, or for ever.
const CLOSE_GRACE_MS = 500;

/**
 * Runs a check command without a shell, in its own process group, and always settles: on timeout,
 * abort or an output flood the whole group is SIGKILLed, because license tools (lmutil on a dead
 * triad member) hang and wrapper scripts leave grandchildren that a plain child.kill() would orphan.
 * It settles by the command's exit: a grandchild still holding the output half a second later is
 * killed with the group, and so is one left running once it has settled.
 */
export async function runExec(argv: string[], opts: ExecOptions): Promise<ExecResult> {
  const command = argv[0];
  if (command === undefined || command === '') {
    throw new TypeError(`runExec: expected a command in argv[0], found ${JSON.stringify(argv)}`);
  }
  const maxBytes = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);

  if (opts.signal?.aborted) {
    return blank({ durationMs: elapsed(), spawnError: 'aborted before the command was started' });
  }

  let child: ChildProcess;
  try {
    child = spawn(command, argv.slice(1), {
      shell: false,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Tools print localized (and differently formatted) text otherwise, and the parsers read text.
      env: { ...checkEnvironment(process.env), ...opts.env, LANG: 'C', LC_ALL: 'C' },
    });
  } catch (err) {
    // spawn throws synchronously for malformed arguments (e.g. a NUL byte) rather than emitting 'error'.
    return blank({ durationMs: elapsed(), ...spawnFailure(err) });
  }
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);

  return new Promise<ExecResult>((resolve) => {
    let timedOut = false;
    let truncated = false;
    let killed = false;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;

    const killGroup = (): void => {
      if (killed || child.pid === undefined) return;
      killed = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch (err) {
        // ESRCH: the whole group is already gone, which is what we wanted. Anything else (EPERM
        // after a setuid exec) must not throw out of a timer; the direct child is the best we can do.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') child.kill('SIGKILL');
      }
      if (!settled && exited()) startGrace();
    };
    const startGrace = (): void => {
      graceTimer ??= setTimeout(() => {
        // The command's exit decides the check; what it left running in its group goes with it,
        // or every check would leave one more process behind.
        killGroup();
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, CLOSE_GRACE_MS);
    };
    const onOverflow = (): void => {
      truncated = true;
      killGroup();
    };
    const onAbort = (): void => killGroup();
    const timer = pollFirstTimeout(() => {
      // A command that exited in time decides the check, though a job it left holding the output
      // keeps the check open for the grace, past the timeout.
      if (!exited()) timedOut = true;
      killGroup();
    }, opts.timeoutMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const stdout = capture(child.stdout, maxBytes, onOverflow);
    const stderr = capture(child.stderr, maxBytes, onOverflow);

    const finish = (exitCode: number | null, signal: string | null, failure?: SpawnFailure): void => {
      if (settled) return;
      settled = true;
      timer.clear();
      clearTimeout(graceTimer);
      // A background job that let go of our pipes (`cmd >/dev/null &`, a double fork) closed them
      // at the command's exit, so no grace ran to end it: each check would leave one behind.
      killGroup();
      opts.signal?.removeEventListener('abort', onAbort);
      const result: ExecResult = {
        exitCode,
        signal,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timedOut,
        truncated,
        durationMs: elapsed(),
      };
      resolve(failure ? { ...result, ...failure } : result);
    };

    child.once('error', (err) => {
      // With a pid the process did start; such errors come from signalling it and 'close' still follows.
      if (child.pid === undefined) finish(null, null, spawnFailure(err));
    });
    child.once('exit', () => startGrace());
    child.once('close', (code, signal) => finish(code, signal));
  });
}

interface Captured {
  text(): string;
}

/** Keeps at most `maxBytes` of a stream as Buffers, decoded once at the end. */
function capture(stream: Readable | null, maxBytes: number, onOverflow: () => void): Captured {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let full = false;
  stream?.on('data', (chunk: Buffer) => {
    if (full) return;
    if (bytes + chunk.length <= maxBytes) {
      chunks.push(chunk);
      bytes += chunk.length;
      return;
    }
    chunks.push(chunk.subarray(0, maxBytes - bytes));
    bytes = maxBytes;
    full = true;
    onOverflow();
  });
  return { text: () => Buffer.concat(chunks, bytes).toString('utf8') };
}

function blank(extra: { durationMs: number } & SpawnFailure): ExecResult {
  return { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, truncated: false, ...extra };
}

type SpawnFailure = Pick<ExecResult, 'spawnError' | 'spawnErrorCode'>;

function spawnFailure(err: unknown): SpawnFailure {
  if (!(err instanceof Error)) return { spawnError: String(err) };
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return { spawnError: err.message };
  return { spawnError: err.message.startsWith(code) ? err.message : `${code}: ${err.message}`, spawnErrorCode: code };
}
