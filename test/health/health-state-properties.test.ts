import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HealthState } from '../../src/health/health-state.js';

/** A literal transcription of HAProxy 2.6 set_server_check_status() (src/check.c), kept naive on purpose. */
class ReferenceCounter {
  health: number;
  constructor(readonly rise: number, readonly fall: number) {
    this.health = rise;
  }
  ok(): void {
    if (this.health < this.rise + this.fall - 1) {
      this.health++;
      if (this.health >= this.rise) this.health = this.rise + this.fall - 1;
    }
  }
  fail(): void {
    if (this.health > 0) {
      this.health--;
      if (this.health < this.rise) this.health = 0;
    }
  }
  get up(): boolean {
    return this.health >= this.rise;
  }
}

describe('health state machine matches the HAProxy reference model', () => {
  it('agrees on health, up/down and the stats-page text over any sequence of results', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), fc.array(fc.boolean(), { maxLength: 60 }), (rise, fall, results) => {
        const h = new HealthState(rise, fall);
        const ref = new ReferenceCounter(rise, fall);
        for (const ok of results) {
          const wasUp = h.up;
          const changed = ok ? h.success() : h.failure();
          if (ok) ref.ok();
          else ref.fail();
          expect(h.health).toBe(ref.health);
          expect(h.up).toBe(ref.up);
          expect(changed).toBe(wasUp !== h.up);
          const max = rise + fall - 1;
          const text = ref.up ? (ref.health === max ? 'UP' : `UP ${ref.health - rise + 1}/${fall}`) : ref.health === 0 ? 'DOWN' : `DOWN ${ref.health}/${rise}`;
          expect(h.text).toBe(text);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('from fully UP, exactly `fall` consecutive failures mark DOWN; from DOWN, exactly `rise` successes mark UP', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 }), (rise, fall) => {
        const h = new HealthState(rise, fall);
        h.success();
        expect(h.phase).toBe('up');
        for (let i = 1; i < fall; i++) expect(h.failure()).toBe(false);
        expect(h.failure()).toBe(true);
        expect(h.up).toBe(false);
        for (let i = 1; i < rise; i++) expect(h.success()).toBe(false);
        expect(h.success()).toBe(true);
        expect(h.phase).toBe('up');
      }),
    );
  });
});
