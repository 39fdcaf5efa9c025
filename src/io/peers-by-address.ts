import { SocketAddress, type Server, type Socket } from 'node:net';
import { ipv6Groups } from '../config/address.js';
import { IntrusiveList, type Linked } from './intrusive-list.js';
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

/** A peer closed at accept, or closed to take a new one, by its address (undefined when the kernel no longer knows it). */
export type OnRefused = (peer: string | undefined) => void;

/** An admitted peer of a listener that closes idle peers to take new ones. */
interface Peer extends Linked<Peer> {
  readonly sock: Socket;
  readonly key: string;
  readonly local: boolean;
  /** Requests read and not yet answered whole. */
  busy: number;
  /** Its place is free again: closed, or closed to take a new peer. */
  gone: boolean;
}

/** Counts a listener's open connections per source address (per shareKey). */
export class PeersByAddress {
  private readonly counts = new Map<string, number>();
  private total = 0;
  /** With evictIdle: each admitted peer, and those with no request under way, the one idle longest first. */
  private readonly peers = new WeakMap<Socket, Peer>();
  private readonly idle = new IntrusiveList<Peer>();

  /**
   * `onRefused` hears of each peer refused, so that an admin can see why HAProxy's checks failed.
   * `limit`: peers in all, past which only one on this host is admitted, LOCAL_RESERVE more (the
   * server's maxConnections must leave room for them); without it the server's maxConnections is
   * the only limit in all.
   * `evictIdle`: a new peer past a limit takes the place of the peer idle longest that the same
   * limit binds (see admit); the caller says when a request is under way (busy, answered). Then
   * `limit` + LOCAL_RESERVE is counted here, and the server's maxConnections must be higher, so that
   * a peer past it reaches admit. nginx does the same when out of worker_connections ("reusing
   * connections": it closes idle keep-alive ones and those awaiting a request). HAProxy at maxconn
   * stops accepting instead, leaving new peers in the backlog: keepalived's check would wait there
   * as long as the idle peers are held.
   */
  constructor(private readonly onRefused: OnRefused = () => {}, private readonly max = MAX_PEERS_PER_ADDRESS, private readonly limit = Infinity, private readonly evictIdle = false) {}

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
   * (or the socket is gone): the caller destroys it. With evictIdle it takes the place of the peer
   * idle longest instead: one of its own address past its share, one not on this host past `limit`
   * (the reserve stays this host's), any past `limit` + LOCAL_RESERVE; false only when every such
   * peer has a request under way.
   */
  admit(sock: Socket): boolean {
    const peer = sock.remoteAddress;
    if (peer === undefined) return false;
    const addr = shareKey(peer);
    const n = this.counts.get(addr) ?? 0;
    const local = onThisHost(peer, sock.localAddress);
    const overShare = n >= this.max && this.total >= CROWDED;
    const overTotal = this.total >= this.limit && (!local || (this.evictIdle && this.total >= this.limit + LOCAL_RESERVE));
    if (overShare || overTotal) {
      const victim = this.evictIdle ? this.idleLongest(overShare ? addr : null, local) : null;
      if (victim === null) {
        this.onRefused(peer);
        return false;
      }
      this.onRefused(victim.sock.remoteAddress);
      this.release(victim);
      victim.sock.destroy();
    }
    // Read again: the peer closed may have been of this address.
    this.counts.set(addr, (this.counts.get(addr) ?? 0) + 1);
    this.total++;
    if (!this.evictIdle) {
      sock.once('close', () => this.leave(addr));
      return true;
    }
    const p: Peer = { sock, key: addr, local, busy: 0, gone: false, listPrev: null, listNext: null };
    this.peers.set(sock, p);
    this.idle.push(p);
    sock.once('close', () => this.release(p));
    return true;
  }

  /** With evictIdle: `sock` has read a request's head; it is not closed for a new peer until answered. */
  busy(sock: Socket): void {
    const p = this.peers.get(sock);
    if (p === undefined || p.gone) return;
    if (p.busy++ === 0) this.idle.remove(p);
  }

  /** With evictIdle: a request of `sock` has its answer handed to the kernel. */
  answered(sock: Socket): void {
    const p = this.peers.get(sock);
    if (p === undefined || p.gone || p.busy === 0) return;
    if (--p.busy === 0) this.idle.push(p);
  }

  /**
   * The peer idle longest of address `key`, or (key null) of any address, only of those not on this
   * host for a peer that is not: at most the port's peers are looked at, and only when it is full.
   */
  private idleLongest(key: string | null, local: boolean): Peer | null {
    for (let p = this.idle.head; p !== null; p = p.listNext) {
      if (key === null ? local || !p.local : p.key === key) return p;
    }
    return null;
  }

  /** Gives `p`'s place back at once: a socket closed to take a new peer emits 'close' only later. */
  private release(p: Peer): void {
    if (p.gone) return;
    p.gone = true;
    this.idle.remove(p);
    this.leave(p.key);
  }

  private leave(addr: string): void {
    this.total--;
    const left = this.counts.get(addr)! - 1;
    if (left === 0) this.counts.delete(addr);
    else this.counts.set(addr, left);
  }
}
/** A peer on this host, as a local health check connects: to localhost, or to the listener's own address. */
function onThisHost(peer: string, local: string | undefined): boolean {
  return peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1' || peer === local;
}
