import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI } from './proxy-harness.js';

export type Exit = { code: number | null; signal: string | null };

export interface RunProcess {
  child: ChildProcess;
  /** Its JSON log lines, as they come. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** How it exited, or null while it runs. */
  exit: () => Exit | null;
  exited: Promise<Exit>;
}

/**
 * `licgate run --config file` with `env` (default: the test's environment). `cleanup` gets a step
 * that SIGKILLs it if it still runs, for the test's afterEach.
 */
export function spawnRun(file: string, cleanup: (() => Promise<void> | void)[], env?: NodeJS.ProcessEnv): RunProcess {
  const child = spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let exit: Exit | null = null;
  const exited = once(child, 'exit').then(([code, signal]) => (exit = { code: code as number | null, signal: signal as string | null }));
  cleanup.push(async () => {
    if (exit !== null) return;
    child.kill('SIGKILL');
    await exited;
  });
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      logs.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return { child, logs, stderr: () => stderr, exit: () => exit, exited };
}
