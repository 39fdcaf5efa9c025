import { unwatchFile, watchFile } from 'node:fs';
import { readVrrpState, type VrrpReport } from './vrrp-state.js';

/** How often the state file is looked at: a role change is reported within about a second. */
export const VRRP_POLL_MS = 1000;

/**
 * Follows the VRRP state file (vrrp.state_file) and calls `changed` when keepalived reports another
 * role, or the file stops giving one. It polls the file's stat (fs.watchFile, on libuv's thread
 * pool) rather than an inotify watch: the notify hook replaces the file by rename, which a watch on
 * the file would lose after the first change, and the file (even its directory) may appear only
 * after licgate started. The role found at start is the baseline, not a change.
 */
export class VrrpWatch {
  private last: VrrpReport | null = null;
  private reading = false;
  private again = false;
  private stopped = false;
  private readonly onStat = (): void => void this.check();

  constructor(
    readonly file: string,
    private readonly changed: (from: VrrpReport, to: VrrpReport) => void,
  ) {}

  /** Reads the baseline, then polls; resolves with the baseline. */
  async start(): Promise<VrrpReport> {
    watchFile(this.file, { interval: VRRP_POLL_MS, persistent: false }, this.onStat);
    const first = await readVrrpState(this.file);
    this.last ??= first;
    return first;
  }

  stop(): void {
    this.stopped = true;
    unwatchFile(this.file, this.onStat);
  }

  /** One read at a time; a stat change seen during a read makes one more. */
  private async check(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.again = false;
        const now = await readVrrpState(this.file);
        if (this.stopped) return;
        const before = this.last;
        this.last = now;
        if (before !== null && key(before) !== key(now)) this.changed(before, now);
      } while (this.again);
    } finally {
      this.reading = false;
    }
  }
}

/** The hook rewrites the line (a new timestamp) also when keepalived re-enters the same state: not a change. */
function key(r: VrrpReport): string {
  return r.role ? `${r.role.type} ${r.role.name} ${r.role.state}` : `? ${r.error}`;
}
