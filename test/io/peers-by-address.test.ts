import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { CROWDED, PeersByAddress, shareKey } from '../../src/io/peers-by-address.js';
import { peerFlood } from '../helpers/peer-flood.js';
import { waitFor } from '../helpers/wait-for.js';

describe('shareKey', () => {
  it('keys an IPv4 peer, and an IPv4-mapped IPv6 one, by the whole address', () => {
    expect(shareKey('127.0.0.2')).toBe('127.0.0.2');
    expect(shareKey('::ffff:10.0.0.7')).toBe('::ffff:10.0.0.7');
    expect(shareKey('::ffff:10.0.0.8')).toBe('::ffff:10.0.0.8');
  });

  it('keys every address of one IPv6 /64 alike, and addresses of two /64s apart', () => {
    const keys = ['2001:db8:1:2::1', '2001:db8:1:2:a:b:c:d', '2001:DB8:1:2:0:0:0:ffff', '2001:0db8:0001:0002:8000::1'].map(shareKey);
    expect(keys).toEqual(Array(4).fill('2001:db8:1:2::/64'));
    expect(shareKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
  });

  it('reads any spelling of the address: :: anywhere, an IPv4 tail', () => {
    expect(shareKey('fd00:38::41:1b3f')).toBe('fd00:38::/64');
    expect(shareKey('1::2:3:4:5:6:7')).toBe('1:0:2:3::/64');
    expect(shareKey('1:2:3:4:5::')).toBe('1:2:3:4::/64');
    expect(shareKey('64:ff9b:1:2:3:4:1.2.3.4')).toBe('64:ff9b:1:2::/64');
    expect(shareKey('::1')).toBe('::/64');
  });

  it('keeps the zone of a link-local address: each link has its own fe80::/64', () => {
    expect(shareKey('fe80::1%eth0')).toBe('fe80::%eth0/64');
    expect(shareKey('fe80::2%eth1')).toBe('fe80::%eth1/64');
  });

  it('keys what is no address by itself', () => {
    expect(shareKey('not:an:address')).toBe('not:an:address');
  });
});

describe('PeersByAddress with evictIdle', () => {
  it('an address whose peers were closed for its own new ones has its whole share again once they are gone', async () => {
    const peers = new PeersByAddress(undefined, undefined, MAX_CONTROL_PEERS, true);
    const server = createServer((sock) => {
      if (!peers.admit(sock)) sock.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      // Past 127.0.0.2's share, each new peer takes the place of one of its idle ones: 36 of them.
      const churn = await peerFlood(port, CROWDED + 36, '127.0.0.2');
      await waitFor(() => churn.closed() === 36 || undefined, { timeoutMs: 3000, intervalMs: 10, what: "36 of 127.0.0.2's peers closed for its new ones" });
      churn.destroy();
      await waitFor(() => peers.open === 0 || undefined, { timeoutMs: 3000, intervalMs: 10, what: 'every peer gone' });
      const others = await peerFlood(port, CROWDED, '127.0.0.3');
      await waitFor(() => peers.open === CROWDED || undefined, { timeoutMs: 3000, intervalMs: 10, what: `${CROWDED} peers of 127.0.0.3` });
      // The port is crowded, and 127.0.0.2 holds nothing: its new peer is in.
      const back = await peerFlood(port, 1, '127.0.0.2');
      await waitFor(() => peers.open === CROWDED + 1 || back.closed(), { timeoutMs: 3000, intervalMs: 10, what: "127.0.0.2's new peer admitted or closed" });
      expect([peers.open, back.closed(), others.closed()]).toEqual([CROWDED + 1, 0, 0]);
      others.destroy();
      back.destroy();
    } finally {
      server.close();
    }
  });
});
