import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon.js';
import { startDaemon } from '../helpers/in-process-daemon.js';
import { sample } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait-for.js';

let daemon: Daemon | null = null;
let upstream: Server | null = null;

afterEach(async () => {
  await daemon?.close();
  daemon = null;
  upstream?.close();
  upstream = null;
});

async function proxyTo(onConnection: (s: Socket) => void): Promise<Daemon> {
  upstream = createServer({ allowHalfOpen: true }, onConnection);
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const port = (upstream.address() as { port: number }).port;
  return startDaemon(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b }
backends:
  - name: b
    check: { type: none }
    servers: [ { name: s1, address: 127.0.0.1:${port} } ]
`);
}

/** Resolves once what `sock` wrote has stopped draining: licgate stopped reading it. */
async function writesStall(sock: Socket, what: string): Promise<void> {
  let last = -1;
  await waitFor(
    () => {
      const now = sock.writableLength;
      const stalled = now > 0 && now === last;
      last = now;
      return stalled;
    },
    { timeoutMs: 10_000, intervalMs: 300, what },
  );
}

describe('relay teardown', () => {
  // Relay.fail() must not resetAndDestroy() a socket we end()ed while its shutdown is pending (libuv
  // EINVAL, and Node then never emits 'close'). That race needs unflushed writes and is exercised by
  // the churn load test; this one covers the same teardown path without the race.
  it('ends the session when a half-closed client resets while the server still sends', async () => {
    let serverSide: Socket | null = null;
    let serverSawEnd = false;
    daemon = await proxyTo((s) => {
      serverSide = s;
      s.on('error', () => {});
      s.on('data', () => {});
      s.on('end', () => (serverSawEnd = true));
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port });
    client.on('error', () => {});
    client.on('data', () => {});
    await once(client, 'connect');
    client.end('request');
    await waitFor(() => serverSawEnd, { timeoutMs: 5000, what: 'server sees the client half-close' });
    client.resetAndDestroy();
    await once(client, 'close');
    // The relay now writes to a client that is gone: EPIPE/ECONNRESET on a socket whose peer we end()ed.
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 32; i++) serverSide!.write(chunk);
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down' });
    expect(daemon.model.backend('b')!.server('s1')!.active).toBe(0);
    // The proxy closed its upstream socket too: further writes from the server fail.
    await waitFor(() => serverSide!.destroyed || (serverSide!.write(chunk), false), { timeoutMs: 5000, what: 'server side closed by the proxy' });
  });

  it('passes a server reset on to the client as a reset', async () => {
    daemon = await proxyTo((s) => {
      s.on('error', () => {});
      s.once('data', () => s.resetAndDestroy());
    });
    const client = connect({ host: '127.0.0.1', port: daemon.frontends[0]!.address().port });
    await once(client, 'connect');
    client.write('hello');
    const [err] = (await once(client, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    await waitFor(() => daemon!.frontends[0]!.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down' });
  });

  // libuv stops polling a socket once it has read its FIN, so a reset that arrives there later was
  // never seen: while the other peer stayed silent the session, its server slot and the other
  // connection were held for good.
  it('ends the session when a server that sent its FIN then resets, while the client stays silent', async () => {
    let serverSide: Socket | null = null;
    daemon = await proxyTo((s) => {
      serverSide = s;
      s.on('error', () => {});
      s.once('data', () => s.end('answer'));
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port, allowHalfOpen: true });
    client.on('error', () => {});
    let clientSawEnd = false;
    client.on('end', () => (clientSawEnd = true));
    client.resume();
    await once(client, 'connect');
    client.write('request');
    await waitFor(() => clientSawEnd, { timeoutMs: 5000, what: 'client sees the server half-close' });
    serverSide!.resetAndDestroy();
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down after the server reset' });
    expect(daemon.model.backend('b')!.server('s1')!.active).toBe(0);
    // The kernel has closed its socket; the session still ends as what it was, a server reset.
    expect(sample(await daemon.metrics.render(), 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end: 'server-reset' })).toBe(1);
    client.destroy();
  });

  it('ends the session when a client that sent its FIN then resets, while the server stays silent', async () => {
    let serverSawEnd = false;
    let serverSide: Socket | null = null;
    daemon = await proxyTo((s) => {
      serverSide = s;
      s.on('error', () => {});
      s.on('end', () => (serverSawEnd = true));
      s.resume();
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port });
    client.on('error', () => {});
    await once(client, 'connect');
    client.end('request');
    await waitFor(() => serverSawEnd, { timeoutMs: 5000, what: 'server sees the client half-close' });
    client.resetAndDestroy();
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down after the client reset' });
    expect(daemon.model.backend('b')!.server('s1')!.active).toBe(0);
    expect(sample(await daemon.metrics.render(), 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end: 'client-reset' })).toBe(1);
    // The proxy closed its upstream socket too: the server's next write fails.
    await waitFor(() => serverSide!.destroyed || (serverSide!.write('late'), false), { timeoutMs: 5000, what: 'server side closed by the proxy' });
  });

  // While a write to the server is pending (the server does not read), licgate stops reading the
  // client, and libuv polls it no more: its reset went unnoticed until the server read again, and
  // the session and its server slot were held that long (for good, with idle_timeout off).
  it('ends the session when a client resets while its bytes wait for a server that does not read', async () => {
    let serverSide: Socket | null = null;
    daemon = await proxyTo((s) => {
      serverSide = s;
      s.on('error', () => {});
      s.pause();
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port });
    client.on('error', () => {});
    await once(client, 'connect');
    // Far more than the kernel buffers between the client and the server hold.
    const chunk = Buffer.alloc(1024 * 1024, 7);
    for (let i = 0; i < 64; i++) client.write(chunk);
    // licgate has stopped reading the client: what the client wrote stops draining.
    await writesStall(client, "the client's writes to stop draining");
    expect(serverSide).not.toBeNull();
    client.resetAndDestroy();
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down after the client reset' });
    expect(daemon.model.backend('b')!.server('s1')!.active).toBe(0);
    expect(sample(await daemon.metrics.render(), 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end: 'client-reset' })).toBe(1);
    // The server's connection is closed too: once it reads again, it finds the end of it.
    serverSide!.resume();
    await waitFor(() => serverSide!.destroyed || serverSide!.readableEnded, { timeoutMs: 5000, what: 'server side closed by the proxy' });
  });

  // libuv reports a reset that arrives with the last bytes as an EOF (POLLHUP after a partial
  // read): the relay passed the client's reset on to the server as a clean FIN; a server that
  // closes on its client's FIN closed the session before the sweep saw the reset, logged and
  // counted as closed. Found by relay-random.test.ts (seeds 20, 21, 30).
  it('passes on as a reset a client reset that arrives together with its last bytes', async () => {
    daemon = await proxyTo((s) => {
      s.on('error', () => {});
      s.resume();
      s.on('end', () => s.end());
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port });
    client.on('error', () => {});
    await once(client, 'connect');
    await waitFor(() => daemon!.model.backend('b')!.server('s1')!.active === 1, { timeoutMs: 5000, what: 'the session connected upstream' });
    // Both reach licgate's socket before this process (licgate's too) polls it again.
    client.write('last');
    client.resetAndDestroy();
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down' });
    const text = await daemon.metrics.render();
    expect(['closed', 'client-reset'].map((end) => sample(text, 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end }))).toEqual([0, 1]);
  });

  // The same reset while licgate still has a write to that client in flight (it does not read
  // what the server sends): the probe write that asks the socket why it closed queued behind that
  // write instead of failing, and the session was logged client-error ENOTCONN.
  it('passes on as a reset a client reset that arrives with its last bytes while a write to it is pending', async () => {
    let serverSide: Socket | null = null;
    daemon = await proxyTo((s) => {
      serverSide = s;
      s.on('error', () => {});
      s.resume();
      // Far more than the kernel buffers between the server and the client hold.
      const chunk = Buffer.alloc(1024 * 1024, 7);
      for (let i = 0; i < 64; i++) s.write(chunk);
    });
    const fe = daemon.frontends[0]!;
    const client = connect({ host: '127.0.0.1', port: fe.address().port });
    client.on('error', () => {});
    client.pause();
    await once(client, 'connect');
    await waitFor(() => serverSide !== null, { timeoutMs: 5000, what: 'the session connected upstream' });
    // licgate has stopped reading the server: what the server wrote stops draining.
    await writesStall(serverSide!, "the server's writes to stop draining");
    // Both reach licgate's socket before this process (licgate's too) polls it again.
    client.write('last');
    client.resetAndDestroy();
    await waitFor(() => fe.sessions.size === 0, { timeoutMs: 5000, what: 'session torn down' });
    const text = await daemon.metrics.render();
    expect(['client-error', 'client-reset'].map((end) => sample(text, 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end }))).toEqual([0, 1]);
  });
});
