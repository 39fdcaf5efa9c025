import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import type { Server } from '../../src/model/server.js';

function backendWith(servers: { weight: number; tier: number }[], balance = 'roundrobin'): Backend {
  const yaml = `backends:
  - name: b
    balance: ${balance}
    check: { type: tcp }
    servers:
${servers.map((s, i) => `      - { name: s${i}, address: 127.0.0.1:${1000 + i}, weight: ${s.weight}, tier: ${s.tier} }`).join('\n')}
status: { listen: 127.0.0.1:0 }
`;
  const cfg = loadConfigText(yaml, 'prop.yaml');
  return new Backend(cfg.backends[0]!, new ModelEvents());
}

type Op = { kind: 'down' | 'up' | 'drain' | 'ready' | 'maint' | 'weight'; server: number; weight: number };

function apply(b: Backend, op: Op): void {
  const s = b.servers[op.server % b.servers.length]!;
  const result = { ok: true, reason: 'prop', durationMs: 0, at: 0 };
  if (op.kind === 'down') for (let i = 0; i < 10; i++) s.checkFailed({ ...result, ok: false });
  else if (op.kind === 'up') for (let i = 0; i < 10; i++) s.checkSucceeded(result);
  else if (op.kind === 'weight') s.setWeight(op.weight, 'prop');
  else s.setAdmin(op.kind, 'prop');
}

const serversArb = fc.array(fc.record({ weight: fc.integer({ min: 0, max: 256 }), tier: fc.integer({ min: 0, max: 2 }) }), { minLength: 1, maxLength: 6 });
const opArb = fc.record({ kind: fc.constantFrom('down', 'up', 'drain', 'ready', 'maint', 'weight'), server: fc.nat(), weight: fc.integer({ min: 0, max: 256 }) }) as fc.Arbitrary<Op>;

describe('balancer properties', () => {
  for (const balance of ['roundrobin', 'leastconn', 'source']) {
    it(`${balance}: never picks an unusable server while a usable one exists, and picks from the serving tier`, () => {
      fc.assert(
        fc.property(serversArb, fc.array(opArb, { maxLength: 30 }), (servers, ops) => {
          const b = backendWith(servers, balance);
          for (const op of ops) {
            apply(b, op);
            for (let k = 0; k < 5; k++) {
              const picked = b.choose(`10.0.0.${k}`, null);
              const usable = b.servers.filter((s) => s.usable);
              if (usable.length === 0) expect(picked).toBeNull();
              else {
                expect(picked).not.toBeNull();
                expect(picked!.usable).toBe(true);
                // failback auto: the serving tier is the best tier that has a usable server.
                expect(picked!.tier).toBe(Math.min(...usable.map((s) => s.tier)));
              }
            }
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it('roundrobin: over any sequence of state changes, each window of picks follows the weights exactly', () => {
    fc.assert(
      fc.property(serversArb, fc.array(opArb, { maxLength: 10 }), (servers, ops) => {
        const b = backendWith(servers);
        for (const op of ops) apply(b, op);
        const tierServers = b.servers.filter((s) => s.usable && s.tier === b.servingTier);
        const total = tierServers.reduce((n, s) => n + s.effectiveWeight, 0);
        if (total === 0) return;
        // Smooth WRR is exact over one full cycle of `total` picks (weights are whole numbers here).
        const counts = new Map<Server, number>();
        for (let i = 0; i < total * 2; i++) {
          const s = b.choose('c', null)!;
          counts.set(s, (counts.get(s) ?? 0) + 1);
        }
        for (const s of tierServers) expect(counts.get(s) ?? 0).toBe(s.effectiveWeight * 2);
      }),
      { numRuns: 300 },
    );
  });
});
