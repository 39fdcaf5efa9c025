import { lookup } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.js';
import { Daemon } from '../src/daemon.js';
import { helloOnce, LicenseClient } from './helpers/license-client.js';
import { startInProcessSimulator, stopAll } from './helpers/proxy-harness.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await stopAll();
});

/** A config file in a fresh directory; `write` replaces its text (then reload). */
function configFile(text: string): { file: string; dir: string; write: (text: string) => void } {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-daemon-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'licgate.yaml');
  writeFileSync(file, text);
  return { file, dir, write: (t) => writeFileSync(file, t) };
}

/** A port nothing listens on right now (bound on `host`, then released). */
async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('a reload in flight when the shutdown begins', () => {
  /** `extra`: a second frontend on localhost:PORT, a host name: the reload looks it up before binding. */
  function yaml(simPort: number, extra: number | null, check = '{ type: none }'): string {
    return `log: { level: silent, format: json }
shutdown_grace: 20s
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: 127.0.0.1:0, backend: licenses }
${extra !== null ? `  - { name: extra, listen: "localhost:${extra}", backend: licenses }\n` : ''}backends:
  - name: licenses
    check: ${check}
    servers:
      - { name: s1, address: 127.0.0.1:${simPort} }
`;
  }

  const REFUSED = 'shutting down: reload refused (shutdown began while the reload was binding its new listeners; they are closed again)';

  it('is refused and closes the listener it bound: the graceful shutdown takes no new connection there, the held session finishes', async () => {
    const sim = await startInProcessSimulator('s1');
    const cfg = configFile(yaml(sim.port, null));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());

    // A held license session keeps the graceful shutdown waiting (shutdown_grace 20s).
    const held = await LicenseClient.connect(d.frontends[0]!.address().port);
    cleanup.push(() => held.destroy());
    expect(await held.hello()).toBe('s1');

    // SIGHUP with a config that adds a frontend on a host name ...
    const host = (await lookup('localhost')).address;
    const extraPort = await freePort(host);
    cfg.write(yaml(sim.port, extraPort));
    const reload = d.reload('SIGHUP');
    // One microtask turn: the reload has passed its shutting-down check and waits on the lookup of
    // "localhost" (the refusal text below proves it got that far: an early refusal says less).
    await null;
    // ... and SIGTERM while it runs.
    const stopping = d.shutdown(20_000);

    expect(await reload).toEqual({ ok: false, errors: [REFUSED], changes: [] });
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
    await expect(helloOnce(extraPort, { host, timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);

    // The session opened before still works, and its end lets the shutdown finish.
    expect((await held.checkout('solver', 1)).granted).toBe(true);
    await held.close();
    await stopping;
    expect(d.openSessions()).toBe(0);
  });

  it('is waited for by the shutdown: once shutdown() resolves, nothing the reload bound listens and no check runs', async () => {
    const sim = await startInProcessSimulator('s1');
    const check = '{ type: tcp, inter: 10s, rise: 1, fall: 1, timeout: 1s }';
    const cfg = configFile(yaml(sim.port, null, check));
    const d = new Daemon(loadConfigFile(cfg.file), pino({ level: 'silent' }));
    await d.start();
    cleanup.push(() => d.close());
    expect(d.schedulers).toHaveLength(1);

    const host = (await lookup('localhost')).address;
    const extraPort = await freePort(host);
    cfg.write(yaml(sim.port, extraPort, check));
    const settled: string[] = [];
    const reload = d.reload('SIGHUP').then((o) => (settled.push('reload'), o));
    await null; // the reload waits on the lookup of "localhost", past its shutting-down check
    // No session open: the shutdown has nothing to drain and would be done before the lookup.
    const stopped = d.shutdown(5000).then(() => settled.push('shutdown'));

    const outcome = await reload;
    await stopped;
    expect(outcome).toEqual({ ok: false, errors: [REFUSED], changes: [] });
    expect(settled).toEqual(['reload', 'shutdown']);
    expect(d.frontends.map((f) => f.name)).toEqual(['lmgrd']);
    expect(d.schedulers).toHaveLength(0);
    await expect(helloOnce(extraPort, { host, timeoutMs: 3000 })).rejects.toThrow(/ECONNREFUSED/);
  });
});
