import { isIP, type Server } from 'node:net';
import { formatHostPort, type HostPort } from '../config/address.js';
import { ListenError } from '../errors.js';
import { systemLookup, type Lookup } from '../health/address-resolver.js';

export interface BindOptions {
  /** How a listen host name becomes an address (the daemon's resolver; tests script it). */
  lookup?: Lookup;
  /** Stops waiting for that lookup: the listen rejects with the signal's reason and binds nothing. */
  signal?: AbortSignal;
}

/**
 * The address to bind for `host`: a name is looked up first. That lookup has no deadline of its own
 * (the resolver's timeout times its attempts, seconds), so a shutdown must be able to stop waiting.
 */
export function bindAddress(host: string, { lookup = systemLookup, signal }: BindOptions = {}): Promise<string> {
  if (isIP(host) !== 0) return Promise.resolve(host);
  if (!signal) return lookup(host);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    lookup(host)
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Binds `server` (net or http) to `at`; a bind failure rejects with a ListenError naming `what`. */
export async function listenAt(server: Server, at: HostPort, what: string, bind: BindOptions = {}): Promise<void> {
  const fail = (err: NodeJS.ErrnoException): ListenError => new ListenError(what, formatHostPort(at), err);
  let host: string;
  try {
    host = await bindAddress(at.host, bind);
  } catch (err) {
    throw bind.signal?.aborted ? bind.signal.reason : fail(err as NodeJS.ErrnoException);
  }
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(fail(err));
    server.once('error', onError);
    server.listen({ host, port: at.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
