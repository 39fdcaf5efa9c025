import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A wrapper (argv to put before a command) that runs the command where the name server does not
 * answer, as during a DNS outage: real getaddrinfo() calls then hold libuv's threads for
 * resolv.conf's `timeoutS` (at most 30), while names in /etc/hosts (localhost) resolve at once.
 * Namespaces of its own (unshare: no root needed, gone with the command): in its network namespace
 * the name server's address goes, by a permanent neighbour entry, out one end of a veth pair nobody
 * reads; its mount namespace sees `dir`'s resolv.conf and nsswitch.conf (files, then dns: no
 * systemd-resolved, whose socket would answer from outside).
 */
export function silentNameServer(dir: string, timeoutS: number): string[] {
  const resolv = join(dir, 'resolv.conf');
  const nsswitch = join(dir, 'nsswitch.conf');
  writeFileSync(resolv, `nameserver 10.9.9.2\noptions timeout:${timeoutS} attempts:1\n`);
  writeFileSync(nsswitch, 'hosts: files dns\n');
  const setup = [
    'ip link set lo up',
    'ip link add v0 type veth peer name v1',
    'ip addr add 10.9.9.1/24 dev v0',
    'ip link set v0 up',
    'ip link set v1 up',
    'ip neigh add 10.9.9.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent',
    `mount --bind ${resolv} /etc/resolv.conf`,
    `mount --bind ${nsswitch} /etc/nsswitch.conf`,
    'exec "$@"',
  ].join(' && ');
  return ['unshare', '--net', '--mount', '--map-root-user', 'sh', '-c', setup, 'silent-name-server'];
}
