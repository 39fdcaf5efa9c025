import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SOAK = fileURLToPath(new URL('../../bench/soak.mjs', import.meta.url));

/**
 * The short CI version of `npm run soak`: long-lived sessions held through reloads, admin weight
 * changes and a churn of short connections, every byte checked. The 10-minute run is `npm run soak`.
 */
describe('soak (short)', () => {
  it('drops no session, corrupts no byte and leaks no session through reloads, weight changes and churn', async () => {
    const child = spawn(process.execPath, [SOAK, '--conns', '2000', '--duration', '40', '--churn', '100', '--reload-every', '3', '--weight-every', '1', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const [code] = (await once(child, 'exit')) as [number];
    const last = out.trim().split('\n').pop() ?? '';
    let summary: Record<string, number>;
    try {
      summary = JSON.parse(last) as Record<string, number>;
    } catch {
      throw new Error(`soak printed no summary (exit ${code}); stderr: ${err.slice(-2000)}`);
    }
    console.log(`soak: ${last}`);
    expect(summary.held).toBe(2000);
    expect(summary.dropped).toBe(0);
    expect(summary.long_failed).toBe(0);
    expect(summary.churn_failed).toBe(0);
    expect(summary.churn_ok).toBeGreaterThan(1000);
    expect(summary.reloads).toBeGreaterThanOrEqual(10);
    expect(summary.weight_changes).toBeGreaterThanOrEqual(30);
    expect(summary.weight_failed).toBe(0);
    expect(summary.sessions_left_after_close).toBe(0);
    // 40 s is too short to judge flatness: Node 24's heap still grows towards its plateau here
    // (122 -> 155 MB in 40 s, 143 -> 159 MB over 90 s, measured 2026-11-22), so this bound only
    // catches gross leaks. Flatness is judged by the 10-minute `npm run soak` (README: 96 -> 110 MB,
    // flat at 109-111 MB for its last 4 minutes).
    expect(summary.rss_growth_pct).toBeLessThan(60);
    expect(code).toBe(0);
  }, 180_000);
});
