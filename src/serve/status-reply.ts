import { tierName } from '../model/events.js';
import type { Backend } from '../model/backend.js';
import type { Server } from '../model/server.js';

/**
 * The STATUS reply of design.md, byte for byte; lines end with \r\n as HAProxy's tcp-check reads them.
 * A backend whose every live server is a FlexLM triad standby adds `Standby: lic1 is MASTER` before
 * the last line: still "Running" (HAProxy's `expect string Running` keeps passing, its agent-check
 * keeps it off the member), but a licgate proxy checking it with `type: status` takes it as a
 * standby and sends it no client. `Servers:` stays last, so a reader knows when it has it all.
 */
export function renderStatus(backend: Backend): string {
  return (
    `Server Status: ${backend.running ? 'Running' : 'Down'}\r\n` +
    `Backend: ${backend.name}\r\n` +
    `Tier: ${tierName(backend.servingTier)}\r\n` +
    standbyLine(backend.servers) +
    `Servers: ${backend.upCount}/${backend.servers.length} up\r\n`
  );
}

/** The `Standby:` line when some server is UP and every UP one not in MAINT is a standby; else ''. */
function standbyLine(servers: readonly Server[]): string {
  let standby: Server | null = null;
  for (const s of servers) {
    if (!s.up || s.inMaint) continue;
    if (!s.standby) return '';
    standby ??= s;
  }
  if (standby === null) return '';
  const master = standby.lastCheck?.master;
  return `Standby: ${master === undefined ? 'yes' : `${master} is MASTER`}\r\n`;
}
