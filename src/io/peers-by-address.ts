import { SocketAddress, type Server, type Socket } from 'node:net';
import { ipv6Groups } from '../config/address.js';
import { MAX_CONTROL_PEERS } from './listen.js';

/**
 * Peers served at once from one source address on a control port, once the port is half full: an
 * eighth of MAX_CONTROL_PEERS. HAProxy, keepalived and Prometheus each need a few for milliseconds;
 * without a share per address one host holding MAX_CONTROL_PEERS silent connections (each cut off
 * after seconds, then opened again) had every other peer closed at accept, so HAProxy's checks of
 * this host failed.
 */
export const MAX_PEERS_PER_ADDRESS = 16;

/**
 * Below this many peers in all, one address may hold more than its share. On a loopback listener
 * (the admin port's default) every peer is 127.0.0.1: a share applied always made 16 the limit of
 * the whole port, so local monitoring with a few idle keep-alive connections locked keepalived's
 * /health out. Half the port is still left to the other addresses when one floods it.
 */
export const CROWDED = MAX_CONTROL_PEERS / 2;

/**
 * Places past a listener's `limit` that only a peer on this host takes (127.0.0.1, ::1, or the
 * listener's own address): keepalived's vrrp_script and a local HAProxy check GET /health from
 * there, and 8 addresses each holding their share filled the port, so that the VIP left a healthy
 * host. HAProxy keeps its stats socket's connections apart in the same way (`stats maxconn`, 10 of
 * its own, not taken from a frontend's maxconn). The share per address still applies to them.
 */
export const LOCAL_RESERVE = 8;

/**
 * Whose share a peer takes: an IPv4 address (or an IPv4-mapped IPv6 one, ::ffff:a.b.c.d, as a
 * dual-stack listener sees IPv4 peers) as it is, an IPv6 address by its /64, as `fd00:38::/64`.
 * Why /64: it is one IPv6 network (SLAAC needs 64-bit interface ids), and a host on it may use any
 * of its 2^64 addresses (privacy addresses, or a /64 routed to it), so keyed by address one host
 * could take every place; a shorter prefix would make a whole site share 16. The price: hosts on
 * one /64 share 16 places, as hosts behind one IPv4 NAT do.
 * A link-local address keeps its zone (`fe80::%eth0/64`): fe80::/64 is on every link.
 */
export function shareKey(addr: string): string {
  if (!addr.includes(':')) return addr;
  const [ip, zone] = addr.split('%', 2) as [string, string | undefined];
  let canonical: string;
  try {
    canonical = new SocketAddress({ address: ip, family: 'ipv6' }).address;
  } catch {
    return addr;
  }
  if (canonical.startsWith('::ffff:') && canonical.includes('.')) return addr;
  const prefix = new SocketAddress({ address: `${ipv6Groups(canonical).slice(0, 4).map((g) => g.toString(16)).join(':')}::`, family: 'ipv6' }).address;
  return `${prefix}${zone === undefined ? '' : `%${zone}`}/64`;
}

/** A peer closed at accept, by its address (undefined when the kernel no longer knows it). */
export type OnRefused = (peer: string | undefined) => void;

/** Counts a listener's open connections per source address (per shareKey). */
export class PeersByAddress {
  private readonly counts = new Map<string, number>();
  private total = 0;

  /**
   * `onRefused` hears of each peer refused, so that an admin can see why HAProxy's checks failed.
   * `limit`: peers in all, past which only one on this host is admitted, LOCAL_RESERVE more (the
   * server's maxConnections must leave room for them); without it the server's maxConnections is
   * the only limit in all.
   */
  constructor(private readonly onRefused: OnRefused = () => {}, private readonly max = MAX_PEERS_PER_ADDRESS, private readonly limit = Infinity) {}

  /** Peers admitted and not yet closed. */
  get open(): number {
    return this.total;
  }

  /** The peers `server` closes itself past its maxConnections are refused peers too. */
  watchDrops(server: Server): void {
    server.on('drop', (d) => this.onRefused(d?.remoteAddress));
  }

  /**
   * Takes a place for `sock` until it closes; false, taking none, when its address holds `max`
   * already while the listener is crowded, when `limit` peers are in and it is not on this host
   * (or the socket is gone): the caller destroys it.
   */
  admit(sock: Socket): boolean {
    const peer = sock.remoteAddress;
    if (peer === undefined) return false;
    const addr = shareKey(peer);
    const n = this.counts.get(addr) ?? 0;
    if ((n >= this.max && this.total >= CROWDED) || (this.total >= this.limit && !onThisHost(peer, sock.localAddress))) {
      this.onRefused(peer);
      return false;
    }
    this.counts.set(addr, n + 1);
    this.total++;
    sock.once('close', () => {
      this.total--;
      const left = this.counts.get(addr)! - 1;
      if (left === 0) this.counts.delete(addr);
      else this.counts.set(addr, left);
    });
    return true;
  }
}

/** A peer on this host, as a local health check connects: to localhost, or to the listener's own address. */
function onThisHost(peer: string, local: string | undefined): boolean {
  return peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1' || peer === local;
}
