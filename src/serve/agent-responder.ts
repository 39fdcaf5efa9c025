import type { Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import { ControlPort } from '../io/control-port.js';
import { MAX_CONTROL_PEERS } from '../io/listen.js';
import type { OnRefused } from '../io/peers-by-address.js';

/** A peer that keeps its connection open after our reply is cut off after this long. */
const LINGER_MS = 5000;

/**
 * HAProxy agent-check responder (`agent.listen`): on connect, write one line and half-close.
 * It does not wait for HAProxy's optional `agent-send` string — the reply does not depend on it.
 * Whatever the peer sends is read and dropped until it closes (or LINGER_MS): closing a socket
 * with unread input makes the kernel send a RST, which can destroy our reply in flight.
 */
export class AgentResponder extends ControlPort {
  constructor(listenAt: HostPort, private readonly reply: () => string, private readonly lingerMs = LINGER_MS, onRefused?: OnRefused) {
    super(listenAt, 'agent', MAX_CONTROL_PEERS, onRefused);
  }

  // A peer still sending when a reload moves the listener goes on until it closes or lingerMs:
  // cutting it would reset the reply.
  protected serve(sock: Socket): void {
    const linger = setTimeout(() => sock.destroy(), this.lingerMs);
    sock.on('error', () => sock.destroy());
    sock.on('close', () => clearTimeout(linger));
    sock.end(this.reply(), 'latin1');
    sock.resume();
  }
}
