/**
 * The links a member of an IntrusiveList carries itself, so that joining and leaving allocate
 * nothing. An object is in at most one IntrusiveList at a time.
 */
export interface Linked<T> {
  listPrev: T | null;
  listNext: T | null;
}

/**
 * A doubly linked list through its members: O(1) push and remove, no allocation, and a member leaves
 * with its links cleared. The data plane keeps its per-connection sets this way (a frontend's open
 * sessions, the connects waiting on one timeout), not in a Set or Map: see SessionList for what a
 * churning Set costs the young-generation collector.
 */
export class IntrusiveList<T extends Linked<T>> {
  private first: T | null = null;
  private last: T | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The oldest member, or null. */
  get head(): T | null {
    return this.first;
  }

  /** Appends `x`, which must not be in a list. */
  push(x: T): void {
    x.listPrev = this.last;
    x.listNext = null;
    if (this.last !== null) this.last.listNext = x;
    else this.first = x;
    this.last = x;
    this.count++;
  }

  /** Whether `x` is in this list, or in another one past its head: the links cannot tell lists apart. */
  has(x: T): boolean {
    return x.listPrev !== null || this.first === x;
  }

  /** Unlinks `x`; safe for one that already left (or never joined). */
  remove(x: T): void {
    if (!this.has(x)) return;
    if (x.listPrev !== null) x.listPrev.listNext = x.listNext;
    else this.first = x.listNext;
    if (x.listNext !== null) x.listNext.listPrev = x.listPrev;
    else this.last = x.listPrev;
    x.listPrev = x.listNext = null;
    this.count--;
  }
}
