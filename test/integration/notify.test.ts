import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { helloOnce } from '../helpers/license-client.js';
import { sample } from '../helpers/prom-text.js';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { keepalivedReports } from '../helpers/vrrp-notify-hook.js';
import { waitFor } from '../helpers/wait-for.js';

const servers: Server[] = [];
const hanging: ServerResponse[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await stopAll();
  for (const r of hanging.splice(0)) r.destroy();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
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
    p.reload(yaml.replace('{ name: backup, address: 127.0.0.1:', '{ name: backup, weight: 7, address: 127.0.0.1:'));
    const reload = await waitFor(() => ok.got.find((n) => n.event === 'reload-ok'), { timeoutMs: 10_000, what: 'reload-ok notification' });
    expect(reload.reason).toContain('server backup weight 1 -> 7');
    const metrics = (await p.get('/metrics')).body;
    expect(sample(metrics, 'licgate_notifications_delivered_total')).toBeGreaterThanOrEqual(4);
    expect(sample(metrics, 'licgate_notification_queue_length')).toBeGreaterThanOrEqual(1);
  });

  it("tells a webhook and the log when keepalived reports another VRRP role for this host (the notify hook's file)", async () => {
    const ok = await receiver();
    const primary = await startSimulator('primary');
    const dir = mkdtempSync(join(tmpdir(), 'licgate-vrrp-'));
    dirs.push(dir);
    const stateFile = join(dir, 'vrrp-state');
    const keepalivedSays = (state: string, priority: string, file = stateFile): void => keepalivedReports(file, state, priority);
    keepalivedSays('BACKUP', '100');
    const yaml = (file: string): string => `notify:
  webhooks:
    - { url: ${ok.url}, events: [vrrp-state] }
vrrp: { state_file: ${file} }
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers:
      - { name: primary, address: 127.0.0.1:${primary.port} }
`;
    const p = await startProxy(yaml(stateFile));
    // The role found at start is logged, not notified: a restarted licgate must not announce a failover.
    const atStart = await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('VRRP VI_LICGATE: this host is BACKUP (since ')), { timeoutMs: 5000, what: 'the start-up role logged' });
    expect(atStart).toMatchObject({ level: 30, vrrp: { state: 'BACKUP', priority: 100 } });
    keepalivedSays('MASTER', '100');
    const master = await waitFor(() => ok.got.find((n) => n.to === 'MASTER'), { timeoutMs: 5000, what: 'the MASTER notification (the file is polled once a second)' });
    expect(master).toMatchObject({ event: 'vrrp-state', from: 'BACKUP', to: 'MASTER', backend: null, server: null });
    expect(master.reason).toMatch(/^keepalived reported INSTANCE VI_LICGATE MASTER \(priority 100\) at \d{4}-/);
    keepalivedSays('FAULT', '0');
    await waitFor(() => ok.got.find((n) => n.to === 'FAULT'), { timeoutMs: 5000, what: 'the FAULT notification' });
    const fault = await waitFor(() => p.logs.find((l) => l.msg === 'VRRP VI_LICGATE: this host is FAULT (was MASTER)'), { timeoutMs: 5000, what: 'the FAULT log line' });
    expect(fault).toMatchObject({ level: 40, from: 'MASTER', vrrp: { state: 'FAULT', priority: 0 } });
    keepalivedSays('BACKUP', '100');
    await waitFor(() => ok.got.find((n) => n.to === 'BACKUP'), { timeoutMs: 5000, what: 'the BACKUP notification' });
    // A reload that moves the file: its role is the new baseline, and its changes are followed.
    const moved = join(dir, 'vrrp-state-2');
    keepalivedSays('MASTER', '150', moved);
    p.reload(yaml(moved));
    await waitFor(() => p.logs.find((l) => String(l.msg).startsWith('VRRP VI_LICGATE: this host is MASTER (since ')), { timeoutMs: 5000, what: 'the moved file read at the reload' });
    keepalivedSays('FAULT', '0', moved);
    await waitFor(() => ok.got.length === 4, { timeoutMs: 5000, what: 'a notification from the moved file' });
    expect(ok.got.map((n) => `${n.from}->${n.to}`)).toEqual(['BACKUP->MASTER', 'MASTER->FAULT', 'FAULT->BACKUP', 'MASTER->FAULT']);
  });
});
