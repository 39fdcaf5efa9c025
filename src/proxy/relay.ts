import type { Socket } from 'node:net';

export type EndReason = 'closed' | 'client-reset' | 'server-reset' | 'client-error' | 'server-error' | 'idle-timeout' | 'shutdown';

/**
 * One client↔server pair. Bytes flow with pause/resume backpressure; a FIN is forwarded as a
 * half-close (license clients and daemons both rely on it), a reset as a reset. `finish` runs once,
 * when both sockets have closed. Nothing here allocates or logs per chunk.
 */
export class Relay {
  private open = 2;
  private reason: EndReason = 'closed';
  private clientStarted = false;

  constructor(
    readonly client: Socket,
    readonly server: Socket,
    private readonly finish: (relay: Relay, reason: EndReason) => void,
  ) {
    server.on('data', this.fromServer);
    client.on('drain', this.resumeServer);
    server.on('end', this.serverEnded);
    server.on('error', this.serverError);
    client.on('error', this.clientError);
    server.on('close', this.oneClosed);
    client.on('close', this.oneClosed);
    client.on('timeout', this.idle);
  }

  /** Starts client→server once in-band STATUS sniffing has decided this is real traffic. */
  startClient(pending: Buffer | null): void {
    if (this.clientStarted) return;
    this.clientStarted = true;
    if (pending && pending.length) this.fromClient(pending);
    this.client.on('data', this.fromClient);
    this.server.on('drain', this.resumeClient);
    this.client.on('end', this.clientEnded);
    if (this.client.readableEnded) this.clientEnded();
    this.client.resume();
  }

  /**
   * In-band STATUS arrived after the upstream connect: close the server side quietly and give the
   * client socket back (no listener of ours stays on it, and `finish` will not run).
   */
  dropServer(): void {
    const { client, server } = this;
    server.off('data', this.fromServer).off('end', this.serverEnded).off('error', this.serverError).off('close', this.oneClosed).off('drain', this.resumeClient);
    client.off('drain', this.resumeServer).off('error', this.clientError).off('close', this.oneClosed).off('timeout', this.idle);
    client.off('data', this.fromClient).off('end', this.clientEnded);
    server.on('error', ignore);
    server.destroy();
  }

  /** Ends the session from our side (shutdown grace expired, admin kill). */
  abort(reason: EndReason): void {
    this.reason = reason;
    this.client.destroy();
    this.server.destroy();
  }

  private readonly fromClient = (chunk: Buffer): void => {
    if (!this.server.write(chunk)) this.client.pause();
  };

  private readonly fromServer = (chunk: Buffer): void => {
    if (!this.client.write(chunk)) this.server.pause();
  };

  private readonly resumeClient = (): void => {
    this.client.resume();
  };

  private readonly resumeServer = (): void => {
    this.server.resume();
  };

  private readonly clientEnded = (): void => {
    if (!this.server.destroyed) this.server.end();
  };

  private readonly serverEnded = (): void => {
    if (!this.client.destroyed) this.client.end();
  };

  private readonly clientError = (err: NodeJS.ErrnoException): void => {
    this.fail(err, 'client-reset', 'client-error', this.server);
  };

  private readonly serverError = (err: NodeJS.ErrnoException): void => {
    this.fail(err, 'server-reset', 'server-error', this.client);
  };

  private fail(err: NodeJS.ErrnoException, reset: EndReason, other: EndReason, peer: Socket): void {
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

  private readonly idle = (): void => {
    this.abort('idle-timeout');
  };

  private readonly oneClosed = (): void => {
    if (--this.open === 0) {
      this.finish(this, this.reason);
      return;
    }
    // One side is fully gone: if the other still has nothing to say, its own FIN/close follows.
    // If it was destroyed (not ended), make sure the peer does not linger half-open forever.
    if (this.client.destroyed && !this.server.destroyed && !this.client.readableEnded) this.server.destroy();
    if (this.server.destroyed && !this.client.destroyed && !this.server.readableEnded) this.client.destroy();
  };
}

const ignore = (): void => {
  // A late error on a socket we already dropped.
};
