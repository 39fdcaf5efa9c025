import { isIP } from 'node:net';

/**
 * The peers wire format, version 2: text lines ending in "\n", fields split by one space, no line
 * over MAX_PEER_LINE bytes. Backend and server names (config NAME), client addresses and host:port
 * texts hold no space, so no field needs quoting.
 *
 *   listener → pusher   LICGATE-PEERS 1 <nonce>               greeting (peer-auth.ts)
 *   pusher → listener   AUTH <nonce> <proof>                  its proof of the token, its own nonce
 *   listener → pusher   OK <proof> | NO <why>                 its proof, or the refusal
 *   pusher → listener   S <backend> <client> <server> <host:port> <expires_in_ms> <since_ago_ms>
 *                       D <backend> <client> <server> <ago_ms>   `ctl unstick B CLIENT`: its entry naming
 *                                                             <server> ("*": any) was dropped ago_ms ago
 *                       U <backend> <server> <ago_ms>         `ctl unstick --server`: every entry naming it
 *                       C <backend> <ago_ms>                  `ctl unstick --all`: every entry
 *   either way          K                                     keep-alive, every PEER_KEEPALIVE_MS
 *
 * Times are relative (milliseconds from the moment the line was written), so the hosts' clocks need
 * not agree; the time a line spends on the wire only makes an entry live that much longer. D, U and
 * C are deletion markers: they drop the entries placed before them (a "put on its server N ms ago"
 * older than the marker's age), and the full push sends the markers a host holds before its entries,
 * so an unstick made while the other host was away reaches it. Version 1 had no server and no age
 * on D and C, and no U: a version-1 peer is refused at the greeting (peer-auth.ts).
 */
export const PEER_PROTOCOL = 'LICGATE-PEERS';
export const PEER_VERSION = 2;
/** Longest line, "\n" included: an S line with IPv6 addresses and 64-character names is under 300. */
export const MAX_PEER_LINE = 512;
/** HAProxy's peers send a heartbeat every 3 s (PEER_HEARTBEAT_TIMEOUT in src/peers.c). */
export const PEER_KEEPALIVE_MS = 3000;
/** Silence this long means the peer is gone: three keep-alives missed, with a margin for a busy loop. */
export const PEER_IDLE_MS = 10_000;

export type PeerMessage =
  | { type: 'S'; backend: string; client: string; server: string; address: string; expiresIn: number; sinceAgo: number }
  | { type: 'D'; backend: string; client: string; server: string; ago: number }
  | { type: 'U'; backend: string; server: string; ago: number }
  | { type: 'C'; backend: string; ago: number }
  | { type: 'K' };

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/**
 * A client key as session.ts writes it: an IPv4 or IPv6 address (a zone after %). The pattern bounds
 * it; isIP then refuses the rest ("deadbeef"), which would become a stick key no client has.
 */
const CLIENT = /^[0-9A-Fa-f.:%A-Za-z_-]{2,64}$/;
/** Whether `s` is a client key an update line may carry (admin.state_file's markers are held to it too). */
export const isPeerClient = (s: string): boolean => CLIENT.test(s) && isIP(s) !== 0;
/** Whether `s` is a backend or server name an update line may carry. */
export const isPeerName = (s: string): boolean => NAME.test(s);
const ADDRESS = /^[^\s]{3,300}$/;
const MS = /^\d{1,12}$/;

/** A D line's server when the unstick found no entry here: the other host's goes, whatever it names. */
export const ANY_SERVER = '*';

const ms = (t: number): number => Math.max(0, Math.round(t));

export function setLine(backend: string, client: string, server: string, address: string, expiresIn: number, sinceAgo: number): string {
  return `S ${backend} ${client} ${server} ${address} ${ms(expiresIn)} ${ms(sinceAgo)}\n`;
}

/** `server`: the server the client was unstuck from, or ANY_SERVER when this host had no entry for it. */
export function deleteLine(backend: string, client: string, server: string, ago: number): string {
  return `D ${backend} ${client} ${server} ${ms(ago)}\n`;
}

export function unstickServerLine(backend: string, server: string, ago: number): string {
  return `U ${backend} ${server} ${ms(ago)}\n`;
}

export function clearLine(backend: string, ago: number): string {
  return `C ${backend} ${ms(ago)}\n`;
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
      return f.length === 3 && NAME.test(f[1]!) && MS.test(f[2]!) ? { type: 'C', backend: f[1]!, ago: Number(f[2]) } : bad('"C <backend> <ago_ms>"');
    case 'D':
      return f.length === 5 && NAME.test(f[1]!) && isPeerClient(f[2]!) && (f[3] === ANY_SERVER || NAME.test(f[3]!)) && MS.test(f[4]!)
        ? { type: 'D', backend: f[1]!, client: f[2]!, server: f[3]!, ago: Number(f[4]) }
        : bad('"D <backend> <client> <server> <ago_ms>"');
    case 'U':
      return f.length === 4 && NAME.test(f[1]!) && NAME.test(f[2]!) && MS.test(f[3]!) ? { type: 'U', backend: f[1]!, server: f[2]!, ago: Number(f[3]) } : bad('"U <backend> <server> <ago_ms>"');
    case 'S': {
      if (f.length !== 7 || !NAME.test(f[1]!) || !isPeerClient(f[2]!) || !NAME.test(f[3]!) || !ADDRESS.test(f[4]!) || !MS.test(f[5]!) || !MS.test(f[6]!)) {
        return bad('"S <backend> <client> <server> <host:port> <expires_in_ms> <since_ago_ms>"');
      }
      return { type: 'S', backend: f[1]!, client: f[2]!, server: f[3]!, address: f[4]!, expiresIn: Number(f[5]), sinceAgo: Number(f[6]) };
    }
    default:
      return bad('an update line (S, D, U, C or K)');
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
