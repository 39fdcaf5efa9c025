import { describe, expect, it } from 'vitest';
import type { InitState } from '../../src/config/schema.js';
import { HealthState } from '../../src/health/health-state.js';

/**
 * HAProxy's counter (src/check.c, set_server_check_status; stats.c for the strings): health runs
 * 0..rise+fall-1, UP while health >= rise. Success: +1, and on reaching rise jump to rise+fall-1.
 * Failure: -1, and below rise drop to 0. A server starts at health = rise ("up, but will fall down
 * at first failure"). Strings: "UP" at the top, "UP x/fall" with x = health-rise+1 (failures left),
 * "DOWN" at 0, "DOWN x/rise" with x = health (successes so far).
 * Each row: rise, fall, then the steps: S = success, F = failure, and after each the expected text.
 * The expected values below are written out by hand from those rules, not computed.
 */
type Step = ['S' | 'F', string];
const TABLE: { rise: number; fall: number; start: string; steps: Step[] }[] = [
  {
    rise: 2, fall: 3, start: 'UP 1/3',
    steps: [['S', 'UP'], ['F', 'UP 2/3'], ['F', 'UP 1/3'], ['F', 'DOWN'], ['F', 'DOWN'], ['S', 'DOWN 1/2'], ['S', 'UP'], ['S', 'UP'], ['F', 'UP 2/3'], ['S', 'UP'], ['F', 'UP 2/3'], ['F', 'UP 1/3'], ['S', 'UP']],
  },
  {
    // The very first check decides from the start state: one failure is enough for DOWN.
    rise: 2, fall: 3, start: 'UP 1/3',
    steps: [['F', 'DOWN'], ['S', 'DOWN 1/2'], ['F', 'DOWN'], ['S', 'DOWN 1/2'], ['S', 'UP']],
  },
  {
    rise: 3, fall: 2, start: 'UP 1/2',
    steps: [['S', 'UP'], ['F', 'UP 1/2'], ['F', 'DOWN'], ['S', 'DOWN 1/3'], ['S', 'DOWN 2/3'], ['F', 'DOWN'], ['S', 'DOWN 1/3'], ['S', 'DOWN 2/3'], ['S', 'UP'], ['F', 'UP 1/2'], ['S', 'UP']],
  },
  {
    rise: 1, fall: 1, start: 'UP',
    steps: [['S', 'UP'], ['F', 'DOWN'], ['F', 'DOWN'], ['S', 'UP'], ['F', 'DOWN']],
  },
  {
    rise: 2, fall: 1, start: 'UP',
    steps: [['F', 'DOWN'], ['S', 'DOWN 1/2'], ['S', 'UP'], ['F', 'DOWN']],
  },
  {
    rise: 1, fall: 3, start: 'UP 1/3',
    steps: [['S', 'UP'], ['F', 'UP 2/3'], ['F', 'UP 1/3'], ['F', 'DOWN'], ['S', 'UP'], ['F', 'UP 2/3'], ['S', 'UP']],
  },
  {
    rise: 5, fall: 5, start: 'UP 1/5',
    steps: [['S', 'UP'], ['F', 'UP 4/5'], ['F', 'UP 3/5'], ['F', 'UP 2/5'], ['F', 'UP 1/5'], ['F', 'DOWN'], ['S', 'DOWN 1/5'], ['S', 'DOWN 2/5'], ['S', 'DOWN 3/5'], ['S', 'DOWN 4/5'], ['S', 'UP']],
  },
];

describe('HealthState follows HAProxy counter rules', () => {
  for (const row of TABLE) {
    const seq = row.steps.map(([s]) => s).join('');
    it(`rise ${row.rise} fall ${row.fall}: ${seq}`, () => {
      const h = new HealthState(row.rise, row.fall);
      expect(h.text).toBe(row.start);
      const seen = [h.text];
      const expected = [row.start];
      for (const [step, text] of row.steps) {
        const wasUp = h.up;
        const changed = step === 'S' ? h.success() : h.failure();
        seen.push(h.text);
        expected.push(text);
        // The returned flag says whether the UP/DOWN verdict flipped, and `up` agrees with the text.
        expect(changed).toBe(wasUp !== h.up);
        expect(h.up).toBe(text.startsWith('UP'));
        expect(h.health).toBeGreaterThanOrEqual(0);
        expect(h.health).toBeLessThanOrEqual(row.rise + row.fall - 1);
      }
      expect(seen).toEqual(expected);
    });
  }

  it('starts fully DOWN when asked, and needs rise successes to come up', () => {
    const h = new HealthState(3, 2, 'fully-down');
    expect([h.text, h.up]).toEqual(['DOWN', false]);
    expect(h.success()).toBe(false);
    expect(h.success()).toBe(false);
    expect(h.text).toBe('DOWN 2/3');
    expect(h.success()).toBe(true);
    expect(h.text).toBe('UP');
  });

  // HAProxy 3.1 init-state, rise 2 fall 3: up (rise), fully-up (rise+fall-1), down (rise-1),
  // fully-down (0). The first check, and how many of one kind it takes to turn the verdict.
  const INIT: { start: InitState; text: string; untilTurned: Step[] }[] = [
    { start: 'up', text: 'UP 1/3', untilTurned: [['F', 'DOWN']] },
    { start: 'fully-up', text: 'UP', untilTurned: [['F', 'UP 2/3'], ['F', 'UP 1/3'], ['F', 'DOWN']] },
    { start: 'down', text: 'DOWN 1/2', untilTurned: [['S', 'UP']] },
    { start: 'fully-down', text: 'DOWN', untilTurned: [['S', 'DOWN 1/2'], ['S', 'UP']] },
  ];
  for (const row of INIT) {
    it(`init-state ${row.start} (rise 2, fall 3) starts ${row.text} and turns after ${row.untilTurned.length} ${row.untilTurned[0]![0] === 'S' ? 'successes' : 'failures'}`, () => {
      const h = new HealthState(2, 3, row.start);
      const wasUp = h.up;
      expect(h.text).toBe(row.text);
      row.untilTurned.forEach(([step, text], i) => {
        const changed = step === 'S' ? h.success() : h.failure();
        expect(h.text).toBe(text);
        expect(changed).toBe(i === row.untilTurned.length - 1);
      });
      expect(h.up).toBe(!wasUp);
    });
  }

  it('init-state down with rise 1 is fully DOWN: one success still brings it up', () => {
    const h = new HealthState(1, 3, 'down');
    expect([h.text, h.phase]).toEqual(['DOWN', 'down']);
    expect(h.success()).toBe(true);
    expect(h.text).toBe('UP');
  });

  it('forceDown (passive health) drops to 0 from any UP state; the way back is rise successes', () => {
    const h = new HealthState(2, 3);
    h.success();
    expect(h.forceDown()).toBe(true);
    expect(h.text).toBe('DOWN');
    expect(h.forceDown()).toBe(false);
    h.success();
    expect(h.text).toBe('DOWN 1/2');
    h.success();
    expect(h.text).toBe('UP');
  });
});

describe('interval phase (which of inter / fastinter / downinter comes next)', () => {
  // HAProxy srv_getinter: inter only at the top (fully UP), downinter only at 0 (fully DOWN),
  // fastinter for every transitional value in between — including the start state "UP 1/3".
  const rows: [string, ('S' | 'F')[], 'up' | 'down' | 'transitional', string][] = [
    ['start', [], 'transitional', 'UP 1/3'],
    ['after a success', ['S'], 'up', 'UP'],
    ['one failure from UP', ['S', 'F'], 'transitional', 'UP 2/3'],
    ['two failures from UP', ['S', 'F', 'F'], 'transitional', 'UP 1/3'],
    ['fully DOWN', ['S', 'F', 'F', 'F'], 'down', 'DOWN'],
    ['rising', ['S', 'F', 'F', 'F', 'S'], 'transitional', 'DOWN 1/2'],
    ['back UP', ['S', 'F', 'F', 'F', 'S', 'S'], 'up', 'UP'],
  ];
  for (const [name, steps, phase, text] of rows) {
    it(`${name}: ${text} → ${phase}`, () => {
      const h = new HealthState(2, 3);
      for (const s of steps) s === 'S' ? h.success() : h.failure();
      expect(h.text).toBe(text);
      expect(h.phase).toBe(phase);
    });
  }

  it('rise 1 fall 1 has no transitional values', () => {
    const h = new HealthState(1, 1);
    expect(h.phase).toBe('up');
    h.failure();
    expect(h.phase).toBe('down');
    h.success();
    expect(h.phase).toBe('up');
  });
});
