/**
 * How long `licgate reload` and `licgate ctl reload` wait for a reload's outcome: a reload may wait
 * on a new listen host's lookup (up to 3 name servers x 2 attempts x 5 s) and new server names (2 s);
 * under the unit's TimeoutStartSec (60 s), which systemd applies to ExecReload too.
 */
export const RELOAD_WAIT_MS = 45_000;

/** A reload's outcome as POST /admin/reload answers it and GET /reload's `last` holds it. */
export interface ReloadAnswer {
  ok: boolean;
  errors: string[];
  changes: string[];
  /** Not applied because licgate is stopping (src/reload.ts). */
  stopping?: boolean;
}

export function isReloadAnswer(b: unknown): b is ReloadAnswer {
  const r = b as Partial<ReloadAnswer> | null;
  return typeof r === 'object' && r !== null && typeof r.ok === 'boolean' && Array.isArray(r.errors) && Array.isArray(r.changes);
}

/**
 * Writes what an applied reload changed (stdout), or every error of a refused one (stderr, one a
 * line, as licgate reported it), or that licgate is stopping; returns the exit code, 0 applied or 1
 * refused or not applied. `who` names the command and the daemon, `note` adds a line (a raced
 * reload).
 */
export function reportReload(who: string, r: ReloadAnswer, note = ''): number {
  const lines = (items: string[]): string => items.map((i) => `  ${i}\n`).join('');
  const tail = note ? `${note}\n` : '';
  if (r.stopping === true) {
    process.stderr.write(`${who}: licgate is stopping; the reload was not applied\n${tail}`);
    return 1;
  }
  if (r.ok) {
    const n = r.changes.length;
    process.stdout.write(`${who}: config reloaded, ${n ? `${n} change${n > 1 ? 's' : ''}:` : 'no changes'}\n${lines(r.changes)}${tail}`);
    return 0;
  }
  process.stderr.write(`${who}: reload refused, still running the previous config:\n${lines(r.errors)}${tail}`);
  return 1;
}
