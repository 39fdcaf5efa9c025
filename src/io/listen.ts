import { isIP, type Server } from 'node:net';
import { formatHostPort, type HostPort } from '../config/address.js';
import { ListenError } from '../errors.js';
import { systemLookup, type Lookup } from '../health/address-resolver.js';

/**
 * Peers served at once on each of the control ports (STATUS, agent, admin HTTP, which keeps
 * LOCAL_RESERVE more for peers on this host); one more is closed as soon as it is accepted. These
 * ports are open to HAProxy, keepalived and Prometheus, whose requests take milliseconds, but a peer
 * may stay silent for seconds: without a bound a flood would hold every descriptor of the process
 * and license clients would be turned away.
 */
export const MAX_CONTROL_PEERS = 128;

export interface BindOptions {
  /** How a listen host name becomes an address (the daemon's resolver; tests script it). */
  lookup?: Lookup;
  /** Stops waiting for that lookup: the listen rejects with the signal's reason and binds nothing. */
  signal?: AbortSignal;
}

/**
 * The address to bind for `at`: a name is looked up first. That lookup has no deadline of its own
 * (the resolver's timeout times its attempts, seconds), so a shutdown must be able to stop waiting:
 * once `signal` is aborted this rejects with its reason; a failed lookup is a ListenError naming `what`.
 */
export async function bindAddress(at: HostPort, what: string, { lookup = systemLookup, signal }: BindOptions = {}): Promise<string> {
  if (isIP(at.host) !== 0) return at.host;
  try {
    if (!signal) return await lookup(at.host);
    signal.throwIfAborted();
    return await new Promise<string>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      lookup(at.host)
        .then(resolve, reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  } catch (err) {
    throw signal?.aborted ? signal.reason : new ListenError(what, formatHostPort(at), err as NodeJS.ErrnoException);
  }
}

/** Binds `server` (net or http) to `at`; a bind failure rejects with a ListenError naming `what`. */
export async function listenAt(server: Server, at: HostPort, what: string, bind: BindOptions = {}): Promise<void> {
  const host = await bindAddress(at, what, bind);
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError(what, formatHostPort(at), err));
    server.once('error', onError);
    server.listen({ host, port: at.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
