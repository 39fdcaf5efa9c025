import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/** DSLicSrv -admin output up to and including the getLicenseUsage -csv header. */
const DSLS_HEADER =
  '> connect lic1 4084\nConnected to lic1:4084\n> getLicenseUsage -csv\n' +
  'Editor,EditorId,Feature,Model,Commercial Type,Max Release Number,Max Release Date,Pricing Structure,Max Casual Duration,Expiration Date,Customer ID,Count,Inuse,Tokens,Casual Usage (mn),Host,User,Internal ID,Active Process,Client Code Version,Session ID,Granted Since,Last Used At,Granted At,Queue Position\n';

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

  /**
   * A daemon whose agent reports weight_from MD2 (min_percent 20) from an exec check that cats
   * `file`; at read_limit 2048 a busy server's long output (every checkout is a line) is cut.
   */
  async function weightFromDaemon(file: string, parse: 'lmstat' | 'dsls', readLimit = 2048): Promise<{ d: Daemon; reply: () => Promise<string> }> {
    const d = new Daemon(
      loadConfigText(`
agent: { listen: 127.0.0.1:0, backend: lic, weight_from: { feature: MD2, min_percent: 20 } }
backends:
  - name: lic
    check: { type: exec, argv: [cat, ${JSON.stringify(file)}], parse: ${parse}, read_limit: ${readLimit}, inter: 100ms, rise: 1, fall: 1 }
    servers:
      - { name: lic1, address: 127.0.0.1:27000, weight: 100 }
`),
      pino({ level: 'silent' }),
    );
    closers.push(() => d.close());
    await d.start();
    const port = d.agentResponder!.address().port;
    return { d, reply: async () => (await exchange(port, undefined, { end: true })).data };
  }

  function scratchFile(): string {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-weight-from-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    return join(dir, 'out.txt');
  }

  /** rename: a check running now must read the old output or the new one, never half of one. */
  function writeOutput(file: string, text: string): void {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }

  it('weight_from, end to end: an exec check parses DSLicSrv output and the reply follows its free tokens', async () => {
    const file = scratchFile();
    const usage = (inUse: number): string =>
      DSLS_HEADER + `Dassault Systemes,7C3C,MD2,ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,2026-03-31 23:59:00,2000,10,${inUse},0,0,,,,,,,,,,\n`;
    writeOutput(file, usage(3));
    const { d, reply } = await weightFromDaemon(file, 'dsls', 1024 * 1024);
    await waitFor(async () => (await reply()) === 'up ready 70% #MD2 7/10 free\n', { timeoutMs: 5000, what: '70% with 7 of 10 free' });
    writeOutput(file, usage(9));
    await waitFor(async () => (await reply()) === 'up ready 20% #MD2 1/10 free\n', { timeoutMs: 5000, what: 'min_percent 20 with 1 of 10 free' });
    writeOutput(file, usage(10));
    await waitFor(async () => (await reply()) === 'up drain 0% #no free MD2 tokens (10 of 10 in use)\n', { timeoutMs: 5000, what: 'drain at zero free tokens' });
    // /status shows what the weight is based on.
    expect(d.model.backend('lic')!.server('lic1')!.lastCheck!.license!.features).toEqual([{ name: 'MD2', issued: 10, in_use: 10 }]);
  });

  /** `lmutil lmstat -a` with MD2 (3 of 10 in use) listed after `users` checkouts of another feature. */
  const lmstat = (users: number): string =>
    [
      'License server status: 27000@lic1',
      '    License file(s) on lic1: /opt/flexlm/license.dat:',
      '',
      'lic1: license server UP (MASTER) v11.19.0',
      '',
      'Vendor daemon status (on lic1):',
      '',
      '  dassault: UP v11.19.0',
      '',
      'Feature usage info:',
      '',
      `Users of CATIA:  (Total of 500 licenses issued;  Total of ${users} licenses in use)`,
      ...Array.from({ length: users }, (_, i) => `    user${i} ws${i} /dev/pts/3 (v5) (lic1/27000 ${100 + i}), start Mon 3/2 9:15`),
      'Users of MD2:  (Total of 10 licenses issued;  Total of 3 licenses in use)',
      '',
    ].join('\n');

  /** Waits for a check of the cut output, which still judges the server UP by its head. */
  async function cutChecked(d: Daemon): Promise<void> {
    const server = d.model.backend('lic')!.server('lic1')!;
    await waitFor(() => server.lastCheck?.license?.truncated === true, { timeoutMs: 5000, what: 'a check of the cut output' });
    expect(server.lastCheck!.ok).toBe(true);
  }

  /** The agent's reply once the output read whole becomes the same output with MD2 past the cut. */
  async function replyAfterCut(parse: 'lmstat' | 'dsls', whole: string, cut: string): Promise<string> {
    const file = scratchFile();
    writeOutput(file, whole);
    const { d, reply } = await weightFromDaemon(file, parse);
    await waitFor(async () => (await reply()) === 'up ready 70% #MD2 7/10 free\n', { timeoutMs: 5000, what: '70% with 7 of 10 free' });
    writeOutput(file, cut);
    await cutChecked(d);
    return reply();
  }

  it('weight_from with an lmstat output cut before the feature keeps the last count read, with its age, not 100%', async () => {
    // Peak use: 100 checkouts of CATIA push MD2's line past read_limit.
    expect(await replyAfterCut('lmstat', lmstat(2), lmstat(100))).toMatch(/^up ready 70% #MD2 7\/10 free \d+s ago; output since cut before MD2\n$/);
  });

  it('weight_from with an lmstat output cut before the feature after the server was DOWN keeps the count of the last output read while it was up, not 100%', async () => {
    const file = scratchFile();
    writeOutput(file, lmstat(2));
    const { d, reply } = await weightFromDaemon(file, 'lmstat');
    await waitFor(async () => (await reply()) === 'up ready 70% #MD2 7/10 free\n', { timeoutMs: 5000, what: '70% with 7 of 10 free' });
    // lmgrd restarts: lmstat, read whole, lists no feature while it is down.
    writeOutput(file, 'License server status: 27000@lic1\n    License file(s) on lic1: /opt/flexlm/license.dat:\n\nlic1: Cannot connect to license server system. (-15,570:111 "Connection refused")\n');
    const server = d.model.backend('lic')!.server('lic1')!;
    await waitFor(() => !server.up, { timeoutMs: 5000, what: 'lic1 DOWN by its check' });
    // Back, its users check out again at once: the output is cut before MD2.
    writeOutput(file, lmstat(100));
    await cutChecked(d);
    expect(await reply()).toMatch(/^up ready 70% #MD2 7\/10 free \d+s ago; output since cut before MD2\n$/);
  });

  it('weight_from with an lmstat output cut before the feature from the first check replies min_percent, not 100%', async () => {
    const file = scratchFile();
    writeOutput(file, lmstat(100));
    const { d, reply } = await weightFromDaemon(file, 'lmstat');
    await cutChecked(d);
    expect(await reply()).toBe('up ready 20% #MD2 not counted yet: output cut before it\n');
  });

  it('weight_from with a DSLS output cut before the feature keeps the last count read, with its age, not 100%', async () => {
    const row = (feature: string, count: number, inUse: number, user = ''): string =>
      `Dassault Systemes,7C3C,${feature},ConcurrentUser,STD,424,2025-12-31 23:59:00,YLC,0,2026-03-31 23:59:00,2000,${count},${inUse},0,0,ws,${user},,,,,,,,\n`;
    // One row per session: a busy CATIA pushes MD2's rows past read_limit.
    const usage = (sessions: number): string => DSLS_HEADER + Array.from({ length: sessions }, (_, i) => row('CATIA', 500, sessions, `user${i}`)).join('') + row('MD2', 10, 3);
    expect(await replyAfterCut('dsls', usage(1), usage(100))).toMatch(/^up ready 70% #MD2 7\/10 free \d+s ago; output since cut before MD2\n$/);
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
