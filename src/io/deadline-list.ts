import { performance } from 'node:perf_hooks';
import { IntrusiveList, type Linked } from './intrusive-list.js';

/** An object that can wait in a DeadlineList; the links live in the object so waiting allocates nothing. */
export interface Expiring extends Linked<Expiring> {
  deadline: number;
  expire(): void;
}

/**
 * Things that all time out after the same `ms`, so arrival order is deadline order: one timer for
 * the whole list instead of a Timeout object (plus Node's bound callback, which a socket keeps after
 * setTimeout(0)) for each connect attempt, and O(1) removal when the connect succeeds.
 */
export class DeadlineList {
  private readonly waiting = new IntrusiveList<Expiring>();
  /** A timer (or the check-phase sweep it schedules) is pending. */
  private armed = false;
  /** While expiring: an entry added by an expire() (a retry) must not arm a timer for its own, later deadline. */
  private firing = false;

  constructor(readonly ms: number) {}

  add(e: Expiring): void {
    e.deadline = performance.now() + this.ms;
    this.waiting.push(e);
    if (!this.armed && !this.firing) this.arm(this.ms);
  }

  /** How long ago `e` joined this list (read before it leaves: the time comes from its deadline). */
  elapsed(e: Expiring): number {
    return performance.now() - (e.deadline - this.ms);
  }

  /** Safe to call for an entry that has already left the list. */
  remove(e: Expiring): void {
    this.waiting.remove(e);
  }

  private arm(ms: number): void {
    this.armed = true;
    setTimeout(this.due, Math.max(1, Math.ceil(ms))).unref();
  }

  // Timers run before I/O in each turn of libuv's loop, so after a stall longer than `ms` (a long
  // GC, a blocking call) a connect that completed meanwhile would be expired before its completion
  // is read: counted as a timeout against a healthy server, or raced for nothing. The sweep runs in
  // the check phase instead, after that turn's poll has delivered what is ready. Not unref'd: an
  // unref'd immediate lets that poll block until the next event, which delayed races by ~8 ms.
  private readonly due = (): void => {
    setImmediate(this.fire);
  };

  private readonly fire = (): void => {
    this.armed = false;
    const now = performance.now();
    let e: Expiring | null;
    this.firing = true;
    try {
      while ((e = this.waiting.head) !== null && e.deadline <= now) {
        this.waiting.remove(e);
        e.expire();
      }
    } finally {
      this.firing = false;
    }
    const next = this.waiting.head;
    if (next !== null) this.arm(next.deadline - now);
  };
}

const lists = new Map<number, DeadlineList>();

/** The shared list for one timeout value (a handful exist: one per distinct connect_timeout). */
export function deadlineList(ms: number): DeadlineList {
  let l = lists.get(ms);
  if (!l) lists.set(ms, (l = new DeadlineList(ms)));
  return l;
}
