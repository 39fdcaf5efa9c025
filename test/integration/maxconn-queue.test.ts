import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { Daemon } from '../../src/daemon.js';
import type { Frontend } from '../../src/proxy/frontend.js';
import { applyConfig } from '../../src/reload.js';
import type { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { startDaemon, startSimulators } from '../helpers/in-process-daemon.js';
import { sample } from '../helpers/prom-text.js';
import { startTcpServer } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

let daemon: Daemon | null = null;
let sims: LicenseSimulator[] = [];
const clients: Socket[] = [];
const agents: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const close of agents.splice(0)) await close();
  await daemon?.close();
  daemon = null;
  await Promise.all(sims.map((s) => s.close()));
  sims = [];
});

/** A client that sends HELLO and records the reply and whether the proxy closed it. */
/** A client that sends `first` (a FlexLM-like HELLO unless told; '' for one that sends nothing) and reads. */
function hello(port: number, first = 'HELLO\n'): { sock: Socket; reply: () => string; closed: () => boolean } {
  const sock = connect({ host: '127.0.0.1', port });
  clients.push(sock);
  let reply = '';
  let closed = false;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => (reply += d));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  if (first) sock.write(first);
  return { sock, reply: () => reply, closed: () => closed };
}

/** Client a served in the one session of `d`'s frontend (maxconn 1), and client b waiting behind it. */
async function oneServedOneWaiting(d: Daemon): Promise<{ fe: Frontend; port: number; a: ReturnType<typeof hello>; b: ReturnType<typeof hello> }> {
  const fe = d.frontends[0]!;
  const port = fe.address().port;
  const a = hello(port);
  await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
  const b = hello(port);
  await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'b waiting at the frontend' });
  return { fe, port, a, b };
}

/** A real HAProxy-style agent on 127.0.0.1 whose one-line reply the test changes. */
async function agent(firstLine: string): Promise<{ port: number; say: (line: string) => void; close: () => Promise<void> }> {
  let line = firstLine;
  const srv = await startTcpServer((sock) => sock.end(line));
  agents.push(srv.close);
  return { port: srv.port, say: (l) => (line = l), close: srv.close };
}

/** One server on a simulator whose agent (backend agent_port) is read every 100 ms. */
function agentConfig(simPort: number, agentPort: number): string {
  return `admin: { listen: 127.0.0.1:0 }
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b, inband_status: false }
backends:
  - name: b
    check: { type: none }
    agent_port: ${agentPort}
    agent_inter: 100ms
    queue_timeout: 10s
    servers:
      - { name: s1, address: 127.0.0.1:${simPort} }
`;
}

/** A daemon whose one server (a simulator) has an agent saying `up maxconn:N`, applied already. */
async function startWithAgent(maxconn: number) {
  sims = await startSimulators(['s1']);
  const ag = await agent(`up maxconn:${maxconn}\n`);
  const d = await startDaemon(agentConfig(sims[0]!.address().port, ag.port));
  daemon = d;
  const backend = d.model.backend('b')!;
  const s1 = backend.server('s1')!;
  await waitFor(() => s1.maxconn === maxconn, { timeoutMs: 5000, what: `maxconn ${maxconn} from the agent` });
  return { ag, port: d.frontends[0]!.address().port, backend, s1, d };
}

/** A server that counts and hashes what each connection sent, and answers with that at the client's FIN. */
async function hashingServer(): Promise<{ port: number }> {
  const srv = await startTcpServer((sock) => {
    const hash = createHash('sha256');
    let n = 0;
    sock.on('data', (d: Buffer) => {
      n += d.length;
      hash.update(d);
    });
    sock.on('end', () => sock.end(`${n} ${hash.digest('hex')}\n`));
  });
  agents.push(srv.close);
  return srv;
}

/** A client that writes each chunk at once (no Nagle) and keeps what it is sent, as latin1. */
function rawClient(port: number): { w: Socket; reply: () => string } {
  const w = connect({ host: '127.0.0.1', port });
  clients.push(w);
  w.on('error', () => {});
  w.setNoDelay(true);
  let reply = '';
  w.setEncoding('latin1').on('data', (c: string) => (reply += c));
  return { w, reply: () => reply };
}

/**
 * A daemon in front of a hashingServer whose one slot (frontend or server maxconn 1) a first client
 * holds, and a second client `w` behind it: waiting at the frontend, or its session queued for the
 * server. `served(sent)` lets the first client go and checks that the server got exactly `sent`
 * from `w`, byte for byte.
 */
async function behindAFullSlot(at: 'frontend' | 'server') {
  const srv = await hashingServer();
  const d = await startDaemon(config(srv.port, { [at === 'frontend' ? 'frontendMaxconn' : 'serverMaxconn']: 1, queueTimeout: '30s' }).replace('inband_status: false', 'inband_status: true'));
  daemon = d;
  const fe = d.frontends[0]!;
  const backend = d.model.backend('b')!;
  const port = fe.address().port;
  const first = connect({ host: '127.0.0.1', port });
  clients.push(first);
  first.on('error', () => {});
  await waitFor(() => backend.server('s1')!.active === 1, { timeoutMs: 5000, what: 'the first session connected' });
  const { w, reply } = rawClient(port);
  const behind = (): number => (at === 'frontend' ? fe.queued : backend.queued);
  await waitFor(() => behind() === 1, { timeoutMs: 5000, what: `w ${at === 'frontend' ? 'waiting' : 'queued'}` });
  const served = async (sent: Buffer): Promise<void> => {
    expect(behind()).toBe(1);
    first.end();
    await waitFor(() => reply().endsWith('\n'), { timeoutMs: 10_000, what: "the server's count of w's bytes" });
    expect(reply()).toBe(`${sent.length} ${createHash('sha256').update(sent).digest('hex')}\n`);
  };
  return { fe, w, served };
}

/**
 * What licgate has read from the oldest client waiting at `fe`, or null. The wait list is private:
 * what licgate read is not visible from outside before the client's turn.
 */
function firstWaiting(fe: Frontend): { early: Buffer | null } | null {
  return (fe as unknown as { waiting: { head: { early: Buffer | null } | null } }).waiting.head;
}

/**
 * Sends `bytes` one per segment, each written only once licgate has read the one before (`read`:
 * how many of them it has read, up to `readLimit`), so that every byte is one read of its own.
 */
async function trickle(sock: Socket, bytes: Buffer, read: () => number, readLimit = Infinity): Promise<void> {
  const deadline = performance.now() + 20_000;
  for (let i = 0; i < bytes.length; i++) {
    sock.write(bytes.subarray(i, i + 1));
    if (i >= readLimit) continue;
    // setImmediate: one turn of the event loop licgate shares with this test, no sleep.
    while (read() !== i + 1) {
      if (performance.now() > deadline) throw new Error(`licgate read ${read()} of the ${i + 1} bytes trickled so far`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** What licgate has read from the first client waiting at `fe`. */
const readWhileWaiting = (fe: Frontend) => (): number => firstWaiting(fe)?.early?.length ?? 0;

async function statusOf(d: Daemon): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${d.admin!.address().port}/status`);
  const body = (await res.json()) as { backends: { servers: Record<string, unknown>[] }[] };
  return body.backends[0]!.servers[0]!;
}

function config(simPort: number, opts: { serverMaxconn?: number; frontendMaxconn?: number; queueTimeout?: string; maxQueue?: number }): string {
  return `frontends:
  - name: fe
    listen: 127.0.0.1:0
    backend: b
    inband_status: false
    ${opts.frontendMaxconn ? `maxconn: ${opts.frontendMaxconn}` : ''}
backends:
  - name: b
    check: { type: none }
    queue_timeout: ${opts.queueTimeout ?? '5s'}
    max_queue: ${opts.maxQueue ?? 100}
    servers:
      - { name: s1, address: 127.0.0.1:${simPort}${opts.serverMaxconn ? `, maxconn: ${opts.serverMaxconn}` : ''} }
`;
}

describe('maxconn and the bounded queue', () => {
  it('server maxconn: a third client waits in the queue and is served when a slot frees', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { serverMaxconn: 2 }));
    const port = daemon.frontends[0]!.address().port;
    const backend = daemon.model.backend('b')!;
    const a = hello(port);
    const b = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1') && b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'two sessions served' });
    const c = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'third connection queued' });
    expect(c.reply()).toBe('');
    expect(sims[0]!.connections).toBe(2);
    a.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'queued client served after a slot freed' });
    expect(backend.server('s1')!.active).toBe(2);
    expect(backend.queued).toBe(0);
  });

  it('a slot freed by a session opened before a reload serves a connection queued after it', async () => {
    sims = await startSimulators(['s1']);
    const yaml = config(sims[0]!.address().port, { serverMaxconn: 1, queueTimeout: '30s' });
    daemon = await startDaemon(yaml);
    const port = daemon.frontends[0]!.address().port;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'the first session served' });
    await applyConfig(daemon, loadConfigText(yaml, 'reload.yaml'));
    const backend = daemon.model.backend('b')!;
    const c = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'the second connection queued in the reloaded backend' });
    a.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'the queued client served when the older session ended (queue_timeout is 30 s)' });
    expect(backend.server('s1')!.active).toBe(1);
    expect(backend.queued).toBe(0);
  });

  it('a connection queued before a reload moves to the reloaded backend: served at once when the reload adds room, else when a slot frees', async () => {
    sims = await startSimulators(['s1']);
    const port1 = sims[0]!.address().port;
    const yaml = (maxconn: number) => config(port1, { serverMaxconn: maxconn, queueTimeout: '30s' });
    daemon = await startDaemon(yaml(1));
    const port = daemon.frontends[0]!.address().port;
    const before = daemon.model.backend('b')!;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'the first session served' });
    const c = hello(port);
    const d = hello(port);
    await waitFor(() => before.queued === 2, { timeoutMs: 5000, what: 'two connections queued before the reload' });
    // The reload is the admin's way out of a full server: the oldest waiter takes the new slot now.
    await applyConfig(daemon, loadConfigText(yaml(2), 'reload.yaml'));
    const after = daemon.model.backend('b')!;
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'the older queued client served by the raised maxconn (queue_timeout is 30 s)' });
    expect([d.reply(), before.queued, after.queued, after.server('s1')!.active]).toEqual(['', 0, 1, 2]);
    // One more reload that adds no room: the waiter is still served by the next session that ends.
    await applyConfig(daemon, loadConfigText(yaml(2), 'reload.yaml'));
    a.sock.end();
    await waitFor(() => d.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'the other queued client served when a session opened before both reloads ended' });
    expect([daemon.model.backend('b')!.queued, daemon.model.backend('b')!.server('s1')!.active, c.closed()]).toEqual([0, 2, false]);
  });

  it('a queued connection gives up after queue_timeout, and the queue is bounded by max_queue', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { serverMaxconn: 1, queueTimeout: '300ms', maxQueue: 1 }));
    const port = daemon.frontends[0]!.address().port;
    const backend = daemon.model.backend('b')!;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first session served' });
    const queued = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'second connection queued' });
    const refused = hello(port);
    await waitFor(() => refused.closed(), { timeoutMs: 5000, what: 'third connection refused (queue full)' });
    expect(refused.reply()).toBe('');
    expect(backend.queueRejected).toBe(1);
    const t0 = Date.now();
    await waitFor(() => queued.closed(), { timeoutMs: 5000, what: 'queued connection closed at queue_timeout' });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(queued.reply()).toBe('');
    expect(backend.queueTimeouts).toBe(1);
    // The held session was never disturbed.
    a.sock.write('CHECKOUT cad 1\n');
    await waitFor(() => a.reply().includes('GRANTED'), { timeoutMs: 5000, what: 'first session still works' });
  });

  it('frontend maxconn: excess clients wait un-connected and are served in order as sessions end', async () => {
    sims = await startSimulators(['s1']);
    daemon = await startDaemon(config(sims[0]!.address().port, { frontendMaxconn: 2 }));
    const fe = daemon.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    const b = hello(port);
    await waitFor(() => a.reply() && b.reply(), { timeoutMs: 5000, what: 'two sessions served' });
    const c = hello(port);
    const d = hello(port);
    await waitFor(() => fe.queued === 2, { timeoutMs: 5000, what: 'two clients waiting at the frontend' });
    expect(sims[0]!.connections).toBe(2);
    b.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first waiting client served' });
    expect(d.reply()).toBe('');
    expect(fe.queued).toBe(1);
    a.sock.end();
    await waitFor(() => d.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'second waiting client served' });
    expect(fe.sessions.size).toBe(2);
  });

  // Each waiting client's session ends inside its own start when no server is usable, and ending
  // a session admits the next client: a long wait list used to go one call deeper per client.
  it('frontend maxconn: 1500 waiting clients whose turn comes while no server is usable are each turned away, and licgate keeps running', async () => {
    sims = await startSimulators(['s1']);
    const d = await startDaemon(config(sims[0]!.address().port, { frontendMaxconn: 1, queueTimeout: '60s', maxQueue: 2000 }));
    daemon = d;
    const fe = d.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
    const waiting = Array.from({ length: 1500 }, () => hello(port));
    await waitFor(() => fe.queued === waiting.length, { timeoutMs: 20_000, what: `${waiting.length} clients waiting` });
    d.model.backend('b')!.server('s1')!.setAdmin('maint', 'test: no usable server when their turn comes');
    a.sock.end();
    await waitFor(() => waiting.every((c) => c.closed()), { timeoutMs: 20_000, what: 'every waiting client closed' });
    const text = await d.metrics.render();
    expect([fe.queued, fe.sessions.size, sample(text, 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end: 'no-server' })]).toEqual([0, 0, waiting.length]);
    expect(waiting.filter((c) => c.reply() !== '')).toEqual([]);
  });

  it('frontend maxconn: a client past max_queue and one whose wait passes queue_timeout are counted as turned away, reason full and timeout (what LicgateFrontendRejecting reads)', async () => {
    sims = await startSimulators(['s1']);
    const d = await startDaemon(config(sims[0]!.address().port, { frontendMaxconn: 1, queueTimeout: '300ms', maxQueue: 1 }));
    daemon = d;
    const { port, b } = await oneServedOneWaiting(d);
    const c = hello(port);
    await waitFor(() => c.closed(), { timeoutMs: 5000, what: 'c closed (wait list full)' });
    await waitFor(() => b.closed(), { timeoutMs: 5000, what: 'b closed at queue_timeout' });
    const text = await d.metrics.render();
    const rejected = (reason: string) => sample(text, 'licgate_frontend_rejected_total', { frontend: 'fe', reason });
    expect({ full: rejected('full'), timeout: rejected('timeout'), stopping: rejected('stopping') }).toEqual({ full: 1, timeout: 1, stopping: 0 });
    expect([c.reply(), b.reply(), sims[0]!.connections]).toEqual(['', '', 1]);
  });

  it('frontend maxconn, in-band STATUS on: a waiting client that resets before sending leaves the queue at once, not at queue_timeout', async () => {
    sims = await startSimulators(['s1']);
    const yaml = config(sims[0]!.address().port, { frontendMaxconn: 1, queueTimeout: '30s', maxQueue: 1 }).replace('inband_status: false', 'inband_status: true');
    daemon = await startDaemon(yaml);
    const fe = daemon.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
    // A client that connects, sends nothing (its first bytes are still awaited) and resets.
    const gone = connect({ host: '127.0.0.1', port });
    gone.on('error', () => {});
    await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'the silent client waiting' });
    gone.resetAndDestroy();
    await waitFor(() => fe.queued === 0, { timeoutMs: 5000, what: 'the reset client gone from the queue' });
    // Its place (max_queue is 1) is free for the next client, who is served when a slot frees.
    const c = hello(port);
    await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'c waiting' });
    expect([c.closed(), fe.rejected]).toEqual([false, { full: 0, timeout: 0, stopping: 0, denied: 0 }]);
    a.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'c served' });
  });

  // A license client that gave up while it waited must not make licgate open a connection to the
  // license server for nobody when its turn comes. A FIN with nothing before it is HAProxy's
  // `option abortonclose`; a reset ends a queued client in HAProxy whatever its options (it reads
  // waiting clients too).
  // `queued`: how many clients wait (at the frontend, or for a server slot).
  const leaving = {
    'closes before sending': async (port: number, queued: () => number): Promise<void> => {
      const gaveUp = hello(port, '').sock;
      await waitFor(() => queued() === 1, { timeoutMs: 5000, what: 'the client waiting' });
      gaveUp.end();
      await once(gaveUp, 'finish');
    },
    'resets after sending its first bytes': async (port: number, queued: () => number): Promise<void> => {
      const gone = hello(port);
      await waitFor(() => queued() === 1, { timeoutMs: 5000, what: 'the client waiting' });
      gone.sock.resetAndDestroy();
      await once(gone.sock, 'close');
    },
  };
  // The same for a session queued for a full server's slot (server maxconn).
  const cases = (['frontend', 'server'] as const).flatMap((at) => [true, false].flatMap((inband) => Object.keys(leaving).map((how) => ({ at, inband, how: how as keyof typeof leaving }))));
  it.each(cases)(
    '$at maxconn, inband_status $inband: a client waiting for a slot that $how leaves at once, and no connection to the server is opened for it',
    async ({ at, inband, how }) => {
      sims = await startSimulators(['s1']);
      const yaml = config(sims[0]!.address().port, { [at === 'frontend' ? 'frontendMaxconn' : 'serverMaxconn']: 1, queueTimeout: '30s' }).replace('inband_status: false', `inband_status: ${inband}`);
      const d = await startDaemon(yaml);
      daemon = d;
      const fe = d.frontends[0]!;
      const backend = d.model.backend('b')!;
      const queued = (): number => (at === 'frontend' ? fe.queued : backend.queued);
      const port = fe.address().port;
      const a = hello(port);
      await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
      await leaving[how](port, queued);
      // Gone while a is still served: not at its turn, nor at queue_timeout.
      await waitFor(() => queued() === 0 && fe.sessions.size === 1, { timeoutMs: 5000, what: 'the client gone from the queue while a is served' });
      a.sock.end();
      await waitFor(() => a.closed() && fe.sessions.size === 0, { timeoutMs: 5000, what: "a's session ended and nobody waiting or served" });
      const text = await d.metrics.render();
      const ended = (end: string) => sample(text, 'licgate_sessions_ended_total', { frontend: 'fe', backend: 'b', end });
      expect([sims[0]!.connections, ended('closed'), ended('client-gone'), fe.rejected]).toEqual([1, 1, 1, { full: 0, timeout: 0, stopping: 0, denied: 0 }]);
    },
  );

  // licgate reads a waiting client only this far (4 KiB); the rest waits in the kernel.
  it('frontend maxconn: a waiting client that sends far more than is read while it waits, then its FIN, has every byte relayed in order when its turn comes', async () => {
    const { fe, w, served } = await behindAFullSlot('frontend');
    const payload = randomBytes(1024 * 1024);
    w.end(payload);
    // Queued long enough for licgate to have read what it reads while w waits (the kernel holds the rest).
    await waitFor(() => readWhileWaiting(fe)() > 0, { timeoutMs: 5000, what: "w's first bytes read while it waits" });
    expect(readWhileWaiting(fe)()).toBeLessThan(payload.length);
    await served(payload);
  });

  // A client whose first message arrives one byte per segment while it waits: what licgate keeps for
  // it grows by appending, not by copying everything read so far on every byte.
  it('frontend maxconn: a waiting client that trickles its first message one byte per segment, past what licgate reads while it waits, has every byte relayed in order when its turn comes', async () => {
    const { fe, w, served } = await behindAFullSlot('frontend');
    // Starts as a STATUS request would, so the in-band sniff sees a prefix before it sees otherwise.
    const message = Buffer.concat([Buffer.from('STATUS '), randomBytes(4096 + 500)]);
    // licgate reads 4 KiB from a waiting client; the rest waits in the kernel.
    await trickle(w, message, readWhileWaiting(fe), 4096);
    w.end();
    await served(message);
  });

  it('server maxconn: a session queued for a full server whose client trickles its first message one byte per segment has every byte relayed in order when a slot frees', async () => {
    const { fe, w, served } = await behindAFullSlot('server');
    // The session is private: what it read before its connect is not visible from outside.
    let queued: { earlyBytes: number } | undefined;
    fe.sessions.forEach((s) => (queued = s as unknown as { earlyBytes: number }));
    const message = Buffer.concat([Buffer.from('STATUS '), randomBytes(3000)]);
    await trickle(w, message, () => queued!.earlyBytes);
    w.end();
    await served(message);
  });

  it('frontend maxconn: a waiting client that trickles STATUS one byte per segment is answered at once', async () => {
    sims = await startSimulators(['s1']);
    const d = await startDaemon(config(sims[0]!.address().port, { frontendMaxconn: 1, queueTimeout: '30s' }).replace('inband_status: false', 'inband_status: true'));
    daemon = d;
    const fe = d.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
    const { w, reply } = rawClient(port);
    await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'w waiting' });
    // All but the last byte, each read on its own while w waits; then the last.
    await trickle(w, Buffer.from('STATUS\r'), readWhileWaiting(fe));
    w.write('\n');
    // licgate's STATUS block names the backend (b), the simulator's its own name (s1).
    await waitFor(() => reply().includes('Servers:'), { timeoutMs: 5000, what: "w's STATUS answered" });
    expect([reply().includes('Backend: b\r\n'), fe.queued, sims[0]!.connections, a.closed()]).toEqual([true, 0, 1, false]);
  });

  it('frontend maxconn: a reload that turns inband_status off also holds for a client already waiting: its STATUS goes to the server when its turn comes', async () => {
    sims = await startSimulators(['s1']);
    const yaml = (inband: boolean) => config(sims[0]!.address().port, { frontendMaxconn: 1, queueTimeout: '30s' }).replace('inband_status: false', `inband_status: ${inband}`);
    daemon = await startDaemon(yaml(true));
    const fe = daemon.frontends[0]!;
    const port = fe.address().port;
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served' });
    const w = connect({ host: '127.0.0.1', port });
    clients.push(w);
    w.on('error', () => {});
    let reply = '';
    w.setEncoding('latin1').on('data', (d: string) => (reply += d));
    await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'w waiting' });
    await applyConfig(daemon, loadConfigText(yaml(false), 'reload.yaml'));
    w.write('STATUS\r\n');
    a.sock.end();
    // The simulator's own STATUS block names the simulator (s1), licgate's the backend (b).
    await waitFor(() => reply.includes('Servers:'), { timeoutMs: 5000, what: "w's STATUS answered" });
    expect(reply).toContain('Backend: s1');
  });

  it('frontend maxconn changed by a reload: a raised limit lets waiting clients in at once, a lowered one holds them until sessions drop below it', async () => {
    sims = await startSimulators(['s1']);
    const yaml = (maxconn: number) => config(sims[0]!.address().port, { frontendMaxconn: maxconn, queueTimeout: '30s' });
    daemon = await startDaemon(yaml(1));
    const { fe, port, a, b } = await oneServedOneWaiting(daemon);
    await applyConfig(daemon, loadConfigText(yaml(2), 'reload.yaml'));
    await waitFor(() => b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'b let in by the raised maxconn (queue_timeout is 30 s)' });
    await applyConfig(daemon, loadConfigText(yaml(1), 'reload.yaml'));
    const c = hello(port);
    await waitFor(() => fe.queued === 1, { timeoutMs: 5000, what: 'c waiting: two sessions, maxconn now 1' });
    a.sock.end();
    await waitFor(() => fe.sessions.size === 1, { timeoutMs: 5000, what: "a's session ended" });
    expect([c.reply(), fe.queued]).toEqual(['', 1]);
    b.sock.end();
    await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'c let in once the sessions dropped below the lowered maxconn' });
  });

  it("an agent's maxconn:N limits the server like HAProxy's; raising it serves the queue at once; /status shows it and an unreadable agent", async () => {
    const { ag, port, backend, s1, d } = await startWithAgent(1);
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first session served' });
    const b = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'second connection queued behind the agent maxconn' });
    expect(await statusOf(d)).toMatchObject({ maxconn: 1, configured_maxconn: 0, active: 1, agent: { maxconn: 1 } });
    // No session ends: the agent's new limit alone lets the queued client in.
    ag.say('up maxconn:2\n');
    await waitFor(() => b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'queued client served when the agent raised maxconn' });
    expect([s1.active, backend.queued, a.closed()]).toEqual([2, 0, false]);
    await ag.close();
    await waitFor(() => s1.agentError === 'connection refused', { timeoutMs: 5000, what: 'the refused agent noted' });
    // HAProxy keeps what an unreachable agent said last; /status says why it is stale.
    expect(await statusOf(d)).toMatchObject({ maxconn: 2, agent_error: 'connection refused', agent: { maxconn: 2 } });
  });

  it('a queued connection takes a slot as soon as another server becomes usable, not at the next release', async () => {
    sims = await startSimulators(['s1', 's2']);
    daemon = await startDaemon(`frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b, inband_status: false }
backends:
  - name: b
    check: { type: none }
    queue_timeout: 10s
    servers:
      - { name: s1, address: 127.0.0.1:${sims[0]!.address().port}, maxconn: 1 }
      - { name: s2, address: 127.0.0.1:${sims[1]!.address().port}, maxconn: 1 }
`);
    const port = daemon.frontends[0]!.address().port;
    const backend = daemon.model.backend('b')!;
    backend.server('s2')!.setAdmin('maint', 'test');
    const a = hello(port);
    await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'first session on s1' });
    const b = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'second connection queued (s1 full, s2 in maint)' });
    backend.server('s2')!.setAdmin('ready', 'test');
    await waitFor(() => b.reply().includes('HELLO s2'), { timeoutMs: 5000, what: 'queued client served by s2 once it was ready' });
    expect([backend.queued, backend.server('s1')!.active, a.closed()]).toEqual([0, 1, false]);
  });

  it('a session ending on a server still over its (lowered) maxconn wakes nobody: the queue keeps its order', async () => {
    const { ag, port, backend, s1 } = await startWithAgent(2);
    const a = hello(port);
    const b = hello(port);
    await waitFor(() => a.reply().includes('HELLO') && b.reply().includes('HELLO'), { timeoutMs: 5000, what: 'two sessions served' });
    ag.say('up maxconn:1\n');
    await waitFor(() => s1.maxconn === 1, { timeoutMs: 5000, what: 'maxconn lowered to 1' });
    const q1 = hello(port);
    await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: 'q1 queued' });
    const q2 = hello(port);
    await waitFor(() => backend.queued === 2, { timeoutMs: 5000, what: 'q2 queued behind q1' });
    a.sock.end();
    await waitFor(() => s1.active === 1, { timeoutMs: 5000, what: 'first session released (s1 still full at maxconn 1)' });
    b.sock.end();
    await waitFor(() => q1.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'q1, the older, served first' });
    expect([q2.reply(), backend.queued, s1.active]).toEqual(['', 1, 1]);
  });

  describe('a sticky client whose server is full (FlexLM: lmgrd and vendor daemon on one server)', () => {
    /** s1 with maxconn 1 and, unless left out, s2; `frontend`: one more frontend to the same backend. */
    function stickyConfig(opts: { withoutS2?: boolean; frontend?: string } = {}): string {
      return `frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: b, inband_status: false }
${opts.frontend ?? ''}
backends:
  - name: b
    stick: source
    check: { type: none }
    queue_timeout: 30s
    servers:
      - { name: s1, address: 127.0.0.1:${sims[0]!.address().port}, maxconn: 1 }
${opts.withoutS2 ? '' : `      - { name: s2, address: 127.0.0.1:${sims[1]!.address().port} }`}
`;
    }

    /** s1 (maxconn 1) holds client a, stuck by source address; s2 is free. Every test client is 127.0.0.1: one stick key. */
    async function stuckOnFullServer() {
      sims = await startSimulators(['s1', 's2']);
      const d = await startDaemon(stickyConfig());
      daemon = d;
      const port = d.frontends[0]!.address().port;
      const backend = d.model.backend('b')!;
      backend.server('s2')!.setAdmin('maint', 'test: a must land on s1');
      const a = hello(port);
      await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a on s1' });
      backend.server('s2')!.setAdmin('ready', 'test');
      const b = hello(port);
      await waitFor(() => backend.queued === 1, { timeoutMs: 5000, what: "b queued on its sticky server s1" });
      expect([b.reply(), backend.server('s2')!.usable, backend.stick!.get('127.0.0.1')]).toEqual(['', true, 's1']);
      return { a, b, backend };
    }

    it('waits for a slot on that server instead of going to a free one', async () => {
      const { a, b, backend } = await stuckOnFullServer();
      a.sock.end();
      await waitFor(() => b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'b served by s1 once a left' });
      expect([backend.queued, backend.server('s2')!.total, sims[1]!.connections]).toEqual([0, 0, 0]);
    });

    it('is placed again at once when that server leaves service', async () => {
      const { a, b, backend } = await stuckOnFullServer();
      backend.server('s1')!.setAdmin('maint', 'test');
      await waitFor(() => b.reply().includes('HELLO s2'), { timeoutMs: 5000, what: 'b re-placed on s2' });
      expect([backend.queued, backend.stick!.get('127.0.0.1'), a.closed()]).toEqual([0, 's2', false]);
    });

    it('stays queued on it through a reload that fails to bind, which changes nothing (the stick table neither)', async () => {
      const { a, b, backend } = await stuckOnFullServer();
      const busy = await startTcpServer((sock) => sock.destroy());
      agents.push(busy.close);
      backend.stick!.set('192.0.2.7', 's2');
      // Drops s2 and adds a frontend on a port that is taken: the bind fails, so nothing may change.
      const rejected = stickyConfig({ withoutS2: true, frontend: `  - { name: taken, listen: 127.0.0.1:${busy.port}, backend: b }` });
      await expect(applyConfig(daemon!, loadConfigText(rejected, 'reload.yaml'))).rejects.toThrow(/taken/);
      expect([daemon!.model.backend('b'), backend.stick!.get('192.0.2.7')]).toEqual([backend, 's2']);
      a.sock.end();
      await waitFor(() => b.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'b served by s1 once a left (queue_timeout is 30 s)' });
      expect([backend.queued, backend.server('s1')!.active]).toEqual([0, 1]);
    });
  });

  describe('a connection queued on a backend whose frontend a reload sends elsewhere', () => {
    /** fe sends to `feTo`, fe2 (if any) to `fe2To`; b has s1 and x has s2, each maxconn 1. */
    function routes(feTo: string, fe2To: string | null, backends: string[] = ['b', 'x']): string {
      const server = { b: `s1, address: 127.0.0.1:${sims[0]!.address().port}`, x: `s2, address: 127.0.0.1:${sims[1]!.address().port}` } as Record<string, string>;
      return `admin: { listen: 127.0.0.1:0 }
frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: ${feTo}, inband_status: false }
${fe2To ? `  - { name: fe2, listen: 127.0.0.1:0, backend: ${fe2To}, inband_status: false }` : ''}
backends:
${backends.map((b) => `  - { name: ${b}, check: { type: none }, queue_timeout: 30s, servers: [ { name: ${server[b]}, maxconn: 1 } ] }`).join('\n')}
`;
    }

    /** `d`'s frontend `name` has a session on s1 (client a, held) and one queued behind it (client c). */
    async function queuedBehind(d: Daemon, name: string) {
      const port = d.frontends.find((f) => f.name === name)!.address().port;
      const a = hello(port);
      await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served by s1' });
      const c = hello(port);
      await waitFor(() => d.model.backend('b')!.queued === 1, { timeoutMs: 5000, what: 'c queued on b' });
      return { port, a, c };
    }

    /** fe sends to b, fe2 to x: client h holds s2 through fe2, and through fe a holds s1 with c queued behind it. */
    async function bothFullCQueuedOnB() {
      sims = await startSimulators(['s1', 's2']);
      const d = (daemon = await startDaemon(routes('b', 'x')));
      const h = hello(d.frontends.find((f) => f.name === 'fe2')!.address().port);
      await waitFor(() => h.reply().includes('HELLO s2'), { timeoutMs: 5000, what: 'h holds s2' });
      return { d, h, ...(await queuedBehind(d, 'fe')) };
    }

    it('is connected at once on the backend it routes to now when that has room (b removed)', async () => {
      sims = await startSimulators(['s1', 's2']);
      const d = (daemon = await startDaemon(routes('b', null)));
      const { a, c } = await queuedBehind(d, 'fe');
      const old = d.model.backend('b')!;
      await applyConfig(d, loadConfigText(routes('x', null, ['x']), 'reload.yaml'));
      await waitFor(() => c.reply().includes('HELLO s2'), { timeoutMs: 5000, what: 'c connected to s2 by the reload (queue_timeout is 30 s)' });
      expect([old.queued, d.model.backend('x')!.server('s2')!.active, a.closed(), sims[0]!.connections]).toEqual([0, 1, false, 1]);
    });

    it('queues on the backend it routes to now when that is full, and a session ending on the old one does not take it there (b kept)', async () => {
      const { d, h, a, c } = await bothFullCQueuedOnB();
      await applyConfig(d, loadConfigText(routes('x', 'x'), 'reload.yaml'));
      const x = d.model.backend('x')!;
      await waitFor(() => x.queued === 1, { timeoutMs: 5000, what: 'c queued on x' });
      a.sock.end();
      await waitFor(() => d.model.backend('b')!.server('s1')!.active === 0, { timeoutMs: 5000, what: "a's session ended" });
      expect([c.reply(), d.model.backend('b')!.queued, x.queued]).toEqual(['', 0, 1]);
      h.sock.end();
      await waitFor(() => c.reply().includes('HELLO s2'), { timeoutMs: 5000, what: 'c served by s2 once h left' });
      expect([x.queued, sims[0]!.connections]).toEqual([0, 1]);
    });

    it('follows its frontend back to a backend removed and added back, where a session opened before both reloads still fills s1', async () => {
      const { d, a, c } = await bothFullCQueuedOnB();
      await applyConfig(d, loadConfigText(routes('x', 'x', ['x']), 'reload.yaml'));
      await waitFor(() => d.model.backend('x')!.queued === 1, { timeoutMs: 5000, what: 'c queued on x' });
      await applyConfig(d, loadConfigText(routes('b', 'x'), 'reload.yaml'));
      const b = d.model.backend('b')!;
      await waitFor(() => b.queued === 1, { timeoutMs: 5000, what: 'c queued on b again, behind a' });
      expect([d.model.backend('x')!.queued, b.server('s1')!.active, c.reply()]).toEqual([0, 1, '']);
      a.sock.end();
      await waitFor(() => c.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'c served by s1 once a left' });
      expect([b.queued, sims[1]!.connections]).toEqual([0, 1]);
    });

    it('is closed at once, counted as turned away (stopping), when the reload removes its frontend', async () => {
      sims = await startSimulators(['s1', 's2']);
      const d = (daemon = await startDaemon(routes('x', 'b')));
      const { a, c } = await queuedBehind(d, 'fe2');
      await applyConfig(d, loadConfigText(routes('x', null), 'reload.yaml'));
      await waitFor(() => c.closed(), { timeoutMs: 5000, what: 'c closed by the reload (queue_timeout is 30 s)' });
      const rejected = sample(await d.metrics.render(), 'licgate_frontend_rejected_total', { frontend: 'fe2', reason: 'stopping' });
      expect([c.reply(), d.model.backend('b')!.queued, rejected, a.closed()]).toEqual(['', 0, 1, false]);
      a.sock.end();
      await waitFor(() => d.model.backend('b')!.server('s1')!.active === 0, { timeoutMs: 5000, what: "a's session ended" });
      expect(sims[0]!.connections).toBe(1);
    });

    it('is connected at once to a server of the new backend named like one it failed on in the old, another license server', async () => {
      sims = await startSimulators(['s1', 's2']);
      const refusing = await freePort();
      // Both backends name their servers lic1, lic2: b's lic1 refuses, x's lic1 is another host (s2).
      const cfg = (to: string): string => `frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: ${to}, inband_status: false }
backends:
  - { name: b, check: { type: none }, queue_timeout: 30s, servers: [ { name: lic1, address: "127.0.0.1:${refusing}" }, { name: lic2, address: "127.0.0.1:${sims[0]!.address().port}", maxconn: 1 } ] }
  - { name: x, check: { type: none }, queue_timeout: 30s, servers: [ { name: lic1, address: "127.0.0.1:${sims[1]!.address().port}", maxconn: 1 } ] }
`;
      const d = (daemon = await startDaemon(cfg('b')));
      const port = d.frontends[0]!.address().port;
      const a = hello(port);
      await waitFor(() => a.reply().includes('HELLO s1'), { timeoutMs: 5000, what: 'a served by lic2 (s1)' });
      // c finds lic2 full, is refused by lic1, and queues behind a.
      const c = hello(port);
      await waitFor(() => d.model.backend('b')!.queued === 1, { timeoutMs: 5000, what: 'c queued on b after lic1 refused it' });
      expect(d.model.backend('b')!.server('lic1')!.connectErrors).toBeGreaterThan(0);
      await applyConfig(d, loadConfigText(cfg('x'), 'reload.yaml'));
      await waitFor(() => c.reply().includes('HELLO s2'), { timeoutMs: 5000, what: "c connected to x's lic1 (s2) by the reload (queue_timeout is 30 s)" });
      expect([d.model.backend('x')!.queued, d.model.backend('x')!.server('lic1')!.active, a.closed()]).toEqual([0, 1, false]);
    });
  });

  describe('a connection in the turn-around before retrying a server that refused it, when a reload sends its frontend elsewhere', () => {
    /**
     * fe2 sends to `fe2To` (none: removed); b's only server refuses (retries 1, so its retry waits
     * the turn-around, min(connect_timeout 2s, 1s)); x has s2.
     */
    const turnRoutes = (refusing: number, fe2To: string | null): string => `frontends:
  - { name: fe, listen: 127.0.0.1:0, backend: x, inband_status: false }
${fe2To ? `  - { name: fe2, listen: 127.0.0.1:0, backend: ${fe2To}, inband_status: false }` : ''}
backends:
  - { name: b, check: { type: none }, retries: 1, connect_timeout: 2s, servers: [ { name: s1, address: "127.0.0.1:${refusing}" } ] }
  - { name: x, check: { type: none }, servers: [ { name: s2, address: "127.0.0.1:${sims[0]!.address().port}" } ] }
`;

    /** c (`hello` unless given) refused by b's s1 through fe2, in its turn-around; b's port then accepts (and counts). */
    async function inTurnaround(client: (port: number) => ReturnType<typeof hello> = hello) {
      sims = await startSimulators(['s2']);
      const refusing = await freePort();
      const d = (daemon = await startDaemon(turnRoutes(refusing, 'b')));
      const c = client(d.frontends.find((f) => f.name === 'fe2')!.address().port);
      await waitFor(() => d.model.backend('b')!.server('s1')!.connectErrors === 1, { timeoutMs: 5000, what: 'c refused by s1' });
      let connects = 0;
      const late = createServer((s) => {
        connects++;
        s.destroy();
      });
      await new Promise<void>((r) => late.listen(refusing, '127.0.0.1', r));
      agents.push(() => new Promise<void>((r) => late.close(() => r())));
      return { d, c, refusing, connects: () => connects };
    }

    it('is closed at once when the reload removes its frontend: its retry is never made', async () => {
      const { d, c, refusing, connects } = await inTurnaround();
      await applyConfig(d, loadConfigText(turnRoutes(refusing, null), 'reload.yaml'));
      await waitFor(() => c.closed() || connects() > 0, { timeoutMs: 5000, what: 'c closed, or its retry made' });
      expect(`${c.closed() ? 'closed' : 'open'}, ${connects()} connects to s1`).toBe('closed, 0 connects to s1');
    });

    // HAProxy's `option abortonclose`, as for a client waiting at the frontend or queued for a slot.
    it('is closed at once when its client closes before sending anything, with no reload: its retry is never made', async () => {
      const { d, c, connects } = await inTurnaround((port) => hello(port, ''));
      c.sock.end();
      await waitFor(() => c.closed() || connects() > 0, { timeoutMs: 5000, what: 'c closed, or its retry made' });
      const log = `${c.closed() ? 'closed' : 'open'}, ${connects()} connects to s1, ${d.frontends[1]!.sessions.size} sessions`;
      expect(log).toBe('closed, 0 connects to s1, 0 sessions');
    });

    it('is placed on the backend its frontend sends to now, at once, not retried on the old backend after the turn-around', async () => {
      const { d, c, refusing, connects } = await inTurnaround();
      await applyConfig(d, loadConfigText(turnRoutes(refusing, 'x'), 'reload.yaml'));
      await waitFor(() => c.reply().includes('HELLO s2') || connects() > 0, { timeoutMs: 5000, what: 'c served by s2, or its retry made on s1' });
      expect(`${c.reply().trim()}, ${connects()} connects to s1`).toBe('HELLO s2, 0 connects to s1');
    });
  });
});
