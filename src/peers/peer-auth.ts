import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PEER_PROTOCOL, PEER_VERSION } from './peer-codec.js';

/**
 * The peers challenge-response. Each side sends a fresh random nonce and proves the shared token by
 * an HMAC-SHA256 of the other side's nonce, so the token never crosses the wire and a recorded
 * exchange cannot be replayed. The proofs name the role ("push" / "listen"): a proof one side sent
 * cannot be reflected back to it as the other side's. HAProxy's peers authenticate only with TLS
 * certificates set on them (HAProxy 2.0 on); a licgate peer port applies stick entries that choose
 * license servers, so it always asks for the token. No channel binding and no MAC on the lines: an
 * on-path host could relay the handshake and then alter lines, which is why the README says to keep
 * the port on the pair's own network.
 */
const NONCE_BYTES = 16;
const HEX = /^[0-9a-f]+$/;
const V4_MAPPED = /^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i;
const ZONE = /%.*$/;

/**
 * The listener's end of a peers connection, as both sides see it: the listener its socket's local
 * address and port, the pusher its socket's remote ones. Proofs name it so that a proof is only good
 * for the listener the pusher dialed: without it, whoever answers at a remote's address (the host
 * down, its address taken) could greet this host's pusher with the nonce this host's listener gave
 * it, and hand the pusher's proof back to the listener. A listener on "::" sees IPv4 pushers at
 * "::ffff:a.b.c.d", which the pusher dialed as "a.b.c.d". A link-local address's zone is left out:
 * Node appends the zone of the host that reads the address (fe80::b%eth1 on the listener,
 * fe80::b%ens3 on the pusher), and it names that host's own interface, nothing both sides share.
 */
export function listenerEnd(address: string | undefined, port: number | undefined): string {
  return `${(address ?? '').replace(V4_MAPPED, '').replace(ZONE, '')} ${port ?? 0}`;
}

function nonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

function proof(token: string, role: 'push' | 'listen', listener: string, theirNonce: string): string {
  return createHmac('sha256', token).update(`${PEER_PROTOCOL} ${PEER_VERSION} ${role} ${listener} ${theirNonce}`).digest('hex');
}

function sameProof(expected: string, found: string): boolean {
  if (found.length !== expected.length || !HEX.test(found)) return false;
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(found, 'hex'));
}

/**
 * `refused`: the other host cannot be talked to until an admin acts (the pusher reports
 * auth-failed, not down): a token that does not match, or another peers version; null for a
 * protocol error.
 */
export type AuthStep = { ok: true; reply: string } | { ok: false; reply: string | null; problem: string; refused: 'token' | 'version' | null };

/** The listener's side: greets with its nonce, then checks the pusher's AUTH line. */
export class ListenerAuth {
  private readonly mine = nonce();
  readonly greeting = `${PEER_PROTOCOL} ${PEER_VERSION} ${this.mine}\n`;

  /** `at`: listenerEnd of the socket's local address and port. */
  constructor(private readonly token: string, private readonly at: string) {}

  /** The pusher's first line: its proof and nonce. The reply is OK with ours, or NO. */
  check(line: string): AuthStep {
    const f = line.split(' ');
    if (f.length !== 3 || f[0] !== 'AUTH' || f[1]!.length !== NONCE_BYTES * 2 || !HEX.test(f[1]!)) {
      return { ok: false, reply: 'NO protocol\n', problem: `expected "AUTH <nonce> <proof>", found "${line.slice(0, 60)}"`, refused: null };
    }
    if (!sameProof(proof(this.token, 'push', this.at, this.mine), f[2]!)) return { ok: false, reply: 'NO auth\n', problem: 'wrong token: its proof does not match peers.token_file', refused: 'token' };
    return { ok: true, reply: `OK ${proof(this.token, 'listen', this.at, f[1]!)}\n` };
  }
}

/** The pusher's side: answers the greeting with its proof and nonce, then checks the listener's. */
export class PusherAuth {
  private readonly mine = nonce();
  private at = '';

  constructor(private readonly token: string) {}

  /** The listener's greeting; the reply is our AUTH line. `at`: listenerEnd of the socket's remote address and port. */
  answer(line: string, at: string): AuthStep {
    this.at = at;
    const f = line.split(' ');
    if (f[0] !== PEER_PROTOCOL) return { ok: false, reply: null, problem: `expected "${PEER_PROTOCOL} ${PEER_VERSION} <nonce>" (a licgate peers listener), found "${line.slice(0, 60)}"`, refused: null };
    // Version 1 (the first release of peers) sends D and C lines without the server and age this one
    // requires: cut off line by line, it would log garbage errors. Refused here, with the fix.
    if (f[1] !== String(PEER_VERSION)) return { ok: false, reply: null, problem: `the other host speaks peers version ${(f[1] ?? '').slice(0, 8)}, this one ${PEER_VERSION}; upgrade both`, refused: 'version' };
    if (f.length !== 3 || f[2]!.length !== NONCE_BYTES * 2 || !HEX.test(f[2]!)) return { ok: false, reply: null, problem: `expected a ${NONCE_BYTES * 2}-digit hex nonce in the greeting, found "${line.slice(0, 60)}"`, refused: null };
    return { ok: true, reply: `AUTH ${this.mine} ${proof(this.token, 'push', this.at, f[2]!)}\n` };
  }

  /** The listener's answer to our AUTH line. */
  check(line: string): AuthStep {
    if (line === 'NO auth') return { ok: false, reply: null, problem: 'the remote refused our token: peers.token_file differs between the hosts', refused: 'token' };
    const f = line.split(' ');
    if (f.length !== 2 || f[0] !== 'OK') return { ok: false, reply: null, problem: `expected "OK <proof>", found "${line.slice(0, 60)}"`, refused: null };
    if (!sameProof(proof(this.token, 'listen', this.at, this.mine), f[1]!)) return { ok: false, reply: null, problem: 'wrong token: the remote\'s proof does not match peers.token_file', refused: 'token' };
    return { ok: true, reply: '' };
  }
}
