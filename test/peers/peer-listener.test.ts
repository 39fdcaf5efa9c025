import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenerEnd, PusherAuth } from '../../src/peers/peer-auth.js';
import { LineSplitter } from '../../src/peers/peer-codec.js';
import { PeerListener, type PeerInbox } from '../../src/peers/peer-listener.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'peer-listener-token-0123456789abcdef';
const open: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of open.splice(0).reverse()) await f();
});

describe('PeerListener', () => {
  it("applies a peer's burst a socket read per loop turn, not megabytes in one", async () => {
    let received = 0;
    const inbox: PeerInbox = { token: () => TOKEN, authenticated: () => {}, received: () => void received++, cutOff: () => {}, closed: () => {} };
    const l = new PeerListener({ host: '127.0.0.1', port: 0 }, inbox);
    await l.listen();
    open.push(() => l.close());
    const sock = connect({ host: '127.0.0.1', port: l.address().port });
    open.push(() => void sock.destroy());
    const auth = new PusherAuth(TOKEN);
    const split = new LineSplitter();
    let n = 0;
    await new Promise<void>((authed) =>
      sock.on('data', (d: Buffer) =>
        split.feed(d, (line) => {
          if (n++ === 0) sock.write(auth.answer(line, listenerEnd(sock.remoteAddress, sock.remotePort)).reply!);
          else authed();
          return true;
        }),
      ),
    );
    // 100,000 entries (5 MB) in one write, as a full push arrives after this host's loop was busy.
    let text = '';
    for (let i = 0; i < 100_000; i++) text += `S licenses 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} a 10.0.0.11:27000 28800000 0\n`;
    sock.write(Buffer.from(text));
    // Lines taken per loop turn, sampled in the check phase of each turn.
    let most = 0;
    let last = 0;
    let sampling = true;
    const sample = (): void => {
      most = Math.max(most, received - last);
      last = received;
      if (sampling) setImmediate(sample);
    };
    setImmediate(sample);
    await waitFor(() => received === 100_000, { timeoutMs: 30_000, intervalMs: 5, what: 'all 100,000 lines received' });
    sampling = false;
    // A read is at most 64 KB (Node's read buffer), and a line here at least 46 bytes.
    expect(most, 'lines taken in one loop turn').toBeLessThanOrEqual(Math.ceil(65_536 / 46) + 1);
  });

  it('says a remote hung up after the greeting without a word, as a version-1 pusher does, instead of nothing', async () => {
    const cut: [string, string][] = [];
    const inbox: PeerInbox = { token: () => TOKEN, authenticated: () => {}, received: () => {}, cutOff: (peer, why) => void cut.push([peer, why]), closed: () => {} };
    const l = new PeerListener({ host: '127.0.0.1', port: 0 }, inbox);
    await l.listen();
    open.push(() => l.close());
    // A version-1 pusher: reads "LICGATE-PEERS 2 <nonce>", refuses the version, closes.
    const sock = connect({ host: '127.0.0.1', port: l.address().port });
    open.push(() => void sock.destroy());
    sock.on('error', () => {});
    sock.once('data', () => sock.end());
    await waitFor(() => cut.length > 0, { timeoutMs: 5000, what: 'the hang-up reported' });
    expect(cut).toEqual([['127.0.0.1', 'hung up after the greeting without a word: a licgate of another peers version (version 1 does so; upgrade both), or not a licgate pusher']]);
  });
});
