import { IntrusiveList, type Linked } from '../io/intrusive-list.js';

/**
 * A frontend's open sessions, linked through the sessions themselves (an IntrusiveList), visited
 * as a Set's members would be.
 *
 * Why not a Set: a Set appends each new member to its table and leaves a hole for each one gone;
 * when holes fill the table, V8 rehashes into a new table, allocated in the old generation if the
 * old table was there, and leaves the old table with its members in place and a link to the new
 * one, for iterators (OrderedHashTable::Rehash). With sessions churning, that is every few dozen
 * sessions, and each obsolete table keeps the sessions it held reachable for the young-generation
 * collector until the next full collection. Measured (wrk -c50 Connection: close, `--trace-gc-nvp`):
 * with the Set every session's objects (~1 KB: session, connector, relay, flows) were promoted, and
 * each scavenge copied ~240 KB and took 1.1-1.6 ms; with this list 3 KB is promoted per scavenge,
 * ~60 KB copied, 0.5 ms.
 */
export class SessionList<T extends Linked<T>> {
  private readonly members = new IntrusiveList<T>();
  /** Each running forEach's next member (innermost last), moved on if that member leaves meanwhile. */
  private readonly cursors: (T | null)[] = [];

  get size(): number {
    return this.members.size;
  }

  /** Appends `s`, which must not be in a list. */
  add(s: T): void {
    this.members.push(s);
  }

  /** Safe for a session that already left (or never joined): a cursor only ever holds a member. */
  delete(s: T): void {
    for (let i = 0; i < this.cursors.length; i++) if (this.cursors[i] === s) this.cursors[i] = s.listNext;
    this.members.remove(s);
  }

  /**
   * Calls `fn` for each member, oldest first, as a Set's iteration would: members that leave
   * meanwhile are not visited (ending one session can end another: a freed server slot wakes a
   * queued connect that then fails), members that join meanwhile are; also when `fn` runs a
   * forEach of its own.
   */
  forEach(fn: (s: T) => void): void {
    const depth = this.cursors.push(null) - 1;
    try {
      for (let s = this.members.head; s !== null; s = this.cursors[depth] ?? null) {
        this.cursors[depth] = s.listNext;
        fn(s);
      }
    } finally {
      this.cursors.pop();
    }
  }
}
