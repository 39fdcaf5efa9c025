import type { Socket } from 'node:net';

/**
 * Peers served at once from one source address on a control port: an eighth of MAX_CONTROL_PEERS.
 * HAProxy, keepalived and Prometheus each need a few for milliseconds; without a share per address
 * one host holding MAX_CONTROL_PEERS silent connections (each cut off after seconds, then opened
 * again) had every other peer closed at accept, so HAProxy's checks of this host failed.
 */
export const MAX_PEERS_PER_ADDRESS = 16;

/** Counts a listener's open connections per source address. */
export class PeersByAddress {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max = MAX_PEERS_PER_ADDRESS) {}

  /**
   * Takes a place for `sock` until it closes; false, taking none, when its address holds `max`
   * already (or the socket is gone): the caller destroys it.
   */
  admit(sock: Socket): boolean {
    const addr = sock.remoteAddress;
    if (addr === undefined) return false;
    const n = this.counts.get(addr) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(addr, n + 1);
    sock.once('close', () => {
      const left = this.counts.get(addr)! - 1;
      if (left === 0) this.counts.delete(addr);
      else this.counts.set(addr, left);
    });
    return true;
  }
}
