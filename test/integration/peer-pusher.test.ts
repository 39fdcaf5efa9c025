import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerPusher } from '../../src/peers/peer-pusher.js';
import { waitFor } from '../helpers/wait-for.js';

const open: (() => void)[] = [];
afterEach(() => {
  for (const f of open.splice(0).reverse()) f();
});

/**
 * A port that drops SYNs, as a firewall or a host gone does: a stopped process's listener with a
 * backlog of 1, its accept queue filled. Only loopback, no iptables rule to leave behind.
 */
async function blackHole(): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, ['-e', "const s = require('net').createServer(); s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => console.log(s.address().port));"], { stdio: ['ignore', 'pipe', 'inherit'] });
  open.push(() => {
    child.kill('SIGKILL');
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  child.kill('SIGSTOP');
  // Fill the queue: connects until one gets no answer within 200 ms.
  for (;;) {
    const s: Socket = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    open.push(() => void s.destroy());
    const answered = await Promise.race([once(s, 'connect').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
    if (!answered) return port;
  }
}

describe('PeerPusher against a remote that drops its packets', () => {
  it('gives the connect up after 5 s and says it got no answer, not that the port spoke no peers protocol', async () => {
    const port = await blackHole();
    const seen: string[] = [];
    const p = new PeerPusher({ host: '127.0.0.1', port }, { token: () => 'peer-pusher-token-0123456789abcdef', tables: () => [], clients: () => [], line: () => '', marks: () => ({ clients: [], servers: [], cleared: false }), markLine: () => '', changed: (_, to, why) => void seen.push(`${to}: ${why}`) }, undefined);
    open.push(() => p.stop());
    p.start();
    await waitFor(() => seen.length > 0, { timeoutMs: 10_000, what: 'the pusher to give up' });
    expect(seen[0]).toBe('down: no answer to the connect within 5 s (a firewall dropping it, or the host down)');
  });
});
