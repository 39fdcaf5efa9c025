/**
 * Keys by expiry, soonest first: a binary min-heap over two parallel arrays (no object per line).
 * StickTable's `late` entries: the sweep takes the ones due from the top instead of scanning them
 * all each time the soonest is due. Lines are not removed when their entry goes or moves: the
 * sweep skips them when they come up, and `compact` drops them when they outnumber the live ones.
 */
export class ExpiryHeap {
  private xs: number[] = [];
  private keys: string[] = [];

  get length(): number {
    return this.xs.length;
  }

  /** The soonest expiry, Infinity when empty. */
  get top(): number {
    return this.xs.length === 0 ? Infinity : this.xs[0]!;
  }

  /** The key of the soonest expiry (the heap is not empty). */
  get topKey(): string {
    return this.keys[0]!;
  }

  push(key: string, x: number): void {
    const xs = this.xs;
    const keys = this.keys;
    let i = xs.length;
    xs.push(x);
    keys.push(key);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (xs[up]! <= x) break;
      xs[i] = xs[up]!;
      keys[i] = keys[up]!;
      i = up;
    }
    xs[i] = x;
    keys[i] = key;
  }

  /** Removes the soonest line (the heap is not empty). */
  pop(): void {
    const xs = this.xs;
    const keys = this.keys;
    const x = xs.pop()!;
    const key = keys.pop()!;
    const n = xs.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && xs[c + 1]! < xs[c]!) c++;
      if (xs[c]! >= x) break;
      xs[i] = xs[c]!;
      keys[i] = keys[c]!;
      i = c;
    }
    xs[i] = x;
    keys[i] = key;
  }

  /** Every expiry moves by `shift` (the order stays). */
  shift(shift: number): void {
    const xs = this.xs;
    for (let i = 0; i < xs.length; i++) xs[i] = xs[i]! + shift;
  }

  /** Keeps only the lines `keep` accepts, and rebuilds. */
  compact(keep: (key: string, x: number) => boolean): void {
    const xs = this.xs;
    const keys = this.keys;
    this.xs = [];
    this.keys = [];
    for (let i = 0; i < xs.length; i++) if (keep(keys[i]!, xs[i]!)) this.push(keys[i]!, xs[i]!);
  }

  clear(): void {
    this.xs = [];
    this.keys = [];
  }
}
