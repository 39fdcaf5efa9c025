import type { Server } from '../model/server.js';
import type { Balancer } from './balancer.js';

/** A server's running score, and the weight it was built up with. */
interface Score {
  readonly server: Server;
  score: number;
  weight: number;
}

/**
 * nginx's smooth weighted round-robin: every pick adds each candidate's weight to its running score,
 * takes the highest, and charges it the total. Weights 5,1,1 give a a b a c a a — no bursts, which
 * matters when each connection is a license checkout that stays open for hours.
 *
 * A weight change (admin, or an agent reporting a percentage) starts a fresh cycle: the scores were
 * built at the old weights, and at the new total a gap between them takes many picks to close. With
 * weights 1 and 100 lowered to 1 and 1, the heavy server would take the next 50 connections in a row.
 */
export class SmoothRoundRobin implements Balancer {
  private readonly scores = new Map<Server, Score>();

  pick(servers: readonly Server[], ok: (s: Server) => boolean): Server | null {
    let best: Score | null = null;
    let total = 0;
    let reweighted = false;
    for (const s of servers) {
      if (!ok(s)) continue;
      const w = s.effectiveWeight;
      let e = this.scores.get(s);
      if (e === undefined) this.scores.set(s, (e = { server: s, score: 0, weight: w }));
      else if (e.weight !== w) reweighted = true;
      e.score += w;
      total += w;
      if (best === null || e.score > best.score) best = e;
    }
    if (reweighted) {
      for (const e of this.scores.values()) {
        e.score = 0;
        e.weight = e.server.effectiveWeight;
      }
      return this.pick(servers, ok);
    }
    if (best === null) return null;
    best.score -= total;
    return best.server;
  }

  /** Scores carry over with the weight they were built at: a reload that changed a weight starts a fresh cycle at the next pick, as a runtime change does. */
  adopt(prev: Balancer, successor: (old: Server) => Server | undefined): void {
    if (!(prev instanceof SmoothRoundRobin)) return;
    for (const e of prev.scores.values()) {
      const s = successor(e.server);
      if (s !== undefined) this.scores.set(s, { server: s, score: e.score, weight: e.weight });
    }
  }
}
