import { tierName } from '../model/events.js';
import type { Backend } from '../model/backend.js';

/** The STATUS reply of design.md, byte for byte; lines end with \r\n as HAProxy's tcp-check reads them. */
export function renderStatus(backend: Backend): string {
  return (
    `Server Status: ${backend.running ? 'Running' : 'Down'}\r\n` +
    `Backend: ${backend.name}\r\n` +
    `Tier: ${tierName(backend.servingTier)}\r\n` +
    `Servers: ${backend.upCount}/${backend.servers.length} up\r\n`
  );
}
