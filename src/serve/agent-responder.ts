import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import { listenAt, MAX_CONTROL_PEERS, type BindOptions } from '../io/listen.js';
import { PeersByAddress, type OnRefused } from '../io/peers-by-address.js';

/** A peer that keeps its connection open after our reply is cut off after this long. */
const LINGER_MS = 5000;

/**
 * HAProxy agent-check responder (`agent.listen`): on connect, write one line and half-close.
 * It does not wait for HAProxy's optional `agent-send` string — the reply does not depend on it.
 * Whatever the peer sends is read and dropped until it closes (or LINGER_MS): closing a socket
 * with unread input makes the kernel send a RST, which can destroy our reply in flight.
 */
export class AgentResponder {
  private readonly server: NetServer;
  private readonly peers = new Set<Socket>();
  /** One host holding connections open must not take every slot from HAProxy. */
  private readonly byAddress: PeersByAddress;

  constructor(private readonly listenAt: HostPort, private readonly reply: () => string, private readonly lingerMs = LINGER_MS, onRefused?: OnRefused) {
    this.server = createServer({ allowHalfOpen: false }, this.accept);
    this.server.maxConnections = MAX_CONTROL_PEERS;
    this.byAddress = new PeersByAddress(onRefused);
    this.byAddress.watchDrops(this.server);
    this.server.on('error', () => {
      // Accept errors (EMFILE) surface here; keep the listener running.
    });
  }

  listen(bind?: BindOptions): Promise<void> {
    return listenAt(this.server, this.listenAt, 'agent', bind);
  }

  /** Peers connected now (a reply sent, their side not closed yet). */
  get connections(): number {
    return this.peers.size;
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /**
   * Stops listening, the port free on return; the peers connected now go on until they close or
   * lingerMs (a reload moves the listener: a peer still sending would otherwise be reset).
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

  private readonly accept = (sock: Socket): void => {
    if (!this.byAddress.admit(sock)) {
      sock.destroy();
      return;
    }
    this.peers.add(sock);
    const linger = setTimeout(() => sock.destroy(), this.lingerMs);
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clearTimeout(linger);
      this.peers.delete(sock);
    });
    sock.end(this.reply(), 'latin1');
    sock.resume();
  };
}

