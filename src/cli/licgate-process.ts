import { readFileSync, realpathSync } from 'node:fs';
import { basename, resolve } from 'node:path';

/** How much of a foreign command line a message shows. */
const SHOWN = 80;

/**
 * Why `pid` is clearly not a `licgate run` process (its command line, shortened), or null: it is
 * one, or /proc cannot say (no /proc, another OS, or a process hidden by hidepid / the unit's
 * ProtectProc=invisible), and the signal's own error says the rest. SIGHUP's default action ends a
 * process, so a mistyped --pid must not reach one that does not handle it.
 * licgate shows itself as `node [--max-semi-space-size=1] PATH/licgate run ...` (the npm bin
 * symlink, /usr/bin/licgate in the unit: the shebang's `env -S` keeps the path it was run by) or
 * `node PATH/licgate.cjs run ...`, or by a symlink to either of another name; an option of node
 * between them does not matter.
 */
export function notLicgateRun(pid: number): string | null {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return null;
  }
  const argv = raw.split('\0');
  if (argv.at(-1) === '') argv.pop();
  if (argv.some((a, i) => argv[i + 1] === 'run' && isLicgateEntry(a, pid))) return null;
  // A zombie's or a kernel thread's cmdline is empty.
  if (argv.length === 0) return 'a process without a command line (a kernel thread, or one that has exited)';
  const line = argv.join(' ');
  return JSON.stringify(line.length > SHOWN ? `${line.slice(0, SHOWN)}…` : line);
}

/**
 * `arg`, as process `pid` was started with it, names licgate's CLI: by its name, or through a
 * symlink of another name (an admin's `licgate-prod` beside a second install), which the command
 * line shows as it was typed, relative to that process's working directory.
 */
function isLicgateEntry(arg: string, pid: number): boolean {
  const name = basename(arg);
  if (name === 'licgate' || name === 'licgate.cjs') return true;
  try {
    return basename(realpathSync(resolve(`/proc/${pid}/cwd`, arg))) === 'licgate.cjs';
  } catch {
    return false;
  }
}
