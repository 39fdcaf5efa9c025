import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import type { AllowList } from './allow-list.js';
import { listenAt, type BindOptions } from './listen.js';
import { PeersByAddress, type OnRefused } from './peers-by-address.js';

/**
 * A control port (STATUS, agent): short exchanges with peers open to the network. At most
 * `maxConnections` peers at once, and once the port is half full one source address gets
 * MAX_PEERS_PER_ADDRESS of them at most, so a flood or one host cannot hold every descriptor of
 * the process and turn license clients away. Subclasses serve one admitted peer each.
 */
export abstract class ControlPort {
  private readonly server: NetServer;
  private readonly peers = new Set<Socket>();
  private readonly byAddress: PeersByAddress;
  private allow: AllowList | null = null;
  private onDenied: OnRefused = () => {};

  constructor(private readonly listenAt: HostPort, private readonly what: string, maxConnections: number, onRefused?: OnRefused) {
    this.server = createServer(this.accept);
    this.server.maxConnections = maxConnections;
    this.byAddress = new PeersByAddress(onRefused);
    this.byAddress.watchDrops(this.server);
    this.server.on('error', () => {
      // Accept errors (EMFILE) surface here; keep the listener running.
    });
  }

  listen(bind?: BindOptions): Promise<void> {
    return listenAt(this.server, this.listenAt, this.what, bind);
  }

  /** Peers connected now. */
  get connections(): number {
    return this.peers.size;
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /**
   * Stops listening, the port free on return; the peers connected now go on, each within its
   * deadline (a reload moves the listener: what it accepted ends as it would have).
   */
  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  /** Stops listening and cuts off the peers still connected: net.Server.close() would wait for each. */
  close(): Promise<void> {
    for (const s of this.peers) s.destroy();
    this.peers.clear();
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  /**
   * The config's `allow` list, from the next accept on (at start-up, and at each reload that keeps
   * the listener); `onDenied` hears of each peer reset because its address is not in it.
   */
  restrict(allow: AllowList | null, onDenied: OnRefused): void {
    this.allow = allow;
    this.onDenied = onDenied;
  }

  /**
   * Resets the peers connected now whose address the allow list no longer admits (a reload changed
   * it). For a port whose peers stay connected for hours (peers): "from the next accept on" would
   * let a host removed from the list push on until its connection broke.
   */
  cutOffDenied(): void {
    const allow = this.allow;
    if (allow === null) return;
    for (const s of this.peers) {
      const peer = s.remoteAddress;
      if (peer === undefined || allow.admits(peer)) continue;
      this.onDenied(peer);
      this.peers.delete(s);
      s.resetAndDestroy();
    }
  }

  /** Serves an admitted peer; it must end up destroyed or closed within a deadline of its own. */
  protected abstract serve(sock: Socket): void;

  private readonly accept = (sock: Socket): void => {
    // remoteAddress is read once per socket (net caches it); undefined: the peer is gone (admit says so).
    const peer = sock.remoteAddress;
    if (this.allow !== null && peer !== undefined && !this.allow.admits(peer)) {
      // A reset, as the frontends send one (see Frontend.accept); it takes no share of the port.
      this.onDenied(peer);
      sock.resetAndDestroy();
      return;
    }
    if (!this.byAddress.admit(sock)) {
      sock.destroy();
      return;
    }
    this.peers.add(sock);
    sock.on('close', () => this.peers.delete(sock));
    this.serve(sock);
  };
}
