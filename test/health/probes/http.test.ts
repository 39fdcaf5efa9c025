import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { HttpProbe, type HttpCheck } from '../../../src/health/probes/http.js';
import type { ProbeOutcome } from '../../../src/health/probes/probe.js';
import { CheckScheduler } from '../../../src/health/scheduler.js';
import { Backend } from '../../../src/model/backend.js';
import { ModelEvents } from '../../../src/model/events.js';
import { endingIn, trickle, withCpuMs } from '../../helpers/trickle.js';
import { waitFor } from '../../helpers/wait-for.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  port: number;
  requests: string[];
  /** Every TCP connection the server accepted, open or closed. */
  sockets: Socket[];
  openSockets(): number;
}

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

async function serve(handler: Handler, host = '127.0.0.1'): Promise<TestServer> {
  const requests: string[] = [];
  const sockets: Socket[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    handler(req, res);
  });
  server.on('connection', (s: Socket) => sockets.push(s));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { port: (server.address() as AddressInfo).port, requests, sockets, openSockets: () => sockets.filter((s) => !s.destroyed).length };
}

function probe(check: Partial<HttpCheck> = {}): HttpProbe {
  return new HttpProbe({ path: '/', expect_status: [200], expect: null, read_limit: 16 * 1024, ...check });
}

/** Runs a check the way the scheduler does: aborted at the check timeout. */
function check(p: HttpProbe, port: number, timeoutMs = 5000): Promise<ProbeOutcome> {
  return p.run({ host: '127.0.0.1', port }, AbortSignal.timeout(timeoutMs));
}

describe('http probe', () => {
  it('passes on 200, asking for the configured path on its own connection that it then closes', async () => {
    const srv = await serve((_q, res) => res.end('ok'));
    const p = probe({ path: '/rlm/status?v=1' });
    expect(await check(p, srv.port)).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(await check(p, srv.port)).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(srv.requests).toEqual(['GET /rlm/status?v=1', 'GET /rlm/status?v=1']);
    // No keep-alive: two checks, two connections, and none left open afterwards.
    expect(srv.sockets).toHaveLength(2);
    await waitFor(() => srv.openSockets() === 0, { timeoutMs: 5000, what: 'the check connections to be closed' });
  });

  it('fails a 503 with reason "HTTP 503"', async () => {
    const srv = await serve((_q, res) => {
      res.statusCode = 503;
      res.end('license server starting');
    });
    expect(await check(probe(), srv.port)).toEqual({ ok: false, reason: 'HTTP 503' });
  });

  it('accepts any status in expect_status', async () => {
    const srv = await serve((_q, res) => {
      res.statusCode = 204;
      res.end();
    });
    expect(await check(probe(), srv.port)).toEqual({ ok: false, reason: 'HTTP 204' });
    expect(await check(probe({ expect_status: [200, 204] }), srv.port)).toEqual({ ok: true, reason: 'HTTP 204' });
  });

  it('does not follow redirects', async () => {
    const srv = await serve((req, res) => {
      if (req.url === '/') {
        res.writeHead(302, { location: '/login' });
        res.end();
      } else res.end('login page');
    });
    expect(await check(probe(), srv.port)).toEqual({ ok: false, reason: 'HTTP 302' });
    expect(srv.requests).toEqual(['GET /']);
  });

  it('matches the body against a regex, and fails with the first line when it does not match', async () => {
    const srv = await serve((_q, res) => res.end('<html><title>RLM License Administration</title>\nISV reprise: running\n</html>'));
    expect(await check(probe({ expect: { regex: /ISV \w+: running/ } }), srv.port)).toEqual({ ok: true, reason: 'HTTP 200, body matched /ISV \\w+: running/' });
    expect(await check(probe({ expect: { literal: 'ISV foundry: running' } }), srv.port)).toEqual({
      ok: false,
      reason: 'HTTP 200, body did not match "ISV foundry: running": "<html><title>RLM License Administration</title>"',
    });
  });

  it('stops reading an endless body at read_limit and fails without waiting for its end', async () => {
    let written = 0;
    const srv = await serve((_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(8192, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    const out = await check(probe({ expect: { regex: /running/ }, read_limit: 1024 }), srv.port, 10_000);
    expect(out).toEqual({ ok: false, reason: 'HTTP 200, no match for /running/ in the first 1024 bytes' });
    await waitFor(() => srv.openSockets() === 0, { timeoutMs: 5000, what: 'the probe to close the endless response' });
    // Bounded: the server was stopped by the close, not by running out of body.
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it('reads a body trickled 16 bytes a read up to a 1 MiB read_limit in little CPU, and matches it at its last byte', async () => {
    const limit = 1024 * 1024;
    const srv = await serve((_q, res) => {
      res.writeHead(200);
      trickle(res, endingIn(limit, 'ISV reprise: running'), 32 * 1024);
    });
    const p = probe({ expect: { literal: 'ISV reprise: running' }, read_limit: limit });
    const { result, cpuMs } = await withCpuMs(() => check(p, srv.port, 30_000));
    expect(result).toEqual({ ok: true, reason: 'HTTP 200, body matched "ISV reprise: running"' });
    // With the server in this process: 250-300 ms; rebuilding, decoding and searching the whole
    // body on each read took 2.3 s here.
    expect(cpuMs).toBeLessThan(800);
  });

  it('times out on a server that never answers, settles promptly and closes the connection', async () => {
    const srv = await serve(() => {
      // never respond
    });
    const started = performance.now();
    const out = await check(probe(), srv.port, 300);
    // A server that never answers would otherwise hold the check for undici's 300 s header timeout.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(out).toEqual({ ok: false, reason: 'timeout waiting for HTTP response' });
    // undici 7 re-queues an aborted in-flight request and opens a second, unused connection that it
    // closes at once (nodejs/undici#5845; from 8.10.1 that socket lingers). Either way nothing may stay open.
    await waitFor(() => srv.sockets.length >= 1 && srv.openSockets() === 0, { timeoutMs: 3000, what: 'every connection of the timed-out check to be closed' });
  });

  it('times out while the body trickles in without a match', async () => {
    const srv = await serve((_q, res) => {
      res.writeHead(200);
      res.write('RLM status page, still loading');
    });
    const out = await check(probe({ expect: { literal: 'running' } }), srv.port, 300);
    expect(out).toEqual({ ok: false, reason: 'HTTP 200, timeout reading body (30 bytes, no match)' });
  });

  it('reports a refused connection', async () => {
    const srv = await serve((_q, res) => res.end());
    const port = srv.port;
    const s = servers.pop()!;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    expect(await check(probe(), port)).toEqual({ ok: false, reason: 'connection refused' });
  });

  it('reports a peer that closes without an HTTP response', async () => {
    const srv = await serve((req) => req.socket.destroy());
    const out = await check(probe(), srv.port);
    expect(out.ok).toBe(false);
    expect(out.reason).toMatch(/^connection (closed before a complete response|reset)/);
  });
});

describe('http probe Host header', () => {
  // A license web portal behind name-based virtual hosting answers 404 to any other Host, as
  // HAProxy's `http-check send hdr Host` exists for.
  const portal = (name: string): Handler => (req, res) => {
    res.statusCode = req.headers.host === name ? 200 : 404;
    res.end(`Host: ${req.headers.host}`);
  };

  it('under the scheduler, sends the server name as written in the config, not the address it resolved to', async () => {
    let port = 0;
    const srv = await serve((req, res) => portal(`portal.licenses.test:${port}`)(req, res));
    port = srv.port;
    const cfg = loadConfigText(
      [
        'status: { listen: "127.0.0.1:0" }',
        'backends:',
        '  - name: b',
        '    check: { type: http, path: /, inter: 100ms, fastinter: 50ms, downinter: 100ms, rise: 1, fall: 1, timeout: 2s }',
        '    servers:',
        `      - { name: portal, address: "portal.licenses.test:${port}" }`,
        '',
      ].join('\n'),
      'vhost.yaml',
    );
    const backend = new Backend(cfg.backends[0]!, new ModelEvents());
    const server = backend.servers[0]!;
    // What the address resolver does once the name resolves.
    server.addressFound('127.0.0.1', 'resolved');
    const scheduler = new CheckScheduler(backend, backend.cfg.check, new HttpProbe(backend.cfg.check), new ModelEvents());
    try {
      scheduler.start();
      await waitFor(() => server.lastCheck, { timeoutMs: 5000, what: 'a first check' });
      expect(server.lastCheck).toMatchObject({ ok: true, reason: 'HTTP 200' });
      expect(server.stateText).toBe('UP');
    } finally {
      scheduler.stop();
    }
  });

  it('sends the name given with the port, an IPv6 literal in brackets', async () => {
    const seen: string[] = [];
    const srv = await serve((req, res) => {
      seen.push(req.headers.host ?? '');
      res.end();
    });
    const p = probe();
    expect(await p.run({ host: '127.0.0.1', port: srv.port, name: '::1' }, AbortSignal.timeout(5000))).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(await p.run({ host: '127.0.0.1', port: srv.port, name: 'lic1.example.edu' }, AbortSignal.timeout(5000))).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(seen).toEqual([`[::1]:${srv.port}`, `lic1.example.edu:${srv.port}`]);
  });

  it('checks a server given with a zone ([fe80::11%eth0]:5054), which no URL can carry, and leaves the zone out of Host', async () => {
    const seen: string[] = [];
    const srv = await serve((req, res) => {
      seen.push(req.headers.host ?? '');
      res.end();
    }, '::1');
    // ::1 on lo stands for a link-local address: the same form, reachable without configuring one.
    expect(await probe().run({ host: '::1%lo', port: srv.port }, AbortSignal.timeout(5000))).toEqual({ ok: true, reason: 'HTTP 200' });
    expect(seen).toEqual([`[::1]:${srv.port}`]);
  });
});
