import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { AgentResponder } from '../../src/serve/agent-responder.js';
import { MAX_CONTROL_PEERS } from '../../src/io/listen.js';
import { peerFlood } from '../helpers/peer-flood.js';
import { waitFor } from '../helpers/wait-for.js';

const closers: (() => Promise<void>)[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function responder(reply: () => string, lingerMs?: number): Promise<{ r: AgentResponder; port: number }> {
  const r = new AgentResponder({ host: '127.0.0.1', port: 0 }, reply, lingerMs);
  closers.push(() => r.close());
  await r.listen();
  return { r, port: r.address().port };
}

interface Exchange {
  data: string;
  /** How the connection ended for us: 'end' (FIN) or an error code such as ECONNRESET. */
  ending: string;
}

/**
 * Connects, optionally writes `send` after the connect, and collects everything until the connection
 * is closed. `end` half-closes our side after sending; `holdOpen` keeps our side open even after the
 * responder's FIN (a peer that never hangs up), so only the responder can end the connection.
 */
function exchange(port: number, send?: string | Buffer, opts: { end?: boolean; holdOpen?: boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: opts.holdOpen ?? false }, () => {
      if (send !== undefined) sock.write(send);
      if (opts.end) sock.end();
    });
    sockets.add(sock);
    let data = '';
    let ending = '';
    sock.setEncoding('latin1').on('data', (d: string) => (data += d));
    sock.on('end', () => {
      ending ||= 'end';
      if (!opts.holdOpen) sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => (ending ||= e.code ?? e.message));
    sock.on('close', () => resolve({ data, ending }));
  });
}

describe('AgentResponder', () => {
  it('answers on connect, before and without any agent-send line, then half-closes', async () => {
    const { port } = await responder(() => 'up ready 100%\n');
    // The client sends nothing and does not close: the reply and the FIN must still come.
    const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sockets.add(sock);
    let data = '';
    let ended = false;
    sock.setEncoding('latin1').on('data', (d: string) => (data += d));
    sock.on('end', () => (ended = true));
    await waitFor(() => ended, { timeoutMs: 3000, what: 'the responder\'s FIN' });
    expect(data).toBe('up ready 100%\n');
  });

  it('reads and drops what HAProxy sends (agent-send), so the close is a FIN and never a RST', async () => {
    const { port } = await responder(() => 'up drain 0%\n');
    const small = await exchange(port, 'licenses/lic1\n', { end: true });
    expect(small).toEqual({ data: 'up drain 0%\n', ending: 'end' });
    // A large write arriving after the reply would make a plain close() answer with a RST.
    const big = await exchange(port, Buffer.alloc(256 * 1024, 0x61), { end: true });
    expect(big).toEqual({ data: 'up drain 0%\n', ending: 'end' });
  });

  it('computes the reply per connection', async () => {
    let n = 0;
    const { port } = await responder(() => `up ready ${++n * 10}%\n`);
    expect((await exchange(port, undefined, { end: true })).data).toBe('up ready 10%\n');
    expect((await exchange(port, undefined, { end: true })).data).toBe('up ready 20%\n');
  });

  it('cuts off a peer that keeps its side open after the reply', async () => {
    const { r, port } = await responder(() => 'up ready 100%\n', 150);
    const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sockets.add(sock);
    let data = '';
    sock.setEncoding('latin1').on('data', (d: string) => (data += d));
    sock.on('connect', () => sock.write('x'));
    await waitFor(() => r.connections === 1 && data === 'up ready 100%\n', { timeoutMs: 3000, what: 'reply sent, peer still connected' });
    const since = performance.now();
    await waitFor(() => r.connections === 0, { timeoutMs: 3000, intervalMs: 10, what: 'the responder to drop the silent peer' });
    expect(performance.now() - since).toBeGreaterThanOrEqual(100);
  });

  it('one host holding connections open cannot take every slot: HAProxy from another address still gets its reply', async () => {
    const { r, port } = await responder(() => 'up ready 100%\n');
    const flood = await peerFlood(port, MAX_CONTROL_PEERS);
    try {
      await waitFor(() => r.connections + flood.closed() === MAX_CONTROL_PEERS, { timeoutMs: 3000, what: 'every flooding connection accepted or cut off' });
      expect(await exchange(port)).toEqual({ data: 'up ready 100%\n', ending: 'end' });
    } finally {
      flood.destroy();
    }
  });

  it('close() ends lingering peers and the listener', async () => {
    const { r, port } = await responder(() => 'up ready 100%\n', 60_000);
    const sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sockets.add(sock);
    await waitFor(() => r.connections === 1, { timeoutMs: 3000, what: 'a connection to the responder' });
    await r.close();
    expect(r.connections).toBe(0);
    expect((await exchange(port)).ending).toBe('ECONNREFUSED');
  });
});

describe('agent responder in the daemon (agent: section)', () => {
  async function daemon(agentSection: string): Promise<Daemon> {
    const d = new Daemon(
      loadConfigText(`
${agentSection}
backends:
  - name: lic
    check: { type: none }
    servers:
      - { name: a, address: 127.0.0.1:1, weight: 100 }
      - { name: b, address: 127.0.0.1:2, weight: 100 }
`),
      pino({ level: 'silent' }),
    );
    closers.push(() => d.close());
    await d.start();
    return d;
  }

  it('reports the whole backend, or one server with agent.server', async () => {
    const whole = await daemon('agent: { listen: 127.0.0.1:0, backend: lic }');
    const [a] = whole.model.backend('lic')!.servers;
    a!.setAdmin('maint', 'test');
    expect((await exchange(whole.agentResponder!.address().port, undefined, { end: true })).data).toBe('up ready 50%\n');
    const one = await daemon('agent: { listen: 127.0.0.1:0, backend: lic, server: b }');
    one.model.backend('lic')!.server('a')!.setAdmin('maint', 'test');
    expect((await exchange(one.agentResponder!.address().port, undefined, { end: true })).data).toBe('up ready 100%\n');
  });

  it('weight_from, end to end: an exec check parses DSLicSrv output and the reply follows its free tokens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-weight-from-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'usage.txt');
    const usage = (inUse: number): string =>
      '> connect lic1 4084\nConnected to lic1:4084\n> getLicenseUsage -csv\n' +
      'Editor,EditorId,Feature,Model,Commercial Type,Max Release Number,Max Release Date,Pricing Structure,Max Casual Duration,Expiration Date,Customer ID,Count,Inuse,Tokens,Casual Usage (mn),Host,User,Internal ID,Active Process,Client Code Version,Session ID,Granted Since,Last Used At,Granted At,Queue Position\n' +
      `Dassault Systemes,7C3C,MD2,ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,2026-03-31 23:59:00,2000,10,${inUse},0,0,,,,,,,,,,\n`;
    writeFileSync(file, usage(3));
    const d = new Daemon(
      loadConfigText(`
agent: { listen: 127.0.0.1:0, backend: lic, weight_from: { feature: MD2, min_percent: 20 } }
backends:
  - name: lic
    check: { type: exec, argv: [cat, ${JSON.stringify(file)}], parse: dsls, inter: 100ms, rise: 1, fall: 1 }
    servers:
      - { name: dsls, address: 127.0.0.1:4085, weight: 100 }
`),
      pino({ level: 'silent' }),
    );
    closers.push(() => d.close());
    await d.start();
    const port = d.agentResponder!.address().port;
    const reply = async (): Promise<string> => (await exchange(port, undefined, { end: true })).data;
    await waitFor(async () => (await reply()) === 'up ready 70% #MD2 7/10 free\n', { timeoutMs: 5000, what: '70% with 7 of 10 free' });
    writeFileSync(file, usage(9));
    await waitFor(async () => (await reply()) === 'up ready 20% #MD2 1/10 free\n', { timeoutMs: 5000, what: 'min_percent 20 with 1 of 10 free' });
    writeFileSync(file, usage(10));
    await waitFor(async () => (await reply()) === 'up drain 0% #no free MD2 tokens (10 of 10 in use)\n', { timeoutMs: 5000, what: 'drain at zero free tokens' });
    // /status shows what the weight is based on.
    expect(d.model.backend('lic')!.server('dsls')!.lastCheck!.license!.features).toEqual([{ name: 'MD2', issued: 10, in_use: 10 }]);
  });

  it('weight_from needs a check that reads license usage (config error otherwise)', () => {
    expect(() => loadConfigText('agent: { listen: 127.0.0.1:0, backend: lic, weight_from: { feature: MD2 } }\nbackends:\n  - name: lic\n    check: { type: status }\n    servers: [ { name: a, address: 127.0.0.1:1 } ]\n', 'x.yaml')).toThrow(
      'x.yaml:1:58: agent.weight_from: backend "lic" has check type status, which reads no license usage; weight_from needs a check with "parse: lmstat" or "parse: dsls"',
    );
  });

  it('rejects a bad weight_from in the config with a positioned error', () => {
    expect(() => loadConfigText('agent: { listen: 127.0.0.1:0, backend: lic, weight_from: { min_percent: 0 } }\nbackends:\n  - name: lic\n    servers: [ { name: a, address: 127.0.0.1:1 } ]\n', 'x.yaml')).toThrow(
      /x\.yaml:1:\d+: agent\.weight_from: missing required key "feature"[\s\S]*x\.yaml:1:\d+: agent\.weight_from\.min_percent: expected a whole number 1-100, found 0/,
    );
  });
});
