import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startProxy, startTcpServer, stopAll } from '../helpers/proxy-harness.js';
import { requireTools } from '../helpers/require-tools.js';
import { waitFor } from '../helpers/wait-for.js';

afterEach(() => stopAll());
beforeEach((ctx) => requireTools(['ss'], ctx));

/** The kernel's timer column for the established socket whose local port is `local` and peer port `peer` (`ss -o`). */
function timerOf(local: number, peer: number): string | null {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${local} and dport = :${peer} )`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').find((l) => l.trim() !== '');
  if (!line) return null;
  return /timer:\(([^)]*)\)/.exec(line)?.[1] ?? 'none';
}

describe('TCP keepalive on both sides of a session (design: "TCP keepalive is on for both sides")', () => {
  it('is armed on the client and the server socket of a session that lives past a second', async () => {
    const upstream: Socket[] = [];
    const up = await startTcpServer((s) => upstream.push(s));
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s, address: "127.0.0.1:${up.port}" }]
`);
    const client = connect({ host: '127.0.0.1', port: proxy.port });
    await new Promise<void>((r) => client.once('connect', () => r()));
    client.write('hello\n');
    await waitFor(() => upstream.length === 1, { timeoutMs: 3000, what: 'the session reaches the server' });
    const proxyToServer = upstream[0]!.remotePort!;
    // The proxy's accepted socket: local port = frontend port, peer = our client's port.
    const clientSide = await waitFor(() => (timerOf(proxy.port, client.localPort!)?.startsWith('keepalive') ? timerOf(proxy.port, client.localPort!) : null), {
      timeoutMs: 5000,
      what: 'keepalive timer on the proxy socket facing the client',
    });
    const serverSide = await waitFor(() => (timerOf(proxyToServer, up.port)?.startsWith('keepalive') ? timerOf(proxyToServer, up.port) : null), {
      timeoutMs: 5000,
      what: 'keepalive timer on the proxy socket facing the server',
    });
    // 60 s idle before the first probe (KEEPALIVE_DELAY_MS): "keepalive,59sec,0" or so.
    for (const t of [clientSide, serverSide]) expect(Number(/keepalive,(\d+)(?:min|sec)/.exec(t)?.[1] ?? NaN)).toBeGreaterThan(0);
    client.destroy();
  });
});
