/**
 * What a client in the lab saw: a client program prints one JSON line per attempt on stdout
 * ({t, ms, ok, who, err}); AttemptLog collects them as they come and answers the questions the
 * HA tests ask: who answered first after an event, and how long clients went without an answer.
 *
 *   const log = new AttemptLog<Attempt>(lab.spawn('client', [...], { label: 'probe' }));
 *   const first = await log.waitSees('lb2', t0, 15_000);
 *   const { noAnswerMs, failed } = log.outage(t0, first);
 *
 * Attempts may overlap (a client that starts one every 50 ms whatever the previous one does), so
 * every figure works on completion times (t + ms), never on the order of the lines.
 */
import { createInterface } from 'node:readline';
import type { LabProcess } from './lab.js';
import { waitFor } from '../../helpers/wait-for.js';

export interface Attempt {
  /** Start, epoch ms (the client's clock: same machine, same clock as the test). */
  t: number;
  /** Duration until it succeeded or failed. */
  ms: number;
  ok: boolean;
  /** Who answered (a host name, a license server's HELLO name), null when nobody did. */
  who: string | null;
  /** Why it failed: an errno code, "timeout", or the client's own words. */
  err?: string;
}

export interface Outage {
  /** Longest time between two successive successful answers, from the last one before `since`
   *  to the recovering one (answers spaced by the client's interval mean no outage). */
  noAnswerMs: number;
  /** Attempts that failed at or after `since` and started no later than the recovering one. */
  failed: number;
  /** The distinct errors of those attempts. */
  errors: string[];
}

export const endOf = (a: Attempt): number => a.t + a.ms;

export class AttemptLog<A extends Attempt = Attempt> {
  readonly samples: A[] = [];
  /** Lines that were not attempts (diagnostics the client printed). */
  readonly other: string[] = [];

  constructor(readonly proc: LabProcess) {
    const rl = createInterface({ input: proc.child.stdout! });
    rl.on('line', (line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (isAttempt(parsed)) this.samples.push(parsed as A);
      else if (this.other.length < 1000) this.other.push(line);
    });
  }

  last(): A | undefined {
    return this.samples.at(-1);
  }

  /** The earliest-finishing attempt that started at or after `since` and satisfies `pred`. */
  first(pred: (a: A) => boolean, since: number): A | undefined {
    let best: A | undefined;
    for (const a of this.samples) if (a.t >= since && pred(a) && (!best || endOf(a) < endOf(best))) best = a;
    return best;
  }

  /** First successful answer from `who` in an attempt started at or after `since`. */
  firstFrom(who: string, since: number): A | undefined {
    return this.first((a) => a.ok && a.who === who, since);
  }

  waitFirst(pred: (a: A) => boolean, since: number, timeoutMs: number, what: string): Promise<A> {
    return waitFor(() => this.first(pred, since), {
      timeoutMs,
      intervalMs: 20,
      what: `${what} (last attempt: ${JSON.stringify(this.last())})`,
    });
  }

  waitSees(who: string, since: number, timeoutMs: number): Promise<A> {
    return this.waitFirst((a) => a.ok && a.who === who, since, timeoutMs, `client answered by ${who}`);
  }

  /**
   * Resolves once an attempt that started at or after `t` has finished. Attempts end within the
   * client's own timeout, so passing `t = moment + clientTimeout` means every attempt started up
   * to `moment` is in the log.
   */
  waitLogged(t: number, timeoutMs: number): Promise<A> {
    return waitFor(() => this.samples.find((a) => a.t >= t), {
      timeoutMs,
      intervalMs: 20,
      what: `a client attempt started after ${new Date(t).toISOString()} (last: ${JSON.stringify(this.last())})`,
    });
  }

  /** Failed attempts that started in [from, to]. */
  failuresStarted(from: number, to: number = Infinity): A[] {
    return this.samples.filter((a) => !a.ok && a.t >= from && a.t <= to);
  }

  /** Successful attempts that started in [from, to]. */
  successesStarted(from: number, to: number = Infinity): A[] {
    return this.samples.filter((a) => a.ok && a.t >= from && a.t <= to);
  }

  /** See Outage; `until` is the attempt that marks the recovery (e.g. the first answer from the new server). */
  outage(since: number, until: A): Outage {
    const untilEnd = endOf(until);
    let prevEnd = since;
    let latestBefore = -Infinity;
    for (const a of this.samples) if (a.ok && endOf(a) <= since && endOf(a) > latestBefore) latestBefore = endOf(a);
    if (latestBefore > -Infinity) prevEnd = latestBefore;
    const ends = this.samples
      .filter((a) => a.ok && endOf(a) > since && endOf(a) <= untilEnd)
      .map(endOf)
      .sort((x, y) => x - y);
    let noAnswerMs = 0;
    for (const end of ends) {
      noAnswerMs = Math.max(noAnswerMs, end - prevEnd);
      prevEnd = end;
    }
    const failedSamples = this.samples.filter((a) => !a.ok && endOf(a) >= since && a.t <= until.t);
    return { noAnswerMs, failed: failedSamples.length, errors: [...new Set(failedSamples.map((a) => a.err ?? '?'))] };
  }
}

function isAttempt(v: unknown): v is Attempt {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.t === 'number' && typeof o.ms === 'number' && typeof o.ok === 'boolean';
}
