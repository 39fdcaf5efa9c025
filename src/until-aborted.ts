/**
 * `work`, or the signal's reason as soon as it is aborted (`work` itself goes on): start-up and a
 * reload stop waiting for lookups when the stop begins, which must not wait for the resolver's timeouts.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
