import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/proxy-harness.js';

const servers: (HttpServer | TcpServer)[] = [];
const sockets = new Set<Socket>();

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

async function listen<T extends HttpServer | TcpServer>(s: T): Promise<number> {
  servers.push(s);
  s.on('connection', (c: Socket) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as AddressInfo).port;
}

function http(status: number, body: string): Promise<number> {
  return listen(createHttpServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body)));
}

/** A port nothing listens on: bind, note, close. */
async function closedPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('licgate check (keepalived vrrp_script)', () => {
  it('exits 0 on HTTP 200 and prints the status and body', async () => {
    const port = await http(200, '{"ok":true}');
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '2000']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('200 {"ok":true}\n');
  });

  it('exits 1 on HTTP 503', async () => {
    const port = await http(503, '{"ok":false,"reason":"no server up in backend licenses"}');
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '2000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('503 {"ok":false,"reason":"no server up in backend licenses"}\n');
  });

  it('exits 1 on any status but 200, even another 2xx', async () => {
    const port = await http(204, '');
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '2000']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('204 \n');
  });

  it('exits 1 against a closed port, naming the cause', async () => {
    const port = await closedPort();
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '2000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`licgate check: http://127.0.0.1:${port}/health: connection refused\n`);
  });

  it('exits 1 against a port that does not speak HTTP (a license server\'s), saying what it answered', async () => {
    const port = await listen(createTcpServer((c) => c.once('data', () => c.end('ERROR unknown command\n'))));
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '2000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`licgate check: http://127.0.0.1:${port}/health: answered, but not in HTTP (found "ERROR unknown command")\n`);
  });

  it('exits 1 within --timeout when the server accepts but never answers', async () => {
    const port = await listen(createTcpServer(() => {
      // Accept and say nothing, like a wedged daemon.
    }));
    const r = await runCli(['check', '--url', `http://127.0.0.1:${port}/health`, '--timeout', '400'], 15_000);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`licgate check: http://127.0.0.1:${port}/health: no answer within 400ms\n`);
    // It waited for the timeout, and gave up on it rather than on the harness's 15 s kill.
    expect(r.ms).toBeGreaterThanOrEqual(400);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('--quiet prints nothing; a bad --timeout is a usage error (exit 2)', async () => {
    const port = await http(503, 'down');
    const q = await runCli(['check', '-q', '--url', `http://127.0.0.1:${port}/`]);
    expect([q.code, q.stdout, q.stderr]).toEqual([1, '', '']);
    const u = await runCli(['check', '--timeout', 'soon']);
    expect(u.code).toBe(2);
    expect(u.stderr).toBe('licgate check: --timeout: expected milliseconds, found "soon"\nusage: licgate check [--url http://127.0.0.1:8404/health] [--timeout 1000] [--quiet]\n');
  });

  it('a --url without a path checks its /health, not the stats page at "/", which answers 200 whatever the health', async () => {
    const paths: string[] = [];
    const port = await listen(createHttpServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(req.url === '/health' ? 503 : 200, { 'content-type': 'application/json' }).end('{}');
    }));
    const bare = await runCli(['check', '--url', `http://127.0.0.1:${port}`]);
    expect(bare.code).toBe(1);
    // Written with its "/", the URL is taken as it is.
    const root = await runCli(['check', '--url', `http://127.0.0.1:${port}/`]);
    expect(root.code).toBe(0);
    expect(paths).toEqual(['/health', '/']);
  });

  it('a malformed --url (a port out of range, no host) is a usage error (exit 2), not a crash', async () => {
    for (const url of ['http://127.0.0.1:84040/health', 'http://', 'http://[::1/health']) {
      const r = await runCli(['check', '--url', url]);
      expect(r.stderr, url).toBe(`licgate check: --url: expected an http:// URL, found "${url}"\nusage: licgate check [--url http://127.0.0.1:8404/health] [--timeout 1000] [--quiet]\n`);
      expect(r.code, url).toBe(2);
    }
  });
});
