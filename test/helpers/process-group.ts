import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * True when no live process is left in process group `pgid` — what "the check left nothing
 * behind" means. A killed process stays a zombie until its parent reaps it; orphans are reaped by
 * init, which in containers may be slow or absent (node as PID 1). A zombie runs no code, so on
 * Linux a group made only of zombies counts as gone; elsewhere only ESRCH does.
 */
export function processGroupGone(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    throw err;
  }
  if (!existsSync('/proc/self/stat')) return false;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = procStatFields(Number(entry));
    if (fields === null) continue; // exited while we looked
    const [state, , pgrp] = fields;
    if (Number(pgrp) === pgid && state !== 'Z') return false;
  }
  return true;
}

/** The state letter of process `pid` from /proc (R, S, T for stopped, Z for a zombie...), or null when it is gone. */
export function processState(pid: number): string | null {
  return procStatFields(pid)?.[0] ?? null;
}

/** The fields of /proc/PID/stat after "(comm)": state ppid pgrp ...; comm itself may contain spaces or parentheses. */
function procStatFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
