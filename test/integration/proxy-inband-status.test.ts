import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startInProcessSimulator, startProxy, startTcpServer, stopAll, type TestServer } from '../helpers/proxy-harness.js';
import { parseSamples, sample } from '../helpers/prom-text.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());

const RUNNING = 'Server Status: Running\r\nBackend: licenses\r\nTier: active\r\nServers: 2/2 up\r\n';

/** An upstream that records every byte each connection sent, and replies "OK <n bytes>" on FIN. */
function recorder(): Promise<TestServer & { got: Buffer[] }> {
  const got: Buffer[] = [];
  return startTcpServer((s) => {
    const i = got.push(Buffer.alloc(0)) - 1;
    s.on('data', (d: Buffer) => (got[i] = Buffer.concat([got[i]!, d])));
    s.on('end', () => s.end(`OK ${got[i]!.length}\n`));
  }).then((t) => Object.assign(t, { got }));
}

/** `check: none` keeps check connections off the recorders, so every connection they see is proxied. */
function twoServerConfig(p1: number, p2: number, opts: { frontend?: string; check?: string } = {}): string {
  return `
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses${opts.frontend ?? ''} }
backends:
  - name: licenses
    check: ${opts.check ?? '{ type: none }'}
    servers:
      - { name: primary, address: "127.0.0.1:${p1}" }
      - { name: backup, address: "127.0.0.1:${p2}", backup: true }
`;
}

/** Writes each part only after the previous one was flushed to the kernel, then reads to the end. */
function talk(port: number, parts: (string | Buffer)[], opts: { end?: boolean; before?: (s: Socket) => Promise<void> } = {}): Promise<{ reply: Buffer; how: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let how = 'close';
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => {
      how = 'end';
      if (!sock.writableEnded) sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => (how = `error ${e.code}`));
    sock.on('close', () => resolve({ reply: Buffer.concat(chunks), how }));
    const send = (i: number): void => {
      if (i === parts.length) {
        if (opts.end) sock.end();
        return;
      }
      sock.write(parts[i]!, () => send(i + 1));
    };
    sock.on('connect', () => {
      (opts.before ? opts.before(sock) : Promise.resolve()).then(() => send(0), reject);
    });
  });
}

describe('in-band STATUS on a frontend', () => {
  it('answers STATUS\\r\\n and STATUS\\n locally with exactly the four design lines, never forwarding them', async () => {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(twoServerConfig(a.port, b.port));
    for (const req of ['STATUS\r\n', 'STATUS\n']) {
      const r = await talk(proxy.port, [req]);
      expect(r.reply.toString('latin1')).toBe(RUNNING);
      expect(r.how).toBe('end');
    }
    // Whatever upstream connections were opened in parallel received nothing.
    expect([...a.got, ...b.got].every((g) => g.length === 0)).toBe(true);
    // The log says what the client got: licgate's reply (its server, if any, is the one connected in parallel).
    const records = await waitFor(() => {
      const l = proxy.logs.filter((x) => x.msg === 'session closed');
      return l.length === 2 ? l : null;
    }, { timeoutMs: 3000, what: 'two session log lines' });
    expect(records.map((l) => [l.end, l.bytes_in, l.bytes_out])).toEqual([
      ['status', 8, RUNNING.length],
      ['status', 7, RUNNING.length],
    ]);
  });

  it('answers STATUS split across TCP segments, byte by byte', async () => {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(twoServerConfig(a.port, b.port));
    expect((await talk(proxy.port, ['STA', 'TUS\r\n'])).reply.toString('latin1')).toBe(RUNNING);
    expect((await talk(proxy.port, [...'STATUS\r\n'])).reply.toString('latin1')).toBe(RUNNING);
    expect((await talk(proxy.port, [...'STATUS\n'])).reply.toString('latin1')).toBe(RUNNING);
  });

  it('reports the tier in use and Down when nothing is up', async () => {
    const a = await startInProcessSimulator('primary');
    const b = await startInProcessSimulator('backup');
    const proxy = await startProxy(twoServerConfig(a.port, b.port, { check: '{ type: status, inter: 200ms, fastinter: 100ms, rise: 1, fall: 1 }' }));
    await a.close();
    await waitFor(async () => (await proxy.backend('licenses')).tier === 'backup', { timeoutMs: 5000, what: 'backup tier' });
    expect((await talk(proxy.port, ['STATUS\r\n'])).reply.toString('latin1')).toBe('Server Status: Running\r\nBackend: licenses\r\nTier: backup\r\nServers: 1/2 up\r\n');
    await b.close();
    await waitFor(async () => !(await proxy.backend('licenses')).running, { timeoutMs: 5000, what: 'no server up' });
    // Answered even though no server could take the connection.
    expect((await talk(proxy.port, ['STATUS\r\n'])).reply.toString('latin1')).toBe('Server Status: Down\r\nBackend: licenses\r\nTier: none\r\nServers: 0/2 up\r\n');
  });

  it('forwards byte-exact anything that only starts like STATUS', async () => {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(twoServerConfig(a.port, b.port));
    const binary = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x53, 0x54, 0x41, 0x54, 0x55, 0x53, 0x0d, 0x0a]);
    const cases: (string | Buffer)[][] = [
      ['STATUSX hello\r\n', binary],
      ['STAT', 'USX\r\n'],
      ['STATUS\r', 'X'],
      ['status\r\n'],
      ['STATUS \r\n'],
      [Buffer.from('STATUS'), Buffer.from([0])],
    ];
    for (const parts of cases) {
      const sent = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
      const r = await talk(proxy.port, parts, { end: true });
      // The server's reply proves the bytes went through, and the recorder has them exactly.
      expect(r.reply.toString('latin1')).toBe(`OK ${sent.length}\n`);
      const got = a.got.at(-1)!;
      expect(got.equals(sent), `${JSON.stringify(sent.toString('latin1'))} arrived as ${JSON.stringify(got.toString('latin1'))}`).toBe(true);
    }
  });

  it('inband_status: false forwards STATUS to the server, which answers for itself', async () => {
    const a = await startInProcessSimulator('primary');
    const b = await startInProcessSimulator('backup');
    const proxy = await startProxy(twoServerConfig(a.port, b.port, { frontend: ', inband_status: false' }));
    const r = await talk(proxy.port, ['STATUS\r\n']);
    // The simulator's own block names the simulator, not the proxy's backend.
    expect(r.reply.toString('latin1')).toBe('Server Status: Running\r\nBackend: primary\r\nTier: active\r\nServers: 1/1 up\r\n');
  });

  it('STATUS sent after the upstream connection is already open: the reply is local and the upstream connection is dropped', async () => {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(twoServerConfig(a.port, b.port));
    const before = a.accepted.length;
    const labels = { frontend: 'lmgrd', backend: 'licenses', server: 'primary' };
    const metrics = async (): Promise<string> => (await proxy.get('/metrics')).body;
    const r = await talk(proxy.port, ['STATUS\r\n'], {
      // Not a byte before licgate itself has seen its connect to the primary complete (the primary
      // accepting it is not enough: licgate may read the client's STATUS first, a different path).
      before: async () => {
        await waitFor(() => a.accepted.length > before && a.accepted.at(-1), { timeoutMs: 3000, intervalMs: 2, what: 'upstream connection' });
        await waitFor(async () => sample(await metrics(), 'licgate_connections_active', labels) === 1, { timeoutMs: 3000, intervalMs: 2, what: 'licgate connected upstream' });
      },
    });
    expect(r.reply.toString('latin1')).toBe(RUNNING);
    const upstream = a.accepted.at(-1)!;
    await waitFor(() => upstream.destroyed, { timeoutMs: 3000, what: 'the unused upstream connection to be closed' });
    expect(a.got.at(-1)!.length).toBe(0);
    await waitFor(async () => (await proxy.server('licenses', 'primary')).active === 0, { timeoutMs: 3000, what: 'primary active back to 0' });
    await waitFor(async () => (await proxy.status()).frontends[0]!.active === 0, { timeoutMs: 3000, what: 'no open session' });
    // The metrics counted the connection and count it closed; the STATUS line was not sent to the server.
    const text = await metrics();
    expect(sample(text, 'licgate_connections_total', labels)).toBe(1);
    expect(sample(text, 'licgate_connections_active', labels)).toBe(0);
    expect(sample(text, 'licgate_bytes_in_total', labels)).toBe(0);
    expect(sample(text, 'licgate_sessions_ended_total', { frontend: 'lmgrd', backend: 'licenses', end: 'status' })).toBe(1);
    const record = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'the session log line' });
    // The server it connected to, and the reply licgate sent the client (none of it the server's).
    expect(record).toMatchObject({ server: 'primary', end: 'status', bytes_in: 8, bytes_out: RUNNING.length });
  });

  // Found by relay-random.test.ts: a server that speaks first on connect has its bytes relayed to
  // the client while the sniff waits for the client's first line; the log left them out.
  it('STATUS after the server spoke first: the log counts the server bytes the client got before the reply', async () => {
    const upstream = await startTcpServer((s) => s.write('BANNER\n'));
    const proxy = await startProxy(twoServerConfig(upstream.port, upstream.port));
    const sock = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    let got = '';
    sock.setEncoding('latin1').on('data', (d: string) => (got += d));
    sock.on('end', () => sock.end());
    await waitFor(() => got === 'BANNER\n', { timeoutMs: 3000, what: 'the server banner through licgate' });
    sock.write('STATUS\r\n');
    await once(sock, 'close');
    expect(got).toBe(`BANNER\n${RUNNING}`);
    const record = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'the session log line' });
    expect(record).toMatchObject({ end: 'status', bytes_in: 8, bytes_out: got.length });
  });

  it('a client that stalls on a partial prefix is forwarded as-is after the sniff window, not cut', async () => {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(twoServerConfig(a.port, b.port));
    const sock = connect({ host: '127.0.0.1', port: proxy.port, noDelay: true, allowHalfOpen: true });
    const events: string[] = [];
    let reply = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (reply += d));
    sock.on('end', () => events.push('end'));
    sock.on('error', (e: NodeJS.ErrnoException) => events.push(`error ${e.code}`));
    sock.on('close', () => events.push('close'));
    // The relay is up (upstream accepted) before the client sends its partial prefix.
    await waitFor(() => a.accepted.length > 0, { timeoutMs: 3000, intervalMs: 2, what: 'upstream connection' });
    sock.write('STAT');
    // After the 2 s sniff window the 4 bytes go upstream as they are; the client stays connected.
    await waitFor(() => a.got[0]!.toString('latin1') === 'STAT', { timeoutMs: 6000, what: '"STAT" forwarded upstream' });
    expect(events).toEqual([]);
    sock.end('US-more\n');
    await waitFor(() => events.includes('close'), { timeoutMs: 3000, what: 'client close' });
    expect(a.got[0]!.toString('latin1')).toBe('STATUS-more\n');
    expect(reply).toBe('OK 12\n');
    expect(events).toEqual(['end', 'close']);
  });

  it('with no server up, a client whose first bytes are not STATUS is closed without a reply', async () => {
    const a = await startInProcessSimulator('primary');
    const b = await startInProcessSimulator('backup');
    const proxy = await startProxy(twoServerConfig(a.port, b.port, { check: '{ type: status, inter: 200ms, fastinter: 100ms, rise: 1, fall: 1 }' }));
    await a.close();
    await b.close();
    await waitFor(async () => !(await proxy.backend('licenses')).running, { timeoutMs: 5000, what: 'no server up' });
    const r = await talk(proxy.port, ['HELLO\n']);
    expect(r.reply.length).toBe(0);
    const log = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 5000, what: 'session log' });
    expect(log).toMatchObject({ end: 'no-server', server: null, error: 'no usable server' });
  });
});

describe('in-band STATUS on a frontend at its maxconn', () => {
  /** A proxy whose frontend (maxconn 1) is full: its one slot taken by `first`, a license client that stays connected. */
  async function fullFrontend() {
    const [a, b] = [await recorder(), await recorder()];
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses, maxconn: 1 }
backends:
  - name: licenses
    check: { type: none }
    queue_timeout: 30s
    servers:
      - { name: primary, address: "127.0.0.1:${a.port}" }
      - { name: backup, address: "127.0.0.1:${b.port}", backup: true }
`);
    const first = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen: true });
    first.on('error', () => {});
    first.write('first\n');
    await waitFor(() => a.got[0]?.toString('latin1') === 'first\n', { timeoutMs: 5000, what: 'the first session relaying' });
    const waiting = (n: number, what: string): Promise<unknown> =>
      waitFor(async () => sample((await proxy.get('/metrics')).body, 'licgate_frontend_waiting_connections', { frontend: 'lmgrd' }) === n, { timeoutMs: 5000, what });
    return { a, proxy, first, waiting };
  }

  // HAProxy in front of licgate proxies checks them with in-band STATUS on the clients' port
  // (haproxy/licgate-proxies.cfg): a proxy that is merely full must not look dead to it.
  it('answers STATUS at once while the frontend is full, and license clients still wait for a slot', async () => {
    const { a, proxy, first, waiting } = await fullFrontend();
    // A license client that arrives now waits, un-connected.
    const queued = talk(proxy.port, ['second\n'], { end: true });
    await waiting(1, 'the second client waiting at the frontend');
    expect(a.accepted.length).toBe(1);
    // STATUS is answered promptly (long before queue_timeout), ahead of the waiting client.
    const started = performance.now();
    const r = await Promise.race([talk(proxy.port, ['STATUS\r\n']), new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000))]);
    expect(r?.reply.toString('latin1'), 'STATUS reply within 3 s while the frontend is full').toBe(RUNNING);
    expect(performance.now() - started).toBeLessThan(3000);
    const record = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: "the STATUS session's log line" });
    expect(record).toMatchObject({ server: null, end: 'status', bytes_in: 8, bytes_out: RUNNING.length });
    // The waiting license client was neither let through nor disturbed: it gets the slot, bytes intact.
    expect(a.accepted.length).toBe(1);
    first.end();
    const q = await queued;
    expect(q.reply.toString('latin1')).toBe('OK 7\n');
    expect(a.got[1]!.toString('latin1')).toBe('second\n');
  });

  it('a client that resets while it waits for a slot is logged and counted as a session ended client-gone, with its address', async () => {
    const { proxy, first, waiting } = await fullFrontend();
    // A client from another address waits (its first bytes are awaited: it may be a STATUS check) and resets.
    const gone = connect({ host: '127.0.0.1', port: proxy.port, localAddress: '127.0.0.7' });
    gone.on('error', () => {});
    await waiting(1, 'the second client waiting at the frontend');
    gone.resetAndDestroy();
    await waiting(0, 'the reset client gone from the queue');
    // Two clients accepted, one still in its session: the one that left is accounted for at once.
    const text = (await proxy.get('/metrics')).body;
    const total = (name: string): number => parseSamples(text).filter((x) => x.name === name && x.labels.frontend === 'lmgrd').reduce((n, x) => n + x.value, 0);
    const ended = total('licgate_sessions_ended_total');
    expect({ ended, clientGone: sample(text, 'licgate_sessions_ended_total', { frontend: 'lmgrd', backend: 'licenses', end: 'client-gone' }), turnedAway: total('licgate_frontend_rejected_total') }).toEqual({ ended: 1, clientGone: 1, turnedAway: 0 });
    const record = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed'), { timeoutMs: 3000, what: 'the session log line' });
    expect(record).toMatchObject({ client: expect.stringMatching(/^127\.0\.0\.7:[1-9]\d*$/), frontend: 'lmgrd', server: null, bytes_in: 0, bytes_out: 0, end: 'client-gone' });
    first.destroy();
  });
});
