import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LineServer } from '../../src/io/line-server.js';
import { waitFor } from '../helpers/wait-for.js';

let server: LineServer | null = null;
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await server?.close();
  server = null;
});

async function start(timeoutMs: number, rejects: string[] = []): Promise<{ port: number; srv: LineServer }> {
  const srv = new LineServer({ host: '127.0.0.1', port: 0 }, { what: 'test', maxLine: 256, timeoutMs, maxConnections: 128, answer: () => 'OK\r\n', onReject: (why, peer) => rejects.push(`${why} from ${peer}`) });
  server = srv;
  await srv.listen();
  return { port: (srv.address() as AddressInfo).port, srv };
}

/** A peer that asks, reads the reply and our FIN, and never sends its own (a stuck or hostile client). */
async function askAndStayOpen(port: number): Promise<string> {
  const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  clients.push(sock);
  let reply = '';
  let ended = false;
  sock.setEncoding('latin1');
  sock.on('data', (d: string) => (reply += d));
  sock.on('end', () => (ended = true));
  sock.on('error', () => {});
  sock.on('connect', () => sock.write('STATUS\r\n'));
  await waitFor(() => ended, { timeoutMs: 3000, what: 'the reply and its FIN' });
  return reply;
}

describe('LineServer', () => {
  it('cuts off a peer that keeps its side open after the reply, without counting it as abuse', async () => {
    const rejects: string[] = [];
    const { port, srv } = await start(300, rejects);
    expect(await askAndStayOpen(port)).toBe('OK\r\n');
    expect(srv.connections).toBe(1);
    await waitFor(() => srv.connections === 0, { timeoutMs: 3000, what: 'the half-closed peer dropped' });
    expect(rejects).toEqual([]);
  });

  it('close() cuts off the peers still connected instead of waiting for them', async () => {
    const { port, srv } = await start(60_000);
    expect(await askAndStayOpen(port)).toBe('OK\r\n');
    const silent = connect({ host: '127.0.0.1', port });
    clients.push(silent);
    silent.on('error', () => {});
    await waitFor(() => srv.connections === 2, { timeoutMs: 3000, what: 'both peers accepted' });
    const t0 = performance.now();
    await srv.close();
    server = null;
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(srv.connections).toBe(0);
  });

  it('cuts off a peer that has sent no full line timeoutMs after connecting, even one trickling bytes', async () => {
    const rejects: string[] = [];
    const { port, srv } = await start(300, rejects);
    const sock = connect({ host: '127.0.0.1', port });
    clients.push(sock);
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    // A byte every 100 ms: an inactivity timeout of 300 ms would never fire.
    const trickle = setInterval(() => {
      if (!sock.destroyed) sock.write('S');
    }, 100);
    try {
      await waitFor(() => closed, { timeoutMs: 3000, what: 'the trickling peer cut off' });
    } finally {
      clearInterval(trickle);
    }
    expect(rejects).toEqual(['timeout from 127.0.0.1']);
    expect(srv.connections).toBe(0);
  });
});
