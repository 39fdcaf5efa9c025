import type { Server } from '../model/server.js';
import type { Balancer } from './balancer.js';

/**
 * nginx's smooth weighted round-robin: every pick adds each candidate's weight to its running score,
 * takes the highest, and charges it the total. Weights 5,1,1 give a a b a c a a — no bursts, which
 * matters when each connection is a license checkout that stays open for hours.
 */
export class SmoothRoundRobin implements Balancer {
  private readonly current = new Map<Server, number>();

  pick(servers: readonly Server[], ok: (s: Server) => boolean): Server | null {
    let best: Server | null = null;
    let bestScore = -Infinity;
    let total = 0;
    for (const s of servers) {
      if (!ok(s)) continue;
      const w = s.effectiveWeight;
      const score = (this.current.get(s) ?? 0) + w;
      this.current.set(s, score);
      total += w;
      if (score > bestScore) {
        best = s;
        bestScore = score;
      }
    }
    if (best) this.current.set(best, bestScore - total);
    return best;
  }
}
