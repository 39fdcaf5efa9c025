import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenerAuth, listenerEnd } from '../../src/peers/peer-auth.js';
import { LineSplitter } from '../../src/peers/peer-codec.js';
import { PeerPusher, type PushSource } from '../../src/peers/peer-pusher.js';
import { waitFor } from '../helpers/wait-for.js';

const TOKEN = 'peer-pusher-token-0123456789abcdef';
const open: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of open.splice(0).reverse()) await f();
});

/** A table of `n` clients whose lines are as long as a real S line (~60 bytes). */
function source(n: number): PushSource {
  const clients = Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return {
    token: () => TOKEN,
    tables: () => ['licenses'],
    clients: () => clients,
    line: (b, c) => `S ${b} ${c} primary 10.0.0.11:27000 28800000 0\n`,
    marks: () => ({ clients: [], servers: [], cleared: false }),
    markLine: () => '',
    changed: () => {},
  };
}

/**
 * A remote that proves the token, then never reads again: its process is alive (it sends the
 * keep-alives) but whatever consumes the lines is stuck.
 */
async function stuckRemote(): Promise<{ port: number; authed: Promise<void>; resume: () => void }> {
  let authed!: () => void;
  const done = new Promise<void>((r) => (authed = r));
  const peers: Socket[] = [];
  const server: Server = createServer((sock) => {
    peers.push(sock);
    const auth = new ListenerAuth(TOKEN, listenerEnd(sock.localAddress, sock.localPort));
    const split = new LineSplitter();
    const onData = (d: Buffer): void => {
      split.feed(d, (line) => {
        const step = auth.check(line);
        sock.write(step.reply ?? '');
        sock.off('data', onData);
        sock.pause();
        const k = setInterval(() => sock.write('K\n'), 1000);
        sock.on('close', () => clearInterval(k));
        authed();
        return false;
      });
    };
    sock.on('data', onData);
    sock.on('error', () => {});
    sock.write(auth.greeting);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(() => {
    for (const s of peers) s.destroy();
    return new Promise((r) => server.close(() => r()));
  });
  const resume = (): void => {
    for (const s of peers) s.on('data', () => {}).resume();
  };
  return { port: (server.address() as AddressInfo).port, authed: done, resume };
}

/** A remote with `token` that answers the AUTH line (OK or NO) and hangs up; `accepted`: when each connection came. */
async function hangUpRemote(token: string): Promise<{ server: Server; port: number; accepted: number[] }> {
  const accepted: number[] = [];
  const server = createServer((sock) => {
    accepted.push(performance.now());
    const auth = new ListenerAuth(token, listenerEnd(sock.localAddress, sock.localPort));
    const split = new LineSplitter();
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => split.feed(d, (line) => (sock.end(auth.check(line).reply ?? ''), false)));
    sock.write(auth.greeting);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  open.push(() => new Promise((r) => (server.listening ? server.close(() => r()) : r())));
  return { server, port: (server.address() as AddressInfo).port, accepted };
}

describe('PeerPusher', () => {
  it('writes nothing more to a remote that stopped reading, however many changes come meanwhile', async () => {
    const remote = await stuckRemote();
    const p = new PeerPusher({ host: '127.0.0.1', port: remote.port }, source(100_000), undefined);
    open.push(() => p.stop());
    p.start();
    await remote.authed;
    const sock = (): Socket | null => (p as unknown as { sock: Socket | null }).sock;
    // The full push fills the kernel's buffers and Node's, then waits for 'drain'.
    await waitFor(() => sock()?.writableNeedDrain === true, { timeoutMs: 10_000, what: 'the full push to wait for drain' });
    const sent = p.sent;
    const buffered = sock()!.writableLength;
    // New clients arrive as they do in production: PeerSync's flush queues and pumps once per turn.
    for (let i = 0; i < 50; i++) {
      p.queue('licenses', `10.200.0.${i}`);
      p.pump();
      await new Promise(setImmediate);
      await new Promise(setImmediate);
    }
    expect(p.live).toBe(true);
    expect(p.sent - sent, 'entry lines written while the remote did not read').toBe(0);
    expect(sock()!.writableLength - buffered, 'bytes buffered while the remote did not read').toBeLessThan(100);
    expect(sock()!.listenerCount('drain'), "'drain' listeners").toBeLessThanOrEqual(1);
    // Once the remote reads again, the rest of the table and the changes go.
    remote.resume();
    await waitFor(() => p.sent === 100_050, { timeoutMs: 20_000, what: 'all 100,050 lines sent' });
  });

  it("sends a change queued while a keep-alive, not a batch, filled the socket's buffer, once it drains", async () => {
    const remote = await stuckRemote();
    const p = new PeerPusher({ host: '127.0.0.1', port: remote.port }, source(10), undefined);
    open.push(() => p.stop());
    p.start();
    await remote.authed;
    await waitFor(() => p.sent === 10, { timeoutMs: 5000, what: 'the full push' });
    const sock = (p as unknown as { sock: Socket }).sock;
    // The keep-alive ticker writes whatever the buffer holds, and no batch waits for 'drain' then:
    // a write of its own (a keep-alive line would take hours to get there) leaves the socket over
    // its high-water mark, as the ticker's write can.
    while (sock.write('K\n'.repeat(50_000)));
    p.queue('licenses', '10.200.0.1');
    p.pump();
    remote.resume();
    await waitFor(() => p.sent === 11, { timeoutMs: 10_000, what: 'the queued change sent after the drain' });
  });

  it('waits longer each time a remote takes the token and hangs up at once, instead of pushing the whole table every 0.5 s', async () => {
    // A remote whose listener cuts this host off right after the handshake (a line it refuses, a
    // crash loop): each connection is a full push and a "connected" and a "not reachable" line.
    const { port, accepted } = await hangUpRemote(TOKEN);
    const states: string[] = [];
    const p = new PeerPusher({ host: '127.0.0.1', port }, { ...source(10), changed: (_, to) => void states.push(to) }, undefined);
    open.push(() => p.stop());
    p.start();
    await waitFor(() => accepted.length >= 4, { timeoutMs: 15_000, what: 'four connections' });
    expect(states.slice(0, 2)).toEqual(['connected', 'down']);
    const gaps = accepted.slice(1, 4).map((t, i) => Math.round(t - accepted[i]!));
    // 0.5 s, 1 s, 2 s: the wait doubles as for a remote that refuses the connection.
    expect(gaps[2], `gaps between connections ${gaps.join(', ')} ms`).toBeGreaterThanOrEqual(1500);
  });

  it('says a remote that refused the token and then went away is not reachable, not still refusing', async () => {
    const { server, port } = await hangUpRemote('another-token-0123456789abcdef');
    const states: string[] = [];
    const p = new PeerPusher({ host: '127.0.0.1', port }, { ...source(1), changed: (_, to) => void states.push(to) }, undefined);
    open.push(() => p.stop());
    p.start();
    await waitFor(() => p.state === 'auth-failed', { timeoutMs: 5000, what: 'the token refused' });
    // The remote stops: its port refuses connections now.
    await new Promise<void>((r) => server.close(() => r()));
    await waitFor(() => p.lastError === 'ECONNREFUSED', { timeoutMs: 10_000, what: 'a refused connect' });
    expect([p.state, states.join(' ')]).toEqual(['down', 'auth-failed down']);
  });
});
