import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/flexlm-simulator-process.js';
import { spawnRun, type Exit } from '../helpers/licgate-run.js';
import { startProxy, stopAll } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await stopAll();
});

const config = (admin: number, stateFile: string | null, servers: string): string => `admin: { listen: "127.0.0.1:${admin}" }
log: { level: info, format: json }
shutdown_grace: 500ms
shutdown_delay: 0s
${stateFile === null ? '' : `vrrp: { state_file: "${stateFile}" }`}
backends:
  - name: licenses
    check: { type: none }
    servers:
${servers}`;

/**
 * The disk, scripted in a child through --require: opening `path` waits until `${path}.go` exists,
 * as an open on a hung mount would; the child writes "open held: PATH" to stderr. (A FIFO held it
 * once, until start-up learnt not to wait on one.)
 */
function heldOpenPreload(dir: string, path: string): string {
  const preload = join(dir, 'held-open.cjs');
  writeFileSync(
    preload,
    `const fs = require('node:fs');
const fsp = require('node:fs/promises');
const real = fsp.open;
fsp.open = function (file, ...rest) {
  if (file !== ${JSON.stringify(path)}) return real.call(this, file, ...rest);
  process.stderr.write('open held: ' + file + '\\n');
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (!fs.existsSync(file + '.go')) return;
      clearInterval(poll);
      real.call(fsp, file, ...rest).then(resolve, reject);
    }, 10);
  });
};
require('node:module').syncBuiltinESMExports();
`,
  );
  return preload;
}

/**
 * `licgate run` held in start-up after its listeners are bound and its server names resolved: the
 * VRRP state file, which start-up reads last, cannot be opened until `finish()`, so the admin
 * /health already answers (as it does in production while server names are looked up).
 */
async function startHeld(): Promise<{ child: ChildProcess; file: string; admin: number; logs: Record<string, unknown>[]; exit: () => Exit | null; finish: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'licgate-run-signals-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const stateFile = join(dir, 'vrrp-state');
  writeFileSync(stateFile, 'INSTANCE VI_LICGATE MASTER 150 2026-01-01T00:00:00Z\n');
  const admin = await freePort();
  const file = join(dir, 'licgate.yaml');
  writeFileSync(file, config(admin, stateFile, '      - { name: s1, address: 127.0.0.1:1 }\n'));
  const { child, logs, stderr, exit } = spawnRun(file, cleanup, { ...process.env, NODE_OPTIONS: `--require ${heldOpenPreload(dir, stateFile)}` });
  await waitFor(() => exit() ?? stderr().includes(`open held: ${stateFile}`), { timeoutMs: 15_000, what: 'start-up opening the VRRP state file, or an exit' });
  expect(exit()).toBeNull();
  expect((await fetch(`http://127.0.0.1:${admin}/health`, { signal: AbortSignal.timeout(1000) })).status).toBe(200);
  expect(logs.find((l) => l.msg === 'licgate started')).toBeUndefined();
  const finish = (): void => writeFileSync(`${stateFile}.go`, '');
  return { child, file, admin, logs, exit, finish };
}

describe('licgate run: a signal during start-up', () => {
  it('SIGHUP (systemctl reload) does not kill it: the config is reloaded once start-up is done', async () => {
    const p = await startHeld();
    // The new config reads no state file, so the reload does not depend on it.
    writeFileSync(p.file, config(p.admin, null, '      - { name: s1, address: 127.0.0.1:1 }\n      - { name: s2, address: 127.0.0.1:2 }\n'));
    p.child.kill('SIGHUP');
    await waitFor(() => p.exit() ?? p.logs.find((l) => l.msg === 'signal received' && l.signal === 'SIGHUP'), { timeoutMs: 5000, what: 'the signal logged, or an exit' });
    expect(p.exit()).toBeNull();
    expect(p.logs.find((l) => l.msg === 'licgate started')).toBeUndefined();
    p.finish();
    await waitFor(() => p.exit() ?? p.logs.find((l) => String(l.msg).startsWith('config reloaded')), { timeoutMs: 15_000, what: 'the reload, or an exit' });
    expect(p.exit()).toBeNull();
    const status = (await (await fetch(`http://127.0.0.1:${p.admin}/status`)).json()) as { backends: { servers: { name: string }[] }[] };
    expect(status.backends[0]!.servers.map((s) => s.name)).toEqual(['s1', 's2']);
    const gone = once(p.child, 'exit');
    p.child.kill('SIGTERM');
    expect((await gone)[0]).toBe(0);
  });

  it('SIGTERM stops it gracefully, exit 0, once start-up is done', async () => {
    const p = await startHeld();
    p.child.kill('SIGTERM');
    await waitFor(() => p.logs.find((l) => l.msg === 'signal received' && l.signal === 'SIGTERM'), { timeoutMs: 5000, what: 'the signal logged' });
    expect(p.logs.find((l) => l.msg === 'licgate started')).toBeUndefined();
    const gone = once(p.child, 'exit');
    p.finish();
    expect(await gone).toEqual([0, null]);
    expect(p.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['licgate started', 'stopped']));
  });
});

/**
 * The name service, scripted in a child through --require: the lookup of `host` is answered only
 * after 15 s (resolv.conf's timeouts against a name server that does not answer), and holds the
 * process as getaddrinfo on libuv's pool would; the child writes "lookup held: HOST" to stderr.
 */
function heldDnsPreload(dir: string, host: string): string {
  const preload = join(dir, 'held-dns.cjs');
  writeFileSync(
    preload,
    `const dns = require('node:dns');
const real = dns.promises.lookup;
dns.promises.lookup = function (host, ...rest) {
  if (host !== ${JSON.stringify(host)}) return real.call(this, host, ...rest);
  process.stderr.write('lookup held: ' + host + '\\n');
  return new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('getaddrinfo EAI_AGAIN ' + host), { code: 'EAI_AGAIN' })), 15000));
};
require('node:module').syncBuiltinESMExports();
`,
  );
  return preload;
}

// A stop during start-up's lookups exits at once: the listen host's lookup, or the server names'
// (each bounded by 2 s, which systemd and keepalived should not have to wait for).
describe.each([
  { looksUp: 'a listen host', held: 'held.licgate.test', listenHost: 'held.licgate.test', server: '127.0.0.1:1', withinMs: 3000 },
  { looksUp: 'a server name', held: 'lic1.licgate.test', listenHost: '127.0.0.1', server: 'lic1.licgate.test:27000', withinMs: 1000 },
])('licgate run: SIGTERM while start-up looks up $looksUp', ({ held, listenHost, server, withinMs }) => {
  it('stops at once, exit 0, logging that start-up was cut short, instead of waiting for the lookup', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'licgate-run-signals-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const preload = heldDnsPreload(dir, held);
    const file = join(dir, 'licgate.yaml');
    writeFileSync(
      file,
      `log: { level: info, format: json }
shutdown_delay: 0s
frontends:
  - { name: lmgrd, listen: "${listenHost}:${await freePort()}", backend: licenses }
backends:
  - name: licenses
    check: { type: none }
    servers: [{ name: s1, address: "${server}" }]
`,
    );
    const { child, logs, stderr, exit } = spawnRun(file, cleanup, { ...process.env, NODE_OPTIONS: `--require ${preload}` });
    await waitFor(() => exit() ?? stderr().includes(`lookup held: ${held}`), { timeoutMs: 15_000, what: `start-up looking up ${held}, or an exit` });
    expect(exit()).toBeNull();

    const signalled = performance.now();
    child.kill('SIGTERM');
    await waitFor(() => exit(), { timeoutMs: 30_000, what: 'licgate to exit after SIGTERM' });
    const tookMs = performance.now() - signalled;
    expect({ exited: exit(), stderr: stderr().replace(`lookup held: ${held}\n`, '') }).toEqual({ exited: { code: 0, signal: null }, stderr: '' });
    const msgs = logs.map((l) => l.msg);
    expect({ tookMs: tookMs < withinMs, msgs }).toEqual({ tookMs: true, msgs: expect.arrayContaining(['signal received', 'start-up cut short by the stop', 'stopped']) });
    expect(msgs).not.toContain('licgate started');
  });
});

describe('licgate run: signals it does not use', () => {
  it('SIGUSR1 opens no debugger and SIGUSR2 does not kill it: each is logged as ignored, and SIGTERM still stops it, exit 0', async () => {
    const p = await startProxy(`backends:\n  - name: licenses\n    check: { type: none }\n    servers: [{ name: s1, address: "127.0.0.1:1" }]\n`);
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
      p.child.kill(signal);
      await waitFor(() => p.child.exitCode !== null || p.child.signalCode !== null || p.stderr().includes('Debugger listening') || p.logs.some((l) => l.msg?.startsWith('signal ignored') && l.signal === signal), { timeoutMs: 5000, what: `${signal} logged as ignored, a debugger, or an exit` });
      expect({ code: p.child.exitCode, signal: p.child.signalCode }).toEqual({ code: null, signal: null });
      expect(p.stderr()).not.toContain('Debugger listening');
    }
    expect((await p.get('/health')).status).toBe(200);
    const exited = once(p.child, 'exit');
    p.child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  });
});
