import type { Server } from 'node:net';
import { formatHostPort, type HostPort } from '../config/address.js';
import { ListenError } from '../errors.js';

/** Binds `server` (net or http) to `at`; a bind failure rejects with a ListenError naming `what`. */
export function listenAt(server: Server, at: HostPort, what: string, backlog?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => reject(new ListenError(what, formatHostPort(at), err));
    server.once('error', onError);
    server.listen({ host: at.host, port: at.port, ...(backlog ? { backlog } : {}) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
