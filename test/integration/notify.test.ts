import { writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const servers: Server[] = [];
const hanging: ServerResponse[] = [];

afterEach(async () => {
  await stopAll();
  for (const r of hanging.splice(0)) r.destroy();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function receiver(hang = false): Promise<{ url: string; got: Record<string, unknown>[]; requests: () => number }> {
  const got: Record<string, unknown>[] = [];
  let requests = 0;
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (d: string) => (text += d));
    req.on('end', () => {
      requests++;
      if (hang) {
        hanging.push(res);
        return;
      }
      got.push(JSON.parse(text) as Record<string, unknown>);
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/licgate`, got, requests: () => requests };
}

describe('webhook notifications from a real licgate run', () => {
  it('tells a webhook about a server going down, the failover and a reload; a hanging webhook slows nothing', async () => {
    const ok = await receiver();
    const stuck = await receiver(true);
    const primary = await startSimulator('primary');
    const backup = await startSimulator('backup');
    const yaml = `notify:
  webhooks:
    - url: ${ok.url}
      headers: { x-team: licenses }
    - url: ${stuck.url}
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 200ms, rise: 2, fall: 2, timeout: 500ms }
    servers:
      - { name: primary, address: 127.0.0.1:${primary.port} }
      - { name: backup, address: 127.0.0.1:${backup.port}, backup: true }
`;
    const p = await startProxy(yaml);
    expect(await helloOnce(p.port)).toBe('primary');

    await primary.kill('SIGKILL');
    const down = await waitFor(() => ok.got.find((n) => n.event === 'server-state' && n.server === 'primary'), { timeoutMs: 10_000, what: 'server-state notification for primary' });
    expect(down).toMatchObject({ backend: 'licenses', server: 'primary', to: 'DOWN' });
    expect(typeof down.reason).toBe('string');
    expect(typeof down.time).toBe('string');
    const failover = await waitFor(() => ok.got.find((n) => n.event === 'tier-change'), { timeoutMs: 10_000, what: 'tier-change notification' });
    expect(failover).toMatchObject({ backend: 'licenses', from: 'active', to: 'backup' });
    // The hanging webhook holds its first delivery; the data plane does not notice.
    await waitFor(() => stuck.requests() >= 1, { timeoutMs: 5000, what: 'the hanging webhook to be called' });
    const t0 = performance.now();
    expect(await helloOnce(p.port)).toBe('backup');
    expect(performance.now() - t0).toBeLessThan(1000);

    await backup.kill('SIGKILL');
    await waitFor(() => ok.got.find((n) => n.event === 'backend-down'), { timeoutMs: 10_000, what: 'backend-down notification' });

    // A reload is announced too, with what it changed.
    writeFileSync(p.configFile, `admin: { listen: "127.0.0.1:0" }\nlog: { level: info, format: json }\n${yaml.replace('{ name: backup, address: 127.0.0.1:', '{ name: backup, weight: 7, address: 127.0.0.1:')}`);
    p.child.kill('SIGHUP');
    const reload = await waitFor(() => ok.got.find((n) => n.event === 'reload-ok'), { timeoutMs: 10_000, what: 'reload-ok notification' });
    expect(reload.reason).toContain('server backup weight 1 -> 7');
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_notifications_delivered_total')).toBeGreaterThanOrEqual(4);
    expect(sample(metrics, 'licgate_notification_queue_length')).toBeGreaterThanOrEqual(1);
  });
});
