import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { oneExchange } from '../helpers/one-exchange.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, stopAll, type LogLine, type ProxyProcess } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanup: (() => void)[] = [];
afterEach(async () => {
  await stopAll();
  for (const f of cleanup.splice(0)) f();
});

/** The license server's side: an echo server that counts the connections it accepted. */
async function countingEcho(): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const srv = createServer((s) => {
    accepted++;
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanup.push(() => srv.close());
  return { port: (srv.address() as { port: number }).port, accepted: () => accepted };
}

function yaml(serverPort: number, listen: string, allow: string | null): string {
  return `shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "${listen}", backend: licenses${allow === null ? '' : `, allow: ${allow}`} }
backends:
  - name: licenses
    stick: source
    check: { type: none }
    servers: [{ name: primary, address: "127.0.0.1:${serverPort}" }]
`;
}

/** A client from `from` whose line came back from the echo server through licgate: a session. */
async function session(port: number, from: string, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ host, port, localAddress: from });
  cleanup.push(() => s.destroy());
  await echoes(s);
  return s;
}

async function echoes(s: Socket): Promise<void> {
  s.write('hello\n');
  const [d] = (await once(s, 'data')) as [Buffer];
  expect(d.toString()).toBe('hello\n');
}

const deniedLines = (p: ProxyProcess): LogLine[] => p.logs.filter((l) => typeof l.denied === 'number');
const sessionLines = (p: ProxyProcess): LogLine[] => p.logs.filter((l) => l.msg === 'session closed');
const deniedTotal = async (p: ProxyProcess): Promise<number | undefined> => sample((await p.get('/metrics')).body, 'licgate_frontend_rejected_total', { frontend: 'lmgrd', reason: 'denied' });

describe('a frontend allow list', () => {
  it('resets a client from an address not in it at accept (no server connect, no STATUS answer, no session line), counts and logs it, and serves one that is', async () => {
    const srv = await countingEcho();
    const p = await startProxy(yaml(srv.port, '127.0.0.1:0', '[127.0.0.2/32]'));
    expect(await deniedTotal(p)).toBe(0);
    expect(await oneExchange(p.port, '127.0.0.1', 'STATUS\r\n')).toEqual({ got: '', how: 'ECONNRESET' });
    const admitted = await session(p.port, '127.0.0.2');
    // The admitted client's connection is the only one the server accepted.
    expect(srv.accepted()).toBe(1);
    const metrics = (await p.get('/metrics')).body;
    expect({ denied: sample(metrics, 'licgate_frontend_rejected_total', { frontend: 'lmgrd', reason: 'denied' }), stuck: sample(metrics, 'licgate_stick_table_entries', { backend: 'licenses' }) }).toEqual({ denied: 1, stuck: 1 });
    const line = await waitFor(() => deniedLines(p)[0], { timeoutMs: 5000, what: 'the denied log line' });
    expect(line).toMatchObject({ level: 40, denied: 1, listener: 'frontend lmgrd', top_address: '127.0.0.1', top_address_denied: 1 });
    expect(line.msg).toBe("denied 1 connection from addresses not in the listener's allow list since the last such line, the last on frontend lmgrd, most from 127.0.0.1 (1)");
    admitted.end();
    await waitFor(() => sessionLines(p).length === 1, { timeoutMs: 5000, what: "the admitted client's session line" });
    expect(sessionLines(p).map((l) => String(l.client).replace(/:\d+$/, ''))).toEqual(['127.0.0.2']);
  });

  it('a reload that changes the list applies to the next client, and the sessions open go on; without the key every address is served', async () => {
    const srv = await countingEcho();
    const p = await startProxy(yaml(srv.port, '127.0.0.1:0', '[127.0.0.2/32]'));
    const open = await session(p.port, '127.0.0.2');
    const reloaded = async (allow: string | null, n: number): Promise<void> => {
      p.reload(yaml(srv.port, '127.0.0.1:0', allow));
      await waitFor(() => p.logs.filter((l) => String(l.msg).startsWith('config reloaded')).length === n, { timeoutMs: 10_000, what: `reload ${n}` });
    };
    await reloaded('[127.0.0.1/32, 10.0.0.0/8]', 1);
    expect(p.logs.find((l) => String(l.msg).startsWith('config reloaded'))!.msg).toContain('frontend lmgrd changed');
    await echoes(open);
    expect(await oneExchange(p.port, '127.0.0.2', 'STATUS\r\n')).toEqual({ got: '', how: 'ECONNRESET' });
    await session(p.port, '127.0.0.1');
    await reloaded(null, 2);
    await session(p.port, '127.0.0.2');
    await echoes(open);
    expect({ accepted: srv.accepted(), denied: await deniedTotal(p) }).toEqual({ accepted: 3, denied: 1 });
  });

  it('on a dual-stack [::] listener an IPv4 client (::ffff:127.0.0.2) matches its IPv4 entry, and ::1 its IPv6 one', async () => {
    const srv = await countingEcho();
    const p = await startProxy(yaml(srv.port, '[::]:0', '[127.0.0.2/32, "::1/128"]'));
    await session(p.port, '127.0.0.2');
    await session(p.port, '::1', '::1');
    expect(await oneExchange(p.port, '127.0.0.1', 'STATUS\r\n')).toEqual({ got: '', how: 'ECONNRESET' });
    p.reload(yaml(srv.port, '[::]:0', '[127.0.0.2/32]'));
    await waitFor(() => p.logs.some((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 10_000, what: 'the reload' });
    expect(await oneExchange(p.port, '::1', 'STATUS\r\n', '::1')).toEqual({ got: '', how: 'ECONNRESET' });
    expect({ accepted: srv.accepted(), denied: await deniedTotal(p) }).toEqual({ accepted: 2, denied: 2 });
  });
});
