import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenerAuth, PusherAuth } from '../../src/peers/peer-auth.js';
import { LineSplitter } from '../../src/peers/peer-codec.js';

const TOKEN = 'peers-token-0123456789abcdef';
const servers: Server[] = [];
afterEach(async () => {
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
async function listener(token: string): Promise<{ port: number; outcomes: Promise<string>[] }> {
  const outcomes: Promise<string>[] = [];
  const server = createServer((sock) => {
    const next = lineReader(sock);
    const auth = new ListenerAuth(token);
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
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, outcomes };
}

/** The pusher's side against `port` with `token`: 'ok' or its problem. */
async function push(port: number, token: string, tamper: (auth: string) => string = (a) => a): Promise<string> {
  const sock = connect({ host: '127.0.0.1', port });
  sock.on('error', () => {});
  const next = lineReader(sock);
  const auth = new PusherAuth(token);
  const hello = auth.answer((await next()) ?? '');
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
      const auth = new ListenerAuth('impostor-token-0123456789abcdef');
      sock.write(auth.greeting);
      void next().then(() => sock.end(`OK ${'0'.repeat(64)}\n`));
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    expect(await push((server.address() as AddressInfo).port, TOKEN)).toBe("wrong token: the remote's proof does not match peers.token_file");
  });
});
