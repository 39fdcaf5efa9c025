/**
 * A real `licgate run` sidecar whose backend check is `type: http` against an RLM-style web port
 * (a node:http server in the test): the check's path and body regex decide UP and DOWN.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

let web: Server | null = null;

afterEach(async () => {
  await stopAll();
  if (web) {
    web.closeAllConnections();
    await new Promise<void>((resolve) => web!.close(() => resolve()));
    web = null;
  }
});

describe('sidecar with an http check', () => {
  it('follows the web status page: UP while the ISV is running, DOWN on 503 or a body without a match', async () => {
    let status = 200;
    let body = '<html><h1>RLM</h1>\nISV reprise: running\n</html>';
    const paths = new Set<string>();
    web = createServer((req, res) => {
      paths.add(req.url ?? '');
      res.statusCode = status;
      res.end(body);
    });
    await new Promise<void>((resolve) => web!.listen(0, '127.0.0.1', resolve));
    const port = (web.address() as AddressInfo).port;

    const sidecar = await startProxy(`status:
  listen: 127.0.0.1:0
backends:
  - name: rlm
    check: { type: http, path: /goform/rlmstat_lic, expect: "/ISV \\\\w+: running/", inter: 200ms, rise: 1, fall: 1, timeout: 2s }
    servers:
      - { name: lic1, address: "127.0.0.1:${port}" }
`);
    const until = (ok: boolean, what: string) =>
      waitFor(async () => {
        const s = await sidecar.server('rlm', 'lic1');
        return s.last_check?.ok === ok && s.state === (ok ? 'UP' : 'DOWN') && s;
      }, { timeoutMs: 10_000, what });

    const up = await until(true, 'lic1 UP while the ISV runs');
    expect(up.last_check!.reason).toBe('HTTP 200, body matched /ISV \\w+: running/');
    expect([...paths]).toEqual(['/goform/rlmstat_lic']);
    expect((await sidecar.get('/health')).status).toBe(200);

    status = 503;
    const down = await until(false, 'lic1 DOWN on 503');
    expect(down.last_check!.reason).toBe('HTTP 503');
    expect((await sidecar.get('/health')).status).toBe(503);

    status = 200;
    await until(true, 'lic1 UP again');
    body = '<html><h1>RLM</h1>\nISV reprise: down\n</html>';
    const noMatch = await until(false, 'lic1 DOWN when the page says the ISV is down');
    expect(noMatch.last_check!.reason).toBe('HTTP 200, body did not match /ISV \\w+: running/: "<html><h1>RLM</h1>"');
  });
});
