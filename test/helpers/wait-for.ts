/**
 * waitFor — poll a condition until it holds or a deadline passes.
 *
 *   const vip = await waitFor(() => holder('192.0.2.100'), { timeoutMs: 10_000, what: 'VIP on lb1' });
 *
 * `fn` may be sync or async. A truthy result ends the wait and is returned. A falsy result
 * (false, null, undefined, 0, '') or a thrown error means "not yet": the last error or value is
 * quoted in the timeout message, so a failure says what was seen, not only that time ran out.
 * Use this instead of a fixed sleep whenever a test waits for a condition. A slow `fn` counts
 * against the deadline; `fn` is not interrupted, so give it its own timeout (e.g. a connect timeout).
 */
export interface WaitForOptions {
  /** Give up after this many milliseconds (measured from the call). */
  timeoutMs: number;
  /** Pause between attempts; default 50 ms. */
  intervalMs?: number;
  /** What is awaited, for the timeout message: "VIP 192.0.2.100 on lb2". */
  what: string;
  /** Abort early (e.g. the vitest test's ctx.signal). */
  signal?: AbortSignal;
}

export class WaitForTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly attempts: number,
    readonly last: string,
  ) {
    super(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}; last: ${last}`);
    this.name = 'WaitForTimeoutError';
  }
}

type Falsy = false | null | undefined | 0 | '';

export async function waitFor<T>(
  fn: () => T | Falsy | Promise<T | Falsy>,
  opts: WaitForOptions,
): Promise<T> {
  const intervalMs = opts.intervalMs ?? 50;
  if (!(opts.timeoutMs > 0)) throw new RangeError(`waitFor(${opts.what}): timeoutMs must be > 0`);
  const deadline = performance.now() + opts.timeoutMs;
  let attempts = 0;
  let last = 'no attempt finished';
  for (;;) {
    if (opts.signal?.aborted) throw new Error(`aborted while waiting for ${opts.what}; last: ${last}`);
    attempts++;
    try {
      const value = await fn();
      if (value) return value;
      last = `returned ${show(value)}`;
    } catch (err) {
      last = `threw ${err instanceof Error ? err.message : String(err)}`;
    }
    const left = deadline - performance.now();
    if (left <= 0) throw new WaitForTimeoutError(opts.what, opts.timeoutMs, attempts, last);
    await sleep(Math.min(intervalMs, left));
  }
}

/**
 * Assert that a condition keeps holding for `forMs` (checked every `intervalMs`); throws as soon
 * as it does not. This is the one legitimate "wait a fixed time": proving that something does
 * NOT happen (e.g. no preemption) needs the observation window.
 */
export async function holdsFor(
  fn: () => unknown | Promise<unknown>,
  opts: { forMs: number; intervalMs?: number; what: string },
): Promise<void> {
  const intervalMs = opts.intervalMs ?? 100;
  const end = performance.now() + opts.forMs;
  for (;;) {
    let ok: unknown;
    try {
      ok = await fn();
    } catch (err) {
      throw new Error(`${opts.what}: stopped holding (threw ${err instanceof Error ? err.message : String(err)})`);
    }
    if (!ok) throw new Error(`${opts.what}: stopped holding after ${Math.round(opts.forMs - (end - performance.now()))} ms`);
    const left = end - performance.now();
    if (left <= 0) return;
    await sleep(Math.min(intervalMs, left));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? value.slice(0, 200) + '…' : value);
  return String(value);
}
