import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, startTcpServer, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

function proxyTo(port: number) {
  return startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s, address: "127.0.0.1:${port}" }]
`);
}

/** A client socket that records what it sees, in order. */
function client(port: number): { sock: Socket; events: string[]; data: () => string } {
  const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const events: string[] = [];
  let data = '';
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => (data += d));
  sock.on('end', () => events.push(`end after ${JSON.stringify(data)}`));
  sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
  sock.on('close', () => events.push('close'));
  return { sock, events, data: () => data };
}

describe('half-close through the proxy', () => {
  it('client FIN first: the server still answers after it, then its own FIN reaches the client', async () => {
    const seenByServer: string[] = [];
    const upstream = await startTcpServer((s) => {
      let got = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (got += d));
      s.on('end', () => {
        seenByServer.push(`end after ${JSON.stringify(got)}`);
        // The reply goes out after the client's FIN, and only then the server's own FIN.
        s.write(`reply to ${got}`, () => s.end());
      });
    });
    const proxy = await proxyTo(upstream.port);
    const c = client(proxy.port);
    c.sock.write('CHECKOUT solver 1\n');
    c.sock.end();
    await waitFor(() => c.events.includes('close'), { timeoutMs: 5000, what: 'client close' });
    expect(seenByServer).toEqual(['end after "CHECKOUT solver 1\\n"']);
    expect(c.events).toEqual(['end after "reply to CHECKOUT solver 1\\n"', 'close']);
    const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 5000, what: 'session log line' });
    expect(log).toMatchObject({ frontend: 'lmgrd', backend: 'licenses', server: 's', bytes_in: 18, bytes_out: 27, end: 'closed', retries: 0 });
  });

  it('server FIN first: the client can still send, and the server receives it', async () => {
    const seenByServer: string[] = [];
    const upstream = await startTcpServer((s) => {
      let got = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (got += d));
      s.on('end', () => seenByServer.push(`end after ${JSON.stringify(got)}`));
      s.end('BANNER\n');
    });
    const proxy = await proxyTo(upstream.port);
    const c = client(proxy.port);
    c.sock.on('end', () => {
      // Half-open: our side is still writable after the server's FIN.
      c.sock.write('late request\n', () => c.sock.end());
    });
    await waitFor(() => c.events.includes('close'), { timeoutMs: 5000, what: 'client close' });
    expect(c.events).toEqual(['end after "BANNER\\n"', 'close']);
    await waitFor(() => seenByServer.length === 1, { timeoutMs: 5000, what: 'server to see the client FIN' });
    expect(seenByServer).toEqual(['end after "late request\\n"']);
  });

  it('a long half-open period loses nothing: 1000 lines after the client FIN', async () => {
    const upstream = await startTcpServer((s) => {
      s.resume();
      s.on('end', () => {
        let i = 0;
        const more = (): void => {
          while (i < 1000) if (!s.write(`line ${i++}\n`)) return void s.once('drain', more);
          s.end();
        };
        more();
      });
    });
    const proxy = await proxyTo(upstream.port);
    const c = client(proxy.port);
    c.sock.end('go\n');
    await waitFor(() => c.events.includes('close'), { timeoutMs: 5000, what: 'client close' });
    expect(c.data()).toBe(Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join(''));
    expect(c.events[0]).toMatch(/^end after/);
  });

  // The relay's sweep checks a server it stopped reading while the client does not read. After the
  // client's FIN, licgate has sent its own FIN to the server, so the server's FIN closes that socket
  // in the kernel (TIME_WAIT: no peer name) though its last bytes still wait in it, unread: a clean
  // end, not a reset. Sizes around what the kernel buffers towards a client that does not read.
  it('client FIN first, then a large answer and the server FIN for a client that does not read for a while: every byte arrives', async () => {
    const sizes = [4, 4.5, 5].map((mb) => mb * 1024 * 1024);
    let serversDone = 0;
    const upstream = await startTcpServer((s) => {
      s.resume();
      s.on('close', () => serversDone++);
      s.once('data', (d: Buffer) => s.on('end', () => s.end(Buffer.alloc(sizes[d[0]! - 48]!, 7))));
    });
    const proxy = await proxyTo(upstream.port);
    const clients = sizes.map((_, i) => {
      const sock = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
      const events: string[] = [];
      sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
      sock.pause();
      sock.end(String(i));
      return { sock, events };
    });
    await waitFor(() => serversDone === sizes.length, { timeoutMs: 10_000, what: 'every server wrote its answer and FIN' });
    // The clients go on not reading across two of the relay's once-a-second sweeps.
    await new Promise((r) => setTimeout(r, 2500));
    for (const c of clients) {
      let got = 0;
      c.sock.on('data', (d: Buffer) => (got += d.length));
      c.sock.on('end', () => c.events.push(`end after ${got}`));
      c.sock.on('close', () => c.events.push('close'));
      c.sock.resume();
    }
    await waitFor(() => clients.every((c) => c.events.includes('close')), { timeoutMs: 10_000, what: 'every client closed' });
    expect(clients.map((c) => c.events)).toEqual(sizes.map((n) => [`end after ${n}`, 'close']));
    const logs = await waitFor(() => { const l = proxy.logs.filter((x) => x.msg === 'session closed'); return l.length === sizes.length && l; }, { timeoutMs: 5000, what: 'session log lines' });
    expect(logs.map((l) => l.end)).toEqual(['closed', 'closed', 'closed']);
  });
});
