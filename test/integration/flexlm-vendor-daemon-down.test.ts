import { randomBytes } from 'node:crypto';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { askLmgrd, clientAddresses, flexlmCheckout, flexlmSession, vendorCheckout, type FlexlmSession } from '../helpers/flexlm-client.js';
import { startFlexlmLab } from '../helpers/flexlm-lab.js';
import { LicenseClient } from '../helpers/license-client.js';
import { freePort, startFlexlmSimulator, stopFlexlmSimulators } from '../helpers/flexlm-simulator-process.js';
import { startProxy, startSimulator, stopAll } from '../helpers/proxy-harness.js';
import { sleep, waitFor } from '../helpers/wait-for.js';

/**
 * A partial failure: a license server's vendor daemon crashed while its lmgrd lives on. The
 * check (on the lmgrd port) passes; only the vendor port refuses. The first client that finds the
 * refused vendor port marks the server DOWN (observe_errors). Before the fix its lmgrd checks
 * brought it back UP `rise` checks later, the next clients were sent to its lmgrd again, and each
 * round cost a denied checkout: the server flapped for as long as the vendor daemon was down.
 */
let standIn: NetServer | null = null;
/** A stand-in that may stop listening with connections open, and those (closed by afterEach). */
let vendorStandIn: NetServer | null = null;
const standInSockets = new Set<Socket>();

afterEach(async () => {
  vendorStandIn?.close();
  vendorStandIn = null;
  for (const s of standInSockets) s.destroy();
  standInSockets.clear();
  if (standIn) await new Promise<void>((resolve) => standIn!.close(() => resolve()));
  standIn = null;
  await stopAll();
  await stopFlexlmSimulators();
});

/** lmgrd without its vendor daemon: it still names the vendor port and issues a ticket for it. */
async function lmgrdAlone(host: string, port: number, vendorPort: number): Promise<NetServer> {
  const srv = createServer((sock) => {
    sock.on('error', () => {});
    sock.setEncoding('utf8').once('data', () => sock.end(`VENDOR ${vendorPort} ${randomBytes(8).toString('hex')}\n`));
  });
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, host, () => resolve()));
  return srv;
}

/** Servers a and b; a's vendor daemon killed, its lmgrd alive (a stand-in) and a UP on its checks. */
async function vendorDaemonOfADead() {
  const check = 'check: { type: tcp, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 2, fall: 2, timeout: 500ms }';
  const lab = await startFlexlmLab(['a', 'b'], ['stick: source', 'retries: 2', check]);
  const server = async (name: string) => lab.proxy.server('licenses', name);
  lab.sims.a!.child.kill('SIGKILL');
  await new Promise((resolve) => lab.sims.a!.child.once('exit', resolve));
  standIn = await lmgrdAlone('127.0.1.1', lab.lmgrdPort, lab.vendorPort);
  await waitFor(async () => (await server('a')).state === 'UP', { timeoutMs: 10_000, intervalMs: 20, what: 'a UP on its lmgrd checks' });
  return { ...lab, check, server };
}

/** vendorDaemonOfADead, then new clients until one reaches a's dead vendor port and marks a DOWN. */
async function aHeldDownOnItsVendorPort() {
  const lab = await vendorDaemonOfADead();
  const { lmgrdPort, vendorPort, server } = lab;
  // Its next check, a fastinter later, holds it DOWN on that port. (Polling the check's reason in
  // the loop counted checkouts, not time: 40 of them could all pass before that check on a loaded
  // machine.)
  for (let n = 1; (await server('a')).state !== 'DOWN'; n++) {
    if (n > 40) throw new Error(`a not marked DOWN by its dead vendor port ${vendorPort}: ${JSON.stringify(await server('a'))}`);
    await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: `127.0.2.${n}` }).catch(() => {});
  }
  await waitFor(async () => (await server('a')).last_check?.reason.includes(`port ${vendorPort}`), { timeoutMs: 5000, intervalMs: 20, what: `a held DOWN on port ${vendorPort} by its check` });
  return lab;
}

/** Reloads `lab`'s proxy (the vendor frontend kept or not, `keys` added to the backend); a must then rise on its lmgrd checks. */
async function reloadThenAUp(lab: Awaited<ReturnType<typeof vendorDaemonOfADead>>, change: { vendorFrontend: boolean; keys: string[] }, what: string): Promise<void> {
  const { check, lmgrdPort, vendorPort, proxy, server } = lab;
  const vendor = change.vendorFrontend ? `  - { name: vendor, listen: "127.0.0.1:${vendorPort}", backend: licenses, server_port: ${vendorPort} }\n` : '';
  proxy.reload(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:${lmgrdPort}", backend: licenses }
${vendor}backends:
  - name: licenses
    stick: source
    retries: 2
${change.keys.map((k) => `    ${k}\n`).join('')}    ${check}
    servers:
      - { name: a, address: "127.0.1.1:${lmgrdPort}" }
      - { name: b, address: "127.0.1.2:${lmgrdPort}" }
`);
  await waitFor(() => proxy.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), { timeoutMs: 5000, what: 'the reload' });
  const a = await waitFor(async () => ((await server('a')).state === 'UP' ? server('a') : null), { timeoutMs: 5000, intervalMs: 20, what: `a UP on its lmgrd checks ${what}` }).catch(async (e: Error) => {
    throw new Error(`${e.message}; a: ${JSON.stringify(await server('a'))}`);
  });
  expect(a.last_check?.reason).not.toContain(`port ${vendorPort}`);
}

describe('FlexLM vendor daemon down, lmgrd alive', () => {
  it('the server stays DOWN until its vendor port accepts again: one checkout is denied, not one per rise', async () => {
    const { lmgrdPort, vendorPort, sims, proxy, server } = await vendorDaemonOfADead();

    // A new client host every 20 ms for 3 s (15 rounds of rise × fastinter), as users start their
    // applications: each has no stick entry yet and is balanced over the servers UP.
    const denied: string[] = [];
    const states = new Set<string>();
    let n = 0;
    for (const until = performance.now() + 3000; performance.now() < until; n++) {
      const client = `127.0.2.${n + 1}`;
      await sleep(20);
      try {
        const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: client });
        if (!r.granted) denied.push(`${client}: ${r.detail}`);
      } catch (e) {
        denied.push(`${client}: ${(e as Error).message}`);
      }
      states.add((await server('a')).state);
    }
    const a = await server('a');
    console.log(`vendor daemon of a down: ${n} checkouts, ${denied.length} denied; a's states seen: ${[...states].join(', ')}; a: ${a.state} (${a.last_check?.reason})`);
    expect(denied, 'checkouts denied while a flapped').toHaveLength(1);
    expect(a.state).toBe('DOWN');
    expect(a.last_check?.reason).toContain(`port ${vendorPort}`);

    // The vendor daemon is back (lmgrd restarted it): a is UP again and takes new clients.
    await new Promise<void>((resolve) => standIn!.close(() => resolve()));
    standIn = null;
    await sims.a!.restart();
    await waitFor(async () => (await server('a')).state === 'UP', { timeoutMs: 10_000, intervalMs: 20, what: 'a UP once its vendor port accepts' });
    const placed = await Promise.all(clientAddresses(8, 32).map((c) => flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: c })));
    expect(placed.every((r) => r.granted)).toBe(true);
    expect(placed.map((r) => r.server)).toContain('a');
  });

  it('a reload that removes the vendor frontend lets the server back on its checks: no client uses that port any more', async () => {
    // The vendor is retired: its frontend goes, a's lmgrd stays. No connect goes to that port now.
    await reloadThenAUp(await aHeldDownOnItsVendorPort(), { vendorFrontend: false, keys: [] }, 'once no frontend uses the vendor port');
  });

  it('a reload that turns passive health off (observe_errors: 0) lets the server back on its checks, as HAProxy without observe', async () => {
    await reloadThenAUp(await aHeldDownOnItsVendorPort(), { vendorFrontend: true, keys: ['observe_errors: 0'] }, 'once passive health is off');
  });
});

/**
 * Two license hosts a and b, each with lmgrd + vendor B (the FlexLM simulator: tickets) and vendor A
 * (a plain simulator of its own on the same host, so that its daemon can die alone, as under one
 * lmgrd; it grants any checkout). On a, vendor A is a stand-in that can stop accepting while a
 * session on it stays open: then licgate, not the daemon, must end that session.
 */
async function twoVendorHosts() {
  const [lmgrdPort, portB, portA] = [await freePort(), await freePort(), await freePort()];
  const hosts = { a: '127.0.1.1', b: '127.0.1.2' };
  const lmgrd = { a: await startFlexlmSimulator({ name: 'a', host: hosts.a, lmgrdPort, vendorPort: portB }), b: await startFlexlmSimulator({ name: 'b', host: hosts.b, lmgrdPort, vendorPort: portB }) };
  const vendorAOnB = await startSimulator('b', { host: hosts.b, port: portA });
  const standInA = (vendorStandIn = createServer((sock) => {
    standInSockets.add(sock);
    sock.on('error', () => {}).on('close', () => standInSockets.delete(sock));
    sock.setEncoding('latin1').on('data', () => sock.write('HELLO a\n'));
  }));
  await new Promise<void>((resolve, reject) => standInA.once('error', reject).listen(portA, hosts.a, () => resolve()));
  const proxy = await startProxy(`frontends:
  - { name: lmgrd, listen: "127.0.0.1:${lmgrdPort}", backend: licenses }
  - { name: vendor-b, listen: "127.0.0.1:${portB}", backend: licenses, server_port: ${portB} }
  - { name: vendor-a, listen: "127.0.0.1:${portA}", backend: licenses, server_port: ${portA} }
backends:
  - name: licenses
    stick: source
    retries: 2
    on_marked_down: shutdown-sessions
    check: { type: status, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 2, fall: 2, timeout: 300ms }
    servers:
      - { name: a, address: "${hosts.a}:${lmgrdPort}" }
      - { name: b, address: "${hosts.b}:${lmgrdPort}" }
`);
  const server = async (name: string) => proxy.server('licenses', name);
  return { lmgrdPort, portA, portB, lmgrd, vendorAOnB, standInA, proxy, server };
}

/** Vendor A's daemon on a stops accepting (lmgrd and vendor B live on); new clients until one reaches it and marks a DOWN. */
async function vendorADiesOnA({ lmgrdPort, portA, standInA, server }: Awaited<ReturnType<typeof twoVendorHosts>>): Promise<void> {
  // close() stops accepting at once; its callback would wait for the sessions on it to end.
  standInA.close();
  for (let n = 1; (await server('a')).state !== 'DOWN'; n++) {
    if (n > 40) throw new Error(`a not marked DOWN by its dead vendor A port: ${JSON.stringify(await server('a'))}`);
    const client = { host: '127.0.0.1', lmgrdPort, localAddress: `127.0.3.${n}` };
    const r = await vendorCheckout(client, { ...(await askLmgrd(client)), vendorPort: portA }).catch(() => null);
    r?.vendor.destroy();
  }
}

describe('on_marked_down: shutdown-sessions, two vendor daemons on each license host', () => {
  it("vendor A's daemon dies on a: vendor B's license held on a stays; a's own check failing then ends it", async () => {
    const lab = await twoVendorHosts();
    const { lmgrdPort, portA, portB, lmgrd, proxy } = lab;

    // A client holding a vendor B license on a.
    let held: FlexlmSession | null = null;
    for (let n = 1; held === null; n++) {
      if (n > 20) throw new Error('no vendor B checkout landed on a in 20 clients');
      const s = await flexlmSession({ host: '127.0.0.1', lmgrdPort, localAddress: `127.0.2.${n}` });
      if (s.server === 'a') held = s;
      else await s.vendor.close();
    }
    expect(held.vendorPort).toBe(portB);
    const seen: string[] = [];
    held.vendor.socket.on('end', () => seen.push('end')).on('close', () => seen.push('close'));
    // The same client holds a vendor A session on a too (its stick entry takes it there).
    const heldA = await LicenseClient.connect(portA, { host: '127.0.0.1', localAddress: held.client, timeoutMs: 5000 });
    expect(await heldA.request('HELLO')).toBe('HELLO a');
    const seenA: string[] = [];
    heldA.socket.on('close', () => seenA.push('close'));
    // And a connection to a's lmgrd (a client's placement: it answers each line, and stays open).
    const heldLmgrd = await LicenseClient.connect(lmgrdPort, { host: '127.0.0.1', localAddress: held.client, timeoutMs: 5000 });
    expect(await heldLmgrd.request('HELLO')).toMatch(new RegExp(`^VENDOR ${portB} `));
    const seenLmgrd: string[] = [];
    heldLmgrd.socket.on('close', () => seenLmgrd.push('close'));

    await vendorADiesOnA(lab);
    // The log says which port refused: the admin can tell a vendor daemon died, not a's lmgrd.
    const down = await waitFor(() => proxy.logs.find((l) => l.msg === 'server licenses/a is DOWN'), { timeoutMs: 3000, what: "a's DOWN log line" });
    expect(down.reason).toBe(`passive: connection refused on port ${portA}`);
    // Vendor A's session on a is closed, and the warning says it was that port's only.
    await waitFor(() => seenA.includes('close'), { timeoutMs: 3000, intervalMs: 10, what: "vendor A's session on a ended" });
    const closedA = await waitFor(() => proxy.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('closed ')), { timeoutMs: 3000, what: 'the on_marked_down warning' });
    expect(closedA.msg).toBe(`closed 1 session(s) to licenses/a on port ${portA}, marked DOWN on that port (on_marked_down: shutdown-sessions)`);
    // The license on vendor B is still held: its session was not ended with a's vendor A ones.
    expect(await held.vendor.request('HELLO').catch((e: Error) => `request failed: ${e.message}; ${seen.join(', ')}`)).toBe('HELLO a');
    expect(seen).toEqual([]);
    // Nor is lmgrd's (README: "lmgrd's sessions are kept too").
    expect(await heldLmgrd.request('HELLO').catch((e: Error) => `request failed: ${e.message}`)).toMatch(new RegExp(`^VENDOR ${portB} `));
    expect(seenLmgrd).toEqual([]);

    // Now a's lmgrd (and vendor B) stop answering: its own check fails, and the rest goes too.
    lmgrd.a.child.kill('SIGSTOP');
    try {
      await waitFor(() => seen.includes('close'), { timeoutMs: 5000, intervalMs: 10, what: "vendor B's session ended once a's own check failed" });
      expect(seen).toEqual(['end', 'close']);
      const ended = await waitFor(() => proxy.logs.find((l) => l.msg === 'session closed' && l.frontend === 'vendor-b'), { timeoutMs: 3000, what: "the vendor B session's log line" });
      expect(ended.end).toBe('server-down');
      await waitFor(() => seenLmgrd.includes('close'), { timeoutMs: 3000, intervalMs: 10, what: "the lmgrd session on a ended with the rest" });
      // No state changed now: the warning says which sessions went and why, not "marked DOWN" again.
      const rest = proxy.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('closed '))[1];
      expect(rest?.msg).toMatch(new RegExp(`^closed 2 session\\(s\\) to licenses/a on its other ports, marked DOWN on port ${portA} and now: .+ \\(on_marked_down: shutdown-sessions\\)$`));
    } finally {
      lmgrd.a.child.kill('SIGCONT');
    }
  });
});

describe('a vendor daemon down on the last server that can serve', () => {
  it("vendor A's daemon is dead on a, then host b dies: a comes back on its checks, and vendor B's clients get their licenses there", async () => {
    const lab = await twoVendorHosts();
    const { lmgrdPort, portA, lmgrd, vendorAOnB, server } = lab;
    await vendorADiesOnA(lab);
    await waitFor(async () => (await server('a')).last_check?.reason.includes(`port ${portA}`), { timeoutMs: 5000, intervalMs: 20, what: `a held DOWN on port ${portA} by its check` });

    // Host b goes: lmgrd, vendor B and vendor A with it. a is the only server left with lmgrd and
    // vendor B alive; held DOWN for vendor A, it served no one at all.
    lmgrd.b.child.kill('SIGKILL');
    await vendorAOnB.kill('SIGKILL');
    await waitFor(async () => (await server('b')).state === 'DOWN', { timeoutMs: 5000, intervalMs: 20, what: 'b DOWN on its checks' });
    const a = await waitFor(async () => ((await server('a')).state === 'UP' ? server('a') : null), { timeoutMs: 5000, intervalMs: 20, what: 'a UP on its checks once no other server can serve' }).catch(async (e: Error) => {
      throw new Error(`${e.message}; a: ${JSON.stringify(await server('a'))}`);
    });
    expect(a.last_check?.reason).not.toContain(`port ${portA}`);
    const r = await flexlmCheckout({ host: '127.0.0.1', lmgrdPort, localAddress: '127.0.4.1' });
    expect([r.granted, r.server]).toEqual([true, 'a']);
  });
});

describe('on_marked_down: shutdown-sessions across a reload that moves a vendor port', () => {
  it('a DOWN on the new port keeps the sessions opened to the old one before the reload', async () => {
    const [ownPort, oldPort, newPort] = [await freePort(), await freePort(), await freePort()];
    const hosts = { a: '127.0.1.1', b: '127.0.1.2' };
    // Both hosts answer the checks on their own port and serve the vendor on the old port; only b
    // has the vendor on the new one yet: a's daemon there is not up.
    for (const [name, host] of Object.entries(hosts)) {
      await startSimulator(name, { host, port: ownPort });
      await startSimulator(name, { host, port: oldPort });
    }
    await startSimulator('b', { host: hosts.b, port: newPort });
    const config = (serverPort: number) => `frontends:
  - { name: vendor, listen: "127.0.0.1:${oldPort}", backend: licenses, server_port: ${serverPort} }
backends:
  - name: licenses
    retries: 2
    on_marked_down: shutdown-sessions
    check: { type: tcp, inter: 200ms, fastinter: 100ms, downinter: 200ms, rise: 2, fall: 2, timeout: 300ms }
    servers:
      - { name: a, address: "${hosts.a}:${ownPort}" }
      - { name: b, address: "${hosts.b}:${ownPort}" }
`;
    const proxy = await startProxy(config(oldPort));
    const server = async (name: string) => proxy.server('licenses', name);

    // A session to a's vendor on the old port, held across the reload.
    let held: LicenseClient | null = null;
    for (let n = 1; held === null; n++) {
      if (n > 20) throw new Error('no session landed on a in 20 clients');
      const c = await LicenseClient.connect(oldPort, { host: '127.0.0.1', localAddress: `127.0.2.${n}`, timeoutMs: 5000 });
      if ((await c.request('HELLO')) === 'HELLO a') held = c;
      else c.destroy();
    }
    const seen: string[] = [];
    held.socket.on('close', () => seen.push('close'));

    // The vendor moves to the new port on the license servers; the listener stays.
    proxy.reload(config(newPort));
    await waitFor(() => proxy.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), { timeoutMs: 5000, what: 'the reload' });
    for (let n = 1; (await server('a')).state !== 'DOWN'; n++) {
      if (n > 40) throw new Error(`a not marked DOWN by its dead new vendor port: ${JSON.stringify(await server('a'))}`);
      const c = await LicenseClient.connect(oldPort, { host: '127.0.0.1', localAddress: `127.0.3.${n}`, timeoutMs: 5000 }).catch(() => null);
      await c?.request('HELLO').catch(() => null);
      c?.destroy();
    }
    const down = await waitFor(() => proxy.logs.find((l) => l.msg === 'server licenses/a is DOWN'), { timeoutMs: 3000, what: "a's DOWN log line" });
    expect(down.reason).toBe(`passive: connection refused on port ${newPort}`);
    // a's daemon on the old port still holds that session: it is not the new port's.
    expect(await held.request('HELLO').catch((e: Error) => `request failed: ${e.message}; ${seen.join(', ')}`)).toBe('HELLO a');
    expect(seen).toEqual([]);
    held.destroy();
  });
});
