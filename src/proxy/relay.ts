import type { Socket } from 'node:net';

export type EndReason = 'closed' | 'client-reset' | 'server-reset' | 'client-error' | 'server-error' | 'idle-timeout' | 'shutdown';

/** Told once, when both sockets of a relay have closed. */
export interface RelayOwner {
  relayDone(relay: Relay, reason: EndReason): void;
}

const kRelay = Symbol('licgate.relay');
type RelaySocket = Socket & { [kRelay]: Relay };

/**
 * One client↔server pair. Bytes flow with pause/resume backpressure; a FIN is forwarded as a
 * half-close (license clients and daemons both rely on it), a reset as a reset. The owner is told
 * once, when both sockets have closed. Nothing here allocates or logs per chunk, and nothing per
 * relay but this object: the event handlers are shared functions that find their relay on the socket.
 */
export class Relay {
  private open = 2;
  private reason: EndReason = 'closed';
  private clientStarted = false;

  constructor(
    readonly client: Socket,
    readonly server: Socket,
    private readonly owner: RelayOwner,
  ) {
    (client as RelaySocket)[kRelay] = this;
    (server as RelaySocket)[kRelay] = this;
    server.on('data', onServerData);
    client.on('drain', onClientDrain);
    server.on('end', onServerEnd);
    server.on('error', onServerError);
    client.on('error', onClientError);
    server.on('close', onClose);
    client.on('close', onClose);
    client.on('timeout', onIdle);
  }

  /** Starts client→server once in-band STATUS sniffing has decided this is real traffic. */
  startClient(pending: Buffer | null): void {
    if (this.clientStarted) return;
    this.clientStarted = true;
    const { client, server } = this;
    // Bytes that came before the upstream connect; the client may have been paused to bound them.
    const flowing = pending && pending.length ? server.write(pending) : true;
    client.on('data', onClientData);
    server.on('drain', onServerDrain);
    client.on('end', onClientEnd);
    if (client.readableEnded) this.clientEnded();
    else if (!flowing) client.pause();
    else if (client.isPaused()) client.resume();
  }

  /**
   * In-band STATUS arrived after the upstream connect: close the server side quietly and give the
   * client socket back (no listener of ours stays on it, and the owner will not be told).
   */
  dropServer(): void {
    const { client, server } = this;
    server.removeListener('data', onServerData).removeListener('end', onServerEnd).removeListener('error', onServerError).removeListener('close', onClose).removeListener('drain', onServerDrain);
    client.removeListener('drain', onClientDrain).removeListener('error', onClientError).removeListener('close', onClose).removeListener('timeout', onIdle);
    client.removeListener('data', onClientData).removeListener('end', onClientEnd);
    server.on('error', ignore);
    server.destroy();
  }

  /** Ends the session from our side (shutdown grace expired, admin kill, idle timeout). */
  abort(reason: EndReason): void {
    this.reason = reason;
    this.client.destroy();
    this.server.destroy();
  }

  clientEnded(): void {
    finish(this.server);
  }

  serverEnded(): void {
    finish(this.client);
  }

  fail(err: NodeJS.ErrnoException, reset: EndReason, other: EndReason, peer: Socket): void {
    const isReset = err.code === 'ECONNRESET' || err.code === 'EPIPE';
    if (this.reason === 'closed') this.reason = isReset ? reset : other;
    if (peer.destroyed) return;
    // Pass a reset on as a reset, so the peer sees what a direct connection would have shown it.
    // Not once we have end()ed the peer: libuv refuses to reset a handle that is shutting down
    // (uv_tcp_close_reset → EINVAL), and Node then emits 'error' instead of 'close', which would
    // leave this relay waiting for a close that never comes.
    if (isReset && !peer.writableEnded) peer.resetAndDestroy();
    else peer.destroy();
  }

  oneClosed(): void {
    if (--this.open === 0) {
      this.owner.relayDone(this, this.reason);
      return;
    }
    const { client, server } = this;
    // One side is fully gone: if the other still has nothing to say, its own FIN/close follows.
    // If it was destroyed (not ended), make sure the peer does not linger half-open forever.
    if (client.destroyed && !server.destroyed && !client.readableEnded) server.destroy();
    if (server.destroyed && !client.destroyed && !server.readableEnded) client.destroy();
  }
}

/**
 * The other side sent its FIN: pass it on. When `peer` has already sent its own FIN and we have
 * nothing left to write to it, both directions are done and close() says it all (its FIN included):
 * a shutdown(2) first would only cost a system call on every short session.
 */
function finish(peer: Socket): void {
  if (peer.destroyed) return;
  if (peer.readableEnded && peer.writableLength === 0) peer.destroy();
  else peer.end();
}

// Shared by every relay (see the class comment); `this` is the socket the event came from.
function onClientData(this: RelaySocket, chunk: Buffer): void {
  const r = this[kRelay];
  if (!r.server.write(chunk)) this.pause();
}

function onServerData(this: RelaySocket, chunk: Buffer): void {
  const r = this[kRelay];
  if (!r.client.write(chunk)) this.pause();
}

function onServerDrain(this: RelaySocket): void {
  this[kRelay].client.resume();
}

function onClientDrain(this: RelaySocket): void {
  this[kRelay].server.resume();
}

function onClientEnd(this: RelaySocket): void {
  this[kRelay].clientEnded();
}

function onServerEnd(this: RelaySocket): void {
  this[kRelay].serverEnded();
}

function onClientError(this: RelaySocket, err: NodeJS.ErrnoException): void {
  const r = this[kRelay];
  r.fail(err, 'client-reset', 'client-error', r.server);
}

function onServerError(this: RelaySocket, err: NodeJS.ErrnoException): void {
  const r = this[kRelay];
  r.fail(err, 'server-reset', 'server-error', r.client);
}

function onClose(this: RelaySocket): void {
  this[kRelay].oneClosed();
}

function onIdle(this: RelaySocket): void {
  this[kRelay].abort('idle-timeout');
}

const ignore = (): void => {
  // A late error on a socket we already dropped.
};
