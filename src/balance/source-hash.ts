import type { Server } from '../model/server.js';
import type { Balancer } from './balancer.js';

/**
 * Weighted rendezvous (highest-random-weight) hashing of the client address: each client ranks the
 * servers by a per-pair score and takes the best usable one, so losing a server moves only the
 * clients that were on it, and its return moves exactly those back.
 */
export class SourceHash implements Balancer {
  pick(servers: readonly Server[], ok: (s: Server) => boolean, clientKey: string): Server | null {
    let best: Server | null = null;
    let bestScore = -Infinity;
    const ch = fnv1a(clientKey, 0x811c9dc5);
    for (const s of servers) {
      if (!ok(s)) continue;
      // Score = -w / ln(u) with u uniform in (0,1): the weighted form of rendezvous hashing.
      const u = (fnv1a(s.name, ch) + 0.5) / 4294967296;
      const score = -s.effectiveWeight / Math.log(u);
      if (score > bestScore) {
        best = s;
        bestScore = score;
      }
    }
    return best;
  }

  /** Stateless: the client address alone decides. */
  adopt(): void {}
}

function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // One avalanche round so names that differ only in the last character still spread.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}
