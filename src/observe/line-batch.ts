/** What a LineBatch writes to: sonic-boom, or anything with its write/flush shape. */
export interface LineSink {
  write(chunk: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * Log lines joined into one string and handed on in one write once `size` characters are held,
 * or on flush. pino writes here; the sink is the one that writes to the descriptor.
 *
 * Why not sonic-boom's own `minLength`: its write() measures the pending string with
 * `Buffer.byteLength` on every line (sonic-boom 4.2 index.js:323), which flattens the growing
 * string, so each line copied the whole batch held so far: quadratic in the batch, 2.1 KB of
 * garbage per session at 4 KiB and eight times that at 32 KiB. Here `+=` only links the strings;
 * the batch is flattened once, when it is handed on.
 *
 * Why batches this big: every write of an async sonic-boom is a round trip to libuv's thread pool
 * (a wakeup of that thread, then of the event loop); 32 KiB holds about 125 session lines.
 * Both together: 32 KiB batches joined here instead of sonic-boom's 4 KiB took about 7 % off
 * licgate's CPU per connection at full connection churn (`npm run bench`, commit df88219).
 */
export class LineBatch implements LineSink {
  private held = '';

  constructor(
    private readonly sink: LineSink,
    readonly size: number,
  ) {}

  write(line: string): boolean {
    // String length, not bytes: a threshold, not a limit (the sink's maxLength is the limit).
    if ((this.held += line).length >= this.size) this.handOn();
    return true;
  }

  /** Hands on what is held; the sink writes it as it can (pino's logger.flush calls this). */
  flush(cb?: (err?: Error) => void): void {
    this.handOn();
    this.sink.flush(cb);
  }

  /** Hands on what is held and has the sink write everything now (at exit). */
  flushSync(): void {
    this.handOn();
    this.sink.flushSync();
  }

  private handOn(): void {
    if (this.held === '') return;
    const batch = this.held;
    this.held = '';
    this.sink.write(batch);
  }
}
