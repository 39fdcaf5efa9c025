import type { Socket } from 'node:net';
import type { HostPort } from '../config/address.js';
import { ControlPort } from '../io/control-port.js';
import type { OnRefused } from '../io/peers-by-address.js';
import { ListenerAuth, listenerEnd } from './peer-auth.js';
import { KEEPALIVE_LINE, LineSplitter, parsePeerLine, PEER_IDLE_MS, PEER_KEEPALIVE_MS, type PeerMessage } from './peer-codec.js';

/** A pair has one remote, a group at most 8: a few more for reconnects that overlap a dying socket. */
const MAX_PEER_CONNECTIONS = 32;
const HANDSHAKE_MS = 5000;

/** What the listener tells its owner (src/peers/peer-sync.ts), by the peer's address. */
export interface PeerInbox {
  token(): string | null;
  authenticated(peer: string): void;
  received(peer: string, m: Exclude<PeerMessage, { type: 'K' }>): void;
  /** The peer was cut off: wrong token, garbage, a line too long, silence. */
  cutOff(peer: string, why: string, auth: boolean): void;
  closed(peer: string): void;
}

/**
 * Where the other hosts push their stick entries. Only the `remotes` addresses get past accept
 * (ControlPort's allow list resets the others, as on status and agent), and only a peer that proves
 * the token has its lines applied. Each peer's memory is bounded by the line limit, and its time by
 * the handshake deadline and the idle timeout: a peer that misbehaves is cut off alone.
 */
export class PeerListener extends ControlPort {
  /** Each connection's end (by its peer's address), for cutOffAll. */
  private readonly ends = new Map<(reply: string) => boolean, string>();

  constructor(listenAt: HostPort, private readonly inbox: PeerInbox, onRefused?: OnRefused) {
    super(listenAt, 'peers', MAX_PEER_CONNECTIONS, onRefused);
  }

  /**
   * Ends every connection open now with "NO auth" (a licgate pusher then reports the token refused):
   * each was accepted under the token in force, which changed. Returns their peers' addresses,
   * which the caller counts and logs (once for all, not as a wrong token each).
   */
  cutOffAll(): string[] {
    const cut: string[] = [];
    for (const [end, peer] of this.ends) if (end('NO auth\n')) cut.push(peer);
    return cut;
  }

  protected serve(sock: Socket): void {
    const peer = sock.remoteAddress ?? 'unknown';
    const token = this.inbox.token();
    if (token === null) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    const auth = new ListenerAuth(token, listenerEnd(sock.localAddress, sock.localPort));
    const split = new LineSplitter();
    let authed = false;
    const opened = performance.now();
    let lastRead = opened;
    let ended = false;
    const end = (reply: string | null): boolean => {
      // Reset already (cutOffDenied: its remote was removed) and counted there: not a second time
      // by cutOffAll, whose reload removed it too, before its 'close' takes it out of `ends`.
      if (ended || sock.destroyed) return false;
      ended = true;
      if (reply !== null) sock.end(reply);
      // Not left to the peer to close after the reply: it may never.
      setTimeout(() => sock.destroy(), 1000).unref();
      sock.pause();
      return true;
    };
    const cut = (why: string, reply: string | null, isAuth = false): false => {
      if (end(reply)) this.inbox.cutOff(peer, why, isAuth);
      return false;
    };
    this.ends.set(end, peer);
    // One chunk per loop turn: libuv reads up to 32 chunks of 64 KB in one go, and a peer's burst
    // (a full push that piled up while this loop was busy) held it 120 ms, license clients waiting.
    const resume = (): void => {
      if (!ended) sock.resume();
    };
    const handshake = setTimeout(() => cut(`no handshake within ${HANDSHAKE_MS / 1000} s`, null), HANDSHAKE_MS);
    const ticker = setInterval(() => {
      if (performance.now() - lastRead > PEER_IDLE_MS) cut(`nothing for ${PEER_IDLE_MS / 1000} s (a keep-alive is due every ${PEER_KEEPALIVE_MS / 1000} s)`, null);
      else if (authed) sock.write(KEEPALIVE_LINE);
    }, PEER_KEEPALIVE_MS);
    sock.on('data', (chunk: Buffer) => {
      if (ended) return;
      lastRead = performance.now();
      const whole = split.feed(chunk, (line) => {
        if (!authed) {
          const step = auth.check(line);
          if (!step.ok) return cut(step.problem, step.reply, true);
          authed = true;
          clearTimeout(handshake);
          sock.write(step.reply);
          this.inbox.authenticated(peer);
          return true;
        }
        const m = parsePeerLine(line);
        if ('problem' in m) return cut(m.problem, null);
        if (m.type !== 'K') this.inbox.received(peer, m);
        return true;
      });
      if (!whole && !ended) cut('a line over the length limit', null);
      if (!ended) {
        sock.pause();
        setImmediate(resume);
      }
    });
    // A version-1 pusher hangs up on a version-2 greeting without a word (it cannot say why; its
    // own log does). Said here too, or this host's admin saw nothing of the remote's attempts.
    sock.on('end', () => {
      if (lastRead === opened && !ended) cut(`hung up after the greeting without a word: a licgate of another peers version (version 1 does so; upgrade both), or not a licgate pusher`, null);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      this.ends.delete(end);
      clearTimeout(handshake);
      clearInterval(ticker);
      if (authed) this.inbox.closed(peer);
    });
    sock.write(auth.greeting);
  }
}
