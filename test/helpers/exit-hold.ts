import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processState } from './process-group.js';
import { waitFor } from './wait-for.js';

/**
 * holdExit — keep a process from finishing its exit, whatever signal it gets, until release().
 *
 * The stand-in for a check command in uninterruptible sleep (lmutil reading a license file on a
 * hung NFS mount, `ps` state D), which cannot be made in a test. A process traced by strace stops
 * in its exit, before it closes its files, and stays there while the tracer is itself stopped:
 * SIGKILL to it or its process group changes nothing, its parent sees no exit and its pipes stay
 * open, until the tracer goes away (release() kills it; the kernel then lets the exit finish).
 * The tracer runs in its own process group, out of reach of a kill aimed at the traced one's group.
 * Needs ptrace rights over `pid` (root, or kernel.yama.ptrace_scope 0) and the strace tool.
 */
export interface ExitHold {
  release(): void;
}

export async function holdExit(pid: number): Promise<ExitHold> {
  const tracer = spawn('strace', ['-qq', '-e', 'trace=none', '-o', '/dev/null', '-p', String(pid)], { detached: true, stdio: 'ignore' });
  const tracerPid = tracer.pid;
  if (tracerPid === undefined) throw new Error('strace could not be started');
  const release = (): void => {
    try {
      process.kill(tracerPid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    await waitFor(() => tracerOf(pid) === tracerPid, { timeoutMs: 5000, what: `strace (${tracerPid}) to trace process ${pid}` });
    process.kill(tracerPid, 'SIGSTOP');
    await waitFor(() => /^[Tt]$/.test(processState(tracerPid) ?? ''), { timeoutMs: 5000, what: `strace (${tracerPid}) to be stopped` });
  } catch (err) {
    release();
    throw err;
  }
  return { release };
}

/** The TracerPid of process `pid` (0: not traced), or null when it is gone. */
export function tracerOf(pid: number): number | null {
  try {
    const m = /^TracerPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
