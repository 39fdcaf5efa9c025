import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { Model } from '../../src/model/model.js';
import { ListenerAuth, listenerEnd, PusherAuth } from '../../src/peers/peer-auth.js';
import { LineSplitter } from '../../src/peers/peer-codec.js';
import { PeerSync } from '../../src/peers/peer-sync.js';
import { freePort } from '../helpers/free-port.js';

const TOKEN = 'peers-token-0123456789abcdef';
const servers: Server[] = [];
const open: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of open.splice(0).reverse()) await f();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** Lines from `sock`, one at a time. */
function lineReader(sock: Socket): () => Promise<string | null> {
  const split = new LineSplitter();
  const queue: (string | null)[] = [];
  let wake: (() => void) | null = null;
  sock.on('data', (d: Buffer) => split.feed(d, (l) => (queue.push(l), wake?.(), true)));
  sock.on('close', () => (queue.push(null), wake?.()));
  return async () => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
}

/** A listener on 127.0.0.1:0 that runs ListenerAuth with `token`; resolves each peer's outcome. */
async function listener(token: string, host = '127.0.0.1'): Promise<{ port: number; outcomes: Promise<string>[] }> {
  const outcomes: Promise<string>[] = [];
  const server = createServer((sock) => {
    const next = lineReader(sock);
    const auth = new ListenerAuth(token, listenerEnd(sock.localAddress, sock.localPort));
    sock.write(auth.greeting);
    outcomes.push(
      next().then((line) => {
        const step = auth.check(line ?? '');
        if (step.reply !== null) sock.end(step.reply);
        else sock.end();
        return step.ok ? 'ok' : step.problem;
      }),
    );
  });
  servers.push(server);
  server.listen(0, host);
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, outcomes };
}

/** The pusher's side against `port` with `token`: 'ok' or its problem. */
async function push(port: number, token: string, tamper: (auth: string) => string = (a) => a): Promise<string> {
  const sock = connect({ host: '127.0.0.1', port });
  sock.on('error', () => {});
  const next = lineReader(sock);
  const auth = new PusherAuth(token);
  const hello = auth.answer((await next()) ?? '', listenerEnd(sock.remoteAddress, sock.remotePort));
  if (!hello.ok) return hello.problem;
  sock.write(tamper(hello.reply));
  const answer = auth.check((await next()) ?? '');
  sock.destroy();
  return answer.ok ? 'ok' : answer.problem;
}

describe('peers handshake', () => {
  it('lets both sides in with the same token, which never crosses the wire', async () => {
    const l = await listener(TOKEN);
    let wire = '';
    const tamper = (a: string): string => ((wire += a), a);
    expect(await push(l.port, TOKEN, tamper)).toBe('ok');
    expect(await l.outcomes[0]).toBe('ok');
    expect(wire).not.toContain(TOKEN);
  });

  it('refuses a pusher with another token, and the pusher hears why', async () => {
    const l = await listener(TOKEN);
    expect(await push(l.port, 'another-token-0123456789abcdef')).toBe('the remote refused our token: peers.token_file differs between the hosts');
    expect(await l.outcomes[0]).toBe('wrong token: its proof does not match peers.token_file');
  });

  it('lets an IPv4 pusher into a listener on "::", which sees it at an IPv4-mapped address', async () => {
    const l = await listener(TOKEN, '::');
    expect(await push(l.port, TOKEN)).toBe('ok');
    expect(await l.outcomes[0]).toBe('ok');
  });

  it('lets in a link-local pusher whose interface has another name than the listener\'s', () => {
    // Node gives a link-local socket address with the zone of the host reading it: over a veth
    // pair lgUa0 (pusher's host) / lgUb0 (listener's host), the listener's socket reports local
    // fe80::b%lgUb0 and the pusher's reports remote fe80::b%lgUa0. The zone names a host's own
    // interface, so the proofs must not name it.
    const l = new ListenerAuth(TOKEN, listenerEnd('fe80::b%lgUb0', 10000));
    const p = new PusherAuth(TOKEN);
    const auth = p.answer(l.greeting.trimEnd(), listenerEnd('fe80::b%lgUa0', 10000));
    expect(auth.ok).toBe(true);
    const ok = l.check((auth as { reply: string }).reply.trimEnd());
    expect(ok.ok ? 'ok' : ok.problem).toBe('ok');
    expect(p.check((ok as { reply: string }).reply.trimEnd())).toEqual({ ok: true, reply: '' });
  });

  it('refuses a proof made for another nonce (a replayed AUTH line)', async () => {
    const l = await listener(TOKEN);
    let first = '';
    expect(await push(l.port, TOKEN, (a) => (first = a))).toBe('ok');
    expect(await push(l.port, TOKEN, () => first)).toMatch(/refused our token/);
    expect(await l.outcomes[1]).toMatch(/^wrong token/);
  });

  it('a pusher refuses a listener that does not know the token', async () => {
    // A listener that answers OK with a proof of another token: the pusher must not push to it.
    const server = createServer((sock) => {
      const next = lineReader(sock);
      const auth = new ListenerAuth('impostor-token-0123456789abcdef', listenerEnd(sock.localAddress, sock.localPort));
      sock.write(auth.greeting);
      void next().then(() => sock.end(`OK ${'0'.repeat(64)}\n`));
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    expect(await push((server.address() as AddressInfo).port, TOKEN)).toBe("wrong token: the remote's proof does not match peers.token_file");
  });

  it("refuses an AUTH line relayed from this host's own pusher by whoever holds the remote's address", async () => {
    // Host A pushes to 127.0.0.1:pB. Someone without the token who answers there (B is down and its
    // address taken) greets A's pusher with the nonce A's listener gave them, and hands A's
    // listener the proof A's pusher made for it.
    const dir = mkdtempSync(join(tmpdir(), 'peer-auth-'));
    open.push(() => rmSync(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const [pA, pB] = [await freePort(), await freePort()];
    let victim!: (s: Socket) => void;
    const pusherSock = new Promise<Socket>((r) => (victim = r));
    const fakeB = createServer((s) => {
      s.on('error', () => {});
      open.push(() => void s.destroy());
      victim(s);
    });
    servers.push(fakeB);
    fakeB.listen(pB, '127.0.0.1');
    await once(fakeB, 'listening');
    const cfg = loadConfigText(`status: { listen: "127.0.0.1:0" }
peers: { listen: "127.0.0.1:${pA}", remotes: ["127.0.0.1:${pB}"], token_file: ${tokenFile} }
backends:
  - { name: licenses, stick: source, check: { type: none }, servers: [{ name: a, address: "10.0.0.11:27000" }] }
`);
    const model = new Model(cfg);
    const a = new PeerSync(() => model, pino({ level: 'silent' }));
    await a.start(cfg.peers!, TOKEN, {});
    open.push(() => a.close());
    const toPusher = await pusherSock;
    const fromPusher = lineReader(toPusher);
    const toListener = connect({ host: '127.0.0.1', port: pA });
    toListener.on('error', () => {});
    open.push(() => void toListener.destroy());
    const fromListener = lineReader(toListener);
    toPusher.write(`${await fromListener()}\n`);
    const relayed = await fromPusher();
    expect(relayed).toMatch(/^AUTH /);
    toListener.write(`${relayed}\n`);
    expect(await fromListener()).toBe('NO auth');
  });
});
