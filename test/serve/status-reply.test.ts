import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Backend } from '../../src/model/backend.js';
import { ModelEvents } from '../../src/model/events.js';
import { renderStatus } from '../../src/serve/status-reply.js';

function backend(): Backend {
  const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
backends:
  - name: licenses
    check: { type: status, rise: 1, fall: 1 }
    servers:
      - { name: primary, address: "10.0.0.11:27000" }
      - { name: backup, address: "10.0.0.12:27000", backup: true }
      - { name: dr, address: "10.9.0.11:27000", tier: 2 }
`);
  return new Backend(cfg.backends[0]!, new ModelEvents());
}
const bad = { ok: false, reason: 'refused', durationMs: 1, at: 0 };

describe('STATUS reply (design.md), byte for byte', () => {
  it('all up: Running, tier active', () => {
    expect(renderStatus(backend())).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: active\r\nServers: 3/3 up\r\n');
  });

  it('names the tier new connections go to: backup, then dr, then none (and Down)', () => {
    const b = backend();
    b.server('primary')!.checkFailed(bad);
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: backup\r\nServers: 2/3 up\r\n');
    b.server('backup')!.checkFailed(bad);
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: dr\r\nServers: 1/3 up\r\n');
    b.server('dr')!.checkFailed(bad);
    expect(renderStatus(b)).toBe('Server Status: Down\r\nBackend: licenses\r\nTier: none\r\nServers: 0/3 up\r\n');
  });

  it('reports health, not admin state: DRAIN still counts, MAINT does not', () => {
    const b = backend();
    b.server('backup')!.checkFailed(bad);
    b.server('dr')!.setAdmin('maint', 'admin');
    b.server('primary')!.setAdmin('drain', 'admin');
    // The drained primary is alive (Running, counted) but takes no new connections: Tier none.
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: none\r\nServers: 1/3 up\r\n');
    b.server('primary')!.setAdmin('maint', 'admin');
    expect(renderStatus(b)).toBe('Server Status: Down\r\nBackend: licenses\r\nTier: none\r\nServers: 0/3 up\r\n');
  });

  it('adds "Standby: <MASTER> is MASTER" before Servers when every live server is a triad standby', () => {
    const b = backend();
    const standby = { ok: true, reason: 'triad standby: lic1 is MASTER [3/3 servers UP]', durationMs: 1, at: 0, standby: true, master: 'lic1' };
    b.server('primary')!.checkSucceeded(standby);
    // The backup still serves: not a standby backend.
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: backup\r\nServers: 3/3 up\r\n');
    b.server('backup')!.checkSucceeded(standby);
    b.server('dr')!.setAdmin('maint', 'admin');
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: none\r\nStandby: lic1 is MASTER\r\nServers: 2/3 up\r\n');
    b.server('primary')!.checkSucceeded({ ok: true, reason: 'lmgrd UP', durationMs: 1, at: 0 });
    expect(renderStatus(b)).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: active\r\nServers: 2/3 up\r\n');
  });
});
