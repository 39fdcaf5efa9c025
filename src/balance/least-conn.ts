import type { Server } from '../model/server.js';
import type { Balancer } from './balancer.js';

/** Fewest active connections per unit of weight; ties go round-robin so equal servers share evenly. */
export class LeastConn implements Balancer {
  /**
   * The last server picked: the next scan starts just after it. A counter turning over every list
   * position would favour the server after one that is out of service (it would win the turns of
   * both): with servers a, b, c and b in maint, short connections went a c c, a c c.
   */
  private last: Server | null = null;

  pick(servers: readonly Server[], ok: (s: Server) => boolean): Server | null {
    let best: Server | null = null;
    let bestLoad = Infinity;
    const n = servers.length;
    // indexOf is -1 for a server of another list (another tier): the scan then starts at the first.
    const start = this.last === null ? 0 : servers.indexOf(this.last) + 1;
    for (let i = 0; i < n; i++) {
      const s = servers[(start + i) % n]!;
      if (!ok(s)) continue;
      const load = (s.active + 1) / s.effectiveWeight;
      if (load < bestLoad) {
        best = s;
        bestLoad = load;
      }
    }
    if (best !== null) this.last = best;
    return best;
  }

  adopt(prev: Balancer, successor: (old: Server) => Server | undefined): void {
    if (prev instanceof LeastConn && prev.last !== null) this.last = successor(prev.last) ?? null;
  }
}
