import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { findHost, isLoopback, sameAddress } from '../../config/address.js';
import type { LicenseInfo } from '../parse/license-info.js';
import { lmstatHealthy, type LmstatVerdict } from '../parse/lmstat.js';

/** The names this machine may appear under in lmstat's server list. */
export interface MachineIdentity {
  hostname: string;
  addresses: string[];
}

export function thisMachine(): MachineIdentity {
  const addresses: string[] = [];
  let interfaces: ReturnType<typeof networkInterfaces> = {};
  try {
    interfaces = networkInterfaces();
  } catch {
    // getifaddrs needs a netlink socket, which a sandbox may refuse (systemd's
    // RestrictAddressFamilies without AF_NETLINK: EAFNOSUPPORT). The host name still identifies
    // this machine in lmstat's list; without this every lmstat check would fail.
  }
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (!a.internal) addresses.push(a.address);
  }
  return { hostname: hostname(), addresses };
}

/**
 * The health verdict of one lmstat run for the server this check guards ("the local server UP and
 * its vendor daemons UP").
 *
 * In a triad every member prints the same list, so "the local server" has to be found in it:
 * - a server declared by name or remote address (`host3:27000`) is that entry (lmstatHealthy
 *   matches case-insensitively and by short name); a one-server list is that server whatever name
 *   it prints, because lmstat prints the license file's SERVER name, not the `-c` address it asked
 *   (`-c 4100@l-server01` prints `license-server01`, and never the address of a server given by IP);
 * - a server declared as this machine (`127.0.0.1:27000`, the usual sidecar, or one of this
 *   machine's own addresses) is the entry naming this machine's hostname or one of its addresses,
 *   because lmstat prints the license file's SERVER names, never "localhost";
 * - when no entry names this machine, a single-server list is that server (we asked it), but in a
 *   list of several the check fails and says so: guessing "any member UP" would keep a dead triad
 *   member in rotation, which is exactly what the sidecar is there to prevent.
 */
export function lmstatVerdict(info: LicenseInfo, serverHost: string, me: MachineIdentity = thisMachine()): LmstatVerdict {
  const local = isLoopback(serverHost) || me.addresses.some((a) => sameAddress(a, serverHost));
  if (!local) return lmstatHealthy(info, info.servers.length === 1 ? info.servers[0]!.host : serverHost);

  // lmstat prints the SERVER line's spelling, often the short name where hostname() is the FQDN, or the reverse.
  const mine = info.servers.find((s) => isIP(s.host) && me.addresses.some((a) => sameAddress(a, s.host))) ?? findHost(info.servers, me.hostname, (s) => s.host);
  if (mine) return lmstatHealthy(info, mine.host);
  if (info.servers.length <= 1) return lmstatHealthy(info);
  const listed = info.servers.map((s) => s.host).join(', ');
  return {
    ok: false,
    reason: `cannot tell which of ${listed} is this host (${me.hostname}); give the server the address the license file's SERVER line uses`,
  };
}
