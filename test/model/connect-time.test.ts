import { describe, expect, it } from 'vitest';
import { ConnectTime } from '../../src/model/connect-time.js';

describe('ConnectTime (the race delay of one server)', () => {
  it('is the configured floor before the first connect and for a nearby server', () => {
    const t = new ConnectTime();
    expect(t.raceDelay(250)).toBe(250);
    expect(t.smoothed).toBeNull();
    for (let i = 0; i < 20; i++) t.sample(0.3);
    expect(t.raceDelay(250)).toBe(250);
    expect(t.smoothed).toBeCloseTo(0.3, 5);
  });

  it('grows past the floor for a server that always takes longer, so it is not raced on every connect', () => {
    const t = new ConnectTime();
    for (let i = 0; i < 50; i++) t.sample(300);
    // SRTT 300, RTTVAR decays towards 0 from 150: above 300 and rounded up to 50 ms.
    const d = t.raceDelay(250);
    expect(d).toBeGreaterThan(300);
    expect(d % 50).toBe(0);
    expect(d).toBeLessThanOrEqual(400);
  });

  it('skips a connect that needed a SYN retransmit (Karn): one lost SYN does not stretch the delay', () => {
    const t = new ConnectTime();
    t.sample(0.5);
    t.sample(1003); // Linux resends the SYN after 1 s
    t.sample(3010);
    expect(t.smoothed).toBe(0.5);
    expect(t.raceDelay(250)).toBe(250);
  });

  it('follows RFC 6298: the first sample sets SRTT and RTTVAR = sample / 2, then gains 1/8 and 1/4', () => {
    const t = new ConnectTime();
    t.sample(200); // SRTT 200, RTTVAR 100: 200 + 400 = 600
    expect(t.raceDelay(100)).toBe(600);
    t.sample(100); // RTTVAR 3/4·100 + 1/4·100 = 100, SRTT 7/8·200 + 1/8·100 = 187.5: 587.5 → 600
    expect(t.smoothed).toBe(187.5);
    expect(t.raceDelay(100)).toBe(600);
    expect(t.raceDelay(700)).toBe(700);
  });
});
