/**
 * Read buffers for busy relay directions (TcpHandle.useUserBuffer). Without one, Node allocates a
 * fresh 64 KiB ArrayBuffer for every read, shrinks it to what was read and leaves it to the
 * garbage collector: per read a malloc, a realloc, an object and external memory that triggers
 * collections. Quiet license sessions never take one, so idle memory is not spent; a direction
 * keeps what it took until its connection closes (libuv cannot be told to stop using it).
 */
export class ReadBufferPool {
  private readonly free: Uint8Array[] = [];
  /** Taken and not yet given back or dropped: what relay directions hold now (a metric). */
  held = 0;

  /** `keep`: free buffers kept for reuse; the rest are left to the garbage collector. */
  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  take(): Uint8Array {
    this.held++;
    return this.free.pop() ?? new Uint8Array(this.size);
  }

  /**
   * With `reuse`, only once nothing can touch `buf` any more: the handle that read into it is
   * closed (libuv reads no more into it after uv_close) and so is the one it was written to, or
   * that write completed. Without, a buffer that may still be in use is left to the garbage collector.
   */
  give(buf: Uint8Array, reuse = true): void {
    this.held--;
    if (reuse && this.free.length < this.keep) this.free.push(buf);
  }
}

/**
 * For directions that move many small messages (keep-alive request/response): 16 KiB each, 64
 * kept (1 MiB). Proxy pinned, `wrk -t1 -c50 -d8s` keep-alive, three alternating runs: CPU per
 * request 13.63 → 11.13 µs (medians) with busy directions on these instead of Node's allocations.
 */
export const busyBuffers = new ReadBufferPool(16 * 1024, 64);

/**
 * For directions that carry bulk data. The size is measured, not guessed (`node bench/run.mjs
 * --tests bulk --rounds 3 --only haproxy,licgate`, iperf3, licgate/HAProxy): 64 KiB 0.58×,
 * 128 KiB 0.97×, 256 KiB 1.08×. Bigger reads cut the system calls and the trips through the event
 * loop per byte. 16 kept (4 MiB).
 */
export const bulkBuffers = new ReadBufferPool(256 * 1024, 16);
