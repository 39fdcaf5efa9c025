import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SendExpectProbe } from '../../../src/health/probes/send-expect.js';
import { StatusProbe } from '../../../src/health/probes/status.js';
import { LicenseSimulator } from '../../../src/simulator/license-simulator.js';
import { endingIn, trickle, withCpuMs } from '../../helpers/trickle.js';
import { waitFor } from '../../helpers/wait-for.js';

const servers: Server[] = [];
const sims: LicenseSimulator[] = [];
const open = new Set<Socket>();

afterEach(async () => {
  for (const s of open) s.destroy();
  open.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

/** A server scripted per connection; `received` collects what each peer sent. */
async function server(onConn: (s: Socket) => void): Promise<{ port: number; received: string[]; closed: () => number }> {
  const received: string[] = [];
  let closed = 0;
  const srv = createServer((s) => {
    open.add(s);
    const i = received.push('') - 1;
    s.setEncoding('latin1');
    s.on('data', (d: string) => (received[i] += d));
    s.on('error', () => undefined);
    s.on('close', () => {
      open.delete(s);
      closed++;
    });
    onConn(s);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, received, closed: () => closed };
}

const target = (port: number) => ({ host: '127.0.0.1', port });
const never = (): AbortSignal => new AbortController().signal;

describe('StatusProbe (type: status)', () => {
  it('passes against a running simulated license server, after sending exactly STATUS\\r\\n', async () => {
    const sim = new LicenseSimulator({ listen: { host: '127.0.0.1', port: 0 }, name: 'p', tokens: 1 });
    sims.push(sim);
    const { port } = await sim.listen();
    expect(await new StatusProbe(16384).run(target(port), never())).toEqual({ ok: true, reason: 'reply matched "Server Status: Running"' });
    const srv = await server((s) => s.on('data', () => s.end('Server Status: Running\r\n')));
    await new StatusProbe(16384).run(target(srv.port), never());
    expect(srv.received).toEqual(['STATUS\r\n']);
  });

  it('fails on "Server Status: Down", quoting the first line', async () => {
    const srv = await server((s) => s.once('data', () => s.end('Server Status: Down\r\nBackend: x\r\nTier: none\r\nServers: 0/1 up\r\n')));
    expect(await new StatusProbe(16384).run(target(srv.port), never())).toEqual({ ok: false, reason: 'expected "Server Status: Running", got "Server Status: Down"' });
  });

  it('passes on a reply that arrives split across segments, without waiting for the close', async () => {
    const srv = await server((s) =>
      s.once('data', () => {
        s.write('Server Sta', () => s.write('tus: Run', () => s.write('ning\r\nBackend: x\r\nTier: active\r\nServers: 1/', () => s.write('1 up\r\n'))));
        // Stays open: the probe must not need EOF once the reply's last line came.
      }),
    );
    expect(await new StatusProbe(16384).run(target(srv.port), never())).toEqual({ ok: true, reason: 'reply matched "Server Status: Running"' });
    await waitFor(() => srv.closed() === 1, { timeoutMs: 2000, what: 'the probe to close its socket' });
  });

  it('passes as a standby on a Standby: line, naming the MASTER, whatever segments it comes in', async () => {
    const reply = 'Server Status: Running\r\nBackend: flexlm\r\nTier: none\r\nStandby: lic1 is MASTER\r\nServers: 1/1 up\r\n';
    const srv = await server((s) => s.once('data', () => s.write(reply.slice(0, 60), () => s.write(reply.slice(60)))));
    expect(await new StatusProbe(16384).run(target(srv.port), never())).toEqual({ ok: true, standby: true, master: 'lic1', reason: 'triad standby: lic1 is MASTER (STATUS)' });
    const closing = await server((s) => s.once('data', () => s.end('Server Status: Running\r\nStandby: yes\r\n')));
    expect(await new StatusProbe(16384).run(target(closing.port), never())).toEqual({ ok: true, standby: true, reason: 'triad standby: yes (STATUS)' });
  });

  it('fails on "Server Status: Down" whatever else the reply says', async () => {
    const srv = await server((s) => s.once('data', () => s.end('Server Status: Down\r\nBackend: x\r\nTier: none\r\nStandby: lic1 is MASTER\r\nServers: 0/1 up\r\n')));
    expect(await new StatusProbe(16384).run(target(srv.port), never())).toEqual({ ok: false, reason: 'expected "Server Status: Running", got "Server Status: Down"' });
  });
});

describe('SendExpectProbe (type: send-expect)', () => {
  it('matches a regex', async () => {
    const srv = await server((s) => s.once('data', () => s.write('+PONG v2\r\n')));
    const p = new SendExpectProbe('PING\r\n', { regex: /^\+PONG v\d/ }, 1024);
    expect(await p.run(target(srv.port), never())).toEqual({ ok: true, reason: 'reply matched /^\\+PONG v\\d/' });
    expect(srv.received).toEqual(['PING\r\n']);
  });

  it('a sticky /y regex matches on every check, not every other one (test() moves its lastIndex)', async () => {
    const srv = await server((s) => s.once('data', () => s.write('+PONG v2\r\n')));
    const p = new SendExpectProbe('PING\r\n', { regex: /\+PONG/y }, 1024);
    for (let i = 0; i < 3; i++) expect((await p.run(target(srv.port), never())).ok, `check ${i + 1}`).toBe(true);
  });

  it('fails when the read limit is reached without a match', async () => {
    const srv = await server((s) => s.write('x'.repeat(100)));
    const p = new SendExpectProbe('', { literal: 'READY' }, 16);
    expect(await p.run(target(srv.port), never())).toEqual({ ok: false, reason: 'no match for "READY" in the first 16 bytes' });
  });

  it('reads a reply trickled 16 bytes a read up to a 1 MiB read_limit in little CPU, and matches it at its last byte', async () => {
    const limit = 1024 * 1024;
    const srv = await server((s) => {
      s.setNoDelay(true);
      trickle(s, endingIn(limit, 'READY'), 32 * 1024);
    });
    const run = () => new SendExpectProbe('', { literal: 'READY' }, limit).run(target(srv.port), AbortSignal.timeout(30_000));
    const { result, cpuMs } = await withCpuMs(run);
    expect(result).toEqual({ ok: true, reason: 'reply matched "READY"' });
    // Rebuilding, decoding and searching the whole reply on each read took 1.8-2.6 s here.
    expect(cpuMs).toBeLessThan(500);
  });

  it('expect only (nothing sent) reads a banner', async () => {
    const srv = await server((s) => s.write('220 lmgrd ready\r\n'));
    expect(await new SendExpectProbe('', { literal: 'ready' }, 1024).run(target(srv.port), never())).toMatchObject({ ok: true });
    expect(srv.received).toEqual(['']);
  });

  it('send only passes when the peer takes the bytes and closes', async () => {
    const srv = await server((s) => s.once('data', () => s.end()));
    expect(await new SendExpectProbe('QUIT\r\n', null, 1024).run(target(srv.port), never())).toEqual({ ok: true, reason: 'sent' });
  });

  it('reports a refused connection', async () => {
    const srv = await server(() => undefined);
    const port = srv.port;
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    expect(await new StatusProbe(1024).run(target(port), never())).toEqual({ ok: false, reason: 'connection refused' });
  });

  it('reports a reset', async () => {
    const srv = await server((s) => s.once('data', () => s.resetAndDestroy()));
    expect(await new StatusProbe(1024).run(target(srv.port), never())).toEqual({ ok: false, reason: 'connection reset' });
  });

  it('gives up when the signal aborts (the check timeout) on a silent server, and releases the socket', async () => {
    const srv = await server(() => undefined);
    const ctl = new AbortController();
    const run = new StatusProbe(1024).run(target(srv.port), ctl.signal);
    await waitFor(() => srv.received.length === 1 && srv.received[0] === 'STATUS\r\n', { timeoutMs: 2000, what: 'the probe to send' });
    ctl.abort();
    expect(await run).toEqual({ ok: false, reason: 'timeout waiting for reply' });
    await waitFor(() => srv.closed() === 1, { timeoutMs: 2000, what: 'the probe to close its socket' });
  });

  it('fails on an empty reply (peer reads the request and closes)', async () => {
    const srv = await server((s) => s.once('data', () => s.end()));
    expect(await new StatusProbe(1024).run(target(srv.port), never())).toEqual({ ok: false, reason: 'expected "Server Status: Running", got "(empty reply)"' });
  });
});

describe('send-expect without expect', () => {
  it('passes once the bytes are sent, against a server that keeps the connection open', async () => {
    const got: Buffer[] = [];
    const held: Socket[] = [];
    const srv: Server = createServer((s) => {
      held.push(s);
      s.on('data', (d: Buffer) => got.push(d));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    try {
      const out = await new SendExpectProbe('PING\r\n', null, 1024).run({ host: '127.0.0.1', port }, AbortSignal.timeout(2000));
      expect(out).toEqual({ ok: true, reason: 'sent' });
      await waitFor(() => Buffer.concat(got).toString() === 'PING\r\n', { timeoutMs: 2000, what: 'the server to receive the check bytes' });
    } finally {
      for (const s of held) s.destroy();
      srv.close();
    }
  });
});
