import { afterEach, describe, expect, it } from 'vitest';
import { LicenseSimulator } from '../../src/simulator/license-simulator.js';
import { helloOnce } from '../helpers/license-client.js';
import { startProxy, stopAll } from '../helpers/proxy-harness.js';

const sims: LicenseSimulator[] = [];

async function simulator(name: string): Promise<number> {
  const sim = new LicenseSimulator({ listen: { host: '127.0.0.1', port: 0 }, name, tokens: 1000 });
  sims.push(sim);
  return (await sim.listen()).port;
}

afterEach(async () => {
  await stopAll();
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

describe('weighted split through licgate run', () => {
  it('sends 300 connections 200/100 to weights 100/50, in the smooth order a b a', async () => {
    const [pa, pb] = [await simulator('a'), await simulator('b')];
    const proxy = await startProxy(`
frontends:
  - { name: lmgrd, listen: "127.0.0.1:0", backend: licenses }
backends:
  - name: licenses
    check: { type: status, inter: 1s }
    servers:
      - { name: a, address: "127.0.0.1:${pa}", weight: 100 }
      - { name: b, address: "127.0.0.1:${pb}", weight: 50 }
`);
    const order: string[] = [];
    for (let i = 0; i < 300; i++) order.push(await helloOnce(proxy.port));
    const counts = { a: order.filter((n) => n === 'a').length, b: order.filter((n) => n === 'b').length };
    console.log(`300-connection split for weights 100/50: a=${counts.a} b=${counts.b}`);
    expect(counts).toEqual({ a: 200, b: 100 });
    // Smooth WRR: never two b in a row, never three a in a row; the cycle is a b a.
    expect(order.join('')).toBe('aba'.repeat(100));
    // The proxy's own counters agree (checks do not count as connections).
    const st = await proxy.backend('licenses');
    expect(st.servers.map((s) => [s.name, s.total, s.active])).toEqual([
      ['a', 200, 0],
      ['b', 100, 0],
    ]);
  });
});
