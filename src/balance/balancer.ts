import type { Server } from '../model/server.js';

/**
 * Picks one server among `servers` for which `ok(server)` holds. Balancers never allocate per pick:
 * the candidate set is the backend's tier list filtered on the fly.
 */
export interface Balancer {
  pick(servers: readonly Server[], ok: (s: Server) => boolean, clientKey: string): Server | null;
  /**
   * Reload: carry on from `prev`, the balancer of the backend this one replaces, where it stood.
   * `successor` names the server that replaced an old one (undefined: removed). A reload rebuilds
   * every server, and a balancer starting over would send the next connection after each reload to
   * the first server.
   */
  adopt(prev: Balancer, successor: (old: Server) => Server | undefined): void;
}
