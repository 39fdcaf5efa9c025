import { open } from 'node:fs/promises';
import { notRegularFile, READ_NO_WAIT } from '../io/regular-file.js';

/**
 * This host's VRRP role, as keepalived's notify hook (keepalived/licgate-vrrp-notify.sh) records it:
 * one line, replaced atomically on every transition,
 *     TYPE NAME STATE PRIORITY TIMESTAMP      e.g.  INSTANCE VI_LICGATE MASTER 150 2026-12-04T23:00:00Z
 * Read when /status or /metrics asks (a scrape or a page refresh), never on the data path.
 */
export const VRRP_STATES = ['MASTER', 'BACKUP', 'FAULT', 'STOP', 'DELETED'] as const;
export type VrrpStateName = (typeof VRRP_STATES)[number];

export interface VrrpRole {
  type: 'INSTANCE' | 'GROUP';
  name: string;
  state: VrrpStateName;
  priority: number;
  /** When keepalived entered the state (the hook's timestamp), ISO 8601. */
  since: string;
}

/** `role` is null until keepalived has reported one; `error` says why. */
export interface VrrpReport {
  file: string;
  role: VrrpRole | null;
  error: string | null;
}

/** The hook writes well under 200 bytes; a larger file is not its. */
const MAX_BYTES = 4096;
const LINE = /^(INSTANCE|GROUP) ([A-Za-z0-9_.:@-]{1,64}) ([A-Z]+) (\d{1,3}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/;

export function parseVrrpState(text: string): VrrpRole | string {
  const line = text.trim();
  const m = LINE.exec(line);
  const found = JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
  if (!m) return `expected "TYPE NAME STATE PRIORITY TIMESTAMP" (as licgate-vrrp-notify.sh writes it), found ${found}`;
  const state = m[3] as VrrpStateName;
  if (!VRRP_STATES.includes(state)) return `expected a state of ${VRRP_STATES.join(', ')}, found ${JSON.stringify(m[3])}`;
  const priority = Number(m[4]);
  if (priority > 255) return `expected a priority of 0-255, found ${priority}`;
  return { type: m[1] as VrrpRole['type'], name: m[2]!, state, priority, since: m[5]! };
}

export async function readVrrpState(file: string): Promise<VrrpReport> {
  let text: string;
  try {
    const fh = await open(file, READ_NO_WAIT);
    try {
      const other = notRegularFile(await fh.stat());
      if (other !== null) return { file, role: null, error: `expected a regular file at ${file}, found ${other}` };
      const buf = Buffer.alloc(MAX_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_BYTES) return { file, role: null, error: `expected one line of state, found a file over ${MAX_BYTES} bytes` };
      text = buf.toString('utf8', 0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // keepalived runs the hook at its first transition; until then there is no file.
    if (e.code === 'ENOENT') return { file, role: null, error: 'no state yet: keepalived has not reported a role (is it running, with the notify hook?)' };
    return { file, role: null, error: `cannot read the state file: ${e.message}` };
  }
  if (text.trim() === '') return { file, role: null, error: 'the state file is empty' };
  const role = parseVrrpState(text);
  return typeof role === 'string' ? { file, role: null, error: role } : { file, role, error: null };
}
