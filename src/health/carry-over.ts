import type { Server } from '../model/server.js';

/**
 * A reload replaces every Server object. What a check or agent loop keeps per server (the timer of
 * its next round, a round under way, what an agent said) moves, in place, to the server that
 * replaced the old one (Server.live) when the new config has it; `left` is given what belonged to a
 * server that is gone.
 */
export function carryOver<T>(entries: Map<Server, T>, staying: ReadonlySet<Server>, left?: (value: T) => void): void {
  const was = [...entries];
  entries.clear();
  for (const [old, value] of was) {
    const s = old.live();
    if (staying.has(s)) entries.set(s, value);
    else left?.(value);
  }
}

/**
 * The same for the timers of the next rounds: each is cleared, and `again` is told, for a server
 * that stays, how long its next round was still due in (0 when overdue), to schedule it anew.
 */
export function carryOverTimers(timers: Map<Server, { timer: NodeJS.Timeout; due: number }>, staying: ReadonlySet<Server>, again: (s: Server, dueInMs: number) => void): void {
  const now = performance.now();
  const was = [...timers];
  timers.clear();
  for (const [old, t] of was) {
    clearTimeout(t.timer);
    const s = old.live();
    if (staying.has(s)) again(s, Math.max(0, t.due - now));
  }
}
