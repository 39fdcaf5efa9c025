/**
 * setTimeout for a deadline on I/O that reads what has already arrived before it gives up. libuv
 * runs the timers that came due while the process was stopped (SIGSTOP, a stunned VM) before it
 * polls again — the SIGCHLD of a check command that exited meanwhile even ends that poll early —
 * so a check whose reply or exit was waiting would be timed out. At `ms`, `fn` is put off by a
 * 1 ms timer, which runs after the next poll.
 */
export interface PollFirstTimeout {
  clear(): void;
}

export function pollFirstTimeout(fn: () => void, ms: number): PollFirstTimeout {
  let timer = setTimeout(() => (timer = setTimeout(fn, 1)), ms);
  return { clear: () => clearTimeout(timer) };
}
