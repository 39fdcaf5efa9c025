import { shareKey } from '../io/peers-by-address.js';

/**
 * One line at most this often per kind of event and listener: a flood refuses or cuts off thousands
 * of peers a second, but an admin whose HAProxy checks of this sidecar fail must find out why.
 */
const SUMMARY_LINE_MS = 10_000;

/** Addresses tallied between two lines: a flood from many addresses must not grow the tally without end. */
const MAX_TALLIED = 1024;

/**
 * What one line says: the events since the last line, the last one's reason, and the address most of
 * them came from (an IPv6 one by its /64, the unit of its share: see shareKey).
 */
export interface PeerEventTally<R = string> {
  count: number;
  lastReason: R | undefined;
  top: string;
  topCount: number;
}

/**
 * Events that peers of a control listener cause (refused at accept, cut off), for a log a flood cannot
 * fill: the first is written at once, those after it wait for the end of the interval since the last
 * line, then go out in one line. The line is due then even if no event follows, or a burst's tail would
 * be counted in the metrics but never logged. The timer runs only while events wait for their line,
 * and is unref'd: it never keeps a stopping process alive.
 */
export class PeerEventSummary<R = string> {
  private lastLine = -Infinity;
  private pending = 0;
  private lastReason: R | undefined;
  private readonly byAddress = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly write: (t: PeerEventTally<R>) => void, private readonly intervalMs = SUMMARY_LINE_MS) {}

  note(peer: string | undefined, reason?: R): void {
    this.pending++;
    this.lastReason = reason;
    const addr = peer === undefined ? 'unknown' : shareKey(peer);
    const n = this.byAddress.get(addr);
    if (n !== undefined) this.byAddress.set(addr, n + 1);
    else if (this.byAddress.size < MAX_TALLIED) this.byAddress.set(addr, 1);
    if (this.timer !== null) return;
    const wait = this.lastLine + this.intervalMs - performance.now();
    if (wait <= 0) this.flush();
    else (this.timer = setTimeout(this.due, wait)).unref();
  }

  /** At shutdown: what waits is written now, and no timer is left behind. */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending > 0) this.flush();
  }

  private readonly due = (): void => {
    this.timer = null;
    this.flush();
  };

  private flush(): void {
    this.lastLine = performance.now();
    let top = 'unknown';
    let topCount = 0;
    for (const [a, c] of this.byAddress) if (c > topCount) [top, topCount] = [a, c];
    const tally = { count: this.pending, lastReason: this.lastReason, top, topCount };
    this.pending = 0;
    this.byAddress.clear();
    this.write(tally);
  }
}
