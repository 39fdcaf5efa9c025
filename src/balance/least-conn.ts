import type { Server } from '../model/server.js';
import type { Balancer } from './balancer.js';

/** Fewest active connections per unit of weight; ties go round-robin so equal servers share evenly. */
export class LeastConn implements Balancer {
  private turn = 0;

  pick(servers: readonly Server[], ok: (s: Server) => boolean): Server | null {
    let best: Server | null = null;
    let bestLoad = Infinity;
    const n = servers.length;
    const start = this.turn++ % Math.max(n, 1);
    for (let i = 0; i < n; i++) {
      const s = servers[(start + i) % n]!;
      if (!ok(s)) continue;
      const load = (s.active + 1) / s.effectiveWeight;
      if (load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    return best;
  }
}
