import type { Server } from '../model/server.js';

/**
 * Picks one server among `servers` for which `ok(server)` holds. Balancers never allocate per pick:
 * the candidate set is the backend's tier list filtered on the fly.
 */
export interface Balancer {
  pick(servers: readonly Server[], ok: (s: Server) => boolean, clientKey: string): Server | null;
}
