import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { FlexlmSimulator } from '../../src/simulator/flexlm-simulator.js';
import { LicenseClient } from '../helpers/license-client.js';
import { CLI, runCli } from '../helpers/proxy-harness.js';
import { waitFor } from '../helpers/wait-for.js';

/** The FlexLM-like simulator on its own (real sockets): what the proxy tests rely on. */
const sims: FlexlmSimulator[] = [];
const clients: LicenseClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function sim(name: string, tokens = 10): Promise<{ s: FlexlmSimulator; lmgrd: number; vendor: number }> {
  const s = new FlexlmSimulator({ listen: { host: '127.0.0.1', port: 0 }, name, tokens, vendorPort: 0 });
  sims.push(s);
  const lmgrd = (await s.listen()).port;
  return { s, lmgrd, vendor: s.vendorAddress().port };
}

async function client(port: number): Promise<LicenseClient> {
  const c = await LicenseClient.connect(port);
  clients.push(c);
  return c;
}

async function ticket(lmgrdPort: number, line = 'HELLO'): Promise<{ port: number; ticket: string }> {
  const c = await client(lmgrdPort);
  const m = /^VENDOR (\d+) ([0-9a-f]{16})$/.exec(await c.request(line));
  if (!m) throw new Error('no VENDOR line');
  return { port: Number(m[1]), ticket: m[2]! };
}

describe('FlexlmSimulator', () => {
  it('lmgrd answers any line with its vendor port and a fresh ticket', async () => {
    const { lmgrd, vendor } = await sim('a');
    const t1 = await ticket(lmgrd, 'HELLO');
    const t2 = await ticket(lmgrd, 'lm_checkout please');
    expect(t1.port).toBe(vendor);
    expect(t2.port).toBe(vendor);
    expect(t1.ticket).not.toBe(t2.ticket);
  });

  it('grants only tickets this server issued', async () => {
    const a = await sim('a');
    const b = await sim('b');
    const fromA = await ticket(a.lmgrd);
    const vendorB = await client(b.vendor);
    expect(await vendorB.request(`CHECKOUT solver 1 ${fromA.ticket}`)).toBe('DENIED unknown ticket');
    expect(await vendorB.request('CHECKOUT solver 1')).toBe('DENIED usage: CHECKOUT <feature> <count> <ticket>');
    const vendorA = await client(a.vendor);
    expect(await vendorA.request(`CHECKOUT solver 1 ${fromA.ticket}`)).toMatch(/^GRANTED a-\d+$/);
    expect(await vendorA.request('HELLO')).toBe('HELLO a');
  });

  it('releases a connection’s tokens when the vendor connection closes', async () => {
    const { s, lmgrd, vendor } = await sim('a', 3);
    const { ticket: t } = await ticket(lmgrd);
    const first = await client(vendor);
    expect(await first.request(`CHECKOUT solver 3 ${t}`)).toMatch(/^GRANTED /);
    const second = await client(vendor);
    expect(await second.request(`CHECKOUT solver 1 ${t}`)).toBe('DENIED no tokens (0 free)');
    await first.close();
    await waitFor(() => s.inUse === 0, { timeoutMs: 2000, what: 'tokens released' });
    expect(await second.request(`CHECKOUT solver 1 ${t}`)).toMatch(/^GRANTED /);
  });

  it('answers STATUS on both ports', async () => {
    const { lmgrd, vendor } = await sim('a');
    for (const port of [lmgrd, vendor]) {
      const c = await client(port);
      expect(await c.request('STATUS')).toBe('Server Status: Running');
    }
  });

  it('forgets the oldest tickets beyond 10 000, so asking lmgrd again and again cannot grow memory', async () => {
    const { lmgrd, vendor } = await sim('a', 100);
    const c = await client(lmgrd);
    const first = /^VENDOR \d+ (\S+)$/.exec(await c.request('HELLO'))![1]!;
    for (let i = 0; i < 10_000; i++) await c.request('HELLO');
    const v = await client(vendor);
    expect(await v.request(`CHECKOUT solver 1 ${first}`)).toBe('DENIED unknown ticket');
  });

  it('the CLI wants --listen, as its usage says, rather than taking 127.0.0.1:27000 on its own', async () => {
    // 5 s: on a regression the simulator would hold the port until killed; the fix answers at once.
    for (const args of [['simulate'], ['simulate', '--flexlm', '--vendor-port', '0']]) {
      const r = await runCli(args, 5000);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: 'licgate simulate: missing --listen ADDR\nusage: licgate simulate --listen ADDR [--name N] [--tokens N] [--flexlm --vendor-port N]\n',
      });
    }
  });

  it('the CLI refuses an empty --tokens rather than taking it for 0 licenses', async () => {
    const r = await runCli(['simulate', '--listen', '127.0.0.1:0', '--tokens', '']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: expect.stringContaining('--tokens: expected a whole number, found ""') });
  });

  it('the CLI wants --vendor-port with --flexlm, and only then', async () => {
    const missing = await runCli(['simulate', '--flexlm', '--listen', '127.0.0.1:0']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--flexlm: expected --vendor-port N');
    const stray = await runCli(['simulate', '--vendor-port', '27001', '--listen', '127.0.0.1:0']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('--vendor-port: only with --flexlm');
    const bad = await runCli(['simulate', '--flexlm', '--vendor-port', '70000', '--listen', '127.0.0.1:0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--vendor-port: expected a port 0-65535, found "70000"');
  });

  it('the CLI reports a vendor port that is taken, and exits 1', async () => {
    const { vendor } = await sim('a');
    const r = await runCli(['simulate', '--flexlm', '--vendor-port', String(vendor), '--listen', '127.0.0.1:0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot listen for simulator .*: address already in use \(EADDRINUSE\)/);
  });

  it('the CLI says where it listens as address:port, an IPv6 address in brackets', async () => {
    const child = spawn(process.execPath, [CLI, 'simulate', '--flexlm', '--vendor-port', '0', '--listen', '[::1]:0', '--name', 'six'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      await waitFor(() => out.includes('listening on'), { timeoutMs: 10_000, what: 'the simulator to listen' });
      expect(out).toMatch(/^simulator six vendor daemon on \[::1\]:\d+\nsimulator six listening on \[::1\]:\d+\n$/);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });
});
