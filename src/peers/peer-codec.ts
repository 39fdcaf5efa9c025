import { isIP } from 'node:net';

/**
 * The peers wire format, version 1: text lines ending in "\n", fields split by one space, no line
 * over MAX_PEER_LINE bytes. Backend and server names (config NAME), client addresses and host:port
 * texts hold no space, so no field needs quoting.
 *
 *   listener → pusher   LICGATE-PEERS 1 <nonce>               greeting (peer-auth.ts)
 *   pusher → listener   AUTH <nonce> <proof>                  its proof of the token, its own nonce
 *   listener → pusher   OK <proof> | NO <why>                 its proof, or the refusal
 *   pusher → listener   S <backend> <client> <server> <host:port> <expires_in_ms> <since_ago_ms>
 *                       D <backend> <client>                  the entry was dropped (unstick)
 *                       C <backend>                           the table was cleared
 *   either way          K                                     keep-alive, every PEER_KEEPALIVE_MS
 *
 * Times are relative (milliseconds from the moment the line was written), so the hosts' clocks need
 * not agree; the time a line spends on the wire only makes an entry live that much longer.
 */
export const PEER_PROTOCOL = 'LICGATE-PEERS';
export const PEER_VERSION = 1;
/** Longest line, "\n" included: an S line with IPv6 addresses and 64-character names is under 300. */
export const MAX_PEER_LINE = 512;
/** HAProxy's peers send a heartbeat every 3 s (PEER_HEARTBEAT_TIMEOUT in src/peers.c). */
export const PEER_KEEPALIVE_MS = 3000;
/** Silence this long means the peer is gone: three keep-alives missed, with a margin for a busy loop. */
export const PEER_IDLE_MS = 10_000;

export type PeerMessage =
  | { type: 'S'; backend: string; client: string; server: string; address: string; expiresIn: number; sinceAgo: number }
  | { type: 'D'; backend: string; client: string }
  | { type: 'C'; backend: string }
  | { type: 'K' };

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/**
 * A client key as session.ts writes it: an IPv4 or IPv6 address (a zone after %). The pattern bounds
 * it; isIP then refuses the rest ("deadbeef"), which would become a stick key no client has.
 */
const CLIENT = /^[0-9A-Fa-f.:%A-Za-z_-]{2,64}$/;
const isClient = (s: string): boolean => CLIENT.test(s) && isIP(s) !== 0;
const ADDRESS = /^[^\s]{3,300}$/;
const MS = /^\d{1,12}$/;

export function setLine(backend: string, client: string, server: string, address: string, expiresIn: number, sinceAgo: number): string {
  return `S ${backend} ${client} ${server} ${address} ${Math.max(0, Math.round(expiresIn))} ${Math.max(0, Math.round(sinceAgo))}\n`;
}

export function deleteLine(backend: string, client: string): string {
  return `D ${backend} ${client}\n`;
}

export function clearLine(backend: string): string {
  return `C ${backend}\n`;
}

export const KEEPALIVE_LINE = 'K\n';

/** One update line (without its "\n") as a message, or what is wrong with it. */
export function parsePeerLine(line: string): PeerMessage | { problem: string } {
  const f = line.split(' ');
  const bad = (expected: string): { problem: string } => ({ problem: `expected ${expected}, found "${line.length > 60 ? `${line.slice(0, 60)}…` : line}"` });
  switch (f[0]) {
    case 'K':
      return f.length === 1 ? { type: 'K' } : bad('"K" alone');
    case 'C':
      return f.length === 2 && NAME.test(f[1]!) ? { type: 'C', backend: f[1]! } : bad('"C <backend>"');
    case 'D':
      return f.length === 3 && NAME.test(f[1]!) && isClient(f[2]!) ? { type: 'D', backend: f[1]!, client: f[2]! } : bad('"D <backend> <client>"');
    case 'S': {
      if (f.length !== 7 || !NAME.test(f[1]!) || !isClient(f[2]!) || !NAME.test(f[3]!) || !ADDRESS.test(f[4]!) || !MS.test(f[5]!) || !MS.test(f[6]!)) {
        return bad('"S <backend> <client> <server> <host:port> <expires_in_ms> <since_ago_ms>"');
      }
      return { type: 'S', backend: f[1]!, client: f[2]!, server: f[3]!, address: f[4]!, expiresIn: Number(f[5]), sinceAgo: Number(f[6]) };
    }
    default:
      return bad('an update line (S, D, C or K)');
  }
}

/**
 * Splits a socket's bytes into lines with a bound: a peer that sends MAX_PEER_LINE bytes without a
 * line end is cut off (onLine gets null) instead of growing the buffer. Lines are ASCII; a partial
 * line is kept as a string, at most MAX_PEER_LINE characters.
 */
export class LineSplitter {
  private partial = '';

  /** Feeds a chunk; calls `onLine` per complete line (without "\r\n"); false once a line was too long. */
  feed(chunk: Buffer, onLine: (line: string) => boolean): boolean {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl === -1) break;
      if (this.partial.length + nl - start >= MAX_PEER_LINE) return false;
      let line = this.partial + chunk.toString('latin1', start, nl);
      this.partial = '';
      if (line.endsWith('\r')) line = line.slice(0, -1);
      start = nl + 1;
      if (!onLine(line)) return false;
    }
    if (this.partial.length + chunk.length - start >= MAX_PEER_LINE) return false;
    if (start < chunk.length) this.partial += chunk.toString('latin1', start);
    return true;
  }
}
