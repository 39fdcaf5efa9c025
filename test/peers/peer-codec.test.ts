import { describe, expect, it } from 'vitest';
import { clearLine, deleteLine, LineSplitter, MAX_PEER_LINE, parsePeerLine, setLine, unstickServerLine } from '../../src/peers/peer-codec.js';

describe('peer codec', () => {
  it('reads back what it writes', () => {
    const lines = [setLine('licenses', '10.1.2.3', 'primary', '10.0.0.11:27000', 3_600_000.4, 12.6), setLine('licenses', 'fd00::7', 'b', '[fd00::12]:27000', 5, 0), deleteLine('licenses', '10.1.2.3', 'primary', 1500.2), deleteLine('licenses', 'fd00::7', '*', 0), unstickServerLine('licenses', 'b', 60_000), clearLine('vendor-x', 7), 'K\n'];
    expect(lines.map((l) => parsePeerLine(l.slice(0, -1)))).toEqual([
      { type: 'S', backend: 'licenses', client: '10.1.2.3', server: 'primary', address: '10.0.0.11:27000', expiresIn: 3_600_000, sinceAgo: 13 },
      { type: 'S', backend: 'licenses', client: 'fd00::7', server: 'b', address: '[fd00::12]:27000', expiresIn: 5, sinceAgo: 0 },
      { type: 'D', backend: 'licenses', client: '10.1.2.3', server: 'primary', ago: 1500 },
      { type: 'D', backend: 'licenses', client: 'fd00::7', server: '*', ago: 0 },
      { type: 'U', backend: 'licenses', server: 'b', ago: 60_000 },
      { type: 'C', backend: 'vendor-x', ago: 7 },
      { type: 'K' },
    ]);
  });

  it('refuses lines that are not updates, saying what it expected', () => {
    for (const bad of ['', 'HELLO', 'S licenses 10.1.2.3 primary', 'S licenses 10.1.2.3 primary 10.0.0.11:27000 -5 0', 'S lic enses 10.1.2.3 a b 1 2 3', 'D licenses', 'C', 'K K', 'D licenses 10.1.2.3\x00', 'D licenses 10.1.2.3 a 5\x00', 'D licenses 10.1.2.3 a', 'D licenses 10.1.2.3 ** 5', 'U licenses * 5', 'U licenses a -1', 'C licenses x']) {
      const m = parsePeerLine(bad);
      expect('problem' in m, JSON.stringify(bad)).toBe(true);
    }
    expect(parsePeerLine('X y')).toEqual({ problem: 'expected an update line (S, D, U, C or K), found "X y"' });
    // What a version-1 peer would send, had it got past the greeting: said, not taken as a whole-table clear.
    expect(parsePeerLine('D licenses 10.1.2.3')).toEqual({ problem: 'expected "D <backend> <client> <server> <ago_ms>", found "D licenses 10.1.2.3"' });
    expect(parsePeerLine('C licenses')).toEqual({ problem: 'expected "C <backend> <ago_ms>", found "C licenses"' });
  });

  it('refuses a client that is not an address, which would become a stick key the admin API lists', () => {
    for (const bad of ['S licenses not-an-address primary 10.0.0.11:27000 1000 0', 'S licenses 10.1.2 primary 10.0.0.11:27000 1000 0', 'D licenses deadbeef a 0', 'D licenses ::ffff::1 a 0']) {
      expect(parsePeerLine(bad), bad).toHaveProperty('problem');
    }
    // A link-local client has its zone, as Node gives its address.
    expect(parsePeerLine('D licenses fe80::1%eth0 a 0')).toEqual({ type: 'D', backend: 'licenses', client: 'fe80::1%eth0', server: 'a', ago: 0 });
  });

  it('splits lines across chunks and stops at a line over the limit', () => {
    const split = new LineSplitter();
    const got: string[] = [];
    const take = (l: string): boolean => (got.push(l), true);
    expect(split.feed(Buffer.from('K\nD licenses 10.'), take)).toBe(true);
    expect(split.feed(Buffer.from('1.2.3\r\nK'), take)).toBe(true);
    expect(got).toEqual(['K', 'D licenses 10.1.2.3']);
    expect(split.feed(Buffer.alloc(MAX_PEER_LINE, 'x'), take)).toBe(false);
    // Without a line end too: the partial line is bounded, not the peer's patience.
    const slow = new LineSplitter();
    let ok = true;
    for (let i = 0; i < MAX_PEER_LINE && ok; i++) ok = slow.feed(Buffer.from('x'), take);
    expect(ok).toBe(false);
  });
});
